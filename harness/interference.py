"""Interference: what else the machine was doing while a trial ran.

A shared runner slows the subscriber and the sender, and that moves every rate the harness measures.
So each trial records, beside its results, what the machine gave it:
- CPU time used by everything but this harness (its process and its live child processes, such as
  the sender), in cores, from /proc/stat; and the hypervisor's steal time;
- the run queue (procs_running) at both ends and the 1-minute load average;
- whether another harness run is alive on this machine (`other_harness_runs`, from the
  live-run registry).
- events that were not the trial's own but came through the same queue and buffer (wfp: other
  filters' drops, other event types such as the allow events of every permitted connection when
  another tool left FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW set, other programs' packets on the
  harness's filter): `intf_shared_events`, counted by the platform.
- the CPU's own speed: a fixed stretch of interpreter work timed before and after the trial
  (`intf_cpu_ref_begin_ns`, `_end_ns`). A VM's speed moves with nothing in /proc/stat to show it
  (a busy host, a sibling hyperthread, frequency), and a subscriber's service rate moves with it.
  `speed_columns` compares each trial's ends with the run's earlier trials.
The sender's lateness and the subscriber's served rate against its nominal 1/cost come from the
trial's own records (generator report, analysis/service.py); `flags` turns all of it into words.
Where /proc is missing (Windows) the CPU figures are None: "not measured", never zero.
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Callable

from harness.host import PROC, CpuSample, cpu_reference_ns, load1, sample
from harness.results.records import TrialRow

# thresholds for calling something interference in the report (the numbers themselves are always kept)
OTHERS_SHARE_OF_MACHINE = 0.10   # other processes used more than 10 % of all cores
STEAL_SHARE = 0.02               # the hypervisor took more than 2 % of CPU time
SENDER_LATE_P99_US = 1000.0      # the sender's p99 lateness beyond 1 ms
STALL_SHARE = 0.02               # the subscriber stalled for more than 2 % of its service time
SHARED_SHARE = 0.01              # other events through the same queue: more than 1 % of the trial's own
SPEED_FLOOR = 0.15               # a CPU speed off the run's typical by more than 15 % (or 3 robust
SPEED_SIGMAS = 3.0               # standard deviations of the run's own references, if wider)
SPEED_MIN_SAMPLES = 8            # references needed before a run's typical speed is known


def other_harness_runs() -> int | None:
    """How many other harness runs are alive on this machine (the live-run registry of the session
    lifecycle, plus nflog namespaces of live processes); None: the registry could not be read."""
    from harness.live_runs import other_live_runs
    try:
        return len(other_live_runs())
    except OSError:
        return None


class Probe:
    """Take `begin()` before a trial and `end()` after it."""

    def __init__(self, proc: Path = PROC, runs: Callable[[], int | None] = other_harness_runs) -> None:
        self.proc, self.runs = proc, runs
        self._start: CpuSample | None = None
        self._reference: float | None = None

    def begin(self) -> None:
        self._reference = cpu_reference_ns()
        self._start = sample(self.proc)

    def end(self) -> TrialRow:
        out: TrialRow = {"intf_load1": load1(), "intf_other_runs": self.runs(),
                               "intf_cpus": os.cpu_count(), "intf_others_cores": None, "intf_own_cores": None,
                               "intf_steal_share": None, "intf_procs_running": None}
        start, stop = self._start, sample(self.proc)
        if self._reference is not None:
            out.update({"intf_cpu_ref_begin_ns": round(self._reference, 2),
                        "intf_cpu_ref_end_ns": round(cpu_reference_ns(), 2)})
        if start is None or stop is None or stop.t <= start.t:
            return out
        tick = float(os.sysconf("SC_CLK_TCK"))
        elapsed = stop.t - start.t
        total = max(1, stop.total - start.total)
        busy_cores = (stop.total - start.total - (stop.idle - start.idle) - (stop.steal - start.steal)) / tick / elapsed
        own_cores = (stop.own_s - start.own_s) / elapsed
        running = [r for r in (start.procs_running, stop.procs_running) if r is not None]
        out.update({"intf_others_cores": round(max(0.0, busy_cores - own_cores), 3),
                    "intf_own_cores": round(own_cores, 3),
                    "intf_steal_share": round((stop.steal - start.steal) / total, 4),
                    "intf_procs_running": max(running) if running else None})
        return out


def speed_columns(ends: tuple[float | None, float | None], earlier: list[float]) -> TrialRow:
    """How far the CPU's speed at a trial's ends was from the run's typical (the median reference
    of its earlier trials): `intf_cpu_speed_off` is the end furthest off, as typical / reference - 1
    (+0.5: 1.5x faster), beside the limit that calls it interference (SPEED_FLOOR, or SPEED_SIGMAS
    robust standard deviations of the earlier references). Nothing until SPEED_MIN_SAMPLES."""
    refs = [v for v in earlier if v and v == v]
    measured = [v for v in ends if v]
    if len(refs) < SPEED_MIN_SAMPLES or not measured:
        return {}
    typical = statistics.median(refs)
    robust_cv = 1.4826 * statistics.median(abs(v - typical) for v in refs) / typical
    off = max((typical / v - 1 for v in measured), key=abs)
    return {"intf_cpu_typical_ns": round(typical, 2), "intf_cpu_speed_off": round(off, 4),
            "intf_cpu_speed_limit": round(max(SPEED_FLOOR, SPEED_SIGMAS * robust_cv), 4)}


def references(rows: list[TrialRow]) -> list[float]:
    """Every CPU reference the rows measured (both ends of each trial)."""
    out = []
    for row in rows:
        for key in ("intf_cpu_ref_begin_ns", "intf_cpu_ref_end_ns"):
            v = row.get(key)
            if isinstance(v, (int, float)) and v == v and v > 0:
                out.append(float(v))
    return out


def speed_flag(row: TrialRow) -> str | None:
    """The CPU's speed off the run's typical beyond its limit, in words; None: not off (or not known)."""
    off, limit = row.get("intf_cpu_speed_off"), row.get("intf_cpu_speed_limit")
    if off is None or limit is None or off != off or abs(off) <= limit:
        return None
    return (f"CPU ran {abs(off):.0%} {'faster' if off > 0 else 'slower'} than this run's typical "
            f"(reference {row['intf_cpu_typical_ns'] / (1 + off):.0f} vs {row['intf_cpu_typical_ns']:.0f} ns)")


def worst(rows: list[TrialRow]) -> TrialRow:
    """The worst of each interference figure over several trials' records (for one line of flags)."""
    keys = ("intf_others_cores", "intf_steal_share", "gen_late_p99_us", "mu_stall_share", "intf_other_runs")
    out: TrialRow = {"intf_cpus": max((r.get("intf_cpus") or 1 for r in rows), default=1)}
    for key in keys:
        values = [r.get(key) for r in rows if r.get(key) is not None and r.get(key) == r.get(key)]
        out[key] = max(values) if values else None
    shared = [r for r in rows if r.get("intf_shared_share") is not None and r["intf_shared_share"] == r["intf_shared_share"]]
    if shared:  # the trial with the largest share, its count with it
        most = max(shared, key=lambda r: r["intf_shared_share"])
        out.update({k: most[k] for k in ("intf_shared_events", "intf_shared_share")})
    speeds = [r for r in rows if r.get("intf_cpu_speed_off") is not None and r.get("intf_cpu_speed_limit")]
    if speeds:  # the trial furthest off its limit, all three figures of it
        far = max(speeds, key=lambda r: abs(r["intf_cpu_speed_off"]) / r["intf_cpu_speed_limit"])
        out.update({k: far[k] for k in ("intf_cpu_speed_off", "intf_cpu_speed_limit", "intf_cpu_typical_ns")})
    return out


def flags(row: TrialRow) -> list[str]:
    """Interference seen in one trial's record, in words (empty: none seen)."""
    out = []
    cpus = row.get("intf_cpus") or 1
    others = row.get("intf_others_cores")
    if others is not None and others > OTHERS_SHARE_OF_MACHINE * cpus:
        out.append(f"other processes used {others:.2f} of {cpus} cores")
    steal = row.get("intf_steal_share")
    if steal is not None and steal > STEAL_SHARE:
        out.append(f"hypervisor steal {steal:.1%}")
    late = row.get("gen_late_p99_us")
    if late is not None and late == late and late > SENDER_LATE_P99_US:
        out.append(f"sender p99 lateness {late / 1000:.1f} ms")
    stall = row.get("mu_stall_share")
    if stall is not None and stall == stall and stall > STALL_SHARE:
        out.append(f"subscriber stalled {stall:.1%} of its service time")
    shared, share = row.get("intf_shared_events"), row.get("intf_shared_share")
    if share is not None and share == share and share > SHARED_SHARE:
        out.append(f"{int(shared)} events not the trial's own (other filters' drops, other event types, other "
                   f"programs' packets) shared the delivery queue: {share:.0%} of its own")
    speed = speed_flag(row)
    if speed:
        out.append(speed)
    runs = row.get("intf_other_runs")
    if runs:
        out.append(f"{runs} other harness run(s) alive")
    return out
