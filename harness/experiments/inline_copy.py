"""Inline vs copy: the same work per event, done in the callback or after a copy on a worker.

Inline work keeps the dispatcher (and the batch's kernel packets) busy for the whole work;
copy mode frees them after the copy and moves the queueing to the worker."""
from __future__ import annotations

from typing import Any

import numpy as np

from harness.analysis.latency import latencies_ns, latency_summary
from harness.experiments.sustained import sustained_spec
from harness.experiments.trial import run_recorded
from harness.platforms.base import Platform
from harness.report.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "inline_copy"


def compare_inline_copy(platform: Platform, base: TrialSpec, store: ResultStore, work_us: float,
                        rate: float, duration_s: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for mode in ("inline", "copy"):
        result, row = run_recorded(platform, sustained_spec(base, work_us, rate, duration_s, mode=mode), store,
                                   EXPERIMENT)
        done = latency_summary(latencies_ns(result.sent, result.delivered, "t_done_ns"))
        entry = {"loss_ratio": row["loss_ratio"], "lost": row["lost"], "delivered": row["delivered"],
                 "latency_to_callback_us": {k: row.get(f"latency_{k}_us") for k in ("p50", "p99", "p99_9", "max")},
                 "latency_to_work_done_us": {k: done[k] for k in ("p50", "p99", "p99_9", "max")}}
        if result.ground_truth is not None:  # model only: how long kernel packets stayed pinned
            series = result.ground_truth["series"]
            t, held = series["t_ns"], series["kernel_held"]
            if len(t) > 1:
                entry["model_kernel_packets_held_mean"] = float(np.sum(held[:-1] * np.diff(t)) / (t[-1] - t[0]))
                entry["model_kernel_packets_held_max"] = int(held.max())
        out[mode] = entry
    return out
