"""Benchmark: the headroom search against answers known beforehand, on each platform.

    python benchmarks/bench_headroom.py                                # the model (virtual time)
    sudo python benchmarks/bench_headroom.py --platforms model,nflog,wfp --repeat 3

- model: the trace whose first lossy scale is computed by hand (tests/test_trace_replay.py: five
  bursts of 1,000 events into a single server of 100 us with 400 places, x* = 2.500001): the
  bracket the search finds at resolutions 2 % and 0.1 %, how far its headroom lies below x*, the
  trials it took; and a long-tailed cost distribution against a flat one of the same mean
  (tests/test_agent_wfp.py's pair), whose headrooms' ratio is the model's prediction for the fake.
- wfp (root; the fake fwpuclnt in a network namespace of its own, real senders): the same pair on
  the fake set to the model's queue, buffer and turnaround: measured headrooms, their ratio
  against the model's, statuses, wall time.
- nflog (root): bursts with 30 us of work per event into the NFLOG rule: the headroom of each
  search, their spread, statuses, and the sender's lateness against the schedule (p99) in the
  trials the headroom rests on.

Each figure is one line `- what: figure` (benchmarks/figures.py reads them), with the load beside.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.experiments.headroom import HeadroomConfig, search_headroom  # noqa: E402
from harness.platforms.model import ModelParams, ModelPlatform  # noqa: E402
from harness.results.fingerprint import fingerprint  # noqa: E402
from harness.results.store import ResultStore  # noqa: E402
from harness.spec import FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec  # noqa: E402
from harness.traffic.shapes import on_off  # noqa: E402


def store(name: str) -> ResultStore:
    return ResultStore(Path(tempfile.mkdtemp(prefix=f"bench-headroom-{name}-")), fingerprint({"platform": name}), name)


def x(scale: float | None) -> str:
    return "none found" if scale is None else f"{scale:.3g}x"


def why(*found) -> str:
    """What the machine did while the search ran (the interference its trials saw), if anything."""
    seen = sorted({flag.split(":")[0].split(" (")[0] for r in found for flag in r.interference})
    return f" ({', '.join(seen)})" if seen else ""


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def model() -> None:
    from test_trace_replay import HAND, X_STAR, hand_spec, hand_trace
    for resolution in (0.02, 1e-3):
        t = time.perf_counter()
        r = search_headroom(ModelPlatform(HAND), hand_spec(hand_trace()), store("model"),
                            HeadroomConfig(resolution=resolution))
        error = (r.headroom - X_STAR) / X_STAR
        print(f"- model, hand-computed trace (x* = {X_STAR:.6f}), resolution {resolution:g}: headroom "
              f"{r.headroom:.6g}x, first lossy {r.first_lossy_scale:.6g}x ({error:+.2%} of x*, x* inside: "
              f"{r.headroom < X_STAR <= r.first_lossy_scale}); {r.status}; {len(r.trials)} trials, "
              f"{time.perf_counter() - t:.2f} s", flush=True)
    tail, flat, predicted = model_pair()
    print(f"- model, long tail vs flat cost of the same mean (queue 16, buffer 200): headroom "
          f"{tail.headroom:.3g}x vs {flat.headroom:.3g}x, ratio {tail.headroom / flat.headroom:.3f}", flush=True)
    del predicted


def model_pair():
    from test_agent_wfp import FAKE, headroom_of, tail_and_flat
    tail, flat = tail_and_flat()
    params = ModelParams(queue_limit=FAKE["queue_limit"], system_buffer=FAKE["system_buffer"],
                         batch_turnaround_us=FAKE["turnaround_us"], dispatch_latency_us=20, per_event_overhead_us=1.0)
    s = store("model")
    found = [headroom_of(ModelPlatform(params), d, s, 0.01) for d in (tail, flat)]
    return found[0], found[1], found[0].headroom / found[1].headroom


def wfp(repeat: int) -> None:
    from platforms import fake_controls, fake_wfp_library, reset_fake
    from test_agent_wfp import FAKE, headroom_of, tail_and_flat

    from harness.platforms.wfp.platform import WfpPlatform
    path = fake_wfp_library()
    reset_fake(fake_controls(path), **FAKE)
    os.environ.setdefault("WFPCAP_STATE_DIR", tempfile.mkdtemp(prefix="bench-headroom-state-"))
    _, _, want = model_pair()
    tail, flat = tail_and_flat()
    ratios = []
    with WfpPlatform(path) as p:
        for k in range(repeat):
            t, before = time.perf_counter(), load()
            s = store("wfp")
            m_tail, m_flat = headroom_of(p, tail, s), headroom_of(p, flat, s)
            ratio = (m_tail.headroom / m_flat.headroom) if m_tail.headroom and m_flat.headroom else None
            if ratio is not None:
                ratios.append(ratio)
            shown = "none" if ratio is None else f"{ratio:.3f}"
            print(f"- fake wfp, long tail vs flat cost, search {k + 1}: headroom {x(m_tail.headroom)} (first lossy "
                  f"{x(m_tail.first_lossy_scale)}) vs {x(m_flat.headroom)} (first lossy {x(m_flat.first_lossy_scale)}), "
                  f"ratio {shown} (model {want:.3f}); {m_tail.status}, "
                  f"{m_flat.status}{why(m_tail, m_flat)}; {len(m_tail.trials) + len(m_flat.trials)} trials, "
                  f"{time.perf_counter() - t:.0f} s, {before} -> {load()}", flush=True)
    if ratios:
        print(f"- fake wfp, the tail's headroom over the flat one's, median of {len(ratios)}: "
              f"{statistics.median(ratios):.3f} (model {want:.3f})")


def nflog(repeat: int) -> None:
    from harness.platforms.nflog.platform import NflogConfig, NflogPlatform, available
    reason = available()
    if reason:
        print(f"- nflog: not run ({reason})")
        return
    trace = on_off(mean_rate_per_s=2000, burst_rate_per_s=20_000, burst_s=0.05, duration_s=2)  # 4 bursts of 1,000
    spec = TrialSpec(TrafficSpec.replay(trace), SubscriberSpec(cost_us=30.0), FilterSpec(layer="OUTBOUND_TRANSPORT_V4"),
                     drain_quiet_s=0.3)
    found = []
    with NflogPlatform(NflogConfig(qthresh=16, rcvbuf=64 * 1024)) as p:
        for k in range(repeat):
            t, before = time.perf_counter(), load()
            s = store("nflog")
            r = search_headroom(p, spec, s, HeadroomConfig(resolution=0.04, max_trials=14, max_replay_s=8.0))
            late = [float(row["gen_late_p99_us"]) for row in s.rows if int(row["trial"]) in r.rests_on
                    and row.get("gen_late_p99_us") is not None]
            found.append(r)
            print(f"- nflog, bursts with 30 us per event, search {k + 1}: headroom {x(r.headroom)}, first lossy "
                  f"{x(r.first_lossy_scale)}; {r.status}{why(r)}; sender p99 lateness {max(late, default=0):.0f} us; "
                  f"{len(r.trials)} trials, {time.perf_counter() - t:.0f} s, {before} -> {load()}", flush=True)
    values = [r.headroom for r in found if r.headroom]
    if values:
        print(f"- nflog, headroom median of {len(values)}: {statistics.median(values):.3g}x "
              f"({min(values):.3g}-{max(values):.3g}); {', '.join(r.status for r in found)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--platforms", default="model", help="comma-separated: model, nflog, wfp")
    ap.add_argument("--repeat", type=int, default=3, help="searches per real platform")
    args = ap.parse_args()
    names = [n.strip() for n in args.platforms.split(",") if n.strip()]
    unknown = sorted(set(names) - {"model", "nflog", "wfp"})
    if unknown:
        sys.exit(f"bench_headroom: unknown platform {unknown[0]}")
    print(f"bench_headroom: {', '.join(names)}; {load()}", flush=True)
    if "model" in names:
        model()
    if "nflog" in names:
        nflog(args.repeat)
    if "wfp" in names:
        if os.geteuid() != 0:
            print("- fake wfp: not run (needs root: a network namespace of its own)")
        else:  # the fake classifies the packets of its namespace: run that part inside a fresh one
            sys.stdout.flush()
            done = subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                                   sys.executable, __file__, "--in-namespace", str(args.repeat)])
            if done.returncode:
                sys.exit(f"bench_headroom: the fake wfp part exited {done.returncode}")
    print(f"done; {load()}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--in-namespace":
        wfp(int(sys.argv[2]))
    else:
        main()
