"""Benchmark: `wfpcap predict` on a run's folder, end to end as a user runs it (a new Python
process: imports, reading twin.json, the twin's runs), for the questions issue 22 names; and
`wfpcap twin` (the fit and the held-out check), which every run does once at its end.

    python benchmarks/bench_predict.py [RUN_DIR] [--repeat 3]

Without RUN_DIR it makes a model run first (the quick campaign). Prints the median wall time of
each question, its CPU time (what it costs on an idle machine) and the machine's load. Goal:
every what-if under 5 s.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

GOAL_S = 5.0


def model_run(root: Path) -> Path:
    from test_twin import model_campaign  # the campaign the twin's tests fit
    from harness.platforms.model import ModelParams
    return model_campaign(root, ModelParams(system_buffer=8000))


def questions(tmp: Path) -> dict[str, list[str]]:
    costs = tmp / "costs.csv"
    costs.write_text("bin,count\n50,800\n300,180\n2000,20\n")
    return {
        "300 us callback at 5,000/s for 10 s": ["--rate", "5000", "--cost-us", "300"],
        "copy mode, same": ["--rate", "5000", "--cost-us", "300", "--mode", "copy"],
        "cost distribution at 3,000/s for 20 s": ["--rate", "3000", "--duration", "20", "--subscriber-cost", str(costs)],
        "on/off shape at 2x, headroom": ["--traffic-shape", "on-off:2000,30000,0.1,20", "--traffic-scale", "2",
                                        "--cost-us", "100", "--headroom"],
        "5,000/s headroom search": ["--rate", "5000", "--cost-us", "150", "--headroom"],
    }


def timed(cmd: list[str], repeat: int) -> tuple[float, float, str]:
    """Median wall time and median CPU time (user + system) of the child, and its output: on a
    shared machine the wall time is the CPU time stretched by the neighbours."""
    walls, cpus, out = [], [], ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
        out = done.stdout
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", help="a run folder (default: a model run made here)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else model_run(Path(tmp) / "reports")
        wfpcap = [sys.executable, "-m", "harness"]
        fit_s, fit_cpu, _ = timed([*wfpcap, "twin", str(run)], 1)
        print(f"run {run}")
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (before)")
        print(f"{'':56} {'wall':>7} {'CPU':>7}")
        print(f"{'wfpcap twin (fit + held-out check, once per run)':56} {fit_s:6.2f}s {fit_cpu:6.2f}s")
        worst = worst_cpu = 0.0
        for name, extra in questions(Path(tmp)).items():
            seconds, cpu, out = timed([*wfpcap, "predict", str(run), *extra], args.repeat)
            worst, worst_cpu = max(worst, seconds), max(worst_cpu, cpu)
            answer = next((line for line in out.splitlines() if line.startswith(("delivered", "headroom"))), "")
            print(f"{'wfpcap predict: ' + name:56} {seconds:6.2f}s {cpu:6.2f}s   {answer[:60]}")
        print(f"load average {os.getloadavg()[0]:.2f} (after)")
        print(f"slowest what-if {worst:.2f} s wall, {worst_cpu:.2f} s CPU (goal < {GOAL_S:g} s): "
              f"{'met' if worst < GOAL_S else 'MISSED on the wall clock'}")


if __name__ == "__main__":
    main()
