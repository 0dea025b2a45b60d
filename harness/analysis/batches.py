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

from harness.results.records import Estimate

MAD_TO_SIGMA = 1.4826


def natural_break(candidates: np.ndarray, threshold: float, min_ratio: float = 3.0, min_upper: int = 4) -> float:
    """When the gaps above the threshold fall in two clusters far apart (say 20 us hiccups of the
    subscriber's own runtime and 400 us batch turnarounds), keep only the upper one. The split is
    the largest jump between sorted gaps, taken only if it is at least `min_ratio` and leaves at
    least `min_upper` gaps above it."""
    if len(candidates) <= min_upper:
        return threshold
    g = np.sort(candidates)
    ratios = g[1:] / g[:-1]
    allowed = np.arange(len(ratios)) < len(g) - min_upper  # enough gaps stay above the split
    ratios = np.where(allowed, ratios, 0)
    k = int(np.argmax(ratios))
    if ratios[k] < min_ratio:
        return threshold
    return float(np.sqrt(g[k] * g[k + 1]))


def find_boundaries(callback_ns: np.ndarray, held: bool, k_mad: float = 8.0,
                    split: bool = True) -> tuple[np.ndarray, dict]:
    """Indices (into delivery order) of the first event of each batch after the first one
    (`split`: only the upper cluster of the gaps that stand out, see natural_break)."""
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
    if split:
        threshold = natural_break(gaps[gaps > threshold], threshold)
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


def finer_lattice(boundaries: np.ndarray, fit: dict, events: int, min_hits: int = 4,
                  min_lift: float = 5.0) -> dict | None:
    """A divisor d of the fitted period whose own lattice points *between* the fitted ones are
    boundaries far more often than chance: then the fitted period is a multiple of the real one,
    seen where only every k-th turnaround stood out (a busy machine stretches some turnarounds
    past the others). None: no such divisor."""
    limit = fit["limit"]
    residue = fit["first_batch"] % limit
    lo, hi = int(boundaries.min()), int(boundaries.max())
    density = len(boundaries) / max(1, events)
    rows = []
    for d in range(2, limit // 2 + 1):
        if limit % d:
            continue
        points = np.arange(lo + (residue - lo) % d, hi + 1, d)
        between = points[points % limit != residue]
        hits = int(np.isin(between, boundaries).sum())
        if len(between) == 0 or hits < min_hits or hits / len(between) < min_lift * density:
            continue
        row = {"period": d, "hits_between": hits, "points_between": int(len(between)),
               "coverage_between": round(hits / len(between), 4), "chance_coverage": round(density, 4)}
        rows.append(row)
    if not rows:
        return None
    # multiples of the real period cover their in-between points as well as it does: take the
    # finest divisor that comes near the best coverage (far finer ones cover only a share)
    top = max(r["coverage_between"] for r in rows)
    return next(r for r in rows if r["coverage_between"] >= 0.5 * top)


def candidate_periods(boundaries: np.ndarray, reach: int = 8, count: int = 8) -> np.ndarray:
    """The most common distances between a boundary and each of the next `reach` ones: a stray
    between two true boundaries hides their distance from the consecutive spacings, not from these."""
    diffs = np.concatenate([boundaries[m:] - boundaries[:-m] for m in range(1, min(reach, len(boundaries) - 1) + 1)])
    diffs = diffs[diffs >= 2]
    if len(diffs) == 0:
        return diffs
    values, counts = np.unique(diffs, return_counts=True)
    return values[np.argsort(-counts, kind="stable")[:count]]


def estimate_queue_limit(callback_ns: np.ndarray, held: bool, min_batches: int = 4,
                         min_coverage: float = 0.9, min_lift: float = 5.0) -> tuple[Estimate, Estimate]:
    """(queue_limit, first_batch) from the callback start times of one drain, in delivery order.

    Candidate limits are the most common distances between nearby boundaries (among all of them,
    and among the largest gaps only); the one whose lattice covers the boundaries best wins.
    Strays may be many (a busy runtime pauses often), but they fall anywhere, so they hit a given
    lattice point only with the probability `density` (boundaries per event); a lattice counts
    only if its coverage is far above that chance.
    Not detectable: no boundaries, fewer than `min_batches` on the lattice, coverage under
    `min_coverage`, or coverage not at least `min_lift` times the chance level."""
    method = "batch boundaries in callback timing (gaps above median + 8 MAD) on a regular lattice"
    boundaries, stats = find_boundaries(callback_ns, held)
    evidence = {"events": int(len(callback_ns)), "boundaries": int(len(boundaries)), **stats}

    def undetectable(reason: str) -> tuple[Estimate, Estimate]:
        return (Estimate.undetectable(method, reason, **evidence), Estimate.undetectable(method, reason, **evidence))

    if len(boundaries) == 0:
        return undetectable("not detectable: no gap between callbacks stands out from the per-event spacing")
    if len(boundaries) < min_batches:
        return undetectable(f"not detectable: only {len(boundaries)} batch boundaries (need {min_batches})")
    # Turnarounds are usually the largest gaps, so look at the largest half, quarter, ... of the
    # boundaries too: there the strays thin out while the lattice stays whole.
    gaps = np.asarray(callback_ns, dtype=np.int64)[boundaries] - np.asarray(callback_ns, dtype=np.int64)[boundaries - 1]
    fits = []
    for keep in (1.0, 0.5, 0.25, 0.125):
        subset = boundaries[gaps >= np.quantile(gaps, 1 - keep)] if keep < 1 else boundaries
        if len(subset) < min_batches:
            break
        density = len(subset) / max(1, len(callback_ns))
        for q in candidate_periods(subset):
            fit = lattice_fit(subset, int(q))
            fit.update({"largest_gaps_share": keep, "chance_coverage": round(density, 4)})
            fit["lift"] = fit["coverage"] / density if density else 0.0
            fits.append(fit)
    if not fits:
        return undetectable(f"not detectable: no regular spacing among {len(boundaries)} boundaries")

    def acceptable(f: dict) -> bool:
        return f["on_lattice"] >= min_batches and f["coverage"] >= min_coverage and f["lift"] >= min_lift

    ok = [f for f in fits if acceptable(f)]
    best = max(ok or fits, key=lambda f: (f["on_lattice"] * f["coverage"], f["lift"]))
    evidence.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in best.items() if k != "first_batch"})
    evidence["candidates"] = sorted({f["limit"] for f in fits})[:12]
    if not ok:
        return undetectable(f"not detectable: boundaries irregular (best period {best['limit']} covers "
                            f"{best['coverage']:.0%} of its lattice, chance alone {best['chance_coverage']:.0%}, "
                            f"{best['strays']} strays)")
    # every boundary that stands out at all, hiccups included: a coarse fit must not hide a finer one
    fine, _ = find_boundaries(callback_ns, held, split=False)
    finer = finer_lattice(fine, best, len(callback_ns)) if len(fine) else None
    if finer is not None:
        evidence["finer_lattice"] = finer
        return undetectable(f"not detectable: period {best['limit']} fits, but {finer['hits_between']} of "
                            f"{finer['points_between']} points of period {finer['period']} between its boundaries "
                            f"are boundaries too (chance {finer['chance_coverage']:.1%}): turnarounds missed")
    first = Estimate(best["first_batch"], "lattice offset: events before the first boundary on the lattice",
                     {"limit": best["limit"]})
    return Estimate(best["limit"], method, evidence), first
