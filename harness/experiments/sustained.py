"""Sustained load (RFC 2544 throughput, TRex ndr_bench stop rules): for a callback cost, the
highest constant rate whose loss stays within tolerance (0 for NDR, a set ratio for PDR).

Trial length matters: a buffer of C events hides an overload of r - mu for C / (r - mu) seconds,
so a trial of T seconds can only tell rates apart by about C / T. The search therefore sizes its
trials from the measured burst capacity and its stop resolution, confirms its result with a trial
`confirm_factor` times longer (searching lower if that one loses), and reports the overload the
confirmation could not have seen (`unresolvable_overload_per_s`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from harness.experiments.trial import run_recorded
from harness.platforms.base import Platform
from harness.report.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "sustained"


@dataclass(frozen=True)
class NdrConfig:
    loss_tolerance: float = 0.0     # 0: NDR; e.g. 0.001: PDR at 0.1 %
    resolution: float = 0.02        # stop when high - low <= resolution * max_rate (ndr_bench pdr_error)
    max_iterations: int = 12
    min_duration_s: float = 0.5
    max_duration_s: float = 600.0
    max_rate_per_s: float | None = None  # default: twice the callback's own rate 1/cost
    confirm_factor: float = 3.0     # RFC 2544 section 24: confirm the result with a longer trial
    max_confirmations: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.loss_tolerance < 1 or not 0 < self.resolution < 1 or self.max_iterations < 1:
            raise ValueError("ndr: loss_tolerance in [0,1), resolution in (0,1), max_iterations >= 1")


def sustained_spec(base: TrialSpec, cost_us: float, rate: float, duration_s: float, mode: str = "inline") -> TrialSpec:
    count = max(1, int(round(rate * duration_s)))
    return replace(base, traffic=replace(base.traffic, pacing="constant", rate_per_s=rate, count=count),
                   subscriber=replace(base.subscriber, cost_us=cost_us, hold=False, mode=mode),
                   label=f"{cost_us:g}us@{rate:.0f}/s")


def default_max_rate(cost_us: float, generator_max: float) -> float:
    return generator_max if cost_us <= 0 else min(generator_max, 2e6 / cost_us)


def trial_duration(capacity: int | None, max_rate: float, config: NdrConfig) -> float:
    """Long enough that an overload of one resolution step fills a buffer of `capacity` events."""
    if not capacity:
        return config.min_duration_s
    wanted = capacity / (config.resolution * max_rate)
    return min(config.max_duration_s, max(config.min_duration_s, wanted))


def search_ndr(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float,
               capacity: int | None, generator_max: float, config: NdrConfig = NdrConfig()) -> dict[str, Any]:
    max_rate = config.max_rate_per_s or default_max_rate(cost_us, generator_max)
    duration = trial_duration(capacity, max_rate, config)
    step = config.resolution * max_rate

    def good(rate: float) -> tuple[bool, dict]:
        _, row = run_recorded(platform, sustained_spec(base, cost_us, rate, duration), store, EXPERIMENT,
                              search_cost_us=cost_us)
        return row["loss_ratio"] <= config.loss_tolerance, row

    def confirmed(rate: float) -> bool:
        _, row = run_recorded(platform, sustained_spec(base, cost_us, rate, duration * config.confirm_factor), store,
                              EXPERIMENT, search_cost_us=cost_us, confirmation=True)
        return row["loss_ratio"] <= config.loss_tolerance

    iterations = 1
    ok, row = good(max_rate)
    low, high = (max_rate, max_rate) if ok else (0.0, max_rate)
    while not ok and high - low > step and iterations < config.max_iterations:
        mid = (low + high) / 2
        iterations += 1
        passed, row = good(mid)
        if passed:
            low = mid
        else:
            high = mid
    confirmations, was_confirmed = 0, False
    while low > 0 and confirmations < config.max_confirmations and not was_confirmed:
        confirmations += 1
        was_confirmed = confirmed(low)
        if not was_confirmed:
            # the longer trial lost events, which the short ones were too short to see: step down
            high, low = low, max(0.0, low - step)
    converged = high - low <= step
    note = "" if converged else "max_iterations reached: results might not be fully accurate"
    if low > 0 and not was_confirmed:
        low, note = 0.0, f"no rate confirmed loss-free by a {config.confirm_factor:g}x longer trial"
    return {
        "callback_cost_us": cost_us,
        "rate_per_s": round(low, 3) if low > 0 else None,
        "first_lossy_rate_per_s": None if ok else round(high, 3),
        "callback_rate_per_s": (1e6 / cost_us) if cost_us > 0 else None,
        "loss_tolerance": config.loss_tolerance,
        "iterations": iterations,
        "confirmations": confirmations,
        "confirm_duration_s": round(duration * config.confirm_factor, 3),
        "converged": converged,
        "note": note,
        "trial_duration_s": round(duration, 3),
        "max_rate_per_s": max_rate,
        "resolution_per_s": round(step, 3),
        "unresolvable_overload_per_s": round(capacity / (duration * config.confirm_factor), 3) if capacity else None,
    }


def loss_onset(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float, rate: float,
               duration_s: float) -> dict[str, Any]:
    """One overloaded trial: when did the first loss happen (cross-check: capacity / (rate - mu))."""
    _, row = run_recorded(platform, sustained_spec(base, cost_us, rate, duration_s), store, "onset",
                          search_cost_us=cost_us)
    return row

