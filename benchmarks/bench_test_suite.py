"""The harness's own test suite against its budgets (issue 20, docs/testing.md): the unit tier
under 60 s, a plain `pytest tests/` under 6 minutes (CI's test step is the same command with
`--durations=25 --fail-slower-than 120`, budget 4 minutes), on a 2-core machine.

    python benchmarks/bench_test_suite.py                       # each form twice
    python benchmarks/bench_test_suite.py --forms unit --repeat 3

Each run is a child `pytest` in the checkout, as a developer types it. Printed per run: wall time,
the CPU the run and its children used (user + system), the 1-minute load before and after (a
shared machine: above the number of cores, other work waited for a CPU too), and pytest's last
line. Then the median wall time of each form beside its budget.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMS = {  # name: (arguments after `pytest`, budget in seconds)
    "unit": (["tests/", "-m", "unit"], 60),
    "plain": (["tests/"], 360),
}


def one_run(args: list[str]) -> tuple[float, float, float, float, str]:
    """(wall s, CPU s, load before, load after, pytest's last line) of `pytest ARGS` in a child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= ")
    return wall, cpu, load0, os.getloadavg()[0], last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--forms", default="unit,plain", help=f"comma-separated: {', '.join(FORMS)}")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    forms = [f.strip() for f in a.forms.split(",") if f.strip()]
    unknown = [f for f in forms if f not in FORMS]
    if unknown or a.repeat < 1:
        sys.exit(f"bench_test_suite: unknown form(s) {unknown} (known: {', '.join(FORMS)}) or --repeat < 1")
    print(f"machine: {os.cpu_count()} cores; {sys.executable}; {ROOT}")
    walls: dict[str, list[float]] = {f: [] for f in forms}
    for k in range(a.repeat):
        for form in forms:  # the forms take turns, so a neighbour's busy spell hits them alike
            args, _ = FORMS[form]
            wall, cpu, l0, l1, last = one_run(args)
            walls[form].append(wall)
            print(f"  {form:5s} run {k + 1}: wall {wall:6.1f} s, CPU {cpu:6.1f} s, load1 {l0:.2f} -> {l1:.2f}: {last}",
                  flush=True)
    for form in forms:
        budget = FORMS[form][1]
        med = statistics.median(walls[form])
        print(f"{form}: pytest {' '.join(FORMS[form][0])}: median wall {med:.1f} s of {len(walls[form])} "
              f"(budget {budget} s: {'met' if med < budget else 'MISSED'})")


if __name__ == "__main__":
    main()
