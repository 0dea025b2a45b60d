"""Overload seen from the backlog, not only from loss.

The backlog (delivered events sent and not yet called back) of an overloaded path grows at r - mu
from the first moment; a loss needs C / (r - mu) seconds more, minutes for a large buffer and a
slow callback. So a trial is judged by the slope of its backlog over the sending period: the
time-weighted mean backlog of each of `windows` equal windows (the first `warmup` are dropped: every
trial starts empty and climbs to its working level), a least-squares line through them, and a
Student t interval for its slope.

Verdicts for a trial at offered rate r, given `margin` (an overload too small to matter: a fraction
of a resolution step, in events/s):
- "overloaded": the slope's lower bound is above `margin` (the backlog grows, significantly, by more
  than resolution can tell apart);
- "sustained": its upper bound is below `margin` (whatever growth there is, it is below resolution);
- "undecided": neither; a longer trial narrows the interval.
Near saturation a stable queue takes a while to climb to its working level, and a short trial can
mistake that climb for overload. An overloaded queue grows as fast in the second half of the trial
as in the whole; a climbing one slows down. `weak` marks an overload that the second half alone
does not show, which the search checks again with a longer trial.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import stdtrit  # Student t quantile (scipy.stats costs a second more to import)

from harness.analysis.backlog import backlog_over_time


@dataclass(frozen=True)
class Trend:
    slope_per_s: float | None    # backlog growth, events/s
    low_per_s: float | None      # confidence interval of the slope
    high_per_s: float | None
    windows: int
    mean_backlog: float | None
    verdict: str                 # overloaded | sustained | undecided
    weak: bool = False           # overloaded, but not in the second half of the windows alone

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 1)  # noqa: E731
        return {"slope_per_s": r(self.slope_per_s), "slope_low_per_s": r(self.low_per_s),
                "slope_high_per_s": r(self.high_per_s), "slope_windows": self.windows,
                "mean_backlog": r(self.mean_backlog), "slope_verdict": self.verdict, "slope_weak": self.weak}


def window_means(t_ns: np.ndarray, level: np.ndarray, edges_ns: np.ndarray) -> np.ndarray:
    """Time-weighted mean of a right-continuous step function (t_ns, level) over each window."""
    t = np.asarray(t_ns, dtype=np.float64)
    v = np.asarray(level, dtype=np.float64)
    # area under the step function from t[0] up to each step time, then up to any point x
    area = np.concatenate(([0.0], np.cumsum(v[:-1] * np.diff(t))))

    def area_at(x: np.ndarray) -> np.ndarray:
        j = np.searchsorted(t, x, side="right") - 1
        inside = j >= 0
        jj = np.clip(j, 0, None)
        return np.where(inside, area[jj] + v[jj] * (x - t[jj]), 0.0)

    a = area_at(np.asarray(edges_ns, dtype=np.float64))
    return np.diff(a) / np.diff(edges_ns)


def backlog_trend(sent: pd.DataFrame, delivered: pd.DataFrame, margin_per_s: float, windows: int = 12,
                  warmup: int = 3, confidence: float = 0.99, backlog: pd.DataFrame | None = None) -> Trend:
    """`backlog`: backlog_over_time(sent, delivered), when the caller has it already."""
    t_send = sent["t_send_ns"].to_numpy(np.int64)
    backlog = backlog_over_time(sent, delivered) if backlog is None else backlog
    if len(t_send) < 2 * windows or backlog.empty:
        return Trend(None, None, None, 0, None, "undecided")
    start, end = int(t_send.min()), int(t_send.max())
    edges = np.linspace(start, end, windows + 1)
    means = window_means(backlog["t_ns"].to_numpy(), backlog["backlog"].to_numpy(), edges)[warmup:]
    centers = ((edges[1:] + edges[:-1]) / 2)[warmup:] / 1e9
    slope, low, high = _fit(centers, means, confidence)
    verdict = "overloaded" if low > margin_per_s else "sustained" if high < margin_per_s else "undecided"
    # a stable queue still climbing to its level grows ever slower; an overloaded one keeps growing
    late = len(means) // 2
    weak = verdict == "overloaded" and _fit(centers[late:], means[late:], confidence)[1] <= margin_per_s
    return Trend(slope, low, high, len(means), float(means.mean()), verdict, weak)


def _fit(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Least-squares slope and its Student t interval."""
    (slope, _), cov = np.polyfit(x, y, 1, cov=True)  # covariance scaled by the residuals' variance
    half = stdtrit(len(x) - 2, 0.5 + confidence / 2) * np.sqrt(cov[0, 0])
    return float(slope), float(slope - half), float(slope + half)
