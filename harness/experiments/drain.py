"""Drain and batching: hold the subscriber, fill the path with a burst, release, and read batch
boundaries from the callback timing of the drain (DESIGN section 5)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis.backlog import backlog_over_time
from harness.analysis.batches import estimate_queue_limit
from harness.analysis.capacity import buffer_depth
from harness.analysis.estimate import Estimate
from harness.experiments.burst import held
from harness.experiments.trial import run_recorded
from harness.platforms.base import Platform
from harness.report.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "drain"


@dataclass
class DrainOutcome:
    queue_limit: Estimate
    first_batch: Estimate
    buffer_depth: Estimate
    drain_rate: Estimate
    delivered: pd.DataFrame
    backlog: pd.DataFrame


def measure_drain(platform: Platform, base: TrialSpec, store: ResultStore, burst: int,
                  capacity: Estimate) -> DrainOutcome:
    """`burst` should reach the capacity so that the queue and the buffer are both full."""
    result, row = run_recorded(platform, held(base).with_count(burst), store, EXPERIMENT, keep_events=True)
    delivered = result.delivered.sort_values("t_callback_ns", kind="stable").reset_index(drop=True)
    queue_limit, first_batch = estimate_queue_limit(delivered["t_callback_ns"].to_numpy(), held=True)
    # The first batch differs from trial to trial (it is whatever arrived while the dispatcher woke
    # up), so the buffer is read from this one trial: an oversized held burst delivers exactly its
    # own capacity. Only when it lost nothing does the search's capacity stand in.
    lost = int(row["lost"])
    if lost > 0:
        capacity = Estimate(int(row["delivered"]), "delivered by the oversized held burst of the drain",
                            {"burst": burst, "lost": lost, "search_capacity": capacity.value})
    backlog = backlog_over_time(result.sent, result.delivered)
    store.save_frame("drain_backlog", backlog)
    if result.ground_truth is not None:
        store.save_frame("drain_truth", pd.DataFrame(result.ground_truth["series"]))
    store.sections["drain"] = {"trial": row["trial"], "t_release_ns": result.t_release_ns}
    return DrainOutcome(queue_limit, first_batch, buffer_depth(capacity, first_batch, queue_limit),
                        drain_rate(delivered, result.t_release_ns), delivered, backlog)


def drain_rate(delivered: pd.DataFrame, t_release_ns: int | None) -> Estimate:
    """Events per second the path delivers once released: per-event callback time and batch
    turnarounds together, the most a subscriber of this cost can ever sustain."""
    method = "delivered events / time from release to last callback start"
    t = delivered["t_callback_ns"].to_numpy()
    if t_release_ns is None or len(t) < 2:
        return Estimate.undetectable(method, "not detectable: no held drain")
    after = t[t > t_release_ns]
    span = (after.max() - t_release_ns) / 1e9 if len(after) else 0
    if span <= 0:
        return Estimate.undetectable(method, "not detectable: no callback after release")
    return Estimate(round(len(after) / span, 1), method, {"events": int(len(after)), "span_s": span})
