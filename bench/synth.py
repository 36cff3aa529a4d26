"""Synth speed and memory with lazy provider loading on and off (issue 4).

Runs `python main.py` alternately with MICROVM_LAZY_PROVIDERS=1 and =0 (after one untimed warm-up of each), then
prints the median wall time and peak memory of both and the speed-up; then times `make synth` end to end and the
CLI alone, to show what share of `make synth` is the cdktf CLI rather than our Python.

How memory is measured: main.py runs under a tiny bootstrap (`python -c BOOTSTRAP`, runpy, same interpreter, same
working directory) that, at exit, records getrusage(RUSAGE_SELF).ru_maxrss (the Python process's own peak RSS,
exact) and getrusage(RUSAGE_CHILDREN).ru_maxrss (the peak of the largest child or grandchild that was waited for:
the jsii kernel, a node process started by a small node launcher). Its atexit hook is registered before jsii's, so
it runs after jsii has stopped and reaped node. Measuring from outside would not separate them: wait4() on the
Python process reports max(python, descendants), i.e. node's figure.

Usage: .venv/bin/python bench/synth.py [--runs 5] [--app DIR] [--no-make]   (standard library only)
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BOOTSTRAP = r"""
import atexit, json, os, resource, runpy, sys
_out = os.environ.pop("BENCH_RUSAGE_OUT")
def _report():
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(_out, "w") as f:
        json.dump({"python_kb": me, "node_kb": kids}, f)
atexit.register(_report)
sys.argv = ["main.py"]
runpy.run_path("main.py", run_name="__main__")
"""


def quiet_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CHECKPOINT_DISABLE"] = "1"
    env.update(extra)
    return env


def run_main(app: Path, lazy: bool, outdir: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        rusage_file = f.name
    env = quiet_env(
        MICROVM_LAZY_PROVIDERS="1" if lazy else "0", CDKTF_OUTDIR=str(outdir), BENCH_RUSAGE_OUT=rusage_file
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", BOOTSTRAP], cwd=app, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"main.py failed (lazy={lazy}):\n{proc.stderr[-3000:]}")
    usage = json.loads(Path(rusage_file).read_text())
    os.unlink(rusage_file)
    return {"wall": wall, "python_mb": usage["python_kb"] / 1024, "node_mb": usage["node_kb"] / 1024}


def same_json(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.glob("stacks/*/cdk.tf.json"))
    files_b = sorted(p.relative_to(b) for p in b.glob("stacks/*/cdk.tf.json"))
    return bool(files_a) and files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def timed(cmd: list[str], cwd: Path, **env: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=quiet_env(**env), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--app", type=Path, default=ROOT, help="directory holding main.py (default: the repo)")
    parser.add_argument("--no-make", action="store_true", help="skip the `make synth` breakdown")
    args = parser.parse_args()
    app = args.app.resolve()
    if not (app / "main.py").is_file():
        sys.exit(f"no main.py in {app}")

    results: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        out = {True: Path(tmp, "lazy"), False: Path(tmp, "eager")}
        print(f"warm-up, then {args.runs} alternating runs of `python main.py` with lazy loading on and off ...")
        for lazy in (True, False):
            run_main(app, lazy, out[lazy])  # warm caches (page cache, jsii's unpacked assemblies); not counted
        if not same_json(out[True], out[False]):
            sys.exit("the synthesized JSON differs between lazy and normal provider loading "
                     "(or the app's inputs, e.g. image/, changed between the two runs)")
        for i in range(args.runs):
            for lazy in (True, False):
                r = run_main(app, lazy, Path(tmp, f"run{i}-{lazy}"))
                results[lazy].append(r)
                print(f"  run {i + 1} {'lazy ' if lazy else 'eager'}: {r['wall']:6.2f} s  "
                      f"python {r['python_mb']:6.0f} MB  node {r['node_mb']:6.0f} MB", flush=True)

    med = {lazy: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for lazy, rs in results.items()}
    lazy, eager = med[True], med[False]
    print()
    print(f"`python main.py`, median of {args.runs}   lazy (default)   eager (=0)")
    print(f"  wall time                    {lazy['wall']:10.2f} s   {eager['wall']:8.2f} s")
    print(f"  peak RSS, python process     {lazy['python_mb']:9.0f} MB   {eager['python_mb']:7.0f} MB")
    print(f"  peak RSS, node (jsii kernel) {lazy['node_mb']:9.0f} MB   {eager['node_mb']:7.0f} MB")
    print(f"  speed-up {eager['wall'] / lazy['wall']:.1f}x, python memory / {eager['python_mb'] / lazy['python_mb']:.1f}"
          f"   (targets: >= 3x, python < 150 MB); JSON identical")

    if args.no_make or app != ROOT:
        return
    print()
    print("`make synth` end to end (lazy loading, default), median of 3 after one warm-up ...")
    cli = ROOT / "node_modules/.bin/cdktf"
    timed(["make", "-s", "synth"], ROOT)
    make_s = statistics.median(timed(["make", "-s", "synth"], ROOT) for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        cli_s = statistics.median(timed([str(cli), "synth", "--output", tmp], ROOT) for _ in range(3))
    py = lazy["wall"]
    print(f"  make synth                   {make_s:6.2f} s")
    print(f"  cdktf synth (CLI alone)      {cli_s:6.2f} s")
    print(f"  python main.py alone         {py:6.2f} s")
    print(f"  => the cdktf CLI itself: {cli_s - py:.2f} s = {100 * (cli_s - py) / make_s:.0f}% of make synth;"
          f" make's checks and next steps: {make_s - cli_s:.2f} s")


if __name__ == "__main__":
    main()
