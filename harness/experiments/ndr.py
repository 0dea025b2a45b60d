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

A loss tolerance (PDR) is searched by loss only (ndr_loss.py).
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import numpy as np

from harness.analysis.service import ServiceRate, pooled_rows
from harness.analysis.sustained import judge_ndr, offered_rate
from harness.analysis.trust import generator_short
from harness.experiments.ndr_loss import search_ndr_by_loss
from harness.experiments.search import NdrConfig, SustainedTrials, generator_of, trace_name
from harness.experiments.trial import default_max_rate
from harness.interference import flags, worst
from harness.platforms.base import Platform
from harness.results.records import Confirmation, NdrResult, SlopeEvidence, TrialRow
from harness.results.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "sustained"


def search_ndr(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float,
               capacity: int | None, generator_max: float, config: NdrConfig = NdrConfig(),
               experiment: str = EXPERIMENT, **tags: Any) -> NdrResult:
    """NDR by backlog trend, confirmed by one loss trial (see the module text)."""
    if config.loss_tolerance > 0:
        return search_ndr_by_loss(platform, base, store, cost_us, capacity, generator_max, config, experiment, **tags)
    s = SustainedTrials(platform, base, store, cost_us, capacity, config, experiment, tags)
    rho = config.resolution
    ceiling = config.max_rate_per_s or default_max_rate(cost_us, generator_max)
    low, high = 0.0, None
    low_row: TrialRow | None = None
    high_row: TrialRow | None = None
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
            if generator_short(generator_of(row), rate) and achieved and achieved * 0.97 > low:
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


def _confirm(s: SustainedTrials, low: float, high: float | None) -> Confirmation:
    """One loss trial at NDR, long enough that an overload of one step fills the burst capacity;
    a loss (or a backlog that surely grows) steps the result down and confirms again. Every
    confirmation trial's service rate is kept (served_low/high_per_s): all are evidence of mu."""
    config = s.config
    failed_at: float | None = None
    out = Confirmation()
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
        out = Confirmation(
            trial=int(row["trial"]), rate_per_s=round(low, 3), duration_s=round(duration, 3),
            lost=int(row["lost"]), trusted=bool(row["trusted"]), slope_per_s=row.get("slope_per_s"),
            slope_low_per_s=row.get("slope_low_per_s"), slope_high_per_s=row.get("slope_high_per_s"),
            confirmed_resolution_per_s=round(s.capacity / duration / share, 1) if s.capacity else None,
            mu_per_s=row.get("mu_per_s"), mu_low_per_s=row.get("mu_low_per_s"), mu_high_per_s=row.get("mu_high_per_s"),
            served_low_per_s=min(served_range) if served_range else None,
            served_high_per_s=max(served_range) if served_range else None,
            failed_at_per_s=round(failed_at, 3) if failed_at else None, failures=failures, all_lost=False)
        if not row["trusted"]:
            out.confirmed, out.reason = False, f"untrusted: {row['untrusted_reason']}"
            return out
        if row["verdict"] != "overloaded":
            out.confirmed = True
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
            out.confirmed, out.rate_per_s, out.failed_at_per_s, out.failures = False, round(low, 3), round(failed_at, 3), failures
            out.reason = f"{row['verdict_by']} at {failed_at:.0f}/s while the machine interfered ({row['interference']})"
            s.notes.append(f"confirmation at {failed_at:.0f}/s lost while the machine interfered (served the "
                           f"events of {served or 0:.0f}/s): {low:.0f}/s, not confirmed")
            return out
        s.notes.append(f"confirmation at {high:.0f}/s failed ({row['verdict_by']}, served the events of "
                       f"{served or 0:.0f}/s): stepping down to {low:.0f}/s")
    out.confirmed, out.all_lost, out.failed_at_per_s, out.failures = False, True, round(failed_at, 3), failures
    out.reason = f"no rate confirmed in {config.max_confirmations} loss trials"
    s.notes.append(f"every confirmation lost, the last at {failed_at:.0f}/s: the NDR lies below it")
    return out


def after_confirmation(low: float, high: float | None, low_row: TrialRow | None,
                       confirmation: Confirmation | None) -> tuple[float, float | None, TrialRow | None]:
    """The bracket once the confirmation has spoken: a confirmation that stepped down moves it; a
    rate that lost its own confirmation is no NDR (low 0)."""
    if confirmation is None or not confirmation.failed_at_per_s:
        return low, high, low_row
    if confirmation.all_lost:
        return 0.0, confirmation.failed_at_per_s, None
    return confirmation.rate_per_s or 0.0, confirmation.failed_at_per_s, None


def _ndr_result(s: SustainedTrials, cost_us: float, low: float, high: float | None, low_row: TrialRow | None,
                high_row: TrialRow | None, ceiling: float, generator_limit: float | None, converged: bool,
                confirmation: Confirmation | None) -> NdrResult:
    trusted = [j for j in s.judged if j.row["trusted"]]
    saturated = [j for j in trusted if j.row["verdict"] == "overloaded" and j.row.get("mu_per_s")]
    mu_from = saturated or [j for j in trusted if j.row.get("mu_per_s")]
    mu = pooled_rows([j.row for j in mu_from])
    per_trial = np.array([j.row["mu_per_s"] for j in mu_from], dtype=float)
    confirmed = bool(confirmation and confirmation.confirmed)
    ndr = low if low > 0 else None  # by backlog trend; `confirmed` says whether a loss trial agreed
    by_trial = {int(j.row["trial"]): j for j in s.judged}
    if low_row is None and confirmed:
        low_row = by_trial[confirmation.trial].row
    traces = {side: trace_name(row["trial"]) for side, row in (("below", low_row), ("above", high_row)) if row is not None}
    rests_on = sorted({int(j.row["trial"]) for j in mu_from}
                      | {int(r["trial"]) for r in (low_row, high_row) if r is not None}
                      | ({confirmation.trial} if confirmation and confirmation.trusted else set()))
    # interference in the trials the result rests on; with no such trial, in all of them
    evidence = [j.row for j in s.judged if int(j.row["trial"]) in rests_on] or [j.row for j in s.judged]
    seen = flags(worst(evidence)) if any("intf_others_cores" in r for r in evidence) else []
    out = NdrResult(**{
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
    })
    if out.generator_limited:
        out.notes = s.notes + [f"generator-limited at {ceiling:.0f}/s: NDR is at least this"]
    return judge_ndr(out, s.config.max_spread)


def _mu_fields(mu: ServiceRate | None, per_trial: np.ndarray, cost_us: float) -> dict[str, float | int | None]:
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


def _slope_evidence(row: TrialRow | None) -> SlopeEvidence | None:
    if row is None:
        return None
    return SlopeEvidence(**{f.name: row.get(f.name) for f in fields(SlopeEvidence) if f.name != "extra"})
