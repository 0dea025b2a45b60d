"""Benchmark (Linux, root): how well the sender keeps a replayed trace's schedule, against the
constant-rate pacing it has used all along, at 10k and 50k events/s, into the nflog platform's rule.

    sudo python benchmarks/bench_replay.py [--seconds 2] [--repeat 5]

Per rate, interleaved so that machine noise hits all alike: constant pacing (TrafficSpec constant),
the same times as a schedule (a replay must cost nothing over it), a Poisson trace and on/off bursts
at 4x the mean rate (what a capture looks like). Lateness is each packet's send time against its
deadline (p50, p99, max), the median over the repeats, with the machine's load beside it. The
sender is the Python pacing loop (harness/traffic/pacing.py).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

from harness.platforms.nflog.platform import NflogConfig, NflogPlatform, available
from harness.spec import TrafficSpec
from harness.traffic.schedule import Schedule
from harness.traffic.shapes import on_off


def traffics(rate: float, seconds: float) -> dict[str, TrafficSpec]:
    n = int(rate * seconds)
    constant = (np.arange(n) * (1e9 / rate)).astype(np.int64)
    gaps = np.random.default_rng(1).exponential(1e9 / rate, n)
    gaps[0] = 0
    return {
        "constant pacing": TrafficSpec(count=n, pacing="constant", rate_per_s=rate),
        "replay, the same times": TrafficSpec.replay(Schedule(constant)),
        "replay, Poisson trace": TrafficSpec.replay(Schedule(np.cumsum(gaps).astype(np.int64))),
        "replay, on/off at 4x": TrafficSpec.replay(on_off(rate, 4 * rate, 0.05, seconds)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    reason = available()
    if reason:
        sys.exit(f"bench_replay: {reason}")
    loads = [os.getloadavg()[0]]
    with NflogPlatform(NflogConfig(qthresh=64, rcvbuf=64 << 20)) as p:
        for rate in (10_000, 50_000):
            cases = traffics(rate, args.seconds)
            found: dict[str, list[dict]] = {name: [] for name in cases}
            for _ in range(args.repeat):
                for name, traffic in cases.items():
                    found[name].append(p.send_only(traffic, "udp"))
                    p.subscriber.discard_pending(0.05)
                loads.append(os.getloadavg()[0])
            print(f"{rate:,} events/s for {args.seconds:g} s, medians of {args.repeat}:")
            for name, reports in found.items():
                med = {k: statistics.median(r[k] for r in reports) for k in ("late_p50_us", "late_p99_us", "late_max_us")}
                kept = sum(bool(r["trusted"]) for r in reports)
                print(f"  {name:<24} lateness p50 {med['late_p50_us']:8.1f} us  p99 {med['late_p99_us']:9.1f} us  "
                      f"max {med['late_max_us']:10.1f} us  kept {kept}/{len(reports)}")
    print(f"load average (1 min) during the run: {min(loads):.1f}..{max(loads):.1f}")


if __name__ == "__main__":
    main()
