"""supervisord's `xfce` program: wait for the X display, run the XFCE session on its own D-Bus session bus.

When the session ends (crash, Xvnc restarted, logout), whatever it started that is still around (panel, window
manager, settings daemon, a terminal...) is ended too, so supervisord's next start begins from nothing and no
process is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import desktop_lib  # noqa: E402


def group_members(pgid: int) -> list[int]:
    me, members = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def end_group(grace: float) -> None:
    pgid = os.getpgid(0)
    if pgid != os.getpid():
        return  # not a group leader (run by hand): nothing of ours to clean
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.05)
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> int:
    if not desktop_lib.wait_for_x(30):
        print("xfce: the X display did not answer within 30 s", file=sys.stderr, flush=True)
        return 1
    env = dict(os.environ)
    env.update({
        "XDG_SESSION_TYPE": "x11",
        "XDG_CURRENT_DESKTOP": "XFCE",
        "XDG_MENU_PREFIX": "xfce-",
        "DESKTOP_SESSION": "xfce",
        "XDG_CONFIG_DIRS": "/etc/xdg",
        "XDG_DATA_DIRS": "/usr/local/share:/usr/share",
        "NO_AT_BRIDGE": "1",
    })
    # Not exposed to the desktop's programs: they have no business with the proxy's secrets.
    for name in ("DESKTOP_TLS_CERT", "DESKTOP_TLS_KEY"):
        env.pop(name, None)
    child = subprocess.Popen(["dbus-run-session", "--", "xfce4-session"], env=env)

    def forward(signum, _frame):
        try:
            child.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    rc = child.wait()
    end_group(grace=1.5)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
