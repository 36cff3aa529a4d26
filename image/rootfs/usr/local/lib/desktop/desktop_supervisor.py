"""The container's PID 1 after the entry point: starts the desktop's three programs, restarts any that ends,
reaps orphans, and on SIGTERM/SIGINT stops everything well within the contract's stop timeout.

Why not supervisord (tried first): it can only send a program's output to the container log by re-opening
/dev/stdout, which an unprivileged user may not do when the container runtime's log pipe or file belongs to
root (EACCES, the program is never started); and it waits a second before its first start. Here the
programs simply inherit stdout and stderr, and start at once.

Programs (each in its own process group, so a stop or a restart takes its children too):
  xvnc   the X server and VNC server, RFB on a unix socket only, X on /tmp/.X11-unix/X1 only (no TCP, no
         abstract socket a sidecar could reach), no VNC authentication (the
         proxy authenticates every user, so neither TigerVNC's 8-character password nor its blacklist apply)
  xfce   the XFCE session on its own D-Bus session bus (desktop_session.py)
  proxy  HTTPS/WSS, auth, noVNC files, health endpoints (desktop_proxy.py)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME_DIR = os.environ.get("DESKTOP_RUNTIME_DIR", "/run/desktop")
STOP_TIMEOUT = float(os.environ.get("DESKTOP_STOP_TIMEOUT_SECONDS", "10"))

PROGRAMS = {
    "xvnc": [
        "/usr/bin/Xvnc", ":1", "-geometry", "1280x800", "-depth", "24",
        "-rfbport", "-1", "-rfbunixpath", f"{RUNTIME_DIR}/vnc.sock", "-rfbunixmode", "0600",
        "-SecurityTypes", "None", "-UseBlacklist=0", "-localhost", "-nolisten", "tcp",
        # no abstract-namespace X socket: other containers of the pod share the network namespace
        "-nolisten", "local",
        "-AlwaysShared", "-DisconnectClients=0", "-s", "0", "-extension", "GLX", "-desktop", "Desktop",
    ],
    "xfce": [sys.executable, os.path.join(HERE, "desktop_session.py")],
    "proxy": [sys.executable, os.path.join(HERE, "desktop_proxy.py")],
}


def log(message: str) -> None:
    print(f"supervisor: {message}", file=sys.stderr, flush=True)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Program:
    def __init__(self, name: str, argv: list[str]):
        self.name, self.argv = name, argv
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: float | None = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, process_group=0, close_fds=True)
        self.started = time.monotonic()
        self.restart_at = None

    def exited(self, status: int) -> None:
        ran = time.monotonic() - self.started
        self.failures = self.failures + 1 if ran < 3 else 0
        delay = 0.0 if not self.failures else min(0.25 * 2 ** (self.failures - 1), 5.0)
        log(f"{self.name} (pid {self.proc.pid}) ended with status {status} after {ran:.1f} s; "
            f"restarting in {delay:.2f} s")
        # Whatever it left in its process group goes with it.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None
        self.restart_at = time.monotonic() + delay


class Supervisor:
    def __init__(self):
        self.programs = [Program(n, a) for n, a in PROGRAMS.items()]
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._stop)

    def _stop(self, signum, _frame) -> None:
        if not self.stopping:
            log(f"{signal.Signals(signum).name}: stopping")
        self.stopping = True

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for p in self.programs:
                if p.proc is not None and p.proc.pid == pid:
                    p.proc.returncode = os.waitstatus_to_exitcode(status)
                    if not self.stopping:
                        p.exited(p.proc.returncode)

    def run(self) -> int:
        while not self.stopping:
            now = time.monotonic()
            for p in self.programs:
                if p.proc is None and p.restart_at is not None and now >= p.restart_at and not self.stopping:
                    try:
                        p.start()
                    except OSError as e:
                        log(f"cannot start {p.name}: {e}")
                        p.restart_at = now + 5
            # signal.sigtimedwait would be neater; a short sleep keeps SIGTERM handling simple and immediate.
            time.sleep(0.05)
            self.reap()
        return self.shutdown()

    def shutdown(self) -> int:
        deadline = time.monotonic() + max(STOP_TIMEOUT - 3.0, 1.0)
        # Proxy first (no new users), then the session, then X; the session's clients leave with X anyway.
        for p in reversed(self.programs):
            if p.proc is not None:
                try:
                    os.killpg(p.proc.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        while time.monotonic() < deadline:
            self.reap()
            if not any(p.proc is not None and group_alive(p.proc.pid) for p in self.programs):
                break
            time.sleep(0.02)
        for p in self.programs:
            if p.proc is not None and group_alive(p.proc.pid):
                log(f"{p.name} did not stop in time: SIGKILL")
                try:
                    os.killpg(p.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if os.getpid() == 1:
            # Anything that left its process group (a daemonized helper): as PID 1 we can end all of them.
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            time.sleep(0.01)
        log("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(Supervisor().run())
