"""Per-trial analysis of a sustained (constant-rate) trial, and the judgement of an NDR result:
whether the generator delivered the load, the rate the subscriber served (mu), the backlog's
slope, and the trial's verdict (sustained, overloaded, undecided, untrusted); then whether an
NDR can be relied on (`judge_ndr`) and where it should lie given the service rates measured
beside it (`ndr_expected_range`). Frames in, columns out: nothing here runs a trial."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from harness.analysis.loss import loss_by_sequence
from harness.analysis.service import delivery_order, rate_from_gaps, ready_backlog, service_mask
from harness.analysis.trend import backlog_trend
from harness.analysis.trust import trial_trust
from harness.platforms.base import TrialResult
from harness.results.records import Confirmation, NdrResult, TrialRow

WARMUP_SHARE = 0.25


def expected_share(result: TrialResult) -> float:
    """Share of the sent packets whose events the template lets through (1 without a template):
    rates are offered in packets, the backlog and mu count events."""
    sent = result.sent
    return float(sent["expected"].mean()) if "expected" in sent and len(sent) else 1.0

def offered_rate(events_per_s: float | None, row: TrialRow) -> float | None:
    """The offered packet rate whose events come at `events_per_s` (mu counts events; rates are
    offered in packets, of which a template lets only `expected_share` through)."""
    return events_per_s / (row.get("expected_share") or 1.0) if events_per_s else None

def service_gaps(result: TrialResult, ready: int) -> np.ndarray:
    """The gaps between callbacks that were service (analysis/service.py) after the warm-up: like
    the backlog trend, the first quarter is skipped (a queue starting empty serves in small batches)."""
    t_cb, t_send = delivery_order(result.sent, result.delivered)
    sent_at = result.sent["t_send_ns"].to_numpy()
    settled = int(sent_at.min() + WARMUP_SHARE * (sent_at.max() - sent_at.min())) if len(sent_at) else None
    return np.diff(t_cb)[service_mask(t_cb, t_send, ready, after_ns=settled)]


def analyse_sustained(result: TrialResult, capacity: int | None, margin_share: float,
                      loss_tolerance: float = 0.0, backlog: pd.DataFrame | None = None) -> TrialRow:
    """Columns for a sustained trial's row: trust, served rate, backlog slope and the verdict.
    `margin_share` x the offered event rate is the slope that counts
    as overload (half a resolution step). The verdict, in order of evidence:
    untrusted (the generator missed its load); overloaded by loss; overloaded or sustained by the
    backlog slope; overloaded because the subscriber, backlogged, served surely less than was
    offered (a buffer that filled at once leaves no slope to see); else undecided."""
    share = expected_share(result)
    offered = result.spec.traffic.rate_per_s
    achieved = (result.generator or {}).get("achieved_rate_per_s") or offered
    events_per_s = min(offered, achieved) * share
    margin = margin_share * offered * share
    service = rate_from_gaps(service_gaps(result, ready_backlog(result.telemetry)))
    trend = backlog_trend(result.sent, result.delivered, margin, backlog=backlog)
    loss = loss_by_sequence(result.sent, result.delivered)
    underserved = service.high_per_s is not None and service.high_per_s < events_per_s - margin
    # a sender lag of L packets puts L x share events into the buffer at once
    trust = trial_trust(result.generator, int(capacity / share) if capacity and share else capacity, loss.lost,
                        overload_seen=underserved or trend.verdict == "overloaded")
    if not trust["trusted"]:
        verdict, evidence = "untrusted", trust["untrusted_reason"]
    elif loss.lost and loss.ratio > loss_tolerance:
        verdict, evidence = "overloaded", f"lost {loss.lost} events"
    elif trend.verdict != "undecided":
        verdict, evidence = trend.verdict, "backlog slope"
    elif underserved:
        verdict, evidence = "overloaded", f"served {service.mu_per_s:.0f}/s < offered {events_per_s:.0f} events/s"
    else:
        verdict, evidence = "undecided", "backlog slope"
    cost = result.spec.subscriber.cost_us
    columns = {**trust, **service.to_dict(), **trend.to_dict(), "slope_margin_per_s": round(margin, 1),
               "expected_share": round(share, 6), "verdict": verdict, "verdict_by": evidence,
               "overhead_us": None if not service.measured else round(service.overhead_us(cost), 3)}
    return columns

def ndr_expected_range(row: NdrResult) -> tuple[float, float] | None:
    """Where an NDR should lie, given the service rates measured beside it: mu of the search's
    trials and what every confirmation trial served (a shared machine serves faster or slower from
    one trial to the next, so all are evidence). Not above the highest of them by more than one
    search step (resolution x NDR) plus what the buffer absorbs in the confirmation (capacity / its
    length: a loss-free trial of T seconds proves no more); not below the lowest by more than two
    steps plus those the failed confirmations stepped down (1, 2, 4, ...). None without a
    measured mu or NDR."""
    mu, ndr = row.mu_per_s, row.rate_per_s
    if not mu or not ndr:
        return None
    conf = row.confirmation or Confirmation()
    lows = [row.mu_low_per_s or mu, conf.served_low_per_s or conf.mu_low_per_s]
    highs = [row.mu_high_per_s or mu, conf.served_high_per_s or conf.mu_high_per_s]
    step = (row.resolution or 0) * ndr
    failures = conf.failures if conf.failures is not None else int(bool(conf.failed_at_per_s))
    steps_down = 1 + 2 ** failures  # 2, then the confirmation's own step-downs (1, 2, 4, ... steps)
    absorbed = conf.confirmed_resolution_per_s or 0
    return (min(v for v in lows if v) - steps_down * step, max(v for v in highs if v) + step + absorbed)


def judge_ndr(row: NdrResult, max_spread: float) -> NdrResult:
    """Can this NDR be relied on? Its spread is how much the service rate behind it varied: the
    half-width of mu's confidence interval or mu's variation between trials, whichever is wider
    (the bracket, `resolution_per_s`, is reported beside it). Conclusive only when the NDR was
    confirmed by loss, that spread is within `max_spread`, and no interference was seen in the
    trials it rests on. Returns the row with its status, reasons and spread set."""
    ndr, mu = row.rate_per_s, row.mu_per_s
    parts = {"mu_interval": ((row.mu_high_per_s or mu) - (row.mu_low_per_s or mu)) / 2 / mu if mu else None,
             "mu_between_trials": row.mu_between_trials_cv}
    spread = max((v for v in parts.values() if v is not None), default=None)
    reasons = []
    if row.generator_limited:
        status = "generator-limited"
        reasons.append(f"the generator reached only {row.generator_limit_per_s}/s")
    elif not ndr or not row.confirmed:
        status = "inconclusive"
        reason = row.confirmation.reason if row.confirmation else None
        reasons.append(("not confirmed by loss: " + reason) if reason else "no sustained rate found")
    else:
        status = "conclusive"
        if spread is not None and spread > max_spread:
            reasons.append(f"mu varied {spread:.1%} (more than {max_spread:.1%})")
        if row.interference:
            reasons.append("interference: " + "; ".join(row.interference))
        if reasons:
            status = "inconclusive"
    return replace(row, status=status, status_reasons=reasons, spread=round(spread, 4) if spread is not None else None,
                   spread_parts={k: (round(v, 4) if v is not None else None) for k, v in parts.items()})
