"""The twin's held-out errors over several runs, and what each of the model's added mechanisms
buys: the field notes' model alone, + the CPU share, + nflog's kernel batches, + the stalls.

    python benchmarks/bench_twin_accuracy.py RUN_DIR [RUN_DIR ...]
    python benchmarks/bench_twin_accuracy.py --backend nflog --runs 3    # makes the runs first (root)

Per run and variant: the fitted overhead, share and stalls, then each held-out trial (measured vs
predicted loss and onset, within the tolerance or not, interference, and where the trial counted
its stalls the prediction given them); per variant a summary line. It fits in memory only: the
runs' twin.json stay as they are.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.twin.calibrate import calibrate

VARIANTS = {"field notes' model": (), "+ cpu share": ("cpu_share",), "+ cpu share + kernel batches": ("cpu_share", "kernel_batches"),
            "+ cpu share + kernel batches + stalls": ("cpu_share", "kernel_batches", "stalls")}


def ratio(v: float | None) -> str:
    return "   -   " if v is None else f"{v:7.2%}"


def onset(v: float | None) -> str:
    return "no loss" if v is None else f"{v:7.3f}"


def own(p) -> str:
    if p.own_stalls_loss_ratio is None:
        return ""
    return f"  given its stalls {ratio(p.own_stalls_loss_ratio)} {'ok' if p.own_stalls_within else 'OUT'}"


def make_runs(backend: str | None, count: int) -> list[Path]:
    """`pytest scenarios/` count times (bench_scenarios' run), each run's folder kept for the fit."""
    if backend is None:
        raise SystemExit("give RUN_DIRs or --backend")
    from bench_scenarios import one_run
    root = Path(tempfile.mkdtemp(prefix="bench-twin-"))
    out = []
    for i in range(count):
        done = one_run(backend, root / str(i))
        run = next((root / str(i)).glob("*/*/summary.json")).parent
        print(f"run {i + 1}: {run} ({done['wall_s']:.0f} s, load {done['load1_before']:.1f} -> {done['load1_after']:.1f})")
        out.append(run)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--backend", choices=("model", "nflog"), help="make the runs first: pytest scenarios/ on this backend")
    ap.add_argument("--runs", dest="count", type=int, default=3)
    args = ap.parse_args()
    runs = list(map(Path, args.runs)) or make_runs(args.backend, args.count)
    totals: dict[str, list] = {name: [] for name in VARIANTS}
    for run in runs:
        print(f"== {run}")
        for name, mechanisms in VARIANTS.items():
            twin = calibrate(run, mechanisms)
            got = {p.name: p.value for p in twin.parameters}
            print(f"  {name}: overhead {got.get('per_event_overhead_us')} us, share {got.get('cpu_share')}, stalls "
                  f"{got.get('stall_rate_per_s')}/s x {got.get('stall_mean_us')} us; {twin.verdict}")
            for p in twin.predictions:
                flag = "ok " if p.within else "OUT"
                noise = "interference" if p.interference else ""
                print(f"    {flag} trial {p.trial:>3} {p.what:<36} loss {ratio(p.measured_loss_ratio)} vs "
                      f"{ratio(p.predicted_loss_ratio)}  onset {onset(p.measured_onset_s)} vs {onset(p.predicted_onset_s)}"
                      f"{own(p)}  {noise}")
                if p.trusted:
                    totals[name].append(p)
    print(f"== all runs ({len(runs)}; load average {os.getloadavg()[0]:.1f} now)")
    for name, predictions in totals.items():
        if not predictions:
            continue
        within = sum(p.within for p in predictions)
        points = [abs(p.predicted_loss_ratio - p.measured_loss_ratio) for p in predictions]
        lossy = [p for p in predictions if p.measured_lost]
        given = [p for p in predictions if p.own_stalls_loss_ratio is not None]
        lossy_points = [abs(p.predicted_loss_ratio - p.measured_loss_ratio) for p in lossy] or [0.0]
        print(f"  {name:38} within {within}/{len(predictions)}; loss error mean {statistics.mean(points):.2%} points "
              f"(median {statistics.median(points):.2%}, max {max(points):.2%}); lossy trials within "
              f"{sum(p.within for p in lossy)}/{len(lossy)}, their loss error mean {statistics.mean(lossy_points):.2%} points"
              + (f"; given their own stalls within {sum(bool(p.own_stalls_within) for p in given)}/{len(given)}"
                 if given else ""))


if __name__ == "__main__":
    main()
