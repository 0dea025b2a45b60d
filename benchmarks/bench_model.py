"""Benchmark: the model's simulated events per second, against the naive event-by-event
reference (tests/reference_dispatcher.py) in the same run, and the time to render a full report.

    python benchmarks/bench_model.py [--repeat 7]

Prints medians over repeats and the speed-up ratio. Goal: >= 1,000,000 simulated events/s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_dispatcher import reference  # noqa: E402

from harness.campaign import Campaign, load_expectations  # noqa: E402
from harness.platforms.model import ModelParams  # noqa: E402
from harness.platforms.model.dispatcher import simulate  # noqa: E402
from harness.platforms.model.platform import ModelPlatform  # noqa: E402
from harness.report.render import render  # noqa: E402


def workloads(p: ModelParams) -> dict[str, tuple]:
    rng = np.random.default_rng(0)
    burst = (np.arange(17_000, dtype=np.int64) * 1_000, rng.gamma(25, 7_000 / 25, 17_000).astype(np.int64), 18_000_000)
    n = 200_000  # 100 us callback at 8,000/s: light load, mostly one-event batches
    light = ((np.arange(n) * 125_000).astype(np.int64), np.full(n, 102_000, np.int64), None)
    # 100 us callback at 12,000/s: saturated, buffer full, steady loss
    heavy = ((np.arange(n) * 83_333).astype(np.int64), np.full(n, 102_000, np.int64), None)
    return {"17k held burst + drain": burst, "sustained, light load": light, "sustained, overloaded": heavy}


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    p = ModelParams()
    args_common = (p.queue_limit, p.system_buffer, int(p.dispatch_latency_us * 1000), int(p.batch_turnaround_us * 1000))
    print(f"{'workload':28} {'events':>8} {'model ev/s':>12} {'reference ev/s':>15} {'speed-up':>9}")
    for name, (arr, svc, release) in workloads(p).items():
        fast = timed(lambda: simulate(arr, svc, *args_common, release), args.repeat)
        slow = timed(lambda: reference(arr.tolist(), svc.tolist(), *args_common, release), max(1, args.repeat // 3))
        n = len(arr)
        print(f"{name:28} {n:8,} {n / fast:12,.0f} {n / slow:15,.0f} {slow / fast:8.1f}x")
    # one full quick campaign through the platform (trial assembly, frames, store) and its report
    with tempfile.TemporaryDirectory() as tmp:
        c = Campaign.open(ModelPlatform(p), tmp, "quick", load_expectations(None), "bench")
        t = time.perf_counter()
        c.drain()
        for cost in (20.0, 100.0, 500.0):
            c.ndr(cost)
        campaign_s = time.perf_counter() - t
        events = int(c.store.trials()["count"].sum())
        render_s = timed(lambda: render(c.store.path), 3)
    print(f"quick campaign (burst, drain, 3 NDR searches): {events:,} events in {campaign_s:.2f} s "
          f"= {events / campaign_s:,.0f} ev/s end to end")
    print(f"render full report (5 plots, html, md): median {render_s:.2f} s")


if __name__ == "__main__":
    main()
