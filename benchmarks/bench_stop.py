"""How long a run takes to end after SIGTERM (what CI runners and `timeout` send), stopped at
random moments of a small model run: the median and the worst of N stops, against a runner's
usual kill grace of 10 s. Each stop must leave a summary marked interrupted (or complete, when the
signal came while closing or drawing).

    python benchmarks/bench_stop.py --stops 20
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(folder: Path, live: Path) -> subprocess.Popen:
    expect = folder / "expect.json"
    folder.mkdir(parents=True)
    expect.write_text(json.dumps({"queue_limit": 64, "buffer_depth": 2000}))
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
           "--report-dir", str(folder / "reports"), "--machine-label", "stop",
           "--model-param", "system_buffer=2000", "--model-param", "queue_limit=64", "--expect", str(expect)]
    env = {**os.environ, "WFPCAP_LIVE_DIR": str(live)}
    env.pop("WFPCAP_HOLD_AT", None)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def registered(proc: subprocess.Popen, live: Path) -> None:
    """Wait until the run has its folder (it registers as live then): the stops fall in the run."""
    while not (live / f"{proc.pid}.json").exists():
        if proc.poll() is not None:
            raise SystemExit(f"the run ended before it registered: {proc.communicate()}")
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stops", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1207)
    ap.add_argument("--within-s", type=float, default=6.0, help="stop at a random moment this long into the run")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    took, statuses = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.stops):
            folder, live = Path(tmp) / f"run{k}", Path(tmp) / "live"
            proc = start(folder, live)
            registered(proc, live)
            time.sleep(rng.uniform(0, args.within_s))
            load = os.getloadavg()[0]
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=120)
            took.append(time.monotonic() - t0)
            summary = next((folder / "reports").glob("*/*/summary.json"))
            statuses.append(json.loads(summary.read_text())["run"]["status"])
            print(f"stop {k + 1:2d}: {took[-1]:5.2f} s, exit {proc.returncode}, {statuses[-1]}, load {load:.1f}",
                  flush=True)
    print(f"\n{args.stops} stops: median {statistics.median(took):.2f} s, worst {max(took):.2f} s "
          f"(kill grace of a runner: 10 s); statuses: "
          + ", ".join(f"{s} {statuses.count(s)}" for s in sorted(set(statuses))))


if __name__ == "__main__":
    main()
