"""`make desktop`: build the desktop image if needed and run it here until Ctrl-C.

The password is $DESKTOP_PASSWORD when set (at least microvm.contract.MIN_PASSWORD_LENGTH characters), else a
random one. $DESKTOP_PORT picks the local port (default: a free one). The certificate is self-signed: the
browser warns once.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from tests.image import runner

contract = runner.contract


def main() -> int:
    reason = runner.missing_requirements()
    if reason:
        print(f"make desktop: {reason}", file=sys.stderr)
        return 1
    password = os.environ.get("DESKTOP_PASSWORD", "")
    if password and len(password) < contract.MIN_PASSWORD_LENGTH:
        print(f"make desktop: DESKTOP_PASSWORD has {len(password)} characters; at least "
              f"{contract.MIN_PASSWORD_LENGTH} are required", file=sys.stderr)
        return 1
    print("building the desktop image (cached after the first time)...", flush=True)
    runner.build_image()
    d = runner.start_desktop(password=password, wait=False, host_port=int(os.environ.get("DESKTOP_PORT", "0")))
    stop = {"now": False}

    def on_signal(signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        seconds = d.wait_ready(60)
        print(
            f"\nThe desktop is ready ({seconds:.1f} s):\n"
            f"  URL:       https://localhost:{d.host_port}/\n"
            f"  user name: any (e.g. {contract.USER_NAME})\n"
            f"  password:  {d.password}\n"
            f"The certificate is self-signed: accept the browser's warning.\n"
            f"Stop with Ctrl-C.\n",
            flush=True,
        )
        while not stop["now"]:
            if d.proc.poll() is not None:
                print(f"the desktop exited with status {d.proc.returncode}:\n{d.logs()[-2000:]}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        print("stopping the desktop...", flush=True)
        d.stop()
    print(f"stopped ({d.stop_seconds or 0:.1f} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
