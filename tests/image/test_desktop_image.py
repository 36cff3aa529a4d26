"""The desktop image, built and run for real: a browser sees and drives the desktop; it is secure by default;
it recovers from crashes and stops cleanly. See conftest.py for the fixtures and runner.py for the runtime."""

from __future__ import annotations

import base64
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from microvm import contract
from tests.image import browser, runner

pytestmark = pytest.mark.image

ARTIFACTS = runner.REPO / "test-artifacts"
LIB = "import sys; sys.path.insert(0, '/usr/local/lib/desktop'); import desktop_lib; "


def viewable(d: runner.Desktop, *names: str) -> dict[str, bool]:
    code = LIB + f"r = desktop_lib.windows_viewable(*{[n.encode() for n in names]!r}); " \
                 "print(' '.join(k.decode() for k, v in r.items() if v))"
    out = d.exec(["python3", "-c", code]).stdout.decode().split()
    return {n: n in out for n in names}


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def raw_https(port: int, request: bytes, timeout: float = 10) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s, \
            ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def upgrade_request(password: str | None, origin: str | None = None, host: str = "localhost") -> bytes:
    lines = [
        "GET /websockify HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: binary",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if password is not None:
        lines.append("Authorization: Basic " + base64.b64encode(f"desktop:{password}".encode()).decode())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ------------------------------------------------------------------------------------------ 1. browser


def test_browser_sees_the_desktop_and_typing_reaches_a_terminal(running_desktop, chromium_path):
    d = running_desktop
    assert viewable(d, "xfce4-panel")["xfce4-panel"], "the XFCE panel is not mapped"
    with browser.browser(password=d.password) as ctx:
        page = ctx.new_page()
        page.goto(d.https_url("/"))
        assert "vnc.html" in page.url and "autoconnect=true" in page.url
        _, colours = browser.wait_for_desktop_frame(page)
        assert colours >= 8
        assert "encrypted" in browser.status_text(page).lower() or "connected" in browser.status_text(page).lower()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "desktop.png"))

        d.exec(["rm", "-f", "/tmp/typed"])
        term = d.spawn(["xfce4-terminal", "--disable-server", "--geometry", "80x20+100+100"])
        try:
            assert wait_until(lambda: viewable(d, "xfce4-terminal")["xfce4-terminal"], 20), "terminal not mapped"
            assert wait_until(lambda: d.pids_of("bash"), 10), "no shell in the terminal"
            time.sleep(0.5)  # the prompt
            typed = b""
            for _ in range(3):
                page.mouse.click(400, 250)  # inside the terminal window: it has the focus
                page.keyboard.type("echo hello > /tmp/typed", delay=20)
                page.keyboard.press("Enter")
                typed = wait_until(lambda: d.exec(["cat", "/tmp/typed"]).stdout, 5)
                if typed:
                    break
            assert typed == b"hello\n", f"typing did not reach the terminal (got {typed!r})"
            page.screenshot(path=str(ARTIFACTS / "desktop-terminal.png"))
        finally:
            d.exec(["pkill", "-x", "xfce4-terminal"])
            term.wait(timeout=10)


# ------------------------------------------------------------------------------------------ 2. auth


def test_wrong_password_gets_401_and_no_desktop(running_desktop, chromium_path):
    d = running_desktop
    with browser.browser(password=d.password + "x") as ctx:
        page = ctx.new_page()
        resp = page.goto(d.https_url("/vnc.html"))
        assert resp is not None and resp.status == 401
        assert page.evaluate("document.querySelectorAll('canvas').length") == 0


def test_no_password_no_desktop_page_files_or_websocket(running_desktop):
    d = running_desktop
    for path in ("/", "/vnc.html", "/app/ui.js", "/core/rfb.js", "/websockify", "/nonexistent"):
        status, _, headers = d.get(path, password=None)
        assert status == 401, path
        assert headers.get("WWW-Authenticate", "").startswith("Basic")
    assert raw_https(d.host_port, upgrade_request(None)).startswith(b"HTTP/1.1 401")
    assert raw_https(d.host_port, upgrade_request("wrong-password-123")).startswith(b"HTTP/1.1 401")
    # with the password, the same upgrade is accepted: the 401s above are the auth, not a broken websocket
    assert raw_https(d.host_port, upgrade_request(d.password)).startswith(b"HTTP/1.1 101")
    # the health endpoints never open the desktop, whatever is asked
    assert raw_https(d.host_port, upgrade_request(None).replace(b"/websockify", b"/readyz")).startswith(b"HTTP/1.1 405")


def test_a_websocket_from_another_site_is_refused_even_with_the_password(running_desktop):
    """Browsers send cached Basic credentials with any page's websocket: only the desktop's own page may open it."""
    d = running_desktop
    host = f"127.0.0.1:{d.host_port}"
    evil = upgrade_request(d.password, origin="https://evil.example", host=host)
    assert raw_https(d.host_port, evil).startswith(b"HTTP/1.1 403")
    other_port = upgrade_request(d.password, origin="https://127.0.0.1:1", host=host)
    assert raw_https(d.host_port, other_port).startswith(b"HTTP/1.1 403")
    own = upgrade_request(d.password, origin=f"https://{host}", host=host)
    assert raw_https(d.host_port, own).startswith(b"HTTP/1.1 101")


def test_every_character_of_the_password_counts(running_desktop):
    d = running_desktop
    pw = d.password
    assert len(pw) > 8
    for guess in (pw[:8], pw[:-1], pw[:-1] + chr(ord(pw[-1]) ^ 1), pw + " "):
        assert d.get("/vnc.html", password=guess)[0] in (401, 429), guess
    assert d.get("/vnc.html")[0] == 200


def test_guessing_from_one_address_does_not_lock_out_another(running_desktop):
    """20 wrong guesses at once from 127.0.0.2; meanwhile 127.0.0.1 logs in at once. The guessing address gets at
    most 3 quick answers: the others wait (0.5 s doubling) or get 429 unchecked."""
    d = running_desktop
    results: list[tuple[int, float]] = []

    def guess(i: int) -> None:
        t0 = time.monotonic()
        try:
            status = d.get("/vnc.html", password=f"wrong-guess-{i:04d}", alt=True, timeout=30)[0]
        except OSError:
            status = -1
        results.append((status, time.monotonic() - t0))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    status, body, _ = d.get("/vnc.html")
    elapsed = time.monotonic() - t0
    assert status == 200 and b"noVNC" in body
    assert elapsed < 1.0, f"the other client waited {elapsed:.2f} s"
    t0 = time.monotonic()
    status = d.get("/vnc.html", password="another-wrong-guess", alt=True)[0]
    assert status == 429 or (status == 401 and time.monotonic() - t0 >= 0.5)
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 20 and all(s in (401, 429) for s, _ in results), results
    quick_checks = [r for r in results if r[0] == 401 and r[1] < 0.4]
    assert len(quick_checks) <= 3, results


# ------------------------------------------------------------------------------------------ 4. TLS


def test_tls_is_served_and_plain_http_is_not(running_desktop):
    d = running_desktop
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", d.host_port), timeout=10) as s, ctx.wrap_socket(s) as t:
        assert t.version() in ("TLSv1.2", "TLSv1.3")
        assert t.getpeercert(binary_form=True)
    with socket.create_connection(("127.0.0.1", d.host_port), timeout=10) as s:
        s.sendall(b"GET /vnc.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP/"), answer[:100]


def test_mounted_certificate_is_the_one_served(desktop_image, tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=mounted.example", "-keyout", str(tls / contract.TLS_KEY_FILE_NAME),
         "-out", str(tls / contract.TLS_CERT_FILE_NAME)],
        check=True, capture_output=True,
    )
    for f in tls.iterdir():
        f.chmod(0o444)
    tls.chmod(0o755)
    with runner.start_desktop(image=desktop_image, tls_dir=tls, wait=False) as d:
        # the certificate is loaded before the port opens; the desktop need not be ready for this
        pem = wait_until(lambda: _served_cert(d.host_port), 20)
        assert pem, d.logs()[-2000:]
        served = ssl.PEM_cert_to_DER_cert(pem)
        mounted = ssl.PEM_cert_to_DER_cert((tls / contract.TLS_CERT_FILE_NAME).read_text())
        assert served == mounted


def _served_cert(port: int) -> str | None:
    try:
        return ssl.get_server_certificate(("127.0.0.1", port), timeout=2)
    except (OSError, ssl.SSLError):
        return None


# ------------------------------------------------------------------------------------------ 5. refusals


@pytest.mark.parametrize(
    ("case", "kwargs", "message"),
    [
        ("no password file", {"password": None}, "no password"),
        ("11 characters", {"password": "elevenchars"}, f"at least {contract.MIN_PASSWORD_LENGTH}"),
        ("empty file", {"password_bytes": b""}, f"at least {contract.MIN_PASSWORD_LENGTH}"),
    ],
)
def test_refuses_to_start_without_a_good_password(desktop_image, case, kwargs, message):
    with runner.start_desktop(image=desktop_image, wait=False, **kwargs) as d:
        t0 = time.monotonic()
        code = d.wait_exit(timeout=10)
        elapsed = time.monotonic() - t0
        assert code is not None, f"{case}: still running after 10 s"
        assert code != 0
        lines = [line for line in d.logs().splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0] and lines[0].startswith("desktop: "), lines
        assert elapsed < 5


def test_refuses_to_run_as_root(desktop_image):
    with runner.start_desktop(image=desktop_image, wait=False, user="0:0") as d:
        assert d.wait_exit(timeout=10) not in (None, 0)
        assert "refusing to run as root" in d.logs()


# ------------------------------------------------------------------------------------------ 8. users, ports


def test_every_process_runs_as_the_unprivileged_user_without_capabilities(running_desktop):
    procs = running_desktop.processes()
    names = {p["name"] for p in procs}
    assert {"Xvnc", "xfce4-session", "xfwm4", "xfce4-panel", "xfdesktop"} <= names, names
    for p in procs:
        assert p["uids"] == [contract.USER_UID] * 4, p
        assert p["gids"] == [contract.USER_GID] * 4, p
        assert int(p["capeff"], 16) == 0 and int(p["capbnd"], 16) == 0, p
        assert p["nonewprivs"] == "1", p


def test_only_the_https_port_listens_and_vnc_is_a_private_unix_socket(running_desktop):
    d = running_desktop
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        out = d.exec(["cat", table]).stdout.decode().splitlines()[1:]
        for line in out:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":
                listening.add(int(local.rsplit(":", 1)[1], 16))
    assert listening == {contract.HTTPS_PORT}
    st = d.exec(["stat", "-c", "%a %u %F", f"{contract.RUNTIME_DIR}/vnc.sock"]).stdout.decode().split(None, 2)
    assert st[0] == "600" and int(st[1]) == contract.USER_UID and "socket" in st[2]
    # No abstract-namespace X or VNC socket: those are reachable from anything in the (pod's) network namespace.
    unix = d.exec(["cat", "/proc/net/unix"]).stdout.decode().splitlines()[1:]
    listening = [line.split()[-1] for line in unix if line.split()[3] == "00010000" and len(line.split()) > 7]
    assert "/tmp/.X11-unix/X1" in listening and f"{contract.RUNTIME_DIR}/vnc.sock" in listening
    assert not [p for p in listening if p.startswith("@/tmp/.X11-unix") or "vnc" in p and p.startswith("@")], listening


def test_root_filesystem_is_read_only_and_writable_paths_are_writable(running_desktop):
    d = running_desktop
    assert d.exec(["touch", "/usr/local/should-fail"]).returncode != 0
    assert d.exec(["touch", "/etc/should-fail"]).returncode != 0
    for path in contract.WRITABLE_PATHS:
        probe = f"{path}/.write-probe"
        assert d.exec(["touch", probe]).returncode == 0, path
        d.exec(["rm", "-f", probe])


# ------------------------------------------------------------------------------------------ 9. health


def test_healthcheck_is_the_contract_command_and_passes(running_desktop):
    cfg = runner.image_config()
    assert cfg["Healthcheck"]["Test"] == ["CMD", *contract.HEALTH_COMMAND]
    assert cfg["User"] == f"{contract.USER_UID}:{contract.USER_GID}"
    assert str(contract.HTTPS_PORT) + "/tcp" in cfg["ExposedPorts"]
    out = running_desktop.exec(list(contract.HEALTH_COMMAND))
    assert out.returncode == 0, out.stdout + out.stderr
    assert running_desktop.get(contract.LIVENESS_PATH, password=None)[0] == 200
    assert running_desktop.get(contract.READINESS_PATH, password=None)[0] == 200


# ------------------------------------------------------------------------------------------ 6, 7. faults


@pytest.fixture(scope="module")
def fault_desktop(desktop_image):
    d = runner.start_desktop(image=desktop_image)
    try:
        yield d
    finally:
        d.stop()


def _pid(d: runner.Desktop, match) -> int | None:
    pids = [p["pid"] for p in d.processes() if match(p)]
    return pids[0] if pids else None


FAULTS = {
    "Xvnc": lambda p: p["name"] == "Xvnc",
    "xfce4-session": lambda p: p["name"] == "xfce4-session",
    "proxy": lambda p: "desktop_proxy.py" in p["cmdline"],
}


@pytest.mark.parametrize("victim", list(FAULTS))
def test_a_killed_process_is_restarted_and_the_desktop_comes_back(fault_desktop, victim):
    d = fault_desktop
    d.wait_ready(30)
    pid = _pid(d, FAULTS[victim])
    assert pid, [p["cmdline"] for p in d.processes()]
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 5)
    time.sleep(1.1)  # the proxy caches its readiness answer for a second
    d.wait_ready(30)
    assert _pid(d, FAULTS[victim]) not in (None, pid)
    assert time.monotonic() - t0 < 30
    # exactly one of each again: nothing of the old session left beside the new one (D-Bus service activation
    # shows a second dbus-daemon for a moment: allow the counts a few seconds to settle)
    once = ("Xvnc", "xfce4-session", "xfwm4", "xfce4-panel", "xfdesktop", "dbus-daemon")

    def counts_settled():
        names = [p["name"] for p in d.processes()]
        return all(names.count(n) == 1 for n in once)

    assert wait_until(counts_settled, 10, 0.2), [(p["name"], p["cmdline"][:80]) for p in d.processes()]


def test_the_desktop_is_usable_in_the_browser_after_the_faults(fault_desktop, chromium_path):
    d = fault_desktop
    d.wait_ready(30)
    with browser.browser(password=d.password) as ctx:
        page = ctx.new_page()
        page.goto(d.https_url("/"))
        _, colours = browser.wait_for_desktop_frame(page)
        assert colours >= 8


def test_sigterm_stops_everything_within_the_stop_timeout(fault_desktop):
    d = fault_desktop
    term = d.spawn(["xfce4-terminal", "--disable-server"])  # with a shell in it: a child of a child
    assert wait_until(lambda: viewable(d, "xfce4-terminal")["xfce4-terminal"], 20)
    before = len(d.processes())
    seconds = d.terminate(timeout=contract.STOP_TIMEOUT_SECONDS)
    term.wait(timeout=10)
    assert seconds is not None, f"still running after {contract.STOP_TIMEOUT_SECONDS} s: {d.processes()}"
    assert d.exit_code == 0, d.logs()[-2000:]
    assert d.processes() == []
    assert before >= 10
    Path(ARTIFACTS).mkdir(exist_ok=True)
    (ARTIFACTS / "stop-seconds.txt").write_text(f"{seconds:.2f}\n")


# ------------------------------------------------------------------------------------------ build arguments


def test_the_build_fails_clearly_without_the_contract_build_arguments(desktop_image):
    """The Dockerfile has no defaults: a build without microvm.contract.build_args() stops at once and says so."""
    args = contract.build_args()
    missing = "DESKTOP_UID"
    out = subprocess.run(
        [*runner.BUILDAH, "bud", "--layers", "--force-rm", "--isolation", "chroot", "--pull=never", "--format",
         "docker", *[f"--build-arg={k}={v}" for k, v in args.items() if k != missing],
         "-f", str(runner.REPO / "image" / "Dockerfile"), str(runner.REPO / "image")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode != 0
    assert f"missing build argument(s): {missing};" in out.stdout + out.stderr
    assert set(args) >= {"DESKTOP_HTTPS_PORT", "DESKTOP_UID", "DESKTOP_PASSWORD_FILE", "DESKTOP_TLS_DIR"}
