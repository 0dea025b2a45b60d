"""Benchmark: what the harness itself costs per event on the callback path (issue 9, item 4).

    sudo python benchmarks/bench_callback.py                  # fake fwpuclnt and nflog, 3 x 3 trials each
    sudo python benchmarks/bench_callback.py --platforms wfp --rounds 5 --baseline <git ref>
    sudo python benchmarks/bench_callback.py --platforms wfp --python /path/to/other/venv/bin/python

A zero-work subscriber (cost 0) holds its first callback while a burst of `--events` packets is
sent, then drains the backlog at full speed. Per trial: the median gap between consecutive
callbacks (the per-event overhead: the platform's delivery, the ctypes/Python entry, the harness's
copy), the mean of the gaps inside batches (`mean`, gaps up to 10x the trial's median: the native
path's stamps have the fake's 100 ns resolution, as Windows' QueryPerformanceCounter, so its
median reads 0.1 and the mean over thousands of gaps says more; the ratio to the baseline is of
these means) and the events/s absorbed over the whole drain (batch turnarounds
included). Each
implementation runs `--rounds` times, taking turns, `--trials` trials a time; medians over all
its trials, side by side for:
- current: this tree (on wfp: the native callback, harness/platforms/wfp/native.py);
- current, Python callback (wfp only): this tree's lean Python callback (WFPCAP_CALLBACK=python);
- current, Python callback, no kept thread state (wfp only): the same, but every callback lets
  ctypes make and delete a Python thread state (PyGILState_Ensure/Release) as it does by default;
- baseline: the tree of `--baseline` (default: the commit before the lean callbacks), run
  against the same fake library, measured in the same run;
- current, on another Python (`--python`, a venv with this project's dependencies): builds of one
  version differ (this VM's pyenv 3.11.7 has no PGO/LTO and runs the wfp path ~1.4x slower than
  Debian's 3.11.2; the native callback does not depend on it);
and the model's reference figure (ModelParams.per_event_overhead_us). Each measurement runs in a
process of its own; wfp inside `unshare --net` (the fake classifies the loopback of a namespace
with nothing else), nflog in its own namespace as the platform makes it. Needs root.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_US = 2.0
INSIDE_BATCH_FLOOR_NS = 1_000  # a gap up to 10x the median (at least this) is inside a batch


def measure(platform_name: str, events: int, trials: int, kept_thread_state: bool) -> dict:
    """In the worker process: `trials` held bursts of a zero-work subscriber."""
    import numpy as np

    from harness.platforms.select import open_platform
    from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec

    if not kept_thread_state:
        import harness.platforms.wfp.subscription as subscription
        subscription.keep_thread_state = lambda: None
    gaps, means, rates, delivered = [], [], [], []
    with open_platform(platform_name) as platform:
        spec = TrialSpec(TrafficSpec(count=events), SubscriberSpec(cost_us=0.0, hold=True), drain_quiet_s=0.3)
        for _ in range(trials):
            r = platform.run_trial(spec)
            d = r.delivered.sort_values("t_callback_ns")
            t_cb, t_done = d["t_callback_ns"].to_numpy(), d["t_done_ns"].to_numpy()
            after = t_cb[1:]  # the held first callback's gap is the hold
            if len(after) < 2:
                raise SystemExit(f"{platform_name}: only {len(d)} events delivered")
            diffs = np.diff(after)
            gaps.append(float(np.median(diffs)) / 1000)
            # not the batch turnarounds (the fake's: 100 us): gaps up to 10x the trial's median
            within = diffs[diffs <= max(10 * np.median(diffs), INSIDE_BATCH_FLOOR_NS)]
            means.append(float(within.mean()) / 1000)
            rates.append((len(after) - 1) / ((t_done[-1] - after[0]) / 1e9))
            delivered.append(len(d))
    return {"gap_us": statistics.median(gaps), "rate_per_s": statistics.median(rates), "gaps_us": gaps,
            "means_us": means, "delivered": statistics.median(delivered)}


def baseline_ref() -> str:
    """The commit before the one that added the lean callback's raw rows (events.py)."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--",
                            "harness/platforms/wfp/events.py"], capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("bench_callback: no commit adds harness/platforms/wfp/events.py; pass --baseline")
    return added[-1] + "^"


def export_tree(ref: str) -> Path:
    out = Path(tempfile.mkdtemp(prefix="bench-callback-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "harness"], capture_output=True, check=True).stdout
    tar = out / "tree.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            t.extractall(out, filter="data")
        else:
            t.extractall(out)  # our own tree, from git archive
    return out


def python_version(python: str) -> str:
    """'Python 3.11.2 (/usr/bin/python3.11)', or a clear exit when `python` does not run."""
    try:
        done = subprocess.run([python, "-c", "import sys, numpy; print(sys.version.split()[0])"],
                              capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise SystemExit(f"bench_callback: cannot run --python {python}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise SystemExit(f"bench_callback: --python {python} did not answer within 30 s") from None
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise SystemExit(f"bench_callback: --python {python} cannot run the workers: {last}")
    return f"Python {done.stdout.strip()} ({python})"


def run_worker(tree: Path, platform_name: str, events: int, trials: int, kept: bool, python: str,
               callback: str) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", str(tree), platform_name, str(events),
           str(trials), "1" if kept else "0"]
    if platform_name == "wfp":
        cmd = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    env = {**os.environ, "PYTHONPATH": str(tree), "WFPCAP_CALLBACK": callback}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved(variants: list[tuple[str, Path, bool, str, str]], name: str, events: int, trials: int,
                rounds: int) -> list[tuple[str, dict]]:
    """Each variant `rounds` times, taking turns (a drift of the machine's load then hits all of them
    alike); per variant the median over all its trials."""
    runs: dict[str, list[dict]] = {label: [] for label, *_ in variants}
    for _ in range(rounds):
        for label, tree, kept, python, callback in variants:
            runs[label].append(run_worker(tree, name, events, trials, kept, python, callback))
    results = []
    for label, *_ in variants:
        good = [r for r in runs[label] if "error" not in r]
        if not good:
            results.append((label, runs[label][0]))
            continue
        gaps = [g for r in good for g in r["gaps_us"]]
        means = [m for r in good for m in r["means_us"]]
        results.append((label, {"gap_us": statistics.median(gaps), "gaps_us": gaps, "mean_us": statistics.median(means),
                                "rate_per_s": statistics.median(r["rate_per_s"] for r in good)}))
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        tree, platform_name, events, trials, kept = sys.argv[2:7]
        sys.path.insert(0, tree)
        import harness
        if not Path(harness.__file__).resolve().is_relative_to(Path(tree).resolve()):
            raise SystemExit(f"bench_callback: imported {harness.__file__}, not the tree under test {tree}")
        print(json.dumps(measure(platform_name, int(events), int(trials), kept == "1")))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--platforms", nargs="+", default=["wfp", "nflog"], choices=("wfp", "nflog"))
    ap.add_argument("--events", type=int, default=12_000)
    ap.add_argument("--trials", type=int, default=3, help="held bursts per worker process")
    ap.add_argument("--rounds", type=int, default=3, help="turns each implementation takes")
    ap.add_argument("--baseline", default=None, help="git ref of the implementation to compare with")
    ap.add_argument("--python", default=None, help="also run the current tree on this Python (its venv needs the "
                                                    "project's dependencies)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_callback: needs root (network namespaces)", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, str(ROOT / "tests"))
    if "wfp" in args.platforms:
        from platforms import fake_wfp_library
        os.environ["WFPCAP_FWPUCLNT"] = fake_wfp_library()
    sys.path.insert(0, str(ROOT))
    from harness.platforms.model import ModelParams
    other = python_version(args.python) if args.python else None
    ref = args.baseline or baseline_ref()
    old = export_tree(ref)
    model_us = ModelParams().per_event_overhead_us
    print(f"zero-work subscriber, held burst of {args.events:,} events, median of {args.rounds} x {args.trials} "
          f"trials, implementations taking turns; "
          f"baseline {ref}; load {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]} ({sys.executable})")
    print(f"model reference: {model_us:.1f} us/event ({1e6 / model_us:,.0f} events/s); target <= {TARGET_US:.1f} us")
    print(f"{'platform':8} {'implementation':44} {'us/event':>9} {'mean':>6} {'events/s':>10} {'vs baseline':>12}  trials (us)")
    for name in args.platforms:
        native = "native" if name == "wfp" else ""
        variants = [("current", ROOT, True, sys.executable, native)]
        if other:
            variants.append((f"current, {other.split(' (')[0]}", ROOT, True, args.python, native))
        if name == "wfp":
            variants.append(("current, Python callback", ROOT, True, sys.executable, "python"))
            if other:
                variants.append((f"current, Python callback, {other.split(' (')[0]}", ROOT, True, args.python, "python"))
            variants.append(("current, Python callback, no kept state", ROOT, False, sys.executable, "python"))
        variants.append((f"baseline ({ref[:12]})", old, True, sys.executable, ""))
        results = interleaved(variants, name, args.events, args.trials, args.rounds)
        base = results[-1][1]
        for label, r in results:
            if "error" in r:
                print(f"{name:8} {label:44} error: {r['error']}")
                continue
            ratio = f"x{base['mean_us'] / r['mean_us']:.2f} faster" if "mean_us" in base and r is not base else ""  # means: see above
            print(f"{name:8} {label:44} {r['gap_us']:9.2f} {r['mean_us']:6.2f} {r['rate_per_s']:10,.0f} {ratio:>12}  "
                  + " ".join(f"{g:.2f}" for g in r["gaps_us"]))


if __name__ == "__main__":
    main()
