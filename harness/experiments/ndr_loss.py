"""The loss-only NDR search (RFC 2544, TRex ndr_bench stop rules): binary search on loss within a
tolerance, each trial long enough that an overload of one resolution step fills the burst
capacity, the result confirmed by a longer trial. It serves PDR (a loss tolerance) and is the
reference the backlog-trend search (ndr.py) is tested against."""
from __future__ import annotations

from typing import Any

from harness.experiments.search import NdrConfig, SustainedTrials
from harness.experiments.trial import default_max_rate
from harness.platforms.base import Platform
from harness.results.records import NdrResult
from harness.results.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "sustained"


def trial_duration(capacity: int | None, max_rate: float, config: NdrConfig) -> float:
    """Loss search: long enough that an overload of one resolution step fills a buffer of `capacity`."""
    if not capacity:
        return config.min_duration_s
    wanted = capacity / (config.resolution * max_rate)
    return min(config.max_duration_s, max(config.min_duration_s, wanted))


def search_ndr_by_loss(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float,
                       capacity: int | None, generator_max: float, config: NdrConfig = NdrConfig(),
                       experiment: str = EXPERIMENT, **tags: Any) -> NdrResult:
    """The loss-only search: binary search on loss within tolerance, trial length from the capacity
    and the resolution, result confirmed by a `confirm_factor` times longer trial. Untrusted trials
    are run again and never counted."""
    max_rate = config.max_rate_per_s or default_max_rate(cost_us, generator_max)
    duration = trial_duration(capacity, max_rate, config)
    step = config.resolution * max_rate
    s = SustainedTrials(platform, base, store, cost_us, capacity, config, experiment, tags)

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
    return NdrResult(**{
        "callback_cost_us": cost_us,
        "method": "loss only (binary search, confirmed by a longer trial)",
        "rate_per_s": round(low, 3) if low > 0 else None,
        "first_overloaded_rate_per_s": None if ok else round(high, 3),
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
    })
