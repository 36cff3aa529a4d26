"""Fixtures that build the desktop image once and run it as containers (see runner.py for how).

`running_desktop` (session scope): one desktop container, started once and shared by every test that only
looks at it (the browser, auth, TLS, users, health; and the probes test in test_probes_from_stack.py). It is a
`runner.Desktop`:

    .password            the desktop's password (HTTP Basic auth; any user name)
    .host_port           port on 127.0.0.1 of the host that reaches the container's HTTPS port
                         (arriving from 127.0.0.1 inside); .alt_host_port arrives from 127.0.0.2
    .https_url(path)     "https://127.0.0.1:<host_port><path>" (self-signed certificate: do not verify)
    .get(path, password=True|None|str, alt=False) -> (status, body, headers)
    .exec(argv, user=None, env=None, timeout=30) -> subprocess.CompletedProcess
                         argv run inside the container (its root, PID, network, mount namespaces) as the
                         desktop user (user=0 for root); DISPLAY=:1 is set
    .processes()         the container's processes (host pid, name, cmdline, uids, capabilities)
    .logs()              the container's output so far

Tests that break or stop a container start their own with `runner.start_desktop()`.
Every test here is marked `image`; without root, buildah, socat or (for the browser) chromium they are skipped
with the reason.
"""

from __future__ import annotations

import shutil

import pytest

from tests.image import runner


@pytest.fixture(scope="session")
def desktop_image() -> str:
    """The built image's tag (built once per session; buildah's layer cache makes a rebuild about a second)."""
    reason = runner.missing_requirements()
    if reason:
        pytest.skip(f"desktop image tests: {reason}")
    runner.build_image()
    return runner.IMAGE


@pytest.fixture(scope="session")
def running_desktop(desktop_image):
    d = runner.start_desktop(image=desktop_image)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not shutil.which(path):
        pytest.skip("chromium is not installed (scripts/system-packages.sh installs it)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("python playwright is not installed in this environment")
    return path
