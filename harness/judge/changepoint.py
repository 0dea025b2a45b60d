"""Step changes in one estimate's series over runs, found the way asv finds them.

The series is taken as piecewise constant plus noise. For each number of segments k the best
fit is found exactly (dynamic programming over weighted L1 costs, the segment value being the
weighted median: one wild run does not make a step), and k is chosen by a Schwarz-type
information criterion, ln(noise floor + mean cost) + beta * (k - 1) * ln(n) / n, as in asv's
step_detect (Friedrich et al. 2008, Yao 1988). A run's weight is the inverse of its own measured
spread. Two rules keep noise from being called a step:
- every segment spans at least `min_runs` runs (one odd run is an outlier, not a new level);
- a step smaller than the measured spread of the runs on either side is dropped.
There is no fixed percentage anywhere: the threshold comes from the series' own noise.
Cost: O(n^2) segment fits, so a history of a few hundred runs takes seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

BETA = 3.5  # penalty per step; noise-only series of 10 runs give no step (tests/test_history.py)


@dataclass(frozen=True)
class Step:
    index: int      # position in the series of the first run after the step
    before: float   # level before (weighted median of the segment)
    after: float    # level after

    @property
    def relative(self) -> float:
        return (self.after - self.before) / self.before if self.before else float("inf")


def _weighted_median(y: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(y, kind="stable")
    cum = np.cumsum(w[order])
    return float(y[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _segment_costs(y: np.ndarray, w: np.ndarray, min_runs: int) -> tuple[np.ndarray, np.ndarray]:
    """cost[i, j] and level[i, j] of one segment y[i:j] (inf where shorter than min_runs)."""
    n = len(y)
    cost = np.full((n + 1, n + 1), np.inf)
    level = np.zeros((n + 1, n + 1))
    for i in range(n):
        for j in range(i + min_runs, n + 1):
            m = _weighted_median(y[i:j], w[i:j])
            level[i, j] = m
            cost[i, j] = float(np.sum(w[i:j] * np.abs(y[i:j] - m)))
    return cost, level


def _best_fits(cost: np.ndarray, kmax: int) -> list[tuple[float, list[int]]]:
    """For k = 1..kmax segments: (total cost, right ends of the segments)."""
    n = cost.shape[0] - 1
    best = np.full((kmax + 1, n + 1), np.inf)
    back = np.zeros((kmax + 1, n + 1), dtype=int)
    best[0, 0] = 0.0
    for k in range(1, kmax + 1):
        for j in range(1, n + 1):
            totals = best[k - 1, :j] + cost[:j, j]
            i = int(np.argmin(totals))
            best[k, j], back[k, j] = totals[i], i
    fits = []
    for k in range(1, kmax + 1):
        if not np.isfinite(best[k, n]):
            break
        ends, j = [], n
        for kk in range(k, 0, -1):
            ends.append(j)
            j = back[kk, j]
        fits.append((float(best[k, n]), ends[::-1]))
    return fits


def _steps(ends: list[int], level: np.ndarray) -> list[Step]:
    starts = [0] + ends[:-1]
    levels = [level[s, e] for s, e in zip(starts, ends)]
    return [Step(int(starts[r]), float(levels[r - 1]), float(levels[r])) for r in range(1, len(ends))]


def detect_steps(values: Sequence[float], spreads: Sequence[float] | None = None, *,
                 min_runs: int = 2, beta: float = BETA) -> list[Step]:
    """Steps in `values` (one per run, oldest first). `spreads`: each run's own half-width of
    measured spread (0 or missing: unknown)."""
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n < 2 * min_runs:
        return []
    half = np.asarray(spreads if spreads is not None else np.zeros(n), dtype=float)
    half = np.where(np.isfinite(half) & (half > 0), half, 0.0)
    known = half[half > 0]
    floor_spread = float(np.median(known)) if len(known) else 0.0
    # weights: inverse measured spread, unknown spreads at the median (asv does the same)
    w = 1.0 / np.where(half > 0, half, floor_spread or 1.0)
    w = w / np.median(w)
    noise_floor = max(0.1 * floor_spread, 1e-3 * float(np.median(np.abs(y))), 1e-12)
    cost, level = _segment_costs(y, w, min_runs)
    fits = _best_fits(cost, max(1, min(n // min_runs, 12)))
    scores = [np.log(noise_floor + total / w.sum()) + beta * k * np.log(n) / n for k, (total, _) in enumerate(fits)]
    ends = fits[int(np.argmin(scores))][1]
    # a step inside the measured spread of the runs around it is not a step: merge the smallest first
    while len(ends) > 1:
        steps = _steps(ends, level)
        starts = [0] + ends[:-1]
        margins = []
        for r, step in enumerate(steps, start=1):
            around = np.concatenate([half[starts[r - 1]:ends[r - 1]], half[starts[r]:ends[r]]])
            margins.append(abs(step.after - step.before) - float(np.median(around)) * 2)
        weakest = int(np.argmin(margins))
        if margins[weakest] > 0:
            return steps
        del ends[weakest]
    return []
