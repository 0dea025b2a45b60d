"""Pacing against absolute deadlines, with every packet's actual send time recorded.

Deadlines are fixed before the first packet (burst: all at once; constant: i / rate; Poisson:
exponential gaps), so lateness never accumulates. Waiting sleeps until `spin_ns` before the next
deadline, then spins (DESIGN notes: plain sleep overshoots by ~50-100 us on Linux). Whatever is
due is sent in one batched call, so a late start catches up instead of falling further behind.
"""
from __future__ import annotations

import gc
import os
import time
from typing import Any, Protocol

import numpy as np

from harness.spec import TrafficSpec


# releases the interpreter lock for a moment; Linux's sleep(0) would add ~50 us of timer slack
_yield = getattr(os, "sched_yield", lambda: time.sleep(0))


class BatchSender(Protocol):
    def send(self, first: int, last: int) -> int:
        """Send packets first..last-1 of the compiled trial; return how many went."""
        ...


def deadlines_ns(traffic: TrafficSpec, rng: np.random.Generator | None = None) -> np.ndarray:
    """Send offsets in ns from the first packet: a schedule's own (at its scale), or made by the pacing."""
    if traffic.schedule is not None:
        return traffic.schedule.offsets_ns
    n = traffic.count
    if traffic.pacing == "burst":
        return np.zeros(n, dtype=np.int64)
    if traffic.pacing == "constant":
        return (np.arange(n) * (1e9 / traffic.rate_per_s)).astype(np.int64)
    rng = rng or np.random.default_rng(traffic.seed)
    gaps = rng.exponential(1e9 / traffic.rate_per_s, n)
    gaps[0] = 0.0
    return np.cumsum(gaps).astype(np.int64)


def run_paced(sender: BatchSender, offsets: np.ndarray, max_batch: int = 512, spin_ns: int = 200_000,
              lead_ns: int = 1_000_000, call_ns: list[int] | None = None) -> tuple[np.ndarray, int]:
    """Send on schedule; return (actual send time of each packet in ns, start time t0). `call_ns`,
    if given, receives the duration of every call that sent."""
    n = len(offsets)
    t0 = time.perf_counter_ns() + lead_ns
    deadlines = offsets + t0
    sent_at = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    collecting = gc.isenabled()
    gc.disable()  # a garbage-collector pass in mid-trial would stall the schedule by milliseconds
    try:
        _loop(sender, deadlines, sent_at, max_batch, spin_ns, clock, [] if call_ns is None else call_ns)
    finally:
        if collecting:
            gc.enable()
    return sent_at, t0


def _loop(sender: BatchSender, deadlines: np.ndarray, sent_at: np.ndarray, max_batch: int, spin_ns: int,
          clock, call_ns: list[int]) -> None:
    n = len(deadlines)
    i = 0
    while i < n:
        now = clock()
        due = int(np.searchsorted(deadlines, now, side="right")) if deadlines[i] <= now else i
        if due > i:
            j = min(due, i + max_batch)
            went = sender.send(i, j)
            after = clock()
            if went <= 0:
                continue
            # one call handed `went` packets over between now and after: spread across it from its start
            sent_at[i:i + went] = now + (after - now) * np.arange(went) // went
            call_ns.append(after - now)
            i += went
        else:
            wait = int(deadlines[i] - now)
            # sleep most of the wait; spin the rest, yielding the interpreter lock on every turn so
            # that a subscriber callback in this process is never starved by the pacing loop
            if wait > spin_ns:
                time.sleep((wait - spin_ns) / 1e9)
            else:
                _yield()


def lag_events(sent_at: np.ndarray, deadlines: np.ndarray) -> np.ndarray:
    """For each packet, how many packets were due but not yet sent when it went: the burst a late
    sender releases when it catches up."""
    due = np.searchsorted(deadlines, sent_at, side="right")  # packets due by then, this one included
    return np.maximum(due - np.arange(1, len(sent_at) + 1), 0)


def generator_report(traffic: TrafficSpec, sent_at: np.ndarray, offsets: np.ndarray, t0: int,
                     rate_tolerance: float = 0.05, lag_share: float = 0.25,
                     call_ns: np.ndarray | None = None) -> dict[str, Any]:
    """Achieved rate, lateness and lag; `trusted` is False when the offered load missed its target:
    the average rate fell short by more than `rate_tolerance`, or at some moment the sender was
    more than `lag_share` of the trial's packets behind its schedule (it offered a different load:
    a long hole, then a burst). A shorter lag still matters where it could fill a buffer:
    `lag_max_events` is there for that judgement (analysis/trust.py)."""
    n = len(sent_at)
    span = (sent_at[-1] - sent_at[0]) / 1e9 if n > 1 else 0.0
    achieved = (n - 1) / span if span > 0 else float("inf")
    late_us = (sent_at - (offsets + t0)) / 1e3
    out: dict[str, Any] = {"packets": n, "achieved_rate_per_s": round(float(achieved), 1), "span_s": float(span)}
    if call_ns is not None and len(call_ns):  # how long the system kept each send call (pacing.py's docstring)
        c50, c99 = np.percentile(np.asarray(call_ns) / 1e3, [50, 99])
        out.update({"send_call_p50_us": round(float(c50), 2), "send_call_p99_us": round(float(c99), 2),
                    "send_call_max_us": round(float(np.max(call_ns)) / 1e3, 2)})
    if traffic.pacing == "burst":
        out.update({"trusted": True, "reason": "back to back: as fast as the sender goes"})
        return out
    p50, p99 = np.percentile(late_us, [50, 99])
    lag = lag_events(sent_at, offsets + t0)
    lag_p99, lag_max = np.percentile(lag, 99), int(lag.max())
    out.update({"target_rate_per_s": traffic.rate_per_s, "late_p50_us": round(float(p50), 2),
                "late_p99_us": round(float(p99), 2), "late_max_us": round(float(late_us.max()), 2),
                "lag_p99_events": round(float(lag_p99), 1), "lag_max_events": lag_max})
    reasons = []
    if traffic.pacing == "constant" and achieved < (1 - rate_tolerance) * traffic.rate_per_s:
        reasons.append(f"achieved {achieved:.0f}/s < target {traffic.rate_per_s:.0f}/s")
    if lag_max > max(1, lag_share * n):
        reasons.append(f"fell {lag_max} packets behind schedule (> {lag_share:.0%} of {n})")
    out["trusted"] = not reasons
    out["reason"] = "; ".join(reasons)
    return out
