"""Sustained load: for a callback cost, the highest constant rate the path carries without loss (NDR).

This path is seen from both ends, so overload shows as a growing backlog (sent minus called back)
long before a buffer of C events overflows, which takes C / (r - mu) seconds. `search_ndr`:
1. brackets NDR with short trials judged by their backlog slope (analysis/trend.py): a trial is
   overloaded when its backlog grows by more than half a resolution step per second, with
   confidence; sustained when it surely grows less; an undecided trial is run again, twice as long.
   The first overloaded trial also measures mu (analysis/service.py), and the next probes go right
   beside it;
2. confirms the result with one loss trial long enough that an overload of one resolution step
   would overflow the burst capacity (C / step seconds); a loss there steps the result down to what
   that saturated trial served and confirms again; if the machine interfered during that trial, the
   search stops there, not confirmed (a rate that lost is never the NDR);
3. reports mu and the per-event overhead 1/mu - cost with their spread, the slope evidence on
   both sides of NDR, the confirmation, the interference seen, and every trial it refused.
A trial whose generator missed its load is evidence of nothing (analysis/trust.py): it is run
again; if the generator cannot reach the rate at all, the ceiling comes down to what it achieved,
and a result at that ceiling says "generator-limited".

`search_ndr_by_loss` is the loss-only search (RFC 2544, TRex ndr_bench stop rules), kept for PDR
(a loss tolerance) and as the reference the trend search is tested against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from harness.analysis.backlog import backlog_over_time, downsample_max
from harness.analysis.loss import loss_by_sequence
from harness.analysis.service import (ServiceRate, delivery_order, pooled_rows, rate_from_gaps, ready_backlog,
                                      service_mask)
from harness.analysis.trend import backlog_trend
from harness.analysis.trust import generator_short, trial_trust
from harness.experiments.trial import run_recorded
from harness.interference import flags, worst
from harness.platforms.base import Platform, TrialResult
from harness.report.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "sustained"
WARMUP_SHARE = 0.25
SLOPE_HELD = 0.75  # a growth that keeps this share of its slope in a trial twice as long is no climb


@dataclass(frozen=True)
class NdrConfig:
    loss_tolerance: float = 0.0     # 0: NDR; e.g. 0.001: PDR at 0.1 % (loss-only search)
    resolution: float = 0.02        # trend search: stop when high - low <= resolution * low;
                                    # loss search: <= resolution * max_rate (ndr_bench pdr_error)
    max_iterations: int = 12
    trial_s: float = 0.25           # trend search: first length of a trial, at least ...
    trial_events: int = 2500        # ... this many events (a queue near saturation needs a while) ...
    max_trial_s: float = 16.0       # ... doubled while undecided, up to this
    max_confirm_s: float = 600.0    # the loss trial that confirms the result
    attempts: int = 3               # runs of a trial whose generator missed its load
    max_spread: float = 0.025       # conclusive only if mu varied less (relative): two runs then agree within 5 %
    max_trials: int = 40            # trend search: all trials, repeats and extensions included
    quiet_s: float | None = None    # drain wait after a sustained trial (None: the base spec's)
    min_duration_s: float = 0.5     # loss search: trial length bounds
    max_duration_s: float = 600.0
    max_rate_per_s: float | None = None  # default: twice the callback's own rate 1/cost
    confirm_factor: float = 3.0     # loss search: RFC 2544 section 24, confirm with a longer trial
    max_confirmations: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.loss_tolerance < 1 or not 0 < self.resolution < 1 or self.max_iterations < 1:
            raise ValueError("ndr: loss_tolerance in [0,1), resolution in (0,1), max_iterations >= 1")
        if not 0 < self.trial_s <= self.max_trial_s or self.attempts < 1:
            raise ValueError("ndr: 0 < trial_s <= max_trial_s, attempts >= 1")


def sustained_spec(base: TrialSpec, cost_us: float, rate: float, duration_s: float, mode: str = "inline",
                   quiet_s: float | None = None) -> TrialSpec:
    count = max(1, int(round(rate * duration_s)))
    spec = replace(base, traffic=replace(base.traffic, pacing="constant", rate_per_s=rate, count=count),
                   subscriber=replace(base.subscriber, cost_us=cost_us, hold=False, mode=mode),
                   label=f"{cost_us:g}us@{rate:.0f}/s")
    if quiet_s is not None:
        spec = replace(spec, drain_quiet_s=quiet_s, drain_timeout_s=max(spec.drain_timeout_s, quiet_s))
    return spec


def default_max_rate(cost_us: float, generator_max: float) -> float:
    return generator_max if cost_us <= 0 else min(generator_max, 2e6 / cost_us)


@dataclass
class Judged:
    """A sustained trial, analysed. trials.csv keeps each trial's own verdict; the row here may
    carry the search's decision about it (a point estimate at the longest trial, a slope that held
    up in a trial twice as long). Everything the search reads is in the row, so that a resumed run,
    which replays stored rows, decides the same."""

    row: dict[str, Any]

    @property
    def verdict(self) -> str:
        return self.row["verdict"]


def trace_name(trial: int) -> str:
    """The stored backlog-over-time frame of a sustained trial (events/backlog-NNNN.csv.gz)."""
    return f"backlog-{int(trial):04d}"


def expected_share(result: TrialResult) -> float:
    """Share of the sent packets whose events the template lets through (1 without a template):
    rates are offered in packets, the backlog and mu count events."""
    sent = result.sent
    return float(sent["expected"].mean()) if "expected" in sent and len(sent) else 1.0


def offered_rate(events_per_s: float | None, row: dict[str, Any]) -> float | None:
    """The offered packet rate whose events come at `events_per_s` (mu counts events; rates are
    offered in packets, of which a template lets only `expected_share` through)."""
    return events_per_s / (row.get("expected_share") or 1.0) if events_per_s else None


def analyse_sustained(result: TrialResult, capacity: int | None, margin_share: float,
                      loss_tolerance: float = 0.0, backlog: pd.DataFrame | None = None) -> dict[str, Any]:
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
    t_cb, t_send = delivery_order(result.sent, result.delivered)
    sent_at = result.sent["t_send_ns"].to_numpy()
    # like the backlog trend, skip the first quarter: a queue starting empty serves in small batches
    settled = int(sent_at.min() + WARMUP_SHARE * (sent_at.max() - sent_at.min())) if len(sent_at) else None
    gaps = np.diff(t_cb)[service_mask(t_cb, t_send, ready_backlog(result.telemetry), after_ns=settled)]
    service = rate_from_gaps(gaps)
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


class _Search:
    """The trials of one NDR search and what they showed."""

    def __init__(self, platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float,
                 capacity: int | None, config: NdrConfig, experiment: str, tags: dict[str, Any]) -> None:
        self.platform, self.base, self.store, self.cost_us = platform, base, store, cost_us
        self.capacity, self.config, self.experiment, self.tags = capacity, config, experiment, tags
        self.judged: list[Judged] = []
        self.untrusted: list[int] = []
        self.notes: list[str] = []

    @property
    def share(self) -> float:
        """Share of the offered packets that become events (a template filters the rest)."""
        return (self.judged[-1].row.get("expected_share") if self.judged else None) or 1.0

    def trial(self, rate: float, duration_s: float, **tags: Any) -> Judged:
        spec = sustained_spec(self.base, self.cost_us, rate, duration_s, quiet_s=self.config.quiet_s)
        box: dict[str, Any] = {}

        def analyse(result: TrialResult) -> dict[str, Any]:
            backlog = backlog_over_time(result.sent, result.delivered)
            columns = analyse_sustained(result, self.capacity, self.config.resolution / 2,
                                        self.config.loss_tolerance, backlog)
            box["trace"] = _trace(result, backlog)
            return columns

        _, row = run_recorded(self.platform, spec, self.store, self.experiment, derive=analyse,
                              search_cost_us=self.cost_us, **self.tags, **tags)
        if "trace" in box:  # a fresh trial (a replayed one stored its trace the first time)
            self.store.save_frame(trace_name(row["trial"]), box["trace"])
        judged = Judged(row)
        self.judged.append(judged)
        if not row["trusted"]:
            self.untrusted.append(int(row["trial"]))
        return judged

    def attempt(self, rate: float, duration_s: float, **tags: Any) -> Judged:
        """A trial the generator delivered, tried up to `attempts` times (the last one is returned
        even if untrusted; the caller must look)."""
        for _ in range(self.config.attempts):
            j = self.trial(rate, duration_s, **tags)
            if j.row["trusted"] or generator_short(_generator(j.row), rate):
                return j
        return j

    def judge(self, rate: float) -> Judged:
        """Run trend trials at `rate` until one decides (doubling the length while undecided)."""
        duration = max(self.config.trial_s, self.config.trial_events / (rate * self.share))
        previous: float | None = None  # slope of a weak overload in the trial half as long
        while True:
            j = self.attempt(rate, duration)
            weak = j.verdict == "overloaded" and j.row["verdict_by"] == "backlog slope" and j.row["slope_weak"]
            # a weak overload by slope may be a stable queue still climbing to its level, whose apparent
            # slope halves each time the trial doubles: look longer, unless it held up the last time
            if weak and previous is not None and j.row["slope_per_s"] >= SLOPE_HELD * previous:
                j.row["verdict_by"] = "backlog slope (held up in a trial twice as long)"
                break
            previous = j.row["slope_per_s"] if weak or j.verdict == "undecided" else None
            if not (weak or j.verdict == "undecided") or duration * 2 > max(
                    self.config.max_trial_s, self.config.trial_events / (rate * self.share)):
                break
            duration *= 2
        if j.verdict == "undecided":  # as long as allowed and still undecided: the point estimate decides
            j.row["verdict"] = "overloaded" if (j.row["slope_per_s"] or 0) > j.row["slope_margin_per_s"] else "sustained"
            j.row["verdict_by"] = "backlog slope (point estimate: undecided at the longest trial)"
            self.notes.append(f"{rate:.0f}/s undecided after {duration:g} s: judged by the slope's point estimate")
        return j


def _trace(result: TrialResult, backlog: pd.DataFrame) -> pd.DataFrame:
    """Backlog over time from the first send, in seconds, with the sending period marked."""
    t0 = int(result.sent["t_send_ns"].min())
    t, b = downsample_max(backlog["t_ns"].to_numpy(), backlog["backlog"].to_numpy())
    return pd.DataFrame({"t_s": (np.asarray(t) - t0) / 1e9, "backlog": b,
                         "send_end_s": (int(result.sent["t_send_ns"].max()) - t0) / 1e9})


def _generator(row: dict[str, Any]) -> dict[str, Any] | None:
    if "gen_achieved_rate_per_s" not in row:
        return None
    return {"achieved_rate_per_s": row["gen_achieved_rate_per_s"]}


def search_ndr(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float,
               capacity: int | None, generator_max: float, config: NdrConfig = NdrConfig(),
               experiment: str = EXPERIMENT, **tags: Any) -> dict[str, Any]:
    """NDR by backlog trend, confirmed by one loss trial (see the module text)."""
    if config.loss_tolerance > 0:
        return search_ndr_by_loss(platform, base, store, cost_us, capacity, generator_max, config, experiment, **tags)
    s = _Search(platform, base, store, cost_us, capacity, config, experiment, tags)
    rho = config.resolution
    ceiling = config.max_rate_per_s or default_max_rate(cost_us, generator_max)
    low, high = 0.0, None
    low_row: dict[str, Any] | None = None
    high_row: dict[str, Any] | None = None
    mu_hint: float | None = None
    generator_limit: float | None = None
    downs = ups = 0
    rate: float | None = ceiling
    probes = 0
    while rate is not None and probes < config.max_iterations:
        if len(s.judged) >= config.max_trials:
            s.notes.append(f"stopped after {len(s.judged)} trials (max_trials)")
            break
        probes += 1
        j = s.judge(rate)
        row = j.row
        if not row["trusted"]:
            achieved = row.get("gen_achieved_rate_per_s")
            if generator_short(_generator(row), rate) and achieved and achieved * 0.97 > low:
                generator_limit = ceiling = achieved * 0.97  # a rate this generator can hold
                s.notes.append(f"generator reached only {achieved:.0f}/s of {rate:.0f}/s: ceiling {ceiling:.0f}/s")
                rate = ceiling if high is None or ceiling < high else math.sqrt(max(low, 1) * high)
                continue
            s.notes.append(f"no trusted trial at {rate:.0f}/s in {config.attempts} attempts: {row['untrusted_reason']}")
            break
        if row["verdict"] == "overloaded":
            if high is None or rate < high:
                high, high_row = rate, row
            if row.get("mu_per_s"):
                mu_hint = offered_rate(row["mu_per_s"], row)
            ups = 0
        else:
            if rate > low:
                low, low_row = rate, row
            # served well above the rate while busy: the subscriber can do more than the hint said
            served = offered_rate(row.get("mu_per_s"), row)
            if served and served > max(low, mu_hint or 0) * (1 + rho):
                mu_hint = served
            ups += 1
        rate = _next_rate(low, high, ceiling, mu_hint, rho, downs, ups)
        if rate is not None and low == 0:
            downs += 1
    converged = high is None and low >= ceiling or (high is not None and low > 0 and high - low <= rho * low + 1e-9)
    confirmation = _confirm(s, low, high) if low > 0 else None
    low, high, low_row = after_confirmation(low, high, low_row, confirmation)
    return _ndr_result(s, cost_us, low, high, low_row, high_row, ceiling, generator_limit, converged, confirmation)


def _next_rate(low: float, high: float | None, ceiling: float, mu_hint: float | None, rho: float,
               downs: int, ups: int) -> float | None:
    """The next probe: beside the measured mu when there is one, then bisection; None: done."""
    if high is None:
        return None if low >= ceiling else ceiling
    if low == 0:
        anchor = min(high, mu_hint) if mu_hint else high
        step = rho / 2 * 2 ** downs
        return anchor * (1 - step) if step < 0.9 else high / 10
    if high - low <= rho * low + 1e-9:
        return None
    middle = math.sqrt(low * high)
    if mu_hint and low * (1 + rho / 2) < mu_hint * (1 - rho / 2) < high:
        return mu_hint * (1 - rho / 2)
    if ups:  # just stepped up: keep stepping by a growing multiple of the resolution, not past the middle
        return min(low * (1 + rho * 2 ** (ups - 1)), middle)
    return middle


def _confirm(s: _Search, low: float, high: float | None) -> dict[str, Any]:
    """One loss trial at NDR, long enough that an overload of one step fills the burst capacity;
    a loss (or a backlog that surely grows) steps the result down and confirms again. Every
    confirmation trial's service rate is kept (served_low/high_per_s): all are evidence of mu."""
    config = s.config
    failed_at: float | None = None
    out: dict[str, Any] = {}
    served_range: list[float] = []
    failures = 0
    share = s.judged[-1].row.get("expected_share") or 1.0  # a template lets only this share through
    for _ in range(config.max_confirmations):
        step = max(config.resolution * low, (high - low) if high else 0.0)
        shortest = 2 * max(config.trial_s, config.trial_events / (low * share))  # twice a first trend trial
        wanted = s.capacity / (step * share) if s.capacity else shortest
        duration = min(config.max_confirm_s, max(shortest, wanted))
        row = s.attempt(low, duration, confirmation=True).row
        if row.get("mu_per_s") and row["trusted"]:
            served_range += [row.get("mu_low_per_s") or row["mu_per_s"], row.get("mu_high_per_s") or row["mu_per_s"]]
        out = {"trial": int(row["trial"]), "rate_per_s": round(low, 3), "duration_s": round(duration, 3),
               "lost": int(row["lost"]), "trusted": bool(row["trusted"]),
               "slope_per_s": row.get("slope_per_s"), "slope_low_per_s": row.get("slope_low_per_s"),
               "slope_high_per_s": row.get("slope_high_per_s"),
               "confirmed_resolution_per_s": round(s.capacity / duration / share, 1) if s.capacity else None,
               "mu_per_s": row.get("mu_per_s"), "mu_low_per_s": row.get("mu_low_per_s"),
               "mu_high_per_s": row.get("mu_high_per_s"),
               "served_low_per_s": min(served_range) if served_range else None,
               "served_high_per_s": max(served_range) if served_range else None,
               "failed_at_per_s": round(failed_at, 3) if failed_at else None, "failures": failures,
               "all_lost": False}
        if not row["trusted"]:
            out.update({"confirmed": False, "reason": f"untrusted: {row['untrusted_reason']}"})
            return out
        if row["verdict"] != "overloaded":
            out["confirmed"] = True
            return out
        failed_at = high = low
        failures += 1
        # the trial that lost was saturated: what it served is where the sustainable rate lies (on
        # nflog a short trend trial can be served faster than a saturated buffer is); each further
        # failure steps twice as far, as the bracket was evidently wrong
        served = offered_rate(row.get("mu_low_per_s") or row.get("mu_per_s"), row)  # in offered packets/s
        low = min(low * (1 - config.resolution * 2 ** (failures - 1)), served or math.inf)
        if row.get("interference"):  # a loss while the machine interfered: stop at what it served then,
            # unconfirmed (a rate that lost is never the NDR; `rate_per_s` is where the result stands)
            out.update({"confirmed": False, "rate_per_s": round(low, 3), "failed_at_per_s": round(failed_at, 3),
                        "failures": failures, "reason": f"{row['verdict_by']} at {failed_at:.0f}/s while the machine "
                                                         f"interfered ({row['interference']})"})
            s.notes.append(f"confirmation at {failed_at:.0f}/s lost while the machine interfered (served the "
                           f"events of {served or 0:.0f}/s): {low:.0f}/s, not confirmed")
            return out
        s.notes.append(f"confirmation at {high:.0f}/s failed ({row['verdict_by']}, served the events of "
                       f"{served or 0:.0f}/s): stepping down to {low:.0f}/s")
    out.update({"confirmed": False, "all_lost": True, "failed_at_per_s": round(failed_at, 3), "failures": failures,
                "reason": f"no rate confirmed in {config.max_confirmations} loss trials"})
    s.notes.append(f"every confirmation lost, the last at {failed_at:.0f}/s: the NDR lies below it")
    return out


def after_confirmation(low: float, high: float | None, low_row: dict | None,
                       confirmation: dict[str, Any] | None) -> tuple[float, float | None, dict | None]:
    """The bracket once the confirmation has spoken: a confirmation that stepped down moves it; a
    rate that lost its own confirmation is no NDR (low 0)."""
    if confirmation is None or not confirmation["failed_at_per_s"]:
        return low, high, low_row
    if confirmation.get("all_lost"):
        return 0.0, confirmation["failed_at_per_s"], None
    return confirmation["rate_per_s"], confirmation["failed_at_per_s"], None


def _ndr_result(s: _Search, cost_us: float, low: float, high: float | None, low_row: dict | None,
                high_row: dict | None, ceiling: float, generator_limit: float | None, converged: bool,
                confirmation: dict[str, Any] | None) -> dict[str, Any]:
    trusted = [j for j in s.judged if j.row["trusted"]]
    saturated = [j for j in trusted if j.row["verdict"] == "overloaded" and j.row.get("mu_per_s")]
    mu_from = saturated or [j for j in trusted if j.row.get("mu_per_s")]
    mu = pooled_rows([j.row for j in mu_from])
    per_trial = np.array([j.row["mu_per_s"] for j in mu_from], dtype=float)
    confirmed = bool(confirmation and confirmation.get("confirmed"))
    ndr = low if low > 0 else None  # by backlog trend; `confirmed` says whether a loss trial agreed
    by_trial = {int(j.row["trial"]): j for j in s.judged}
    if low_row is None and confirmed:
        low_row = by_trial[confirmation["trial"]].row
    traces = {side: trace_name(row["trial"]) for side, row in (("below", low_row), ("above", high_row)) if row is not None}
    rests_on = sorted({int(j.row["trial"]) for j in mu_from}
                      | {int(r["trial"]) for r in (low_row, high_row) if r is not None}
                      | ({confirmation["trial"]} if confirmation and confirmation["trusted"] else set()))
    # interference in the trials the result rests on; with no such trial, in all of them
    evidence = [j.row for j in s.judged if int(j.row["trial"]) in rests_on] or [j.row for j in s.judged]
    seen = flags(worst(evidence)) if any("intf_others_cores" in r for r in evidence) else []
    out: dict[str, Any] = {
        "callback_cost_us": cost_us,
        "method": "backlog trend bracket, confirmed by one loss trial",
        "rate_per_s": round(ndr, 3) if ndr else None,
        "confirmed": confirmed,
        "first_overloaded_rate_per_s": round(high, 3) if high else None,
        "callback_rate_per_s": (1e6 / cost_us) if cost_us > 0 else None,
        "resolution": s.config.resolution,
        "resolution_per_s": round(high - low, 3) if high and low else None,
        "converged": converged,
        "generator_limited": bool(ndr and generator_limit and high is None),
        "generator_limit_per_s": round(generator_limit, 1) if generator_limit else None,
        "max_rate_per_s": round(ceiling, 1),
        **_mu_fields(mu, per_trial, cost_us),
        "slope_evidence": {"below": _slope_evidence(low_row), "above": _slope_evidence(high_row)},
        "backlog_traces": traces,
        "confirmation": confirmation,
        "trials": len(s.judged),
        "trial_time_s": round(sum(float(j.row["send_span_s"]) for j in s.judged), 3),
        "untrusted_trials": s.untrusted,
        "rests_on": rests_on,
        "interference": seen,
        "notes": s.notes,
    }
    if out["generator_limited"]:
        out["notes"] = s.notes + [f"generator-limited at {ceiling:.0f}/s: NDR is at least this"]
    out.update(ndr_status(out, s.config.max_spread))
    return out


def ndr_expected_range(row: dict[str, Any]) -> tuple[float, float] | None:
    """Where an NDR should lie, given the service rates measured beside it: mu of the search's
    trials and what every confirmation trial served (a shared machine serves faster or slower from
    one trial to the next, so all are evidence). Not above the highest of them by more than one
    search step (resolution x NDR) plus what the buffer absorbs in the confirmation (capacity / its
    length: a loss-free trial of T seconds proves no more); not below the lowest by more than two
    steps plus those the failed confirmations stepped down (1, 2, 4, ...). None without a
    measured mu or NDR."""
    mu, ndr = row.get("mu_per_s"), row.get("rate_per_s")
    if not mu or not ndr:
        return None
    conf = row.get("confirmation") or {}
    lows = [row.get("mu_low_per_s") or mu, conf.get("served_low_per_s") or conf.get("mu_low_per_s")]
    highs = [row.get("mu_high_per_s") or mu, conf.get("served_high_per_s") or conf.get("mu_high_per_s")]
    step = (row.get("resolution") or 0) * ndr
    failures = conf.get("failures", int(bool(conf.get("failed_at_per_s"))))
    steps_down = 1 + 2 ** failures  # 2, then the confirmation's own step-downs (1, 2, 4, ... steps)
    absorbed = conf.get("confirmed_resolution_per_s") or 0
    return (min(v for v in lows if v) - steps_down * step, max(v for v in highs if v) + step + absorbed)


def ndr_status(row: dict[str, Any], max_spread: float) -> dict[str, Any]:
    """Can this NDR be relied on? Its spread is how much the service rate behind it varied: the
    half-width of mu's confidence interval or mu's variation between trials, whichever is wider
    (the bracket, `resolution_per_s`, is reported beside it). Conclusive only when the NDR was
    confirmed by loss, that spread is within `max_spread`, and no interference was seen in the
    trials it rests on."""
    ndr, mu = row.get("rate_per_s"), row.get("mu_per_s")
    parts = {"mu_interval": ((row.get("mu_high_per_s") or mu) - (row.get("mu_low_per_s") or mu)) / 2 / mu if mu else None,
             "mu_between_trials": row.get("mu_between_trials_cv")}
    spread = max((v for v in parts.values() if v is not None), default=None)
    reasons = []
    if row.get("generator_limited"):
        status = "generator-limited"
        reasons.append(f"the generator reached only {row.get('generator_limit_per_s')}/s")
    elif not ndr or not row.get("confirmed"):
        status = "inconclusive"
        conf = row.get("confirmation") or {}
        reasons.append(("not confirmed by loss: " + conf["reason"]) if conf.get("reason") else "no sustained rate found")
    else:
        status = "conclusive"
        if spread is not None and spread > max_spread:
            reasons.append(f"mu varied {spread:.1%} (more than {max_spread:.1%})")
        if row.get("interference"):
            reasons.append("interference: " + "; ".join(row["interference"]))
        if reasons:
            status = "inconclusive"
    return {"status": status, "status_reasons": reasons,
            "spread": round(spread, 4) if spread is not None else None,
            "spread_parts": {k: (round(v, 4) if v is not None else None) for k, v in parts.items()}}


def _mu_fields(mu: ServiceRate | None, per_trial: np.ndarray, cost_us: float) -> dict[str, Any]:
    if mu is None or not mu.measured:
        return {"mu_per_s": None, "overhead_us": None}
    over = lambda m: None if not m else round(1e6 / m - cost_us, 3)  # noqa: E731
    return {"mu_per_s": round(mu.mu_per_s, 1), "mu_low_per_s": _r(mu.low_per_s), "mu_high_per_s": _r(mu.high_per_s),
            "mu_trials": int(len(per_trial)),
            "mu_between_trials_cv": round(float(per_trial.std(ddof=1) / per_trial.mean()), 4) if len(per_trial) > 1 else None,
            "mu_stall_share": round(mu.stall_share, 4),
            "overhead_us": over(mu.mu_per_s), "overhead_low_us": over(mu.high_per_s),
            "overhead_high_us": over(mu.low_per_s)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)


def _slope_evidence(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    keys = ("trial", "offered_rate_per_s", "send_span_s", "lost", "slope_per_s", "slope_low_per_s",
            "slope_high_per_s", "slope_margin_per_s", "mean_backlog", "verdict", "verdict_by", "mu_per_s")
    return {k: row.get(k) for k in keys}


def trial_duration(capacity: int | None, max_rate: float, config: NdrConfig) -> float:
    """Loss search: long enough that an overload of one resolution step fills a buffer of `capacity`."""
    if not capacity:
        return config.min_duration_s
    wanted = capacity / (config.resolution * max_rate)
    return min(config.max_duration_s, max(config.min_duration_s, wanted))


def search_ndr_by_loss(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float,
                       capacity: int | None, generator_max: float, config: NdrConfig = NdrConfig(),
                       experiment: str = EXPERIMENT, **tags: Any) -> dict[str, Any]:
    """The loss-only search: binary search on loss within tolerance, trial length from the capacity
    and the resolution, result confirmed by a `confirm_factor` times longer trial. Untrusted trials
    are run again and never counted."""
    max_rate = config.max_rate_per_s or default_max_rate(cost_us, generator_max)
    duration = trial_duration(capacity, max_rate, config)
    step = config.resolution * max_rate
    s = _Search(platform, base, store, cost_us, capacity, config, experiment, tags)

    def good(rate: float, length: float, **extra: Any) -> bool | None:
        j = s.attempt(rate, length, **extra)
        if not j.row["trusted"]:
            return None
        return j.row["loss_ratio"] <= config.loss_tolerance

    iterations = 1
    ok = good(max_rate, duration)
    low, high = (max_rate, max_rate) if ok else (0.0, max_rate)
    while not ok and high - low > step and iterations < config.max_iterations:
        mid = (low + high) / 2
        iterations += 1
        passed = good(mid, duration)
        if passed is None:
            s.notes.append(f"no trusted trial at {mid:.0f}/s: search stopped")
            break
        if passed:
            low = mid
        else:
            high = mid
    confirmations, was_confirmed = 0, False
    while low > 0 and confirmations < config.max_confirmations and not was_confirmed:
        confirmations += 1
        was_confirmed = bool(good(low, duration * config.confirm_factor, confirmation=True))
        if not was_confirmed:
            high, low = low, max(0.0, low - step)
    converged = high - low <= step
    note = "" if converged else "max_iterations reached: results might not be fully accurate"
    if low > 0 and not was_confirmed:
        low, note = 0.0, f"no rate confirmed loss-free by a {config.confirm_factor:g}x longer trial"
    return {
        "callback_cost_us": cost_us,
        "method": "loss only (binary search, confirmed by a longer trial)",
        "rate_per_s": round(low, 3) if low > 0 else None,
        "first_lossy_rate_per_s": None if ok else round(high, 3),
        "callback_rate_per_s": (1e6 / cost_us) if cost_us > 0 else None,
        "loss_tolerance": config.loss_tolerance,
        "iterations": iterations,
        "confirmations": confirmations,
        "confirm_duration_s": round(duration * config.confirm_factor, 3),
        "converged": converged,
        "note": "; ".join([note] + s.notes).strip("; "),
        "trial_duration_s": round(duration, 3),
        "max_rate_per_s": max_rate,
        "resolution_per_s": round(step, 3),
        "unresolvable_overload_per_s": round(capacity / (duration * config.confirm_factor), 3) if capacity else None,
        "trials": len(s.judged),
        "trial_time_s": round(sum(float(j.row["send_span_s"]) for j in s.judged), 3),
        "untrusted_trials": s.untrusted,
    }


def loss_onset(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float, rate: float,
               duration_s: float, capacity: int | None = None, attempts: int = 3) -> dict[str, Any]:
    """One overloaded trial (run again while its generator misses the load): when did the first loss
    happen, and what did the subscriber serve meanwhile."""
    s = _Search(platform, base, store, cost_us, capacity, NdrConfig(attempts=attempts), "onset", {})
    j = s.attempt(rate, duration_s)
    return {**j.row, "untrusted_trials": s.untrusted}


def measure_onset(platform: Platform, base: TrialSpec, store: ResultStore, ndr_row: dict[str, Any],
                  capacity_low: int | None, capacity_high: int | None, batch: int | None,
                  overload: float = 1.5, repeats: int = 1) -> dict[str, Any]:
    """Overloaded at `overload` x the measured mu, loss should begin after the backlog has filled
    the capacity: onset = C / (r - mu). `repeats` overloaded trials measure the onset's own spread
    (onset_low_s .. onset_high_s). The prediction's interval comes from the measured spreads: mu's
    confidence interval (of the NDR search, and what each trial served over its onset's stretch),
    the capacity's range (plus one batch in service, which the backlog holds too), and the
    sender's worst lag."""
    cost = ndr_row["callback_cost_us"]
    mu, mu_low, mu_high = ndr_row.get("mu_per_s"), ndr_row.get("mu_low_per_s"), ndr_row.get("mu_high_per_s")
    if not mu or not capacity_low:
        return {"callback_cost_us": cost, "predicted_low_s": None, "predicted_high_s": None,
                "reason": "needs a measured mu and a burst capacity"}
    rate = overload * mu
    duration = max(0.5, 2 * capacity_high / (rate - mu))  # no loss in twice the expected time: a miss
    c_high = capacity_high + (batch or 0)
    rows = [loss_onset(platform, base, store, cost, rate, duration, capacity_low) for _ in range(repeats)]
    seen: list[str] = []
    predicted: list[tuple[float, float | None]] = []  # per trusted trial; high None: unbounded
    onsets: list[float] = []
    for row in rows:
        seen += [f for f in (row.get("interference") or "").split("; ") if f and f not in seen]
        if not row["trusted"]:  # no evidence: nothing to predict against
            seen.append(f"overloaded trial {row['trial']} was not trusted: {row['untrusted_reason']}")
            continue
        t_low, t_high = _predicted_onset(row, rate, capacity_low, c_high, (mu_low or mu, mu_high or mu))
        if t_low is None:
            seen.append(f"trial {row['trial']} was offered {row.get('gen_achieved_rate_per_s')}/s, no more than "
                        f"the slowest service measured: no onset to predict")
            continue
        predicted.append((t_low, t_high))
        onsets.append(row["loss_onset_s"] if row["loss_onset_s"] is not None else math.inf)
        trial_mu = row.get("mu_per_s")
        if trial_mu and mu_low and mu_high and not mu_low <= trial_mu <= mu_high:
            seen.append(f"served {trial_mu:.0f}/s in trial {row['trial']}, {mu:.0f}/s in the NDR search")
    low = min((p[0] for p in predicted), default=None)
    highs = [p[1] for p in predicted]
    high = max(highs) if highs and None not in highs else None
    trusted = [r for r in rows if r["trusted"]]
    median = lambda key: float(np.median([r[key] for r in trusted])) if trusted and all(r.get(key) for r in trusted) else None  # noqa: E731
    achieved = median("gen_achieved_rate_per_s")
    return {"callback_cost_us": cost, "trial": rows[0]["trial"], "trials": [int(r["trial"]) for r in rows],
            "trusted": bool(trusted), "untrusted_trials": sorted({t for r in rows for t in r["untrusted_trials"]}),
            "rate_per_s": round(achieved or rate, 1), "mu_per_s": mu, "trial_mu_per_s": median("mu_per_s"),
            "capacity_low": capacity_low, "capacity_high": c_high,
            # None: no loss in the whole trial (twice the predicted onset)
            "onset_s": _finite(float(np.median(onsets))) if onsets else None,
            "onsets_s": [_finite(round(o, 6)) for o in onsets],
            "onset_low_s": _finite(min(onsets)) if onsets else None, "onset_high_s": _finite(max(onsets)) if onsets else None,
            "lost": int(sum(r["lost"] for r in rows)),
            "predicted_low_s": round(low, 4) if low is not None else None,
            "predicted_high_s": round(high, 4) if high is not None else None, "interference": seen,
            "rests_on": sorted({int(r["trial"]) for r in trusted} | set(ndr_row.get("rests_on", [])))}


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _predicted_onset(row: dict[str, Any], rate: float, capacity_low: int, capacity_high: int,
                     search_mu: tuple[float, float]) -> tuple[float, float | None]:
    """The onset one overloaded trial should show: from the NDR search's mu and, since at 1.5 x mu
    the onset moves by twice any relative change of mu, from what this very trial served (so that
    the run-to-run change of mu widens the prediction instead of failing it; a wrong capacity
    still misses both). High is None when the service could keep up; both are None when even
    the slowest service measured keeps up (nothing to predict)."""
    r = row.get("gen_achieved_rate_per_s") or rate
    lag_s = (row.get("gen_lag_max_events") or 0) / r

    def between(served_low: float, served_high: float) -> tuple[float | None, float | None]:
        if r <= served_low:
            return None, None
        return (capacity_low / (r - served_low) - lag_s,
                capacity_high / (r - served_high) + lag_s if r > served_high else None)

    low, high = between(*search_mu)
    if low is not None and row.get("mu_per_s") and r > row["mu_per_s"]:
        t_low, t_high = between(*_served_before_onset(row, (low + (high or low)) / 2))
        if t_low is not None:
            low = min(low, t_low)
            high = max(high, t_high) if high is not None and t_high is not None else None
    return low, high


def _served_before_onset(row: dict[str, Any], window_s: float) -> tuple[float, float]:
    """The range of the rate served over the first `window_s` of an overloaded trial: its mean's
    confidence interval, widened to what a stretch that long varies by (the trial's chunks, a tenth
    of its service time each, varied by mu_cv): the onset rests on that stretch, not on the mean."""
    mu = row["mu_per_s"]
    low, high = row.get("mu_low_per_s") or mu, row.get("mu_high_per_s") or mu
    cv, served_s = row.get("mu_cv"), row.get("mu_served_s")
    if cv and served_s and window_s > 0:
        chunks_in_window = max(1.0, window_s / (served_s / 10))
        band = 2 * cv * mu / math.sqrt(chunks_in_window)
        low, high = min(low, mu - band), max(high, mu + band)
    return low, high


def trusted_run(platform: Platform, spec: TrialSpec, store: ResultStore, experiment: str, capacity: int | None,
                attempts: int = 3, derive: Callable[[TrialResult], dict[str, Any]] | None = None,
                **tags: Any) -> tuple[TrialResult | None, dict[str, Any], list[int]]:
    """One trial that must be evidence: run again (up to `attempts` times) while its generator
    missed the load. `derive` adds columns of the caller's. Returns the last result (None when a
    resumed run replayed it), its row and the ids of the trials refused."""
    refused: list[int] = []
    for _ in range(attempts):
        def columns(result: TrialResult) -> dict[str, Any]:
            out = trial_trust(result.generator, capacity, loss_by_sequence(result.sent, result.delivered).lost)
            return {**out, **(derive(result) if derive else {})}

        result, row = run_recorded(platform, spec, store, experiment, derive=columns, **tags)
        if row["trusted"]:
            break
        refused.append(int(row["trial"]))
    return result, row, refused
