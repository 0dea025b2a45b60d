"""Inline vs copy: the same work per event, done in the callback or after a copy on a worker.

Inline work keeps the dispatcher (and the batch's kernel packets) busy for the whole work;
copy mode frees them after the copy and moves the queueing to the worker."""
from __future__ import annotations

import numpy as np

from harness.analysis.latency import latencies_ns, latency_summary
from harness.experiments.trial import sustained_spec, trusted_run
from harness.platforms.base import Platform, TrialResult
from harness.results.records import InlineCopyResult, ModeResult, TrialRow
from harness.results.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "inline_copy"
PERCENTILES = ("p50", "p99", "p99_9", "max")


def _work_done(result: TrialResult) -> TrialRow:
    """Columns kept in the trial's row: latency to the end of the work and, on the model, how long
    kernel packets stayed pinned."""
    done = latency_summary(latencies_ns(result.sent, result.delivered, "t_done_ns"))
    out: TrialRow = {f"done_latency_{k}_us": done[k] for k in PERCENTILES}
    if result.ground_truth is not None:
        series = result.ground_truth["series"]
        t, held = series["t_ns"], series["kernel_held"]
        if len(t) > 1:
            out["model_kernel_packets_held_mean"] = float(np.sum(held[:-1] * np.diff(t)) / (t[-1] - t[0]))
            out["model_kernel_packets_held_max"] = int(held.max())
    return out


def compare_inline_copy(platform: Platform, base: TrialSpec, store: ResultStore, work_us: float,
                        rate: float, duration_s: float, capacity: int | None = None) -> InlineCopyResult:
    """Each mode's trial is run again while its generator missed the load (analysis/trust.py)."""
    modes: dict[str, ModeResult] = {}
    for mode in ("inline", "copy"):
        _, row, refused = trusted_run(platform, sustained_spec(base, work_us, rate, duration_s, mode=mode), store,
                                      EXPERIMENT, capacity, derive=_work_done)
        modes[mode] = ModeResult(
            trial=row["trial"], trusted=row["trusted"], untrusted_trials=refused,
            rests_on=[int(row["trial"])] if row["trusted"] else [], interference=row.get("interference"),
            loss_ratio=row["loss_ratio"], lost=row["lost"], delivered=row["delivered"],
            latency_to_callback_us={k: row.get(f"latency_{k}_us") for k in PERCENTILES},
            latency_to_work_done_us={k: row.get(f"done_latency_{k}_us") for k in PERCENTILES},
            model_kernel_packets_held_mean=row.get("model_kernel_packets_held_mean"),
            model_kernel_packets_held_max=row.get("model_kernel_packets_held_max"))
    return InlineCopyResult(work_us, rate, duration_s, modes["inline"], modes["copy"])
