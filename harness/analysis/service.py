"""The served rate mu: events per second the subscriber actually handled while it had work waiting.

Seen from both ends of the queue, the gap between two callback starts is service time (the
callback, the platform's own per-event cost, a batch turnaround) only when the next event was
already there to be served; otherwise it is idle time spent waiting for traffic. A gap counts as
service when, at the start of the earlier callback, at least `ready_backlog` delivered events were
sent and not yet called back: 1 where the dispatcher hands over whatever waits (WFP, the model), the
queue threshold where the kernel holds events until a batch is full (nflog), so that neither a flush
timer nor a half-filled batch is counted as service.

mu = service gaps / their total time. Its spread comes from consecutive chunks of the service gaps
(a Student t interval over chunk rates), and a stall is a service gap far longer than the typical
one (the subscriber was backlogged and not running: preempted, or paused by its runtime).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import stdtrit  # Student t quantile (scipy.stats costs a second more to import)

from harness.analysis.matching import send_times
from harness.results.records import TrialRow

STALL_MIN_NS = 1_000_000   # a stall is at least 1 ms ...
STALL_FACTOR = 5.0         # ... and at least 5 typical service gaps


@dataclass(frozen=True)
class ServiceRate:
    gaps: int                  # service gaps used
    served_s: float            # their total time
    mu_per_s: float | None     # events served per second of service
    low_per_s: float | None    # confidence interval of mu (chunk rates, Student t)
    high_per_s: float | None
    cv: float | None           # coefficient of variation of the chunk rates
    median_gap_us: float | None
    stall_share: float         # share of service time spent in stalls
    stalls: int

    @property
    def measured(self) -> bool:
        return self.mu_per_s is not None

    def overhead_us(self, cost_us: float) -> float | None:
        """Per-event time beyond the callback's own work: 1/mu - cost."""
        return None if not self.mu_per_s else 1e6 / self.mu_per_s - cost_us

    def to_dict(self, prefix: str = "mu_") -> TrialRow:
        r = lambda v, d=1: None if v is None else round(float(v), d)  # noqa: E731
        return {f"{prefix}per_s": r(self.mu_per_s), f"{prefix}low_per_s": r(self.low_per_s),
                f"{prefix}high_per_s": r(self.high_per_s), f"{prefix}cv": r(self.cv, 4),
                f"{prefix}gaps": self.gaps, f"{prefix}served_s": round(self.served_s, 9),
                f"{prefix}median_gap_us": r(self.median_gap_us, 2),
                f"{prefix}stall_share": round(self.stall_share, 4), f"{prefix}stalls": self.stalls}


def ready_backlog(telemetry: dict[str, Any]) -> int:
    """Events a kernel batch waits for before it is delivered: nflog's queue threshold (`qthresh` in
    its trial telemetry); 1 where the dispatcher hands over whatever waits (WFP, the model)."""
    return int(telemetry.get("qthresh") or 1)


def delivery_order(sent: pd.DataFrame, delivered: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(callback start, send time) of every delivered event that was sent, in callback order."""
    hit, t_send = send_times(sent, delivered)
    t_callback = delivered["t_callback_ns"].to_numpy(np.int64)[hit]
    order = np.argsort(t_callback, kind="stable")
    return t_callback[order], t_send[order].astype(np.int64)


def service_mask(t_callback: np.ndarray, t_send: np.ndarray, ready_backlog: int = 1,
                 after_ns: int | None = None) -> np.ndarray:
    """For each gap t_callback[k] - t_callback[k-1]: was it service? (see the module text)"""
    n = len(t_callback)
    if n < 2:
        return np.zeros(0, dtype=bool)
    sent_by = np.searchsorted(np.sort(t_send), t_callback[:-1], side="right")
    waiting = sent_by - np.arange(1, n)  # sent and not yet called back, right after callback k-1 began
    mask = waiting >= max(1, ready_backlog)
    if after_ns is not None:
        mask &= t_callback[:-1] >= after_ns  # e.g. not across a held first callback
    return mask


def served_rate(sent: pd.DataFrame, delivered: pd.DataFrame, ready_backlog: int = 1, after_ns: int | None = None,
                chunks: int = 10, confidence: float = 0.95) -> ServiceRate:
    t_cb, t_send = delivery_order(sent, delivered)
    mask = service_mask(t_cb, t_send, ready_backlog, after_ns)
    return rate_from_gaps(np.diff(t_cb)[mask], chunks, confidence)


def rate_from_gaps(gaps_ns: np.ndarray, chunks: int = 10, confidence: float = 0.95) -> ServiceRate:
    gaps = np.asarray(gaps_ns, dtype=np.float64)
    if len(gaps) < 2 or gaps.sum() <= 0:
        return ServiceRate(len(gaps), float(gaps.sum()) / 1e9, None, None, None, None, None, 0.0, 0)
    total = float(gaps.sum())
    mu = len(gaps) / total * 1e9
    median = float(np.median(gaps))
    stall = gaps >= max(STALL_MIN_NS, STALL_FACTOR * median)
    stall_time = float((gaps[stall] - median).sum())
    low = high = cv = None
    k = min(chunks, len(gaps) // 20)  # at least 20 gaps per chunk
    if k >= 3:
        parts = np.array_split(gaps, k)
        rates = np.array([len(p) / p.sum() * 1e9 for p in parts])
        half = stdtrit(k - 1, 0.5 + confidence / 2) * rates.std(ddof=1) / np.sqrt(k)
        low, high = max(0.0, mu - half), mu + half
        cv = float(rates.std(ddof=1) / rates.mean())
    return ServiceRate(len(gaps), total / 1e9, mu, low, high, cv, median / 1e3, stall_time / total, int(stall.sum()))


def pooled_rows(rows: list[TrialRow]) -> ServiceRate | None:
    """mu over several trials, from their recorded columns alone (so that a resumed run, which has
    the rows and not the gaps, gets the same): all their service time together; the interval is
    the service-time weighted mean of theirs."""
    used = [r for r in rows if r.get("mu_per_s") and r.get("mu_gaps") and r.get("mu_served_s")]
    if not used:
        return None
    served = np.array([r["mu_served_s"] for r in used], dtype=float)
    gaps = int(sum(r["mu_gaps"] for r in used))
    w = served / served.sum()

    def mean(key: str) -> float | None:
        values = [r.get(key) for r in used]
        return None if any(v is None or v != v for v in values) else float(np.dot(w, values))

    return ServiceRate(gaps, float(served.sum()), gaps / float(served.sum()), mean("mu_low_per_s"),
                       mean("mu_high_per_s"), mean("mu_cv"), mean("mu_median_gap_us"), mean("mu_stall_share") or 0.0,
                       int(sum(r.get("mu_stalls") or 0 for r in used)))
