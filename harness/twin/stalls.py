"""The subscriber's stalls, from what the service-rate analysis counted (analysis/service.py), as
the model's stall mechanism takes them: a Poisson rate per second of service and a mean length.

The analysis counts a stall where a service gap is at least a threshold (1 ms, and 5 typical
gaps) and sums each one's excess over the median gap. The model draws stall lengths from an
exponential, which is memoryless: the stalls the threshold lets through are on average the
threshold (less the median gap: a stall adds to a service) plus the mean, and they are the share
exp(-that / mean) of all. Inverting both gives the rate and the mean of every stall, seen or not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from harness.analysis.service import STALL_FACTOR, STALL_MIN_NS
from harness.results.records import TrialRow


@dataclass(frozen=True)
class Stalls:
    rate_per_s: float   # stalls per second of service (the thread's own work)
    mean_us: float      # their mean length
    seen: int           # stalls the analysis counted
    served_s: float     # the service time they were counted in

    @property
    def share(self) -> float:
        """The long-run share of busy time spent stalled: rate x mean / (1 + rate x mean)."""
        x = self.rate_per_s * self.mean_us / 1e6
        return x / (1 + x)


NONE = Stalls(0.0, 0.0, 0, 0.0)


def of_row(row: TrialRow) -> Stalls | None:
    """A trial's stalls from its row (None where it measured no service rate)."""
    seen, served, share, median_us = (row.get(k) for k in ("mu_stalls", "mu_served_s", "mu_stall_share", "mu_median_gap_us"))
    if seen is None or not served or share is None or median_us is None:
        return None
    seen, served, share, median_us = int(seen), float(served), float(share), float(median_us)
    if seen == 0:
        return Stalls(0.0, 0.0, 0, served)
    cut_us = max(STALL_MIN_NS / 1e3, STALL_FACTOR * median_us) - median_us  # the shortest stall counted
    excess_us = share * served * 1e6 / seen  # mean excess of those counted
    mean_us = max(excess_us - cut_us, excess_us / 2)  # memoryless; never below half what was seen
    total = seen * math.exp(cut_us / mean_us)
    own = served * 1e6 - total * mean_us  # service time without the stalls (us)
    if own <= 0:
        own = served * 1e6 * (1 - share)
    return Stalls(total / own * 1e6, mean_us, seen, served)


def pooled(rows: list[TrialRow]) -> Stalls:
    """Every trial's stalls together: the rate over all their service time, the mean over all stalls."""
    each = [s for s in map(of_row, rows) if s is not None]
    total = sum(s.rate_per_s * s.served_s * (1 - s.share) for s in each)
    if total <= 0:
        return Stalls(0.0, 0.0, sum(s.seen for s in each), sum(s.served_s for s in each))
    own_s = sum(s.served_s * (1 - s.share) for s in each)
    mean_us = sum(s.rate_per_s * s.served_s * (1 - s.share) * s.mean_us for s in each) / total
    return Stalls(total / own_s, mean_us, sum(s.seen for s in each), sum(s.served_s for s in each))
