"""Drain and batching: hold the subscriber, fill the path with a burst, release, and read batch
boundaries from the callback timing of the drain (docs/methodology.md)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis.backlog import backlog_over_time
from harness.analysis.batches import estimate_queue_limit
from harness.analysis.capacity import buffer_depth
from harness.results.records import Estimate
from harness.analysis.service import ready_backlog, served_rate
from harness.experiments.burst import held
from harness.experiments.trial import run_recorded
from harness.platforms.base import Platform
from harness.results.store import ResultStore
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
    trial: int                 # the drain trial (its events are kept)
    t_release_ns: int | None


def measure_drain(platform: Platform, base: TrialSpec, store: ResultStore, burst: int,
                  capacity: Estimate) -> DrainOutcome:
    """`burst` should reach the capacity so that the queue and the buffer are both full."""
    result, row = run_recorded(platform, held(base).with_count(burst), store, EXPERIMENT, keep_events=True)
    delivered = result.delivered.sort_values("t_callback_ns", kind="stable").reset_index(drop=True)
    queue_limit, first_batch = estimate_queue_limit(delivered["t_callback_ns"].to_numpy(), held=True)
    for e in (queue_limit, first_batch):
        e.evidence["rests_on"] = [int(row["trial"])]
    # The first batch differs from trial to trial (it is whatever arrived while the dispatcher woke
    # up), so the buffer is read from this one trial: an oversized held burst delivers exactly its
    # own capacity. Only when it lost nothing does the search's capacity stand in.
    lost = int(row["lost"])
    if lost > 0:
        capacity = Estimate(int(row["delivered"]), "delivered by the oversized held burst of the drain",
                            {"burst": burst, "lost": lost, "search_capacity": capacity.value,
                             "rests_on": [int(row["trial"])]})
    backlog = backlog_over_time(result.sent, result.delivered)
    store.save_frame("drain_backlog", backlog)
    if result.ground_truth is not None:
        store.save_frame("drain_truth", pd.DataFrame(result.ground_truth["series"]))
    depth = buffer_depth(capacity, first_batch, queue_limit)
    depth.evidence["rests_on"] = sorted({int(row["trial"]), *capacity.evidence.get("rests_on", [])})
    return DrainOutcome(queue_limit, first_batch, depth,
                        drain_rate(result.sent, delivered, result.t_release_ns, ready_backlog(result.telemetry),
                                   int(row["trial"])), delivered, backlog, int(row["trial"]), result.t_release_ns)


def drain_rate(sent: pd.DataFrame, delivered: pd.DataFrame, t_release_ns: int | None, ready: int = 1,
               trial: int | None = None) -> Estimate:
    """Events per second the path serves once released: callback time and batch turnarounds
    together, counted only while a full batch was waiting (analysis/service.py), so that the
    kernel's flush timer pushing out the last partial batch is not taken for service."""
    method = "served rate after release, over gaps while a full batch was waiting (flush timers are not service)"
    if t_release_ns is None or len(delivered) < 2:
        return Estimate.undetectable(method, "not detectable: no held drain")
    service = served_rate(sent, delivered, ready_backlog=ready, after_ns=t_release_ns)
    if not service.measured:
        return Estimate.undetectable(method, "not detectable: no full batch served after release")
    return Estimate(round(service.mu_per_s, 1), method,
                    {"gaps": service.gaps, "served_s": round(service.served_s, 6), "ready_backlog": ready,
                     "low_per_s": service.low_per_s and round(service.low_per_s, 1),
                     "high_per_s": service.high_per_s and round(service.high_per_s, 1),
                     "stall_share": round(service.stall_share, 4), "rests_on": [trial] if trial is not None else []})
