"""Batch boundaries from callback timing alone, and the queue limit they reveal.

During a drain the callback runs back to back within a batch; between batches the dispatcher
needs a turnaround. A boundary is a gap between consecutive callback starts that stands out from
the per-event spacing (robust threshold: median + k * MAD, and at least 1.5 x the median).
The queue limit is the period of the boundaries: full batches put them on a lattice
first_batch + k * limit, while stray pauses fall off it. When no gap stands out, or the
boundaries fit no lattice, the answer is "not detectable" with the reason, never a guess.
"""
from __future__ import annotations

import numpy as np

from harness.analysis.estimate import Estimate

MAD_TO_SIGMA = 1.4826


def find_boundaries(callback_ns: np.ndarray, held: bool, k_mad: float = 8.0) -> tuple[np.ndarray, dict]:
    """Indices (into delivery order) of the first event of each batch after the first one."""
    t = np.asarray(callback_ns, dtype=np.int64)
    gaps = np.diff(t).astype(np.float64)
    if held and len(gaps):
        gaps = gaps[1:]  # the first gap is the hold itself, not the dispatcher's turnaround
    offset = 2 if held else 1
    if len(gaps) == 0:
        return np.zeros(0, dtype=np.int64), {"gaps": 0}
    median = float(np.median(gaps))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(gaps - median)))
    threshold = median + max(k_mad * spread, 0.5 * median, 1.0)
    big = np.flatnonzero(gaps > threshold)
    stats = {"gaps": int(len(gaps)), "gap_median_us": median / 1e3, "gap_threshold_us": threshold / 1e3,
             "boundary_gap_median_us": float(np.median(gaps[big])) / 1e3 if len(big) else None}
    return big + offset, stats


def lattice_fit(boundaries: np.ndarray, limit: int) -> dict:
    """How well boundaries sit on the lattice first_batch + k * limit.

    In a drain every batch after the first holds exactly `limit` events, so true boundaries fall
    on one residue modulo the limit; a stray pause inside a batch (preemption, a page fault)
    falls anywhere. The lattice's residue is the most common one; coverage is the share of
    lattice points between its first and last boundary that really are boundaries."""
    residues = boundaries % limit
    values, counts = np.unique(residues, return_counts=True)
    residue = int(values[np.argmax(counts)])
    on = boundaries[residues == residue]
    expected = int((on.max() - on.min()) // limit + 1)
    return {"limit": int(limit), "on_lattice": int(len(on)), "coverage": float(len(on) / expected),
            "strays": int(len(boundaries) - len(on)), "first_batch": int((residue - 1) % limit + 1)}


def estimate_queue_limit(callback_ns: np.ndarray, held: bool, min_batches: int = 4,
                         min_coverage: float = 0.9, candidates: int = 3) -> tuple[Estimate, Estimate]:
    """(queue_limit, first_batch) from the callback start times of one drain, in delivery order.

    Candidate limits are the most common distances between consecutive boundaries; the one whose
    lattice covers the boundaries best wins. Not detectable: no boundaries, fewer than
    `min_batches` boundaries on the lattice, coverage under `min_coverage`, or more strays than
    lattice boundaries."""
    method = "batch boundaries in callback timing (gaps above median + 8 MAD) on a regular lattice"
    boundaries, stats = find_boundaries(callback_ns, held)
    evidence = {"events": int(len(callback_ns)), "boundaries": int(len(boundaries)), **stats}

    def undetectable(reason: str) -> tuple[Estimate, Estimate]:
        return (Estimate.undetectable(method, reason, **evidence), Estimate.undetectable(method, reason, **evidence))

    if len(boundaries) == 0:
        return undetectable("not detectable: no gap between callbacks stands out from the per-event spacing")
    spacing = np.diff(boundaries)
    spacing = spacing[spacing >= 2]
    if len(spacing) < min_batches - 1:
        return undetectable(f"not detectable: only {len(boundaries)} batch boundaries (need {min_batches})")
    values, counts = np.unique(spacing, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:candidates]
    fits = [lattice_fit(boundaries, int(values[k])) for k in order]
    best = max(fits, key=lambda f: (f["on_lattice"] * f["coverage"], -f["strays"]))
    evidence.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in best.items() if k != "first_batch"})
    evidence["candidates"] = {f["limit"]: round(f["coverage"], 3) for f in fits}
    if best["on_lattice"] < min_batches or best["coverage"] < min_coverage or best["strays"] > best["on_lattice"]:
        return undetectable(f"not detectable: boundaries irregular (best period {best['limit']} covers "
                            f"{best['coverage']:.0%} of its lattice with {best['strays']} strays)")
    first = Estimate(best["first_batch"], "lattice offset: events before the first boundary on the lattice",
                     {"limit": best["limit"]})
    return Estimate(best["limit"], method, evidence), first
