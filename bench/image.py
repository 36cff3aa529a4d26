"""Desktop image benchmark (not a test): start, draw, first frame in a browser, memory, size.

Median of 3 runs, beside the figures the issue measured for the first image (Debian packages as they come):
  container start -> /readyz 200          baseline ~1.7 s (then: GET /vnc.html 200; now: desktop usable)
  container start -> XFCE drawn           baseline ~4.8 s (panel and desktop windows mapped)
  page open -> first desktop frame        baseline ~3 s   (noVNC canvas with >= 8 colours)
  idle PSS of the whole desktop           baseline ~250 MB (sum of smaps_rollup Pss, every process)
  image size                              baseline ~895 MB
Run: `make bench` or `.venv/bin/python bench/image.py` as root (builds the image if needed).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.image import browser, runner  # noqa: E402

RUNS = 3
DRAWN = (
    "import sys, time; sys.path.insert(0, '/usr/local/lib/desktop'); import desktop_lib\n"
    "while True:\n"
    "    r = desktop_lib.windows_viewable(b'xfce4-panel', b'xfdesktop')\n"
    "    if all(r.values()): print(time.time()); break\n"
    "    time.sleep(0.02)\n"
)


def pss_bytes(d: runner.Desktop) -> tuple[int, int, int]:
    pss = rss = 0
    procs = d.processes()
    for p in procs:
        try:
            for line in Path(f"/proc/{p['pid']}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return pss, rss, len(procs)


def one_run() -> dict[str, float]:
    d = runner.start_desktop(wait=False)
    started_wall = time.time() - (time.monotonic() - d.started_at)
    try:
        ready = d.wait_ready(60)
        drawn_at = float(d.exec(["python3", "-c", DRAWN], timeout=60).stdout.decode().strip())
        drawn = drawn_at - started_wall
        time.sleep(5)  # idle
        pss, rss, nprocs = pss_bytes(d)
        with browser.browser(password=d.password) as ctx:
            page = ctx.new_page()
            t0 = time.monotonic()
            page.goto(d.https_url("/"))
            frame, _ = browser.wait_for_desktop_frame(page)
            frame = time.monotonic() - t0
        stop = d.terminate()
        return {"ready": ready, "drawn": drawn, "frame": frame, "pss": pss / 2**20, "rss": rss / 2**20,
                "procs": nprocs, "stop": stop if stop is not None else float("nan")}
    finally:
        d.stop()


def main() -> int:
    reason = runner.missing_requirements()
    if reason:
        print(f"bench/image.py: skipped: {reason}")
        return 0
    t0 = time.monotonic()
    runner.build_image()
    build = time.monotonic() - t0
    size = runner.image_size_bytes() / 1e6
    runs = [one_run() for _ in range(RUNS)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    rows = [
        ("container start -> /readyz 200", f"{med['ready']:.2f} s", "~1.7 s", "<= 2 s"),
        ("container start -> XFCE drawn", f"{med['drawn']:.2f} s", "~4.8 s", "<= 4 s"),
        ("page open -> first desktop frame", f"{med['frame']:.2f} s", "~3 s", ""),
        ("idle PSS, whole desktop", f"{med['pss']:.0f} MiB ({med['procs']:.0f} processes, RSS {med['rss']:.0f} MiB)",
         "~250 MB", "<= 250 MB"),
        ("image size (uncompressed)", f"{size:.0f} MB", "~895 MB", "<= 600 MB"),
        ("SIGTERM -> every process gone", f"{med['stop']:.2f} s", "1-3.6 s", "<= 10 s"),
    ]
    print(f"desktop image benchmark: median of {RUNS} runs (build/cache check {build:.1f} s)")
    print(f"{'':36} {'now':38} {'baseline':10} target")
    for name, now, base, target in rows:
        print(f"{name:36} {now:38} {base:10} {target}")
    for i, r in enumerate(runs, 1):
        print(f"  run {i}: " + ", ".join(f"{k}={v:.2f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
