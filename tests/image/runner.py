"""Build the desktop image and run it as a container on a machine without a container engine.

No Docker and no working OCI runtime here (no cgroups), so this is a small runtime of its own, doing what
`docker run --read-only --cap-drop ALL --security-opt no-new-privileges` does with the image's own config:

- the image's root filesystem: `buildah from` + `buildah mount`, bind-mounted READ-ONLY inside a private
  mount namespace; /proc, a minimal /dev (null, zero, full, random, urandom, tty, a private devpts, /dev/shm);
- the contract's writable paths (/tmp, the runtime dir, the home) as host directories owned by the desktop
  user (so they start empty, like emptyDir volumes), the password file at the contract's path (read-only
  bind of a host directory, like a mounted Secret), optionally a TLS directory;
- new PID and network namespaces (`unshare --pid --net --fork --kill-child`), `lo` up;
- the image's Entrypoint/Cmd/Env/User/WorkingDir from `buildah inspect`, run through the image's own
  `setpriv` as that user with no capabilities (bounding set emptied) and no_new_privs.

The HTTPS port inside the network namespace is reached from the host through socat: one socat inside the
namespace (nsenter -n) listens on a unix socket in a host directory and connects to 127.0.0.1:PORT; another on
the host listens on 127.0.0.1:<free port>. A second pair connects from 127.0.0.2 inside the namespace, so tests
can act as a second client address (`alt_host_port`).

Teardown ends every process it started, by pid: the container (SIGTERM to its PID 1, SIGKILL after the
timeout; the PID namespace dies with its PID 1), the socats (each in its own process group), then unmounts and
removes the buildah container and the run directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _contract():
    """microvm.contract, the image contract. Loaded from its file when the microvm package is not imported yet:
    importing the package starts jsii (about 7 s and a node process) and the contract needs none of it."""
    if "microvm.contract" in sys.modules:
        return sys.modules["microvm.contract"]
    spec = importlib.util.spec_from_file_location("_microvm_contract", REPO / "constructs/microvm/contract.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_microvm_contract"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


contract = _contract()
BUILD_DIR = REPO / ".build"
STORAGE = BUILD_DIR / "containers"
IMAGE = "localhost/microvm-desktop:dev"
BUILDAH = [
    "buildah", "--root", str(STORAGE / "storage"), "--runroot", str(STORAGE / "run"), "--storage-driver", "overlay",
]


def missing_requirements() -> str | None:
    """Why the image cannot be built and run here, or None."""
    if os.geteuid() != 0:
        return "needs root (buildah, namespaces, mounts)"
    for tool in ("buildah", "debootstrap", "socat", "unshare", "nsenter"):
        if not shutil.which(tool):
            return f"{tool} is not installed (scripts/system-packages.sh installs it)"
    return None


def build_image(tag: str = IMAGE) -> str:
    """Build (cached by buildah's layers: about a second when nothing changed); returns the image id."""
    out = subprocess.run(
        [str(REPO / "scripts" / "image-build.sh"), tag], capture_output=True, text=True, cwd=REPO, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"image build failed:\n{out.stderr[-4000:]}")
    return out.stdout.strip().splitlines()[-1]


def buildah(*args: str, check: bool = True) -> str:
    out = subprocess.run([*BUILDAH, *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def image_config(tag: str = IMAGE) -> dict:
    """The image's Docker config (Env, Entrypoint, Cmd, User, WorkingDir, Healthcheck, ...)."""
    return json.loads(buildah("inspect", "--type", "image", tag))["Docker"]["config"]


def image_size_bytes(tag: str = IMAGE) -> int:
    """Sum of the image's uncompressed layer sizes (what `buildah images` rounds to MB), from the storage's
    layer records: the image's top layer and its parents."""
    top = json.loads(buildah("inspect", "--type", "image", tag)).get("FromImageID")
    images = json.loads((STORAGE / "storage" / "overlay-images" / "images.json").read_text())
    layer = next(i["layer"] for i in images if i["id"] == top)
    layers = {x["id"]: x for x in json.loads((STORAGE / "storage" / "overlay-layers" / "layers.json").read_text())}
    total = 0
    while layer:
        total += int(layers[layer].get("diff-size", 0))
        layer = layers[layer].get("parent")
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ns_inode(pid: int, ns: str = "pid") -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{ns}")
    except OSError:
        return None


_SETUP = r"""
set -euo pipefail
ip link set lo up
R="$RUN/root"
mount --bind "$MNT" "$R"
mount -o remount,bind,ro "$R"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t tmpfs -o nosuid,noexec,mode=755,size=1m tmpfs "$R/dev"
for d in null zero full random urandom tty; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=256m tmpfs "$R/dev/shm"
i=0
for dst in $WRITABLE; do mount --bind "$RUN/vol$i" "$R$dst"; i=$((i+1)); done
mount --bind "$RUN/secret" "$R$PASSWORD_DIR"
mount -o remount,bind,ro "$R$PASSWORD_DIR"
if [ -n "${TLS_SRC:-}" ]; then mount --bind "$TLS_SRC" "$R$TLS_DIR"; mount -o remount,bind,ro "$R$TLS_DIR"; fi
exec chroot "$R" /usr/bin/env -i "${CONTAINER_ENV[@]}" /usr/bin/setpriv --reuid="$UID_" --regid="$GID_" \
  --clear-groups --bounding-set=-all --inh-caps=-all --no-new-privs -- \
  /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$WORKDIR" "${COMMAND[@]}"
"""


@dataclass
class Desktop:
    """One running desktop container. Create with `start_desktop()`; always `stop()` (or use `with`).

    `.password`, `.host_port` (127.0.0.1 on the host, arriving from 127.0.0.1 in the container),
    `.alt_host_port` (arriving from 127.0.0.2), `.https_url(path)`, `.exec(argv)`, `.processes()`,
    `.logs()`, `.pid1` (host pid of the container's PID 1), `.started_at` (time.monotonic() before start).
    """

    password: str | None
    run_dir: Path
    cid: str
    proc: subprocess.Popen
    started_at: float
    host_port: int = 0
    alt_host_port: int = 0
    pid1: int = 0
    uid: int = contract.USER_UID
    gid: int = contract.USER_GID
    _relays: list[subprocess.Popen] = field(default_factory=list)
    _stopped: bool = False
    exit_code: int | None = None
    stop_seconds: float | None = None

    # ------------------------------------------------------------------ access
    def https_url(self, path: str = "/", alt: bool = False) -> str:
        return f"https://127.0.0.1:{self.alt_host_port if alt else self.host_port}{path}"

    def exec(self, argv: list[str], user: int | None = None, env: dict | None = None, timeout: float = 30,
             input: bytes | None = None) -> subprocess.CompletedProcess:  # noqa: A002
        """Run argv inside the container (its root, PID, network and mount namespaces) as the desktop user."""
        uid = self.uid if user is None else user
        gid = self.gid if user is None else user
        base_env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": contract.HOME_DIR, "DISPLAY": ":1", "LANG": "C.UTF-8", "USER": contract.USER_NAME,
            "XDG_RUNTIME_DIR": f"{contract.RUNTIME_DIR}/xdg",
            "DESKTOP_HTTPS_PORT": str(contract.HTTPS_PORT),
            "DESKTOP_READINESS_PATH": contract.READINESS_PATH,
            "DESKTOP_RUNTIME_DIR": contract.RUNTIME_DIR,
            "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
        }
        base_env.update(env or {})
        return subprocess.run(self._enter(uid, gid, base_env, argv), capture_output=True, timeout=timeout,
                              input=input, check=False)

    def _enter(self, uid: int, gid: int, env: dict, argv: list[str]) -> list[str]:
        """Like `docker exec`: the container's namespaces and root, its user, no capabilities, no_new_privs."""
        cmd = ["nsenter", "-t", str(self.pid1), "-p", "-n", "-m", "-r", "-w", "--",
               "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()]]
        if uid != 0:
            cmd += ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                    "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]
        return cmd + list(argv)

    def spawn(self, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        """Start argv inside the container in the background (e.g. an X client), as the desktop user."""
        e = {"PATH": "/usr/bin:/bin", "HOME": contract.HOME_DIR, "DISPLAY": ":1", "LANG": "C.UTF-8",
             "XDG_RUNTIME_DIR": f"{contract.RUNTIME_DIR}/xdg",
             # the session's bus is private to it; no D-Bus autolaunch either
             "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent", **(env or {})}
        return subprocess.Popen(self._enter(self.uid, self.gid, e, argv), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def processes(self) -> list[dict]:
        """Every process in the container's PID namespace: host pid, uid, name, command line."""
        if not self.pid1:
            return []
        ns = _ns_inode(self.pid1)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if ns is None or _ns_inode(pid) != ns:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("State", "").startswith("Z"):
                continue
            found.append({
                "pid": pid, "name": fields.get("Name", ""), "cmdline": cmdline.strip(),
                "uids": [int(x) for x in fields.get("Uid", "").split()],
                "gids": [int(x) for x in fields.get("Gid", "").split()],
                "capeff": fields.get("CapEff", "").strip(), "capbnd": fields.get("CapBnd", "").strip(),
                "nonewprivs": fields.get("NoNewPrivs", "").strip(),
            })
        return found

    def pids_of(self, name: str) -> list[int]:
        return [p["pid"] for p in self.processes() if p["name"] == name]

    def logs(self) -> str:
        try:
            return (self.run_dir / "container.log").read_text(errors="replace")
        except OSError:
            return ""

    def get(self, path: str, password: str | None | bool = True, alt: bool = False, timeout: float = 10,
            headers: dict | None = None) -> tuple[int, bytes, dict]:
        """HTTPS GET through the port relay; password=True uses the desktop's, None sends no credentials."""
        import base64

        h = dict(headers or {})
        pw = self.password if password is True else password
        if pw:
            h["Authorization"] = "Basic " + base64.b64encode(f"desktop:{pw}".encode()).decode()
        req = urllib.request.Request(self.https_url(path, alt=alt), headers=h)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)
        try:
            with opener.open(req, timeout=timeout) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def ready(self) -> bool:
        try:
            return self.get(contract.READINESS_PATH, password=None, timeout=5)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds since start when /readyz first answered 200; raises with the logs on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"container exited {self.proc.returncode}:\n{self.logs()[-3000:]}")
            if self.ready():
                return time.monotonic() - self.started_at
            time.sleep(0.05)
        raise TimeoutError(f"not ready after {timeout} s:\n{self.logs()[-3000:]}")

    def wait_exit(self, timeout: float) -> int | None:
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    # ------------------------------------------------------------------ lifecycle
    def terminate(self, timeout: float = contract.STOP_TIMEOUT_SECONDS) -> float | None:
        """SIGTERM to the container's PID 1; seconds until every process of it was gone, None if not in time."""
        if self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        try:
            os.kill(self.pid1, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not self.processes():
                self.stop_seconds = time.monotonic() - t0
                self.exit_code = self.proc.returncode
                return self.stop_seconds
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.proc.poll() is None:
                self.terminate()
            if self.proc.poll() is None:
                self.proc.kill()  # unshare --kill-child: PID 1 gets SIGKILL, the namespace dies with it
                self.proc.wait(timeout=10)
        finally:
            for r in self._relays:
                try:
                    os.killpg(r.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    r.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            buildah("umount", self.cid, check=False)
            buildah("rm", self.cid, check=False)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Desktop:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_desktop(
    password: str | None = "",
    *,
    password_bytes: bytes | None = None,
    tls_dir: Path | None = None,
    image: str = IMAGE,
    wait: bool = True,
    timeout: float = 60,
    extra_env: dict | None = None,
    host_port: int = 0,
    user: str | None = None,
) -> Desktop:
    """Start a desktop container. password="" makes a random one; None mounts no password file at all;
    password_bytes writes exactly those bytes. host_port=0 picks a free port. user="UID:GID" overrides the
    image's USER (like `docker run --user`). With wait=True, returns once /readyz answers 200."""
    if password == "":
        password = secrets.token_urlsafe(18)
    BUILD_DIR.mkdir(exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="desktop-", dir=BUILD_DIR))
    (run_dir / "root").mkdir()
    secret = run_dir / "secret"
    secret.mkdir(mode=0o755)
    if password_bytes is not None:
        (secret / contract.PASSWORD_FILE_NAME).write_bytes(password_bytes)
    elif password is not None:
        (secret / contract.PASSWORD_FILE_NAME).write_text(password + "\n")
    for f in secret.iterdir():
        f.chmod(0o444)
    for i, _ in enumerate(contract.WRITABLE_PATHS):
        v = run_dir / f"vol{i}"
        v.mkdir()
        os.chown(v, contract.USER_UID, contract.USER_GID)
        v.chmod(0o1777 if contract.WRITABLE_PATHS[i] == "/tmp" else 0o700)
    bridge = run_dir / "bridge"
    bridge.mkdir(mode=0o700)

    cid = buildah("from", "--pull-never", "--quiet", image)
    try:
        mnt = buildah("mount", cid)
        cfg = image_config(image)
    except Exception:
        buildah("rm", cid, check=False)
        raise
    env = list(cfg.get("Env") or [])
    for k, v in (extra_env or {}).items():
        env.append(f"{k}={v}")
    user = (user or cfg.get("User") or "0:0").split(":")
    uid, gid = int(user[0]), int(user[1] if len(user) > 1 else user[0])
    command = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    setup_env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "RUN": str(run_dir), "MNT": mnt, "WRITABLE": " ".join(contract.WRITABLE_PATHS),
        "PASSWORD_DIR": contract.PASSWORD_DIR, "TLS_DIR": contract.TLS_DIR, "TLS_SRC": str(tls_dir or ""),
        "UID_": str(uid), "GID_": str(gid), "WORKDIR": cfg.get("WorkingDir") or "/",
    }
    # bash arrays cannot come through the environment: declare them in front of the script.
    def arr(name: str, items: list[str]) -> str:
        import shlex

        return f"{name}=(" + " ".join(shlex.quote(x) for x in items) + ")\n"

    script = arr("CONTAINER_ENV", env) + arr("COMMAND", command) + _SETUP
    log = open(run_dir / "container.log", "wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["unshare", "--pid", "--net", "--mount", "--uts", "--ipc", "--fork", "--kill-child", "--propagation",
         "private", "--", "bash", "-c", script],
        env=setup_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal reaches the caller, which stops it gracefully
    )
    log.close()
    d = Desktop(password=password, run_dir=run_dir, cid=cid, proc=proc, started_at=started, uid=uid, gid=gid)
    try:
        d.pid1 = _child_pid(proc.pid, timeout=10)
        d.host_port, d.alt_host_port = host_port or free_port(), free_port()
        for src, port in (("127.0.0.1", d.host_port), ("127.0.0.2", d.alt_host_port)):
            sock = bridge / f"https-{port}.sock"
            d._relays.append(subprocess.Popen(
                ["nsenter", "-t", str(d.pid1), "-n", "socat",
                 f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600",
                 f"TCP:127.0.0.1:{contract.HTTPS_PORT},bind={src}"],
                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            d._relays.append(subprocess.Popen(
                ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"UNIX-CONNECT:{sock}"],
                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if wait:
            d.wait_ready(timeout)
    except BaseException:
        d.stop()
        raise
    return d


def _child_pid(parent: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.005)
    raise RuntimeError("the container's PID 1 did not appear")
