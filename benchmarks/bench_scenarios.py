"""Benchmark: the scenario suite as a user runs it, timed, several times in a row, and how its NDRs
hold up from run to run (issue 9's time budget and repeatability on a noisy machine).

    python benchmarks/bench_scenarios.py --backend model --runs 3
    python benchmarks/bench_scenarios.py --backend nflog --runs 10
    python benchmarks/bench_scenarios.py --backend nflog --runs 3 --hog   # one busy process per core beside it
    python benchmarks/bench_scenarios.py --backend nflog --runs 10 --senders python,native  # the two send loops taking turns

For each run: wall time, pytest's outcome counts, the machine's load, and per callback cost the
NDR, its status (conclusive / inconclusive / generator-limited) with its spread, mu and the
resolution. At the end: median wall time against the budget (model 20 s, nflog 90 s) and, per
cost, the median NDR and how far each conclusive run lies from it (goal: within 5 %), and how many
NDRs were inconclusive because of the sender's lateness (a reason naming "sender p99 lateness"). With
--senders the runs take turns between send loops (WFPCAP_SENDER), so that each sees the same
neighbours; the counts are then per loop.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.interference import references  # noqa: E402
from harness.results.read import read_trial_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = {"model": 20.0, "nflog": 90.0, "wfp": 240.0}


def start_hogs(count: int) -> list[int]:
    """Busy processes that are not the harness's children (the shell that starts them exits)."""
    pids = []
    for _ in range(count):
        out = subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True).stdout
        pids.append(int(out))
    return pids


def stop(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


LATE_SENDER = "sender p99 lateness"  # how harness/interference.py names it among an NDR's reasons


def one_run(backend: str, report_dir: Path, sender: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
           "--backend", backend, "--report-dir", str(report_dir), "--machine-label", "bench"]
    env = {**os.environ, **({"WFPCAP_SENDER": sender} if sender else {})}
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", p.stdout.splitlines()[-1] if p.stdout else "")}
    summaries = sorted(report_dir.glob("*/*/summary.json"), key=lambda f: f.stat().st_mtime)
    summary = json.loads(summaries[-1].read_text()) if summaries else {}
    cpu_ref, paths = None, []
    if summaries and (summaries[-1].parent / "trials.csv").exists():
        rows = read_trial_rows(summaries[-1].parent / "trials.csv")
        refs = references(rows)
        cpu_ref = statistics.median(refs) if refs else None
        paths = sorted({str(r["gen_sender_path"]) for r in rows if r.get("gen_sender_path") == r.get("gen_sender_path")
                        and r.get("gen_sender_path") is not None})
    ndr = {r["callback_cost_us"]: r for r in summary.get("estimates", {}).get("ndr", [])}
    inconclusive = [line for line in p.stdout.splitlines() if "inconclusive" in line]
    late = sum(1 for row in ndr.values() if row.get("status") == "inconclusive"
               and any(LATE_SENDER in reason for reason in row.get("status_reasons") or []))
    return {"wall_s": wall, "rc": p.returncode, "counts": counts, "load1_before": load_before, "cpu_ref_ns": cpu_ref,
            "sender": sender or "default", "sender_paths": paths, "late_sender_ndrs": late,
            "load1_after": os.getloadavg()[0], "ndr": ndr, "inconclusive": inconclusive,
            "failures": [line for line in p.stdout.splitlines() if line.startswith("FAILED")]}


def summarise_ndrs(runs: list[dict]) -> None:
    """Per callback cost: the median NDR and how far each run lies from it."""
    costs = sorted({c for r in runs for c in r["ndr"]})
    for cost in costs:
        rows = [r["ndr"].get(cost) for r in runs if r["ndr"].get(cost)]
        ndrs = [row["rate_per_s"] for row in rows if row.get("rate_per_s")]
        if not ndrs:
            print(f"  {cost:g} us: no NDR in any run ({', '.join(row['status'] for row in rows)})")
            continue
        median = statistics.median(ndrs)
        off = [(row["rate_per_s"] / median - 1, row["status"]) for row in rows if row.get("rate_per_s")]
        outside = [f"{d:+.1%} ({s})" for d, s in off if abs(d) > 0.05]
        conclusive_outside = [f"{d:+.1%}" for d, s in off if abs(d) > 0.05 and s == "conclusive"]
        res = [row["resolution_per_s"] / row["rate_per_s"] for row in rows if row.get("resolution_per_s") and row.get("rate_per_s")]
        mus = [row["mu_per_s"] for row in rows if row.get("mu_per_s")]
        print(f"  {cost:g} us: NDR median {median:,.0f}/s over {len(ndrs)} runs, mu median {statistics.median(mus):,.0f}/s; "
              f"statuses {', '.join(row['status'] for row in rows)}; bracket max {max(res):.1%} of NDR; "
              f"outside 5 %: {', '.join(outside) or 'none'}; conclusive outside 5 %: {', '.join(conclusive_outside) or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="model", choices=sorted(BUDGET_S))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hog", action="store_true", help="one busy process per core during every run")
    ap.add_argument("--keep", default=None, help="keep the reports under this folder")
    ap.add_argument("--senders", default=None, metavar="LIST",
                    help="send loops to take turns between, e.g. python,native (WFPCAP_SENDER per run)")
    args = ap.parse_args()
    turns = args.senders.split(",") if args.senders else [None]
    if any(t not in (None, "native", "python") for t in turns):
        sys.exit(f"bench_scenarios: --senders takes native and python, got {args.senders!r}")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-scenarios-"))
    hogs = start_hogs(os.cpu_count() or 1) if args.hog else []
    runs = []
    try:
        for i in range(args.runs):
            # one report folder per loop, as a user keeps: the runs are each other's history
            sender = turns[i % len(turns)]
            r = one_run(args.backend, root / (sender or "default"), sender)
            runs.append(r)
            cells = []
            for cost, row in sorted(r["ndr"].items()):
                spread = f"{row['spread']:.1%}" if row.get("spread") is not None else "-"
                cells.append(f"{cost:g}us: NDR {row.get('rate_per_s') or 0:,.0f} mu {row.get('mu_per_s') or 0:,.0f} "
                             f"{row.get('status')} (spread {spread}, bracket {row.get('resolution_per_s') or 0:,.0f}/s)")
            print(f"run {i + 1} ({r['sender']} sender, ran {'/'.join(r['sender_paths']) or '?'}): {r['wall_s']:.1f} s "
                  f"rc={r['rc']} {r['counts']} load {r['load1_before']:.1f}->{r['load1_after']:.1f} cpu ref "
                  f"{r['cpu_ref_ns'] or 0:.1f} ns; inconclusive by sender lateness {r['late_sender_ndrs']} | "
                  + " | ".join(cells), flush=True)
            for line in r["failures"]:
                print("   ", line, flush=True)
    finally:
        stop(hogs)
    walls = [r["wall_s"] for r in runs]
    budget = BUDGET_S[args.backend]
    print(f"\n{args.backend}{' with a CPU hog per core' if args.hog else ''}: {len(runs)} runs, wall median "
          f"{statistics.median(walls):.1f} s (min {min(walls):.1f}, max {max(walls):.1f}); budget {budget:.0f} s; "
          f"failed runs {sum(r['rc'] not in (0,) for r in runs)}")
    for sender in turns:
        mine = [r for r in runs if r["sender"] == (sender or "default")]
        loads = [r["load1_before"] for r in mine] + [r["load1_after"] for r in mine]
        print(f"{sender or 'default'} sender, {len(mine)} runs (load1 {min(loads, default=0):.1f}-{max(loads, default=0):.1f}): "
              f"{sum(r['late_sender_ndrs'] for r in mine)} of {sum(len(r['ndr']) for r in mine)} NDRs inconclusive "
              "because of sender lateness")
        summarise_ndrs(mine)
    print(f"reports under {root}")


if __name__ == "__main__":
    main()
