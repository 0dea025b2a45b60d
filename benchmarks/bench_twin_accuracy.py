"""The twin's held-out errors over several stored runs, and what each of the model's added
mechanisms buys: the field notes' model alone, + the CPU share, + nflog's kernel batches.

    python benchmarks/bench_twin_accuracy.py RUN_DIR [RUN_DIR ...]

Per run and variant: the fitted overhead and share, then each held-out trial (measured vs
predicted loss and onset, within the tolerance or not, interference); per variant a summary line.
It fits in memory only: the runs' twin.json stay as they are.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from harness.twin.calibrate import calibrate

VARIANTS = {"field notes' model": (), "+ cpu share": ("cpu_share",), "+ cpu share + kernel batches": ("cpu_share", "kernel_batches")}


def ratio(v: float | None) -> str:
    return "   -   " if v is None else f"{v:7.2%}"


def onset(v: float | None) -> str:
    return "no loss" if v is None else f"{v:7.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    totals: dict[str, list] = {name: [] for name in VARIANTS}
    for run in map(Path, args.runs):
        print(f"== {run}")
        for name, mechanisms in VARIANTS.items():
            twin = calibrate(run, mechanisms)
            got = {p.name: p.value for p in twin.parameters}
            print(f"  {name}: overhead {got.get('per_event_overhead_us')} us, share {got.get('cpu_share')}; {twin.verdict}")
            for p in twin.predictions:
                flag = "ok " if p.within else "OUT"
                noise = "interference" if p.interference else ""
                print(f"    {flag} trial {p.trial:>3} {p.what:<36} loss {ratio(p.measured_loss_ratio)} vs "
                      f"{ratio(p.predicted_loss_ratio)}  onset {onset(p.measured_onset_s)} vs {onset(p.predicted_onset_s)}  {noise}")
                if p.trusted:
                    totals[name].append(p)
    print("== all runs")
    for name, predictions in totals.items():
        if not predictions:
            continue
        within = sum(p.within for p in predictions)
        points = [abs(p.predicted_loss_ratio - p.measured_loss_ratio) for p in predictions]
        lossy = [p for p in predictions if p.measured_lost]
        print(f"  {name:30} within {within}/{len(predictions)}; loss error median {statistics.median(points):.2%} "
              f"points, max {max(points):.2%}; lossy trials within {sum(p.within for p in lossy)}/{len(lossy)}")


if __name__ == "__main__":
    main()
