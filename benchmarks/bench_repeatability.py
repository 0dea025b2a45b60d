"""Benchmark: the sustained part of the quick campaign, repeated, on a real platform: how much do NDR
and the service rate mu move from one search to the next? (issue 9: goal CV <= 5 % at 20/100/500 us)

    sudo python benchmarks/bench_repeatability.py --runs 5                  # nflog
    sudo python benchmarks/bench_repeatability.py --runs 5 --backend wfp    # the fake fwpuclnt, real senders

One platform, one burst search (the NDR trials are sized from its capacity), then `--runs`
searches per callback cost, each into its own result store. Prints, per cost, the NDR and mu of
every search, their medians and coefficients of variation, the statuses, and the machine's load.
With `--backend wfp` and no WFPCAP_FWPUCLNT, it builds the fake fwpuclnt and runs itself again
inside `unshare --net` with the loopback up (the fake classifies the packets of such a namespace).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign import PROFILES, Campaign, load_expectations, platform_expectations  # noqa: E402
from harness.experiments.ndr import search_ndr
from harness.platforms.select import open_platform  # noqa: E402
from harness.platforms.model import ModelParams  # noqa: E402
from harness.results.fingerprint import fingerprint  # noqa: E402
from harness.results.store import ResultStore  # noqa: E402


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="nflog", choices=("nflog", "model", "wfp"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if args.backend == "wfp" and "WFPCAP_FWPUCLNT" not in os.environ:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from platforms import fake_wfp_library
        os.environ["WFPCAP_FWPUCLNT"] = fake_wfp_library()
        sys.exit(subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                                 sys.executable, *sys.argv]).returncode)
    profile = PROFILES["quick"]
    root = Path(tempfile.mkdtemp(prefix="bench-repeat-"))
    with open_platform(args.backend, ModelParams(), {}) as platform:
        campaign = Campaign.open(platform, str(root / "burst"), "quick",
                                 load_expectations(None, platform_expectations(platform)), "bench")
        capacity = campaign.burst().capacity.value
        print(f"{args.backend}: burst capacity {capacity}, generator {platform.max_send_rate_per_s():,.0f}/s; "
              f"{args.runs} searches per cost", flush=True)
        rows: dict[float, list[dict]] = {c: [] for c in profile.callback_costs_us}
        for run in range(args.runs):
            store = ResultStore(root / f"run{run}", fingerprint(platform.describe()), platform.name)
            t, load = time.perf_counter(), os.getloadavg()[0]
            for cost in profile.callback_costs_us:
                rows[cost].append(search_ndr(platform, campaign.base_spec(), store, cost, capacity,
                                             platform.max_send_rate_per_s(), campaign.ndr_config))
            print(f"run {run + 1}: {time.perf_counter() - t:.1f} s, load {load:.1f} | " + " | ".join(
                f"{c:g}us NDR {r[-1].rate_per_s or 0:,.0f} mu {r[-1].mu_per_s or 0:,.0f} {r[-1].status}"
                for c, r in rows.items()), flush=True)
    print()
    print(f"{'cost':>6} {'NDR median':>11} {'NDR CV':>7} {'mu median':>10} {'mu CV':>6}  statuses")
    for cost, found in rows.items():
        ndr = [r.rate_per_s for r in found if r.rate_per_s]
        mu = [r.mu_per_s for r in found if r.mu_per_s]
        statuses = ", ".join(str(r.status) for r in found)
        print(f"{cost:5g}us {statistics.median(ndr) if ndr else 0:11,.0f} {cv(ndr):7.1%} "
              f"{statistics.median(mu) if mu else 0:10,.0f} {cv(mu):6.1%}  {statuses}")
    print(f"goal: CV <= 5 % for NDR and mu; stores under {root}")


if __name__ == "__main__":
    main()
