"""Batch boundaries from callback timing alone, and the queue limit they reveal.

During a drain the callback runs back to back within a batch; between batches the dispatcher
needs a turnaround. A boundary is a gap between consecutive callback starts that stands out from
the per-event spacing (robust threshold: median + k * MAD, and at least 1.5 x the median).
The queue limit is the size that the full interior batches share. When no gap stands out, or
the interior batches disagree, the answer is "not detectable" with the reason, never a guess.
Pieces of one batch cut by a stray pause are rejoined when they add up to exactly the limit.
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


def merge_splits(sizes: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """A stray pause inside a batch (preemption, a page fault) looks like one more boundary and
    cuts the batch in pieces. Consecutive pieces that add up to exactly `limit` are put back
    together; anything else is left as it is. Returns the sizes and how many cuts were undone."""
    out: list[int] = []
    merged = 0
    i = 0
    while i < len(sizes):
        total, j = int(sizes[i]), i
        while total < limit and j + 1 < len(sizes) and total + int(sizes[j + 1]) <= limit:
            j += 1
            total += int(sizes[j])
        if total == limit and j > i:
            out.append(total)
            merged += j - i
            i = j + 1
        else:
            out.append(int(sizes[i]))
            i += 1
    return np.asarray(out, dtype=np.int64), merged


def estimate_queue_limit(callback_ns: np.ndarray, held: bool, min_interior: int = 3,
                         min_regularity: float = 0.9) -> tuple[Estimate, Estimate]:
    """(queue_limit, first_batch) from the callback start times of one drain, in delivery order."""
    method = "batch boundaries in callback timing (gaps above median + 8 MAD)"
    boundaries, stats = find_boundaries(callback_ns, held)
    n = len(callback_ns)
    sizes = np.diff(np.concatenate(([0], boundaries, [n]))).astype(np.int64)
    evidence = {"events": int(n), "boundaries": int(len(boundaries)), **stats}
    if len(boundaries) == 0:
        reason = "not detectable: no gap between callbacks stands out from the per-event spacing"
        return (Estimate.undetectable(method, reason, **evidence),
                Estimate.undetectable(method, reason, **evidence))
    interior = sizes[1:-1]
    if len(interior) < min_interior:
        reason = f"not detectable: only {len(interior)} full batches between boundaries (need {min_interior})"
        return (Estimate.undetectable(method, reason, **evidence),
                Estimate.undetectable(method, reason, **evidence))
    values, counts = np.unique(interior, return_counts=True)
    limit = int(values[np.argmax(counts)])
    interior, merged = merge_splits(interior, limit)
    values, counts = np.unique(interior, return_counts=True)
    regularity = float(counts[values == limit].sum() / len(interior))
    evidence.update({"interior_batches": int(len(interior)), "regularity": round(regularity, 4),
                     "merged_splits": merged,
                     "interior_sizes_seen": {int(v): int(c) for v, c in zip(values[:10], counts[:10])}})
    if regularity < min_regularity or sizes[-1] > limit:
        reason = (f"not detectable: batch sizes irregular (only {regularity:.0%} of interior batches share "
                  f"the size {limit})")
        return (Estimate.undetectable(method, reason, **evidence),
                Estimate.undetectable(method, reason, **evidence))
    queue_limit = Estimate(limit, method, evidence)
    first = int(sizes[0])
    first_evidence = {"first_segment": first}
    if held and first > limit:
        # a batch never exceeds the queue limit, so the first segment holds a boundary that the
        # hold gap hid: the first batch is what remains of it after one full batch
        first -= limit
        first_evidence["boundary_hidden_by_hold"] = True
    if first > limit:
        return queue_limit, Estimate.undetectable("size of the batch before the first boundary",
                                                  "not detectable: first segment larger than one batch",
                                                  **first_evidence)
    return queue_limit, Estimate(first, "size of the batch before the first boundary", first_evidence)
