"""Burst capacity and buffer depth from burst trials (RFC 2544 back-to-back, RFC 9004).

burst_capacity: the longest burst delivered without loss, from the search's trials.
plateau: with the subscriber held, a burst larger than the capacity delivers exactly the
capacity (the rest is lost at the tail), so the delivered count of oversized bursts is a second,
independent reading of the same number.
buffer_depth = capacity - first_batch - queue_limit (all three from one trial where possible).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.results.records import Estimate


def burst_capacity(trials: pd.DataFrame) -> Estimate:
    """trials: one row per burst trial with columns burst, delivered, lost."""
    method = "longest zero-loss burst (search with verification)"
    if trials.empty:
        return Estimate.undetectable(method, "no burst trials")
    ok = trials[trials["lost"] == 0]
    bad = trials[trials["lost"] > 0]
    if ok.empty:
        return Estimate.undetectable(method, "every burst lost events", smallest_tried=int(trials["burst"].min()))
    best = int(ok["burst"].max())
    shortest_lossy = int(bad["burst"].min()) if len(bad) else None
    evidence = {"trials": int(len(trials)), "shortest_lossy_burst": shortest_lossy,
                "resolution": (shortest_lossy - best) if shortest_lossy is not None else None}
    if shortest_lossy is None:
        return Estimate(best, method, {**evidence, "bounded": False,
                                       "note": "no burst lost events: the capacity is at least this"})
    inconsistent = int((ok["burst"] > shortest_lossy).sum())
    evidence["inconsistent_trials"] = inconsistent  # zero-loss bursts above a lossy one: a noisy platform
    return Estimate(best, method, {**evidence, "bounded": True})


def plateau(trials: pd.DataFrame) -> Estimate:
    """Median delivered count of the lossy bursts (each delivers the capacity and loses the rest)."""
    method = "delivered count of bursts beyond capacity (plateau)"
    lossy = trials[trials["lost"] > 0]
    if lossy.empty:
        return Estimate.undetectable(method, "no burst exceeded the capacity")
    delivered = lossy["delivered"].to_numpy()
    return Estimate(int(np.median(delivered)), method,
                    {"bursts": int(len(lossy)), "min": int(delivered.min()), "max": int(delivered.max())})


def buffer_depth(capacity: Estimate, first_batch: Estimate, queue_limit: Estimate) -> Estimate:
    method = "capacity - first_batch - queue_limit"
    missing = [name for name, e in (("burst_capacity", capacity), ("first_batch", first_batch),
                                    ("queue_limit", queue_limit)) if not e.detectable]
    if missing:
        return Estimate.undetectable(method, f"not detectable: needs {', '.join(missing)}")
    return Estimate(int(capacity.value) - int(first_batch.value) - int(queue_limit.value), method,
                    {"capacity": capacity.value, "capacity_from": capacity.method, "first_batch": first_batch.value,
                     "queue_limit": queue_limit.value})
