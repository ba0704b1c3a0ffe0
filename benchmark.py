"""
Wall-clock benchmark of the project's three speed targets, as medians of repeated runs (the machine is noisy).

    --quick run      python subliminal.py --quick            target <= 20 s
    test suite       python -m pytest -q tests               target <= 60 s
    default run      python subliminal.py                    target <= 120 s (only with --full: minutes)

Run:
    python benchmark.py                 # quick run and tests, 3 repeats each
    python benchmark.py --full --repeats 3
Prints a table and writes runs/benchmark.json. Timings are never asserted in the tests.
"""
import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent


def time_command(args, repeats):
    times = []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp()) / "run"
        cmd = [a.replace("{out}", str(out)) for a in args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(out.parent, ignore_errors=True)
        if proc.returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return times


def main():
    p = argparse.ArgumentParser(description="median wall times of the quick run, the tests and the default run")
    p.add_argument("--repeats", type=int, default=3, help="runs per command; the median is reported")
    p.add_argument("--full", action="store_true", help="also time the default 3-seed run (minutes)")
    args = p.parse_args()
    if args.repeats < 1:
        raise SystemExit("error: --repeats must be positive")
    py = sys.executable
    jobs = {"quick run": ([py, "subliminal.py", "--quick", "--out", "{out}"], 20),
            "test suite": ([py, "-m", "pytest", "-q", "tests"], 60)}
    if args.full:
        jobs["default run"] = ([py, "subliminal.py", "--out", "{out}"], 120)
    results = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__}
    for name, (cmd, target) in jobs.items():
        times = time_command(cmd, args.repeats)
        results[name] = {"median_s": round(statistics.median(times), 1), "runs_s": [round(t, 1) for t in times],
                         "target_s": target}
        print(f"{name:12s} median {statistics.median(times):6.1f} s  (runs {results[name]['runs_s']}, "
              f"target <= {target} s)", flush=True)
    Path(ROOT / "runs").mkdir(exist_ok=True)
    (ROOT / "runs" / "benchmark.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
