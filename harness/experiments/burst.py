"""Back-to-back (RFC 2544 26.4 / RFC 9004): the longest burst delivered without loss while the
subscriber is held from its first callback, found by a search with verification.

Each search grows the burst until one loses events; the delivered count of that lossy burst is
the first candidate (a held subscriber delivers exactly the capacity of an oversized burst), then
candidate+1, then plain bisection; the result is re-run `verify` times before it is accepted.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from harness.analysis.capacity import burst_capacity, plateau
from harness.results.records import Estimate
from harness.experiments.trial import SubscriptionFailed, run_recorded
from harness.platforms.base import Platform
from harness.results.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "burst"


@dataclass(frozen=True)
class BurstConfig:
    start: int = 1024
    upper: int = 262_144
    growth: int = 4
    repetitions: int = 1            # whole searches (RFC 9004 asks for N and reports spread)
    verify: int = 1                 # re-runs of the result before it is accepted
    max_trials: int = 60            # per search
    sweep: tuple[float, ...] = (0.25, 0.5, 0.75, 1.25, 1.5, 2.0)  # extra sizes, x capacity, for the plot

    def __post_init__(self) -> None:
        if not 1 <= self.start <= self.upper:
            raise ValueError("burst start must be within 1..upper")
        if self.growth < 2 or self.repetitions < 1 or self.verify < 0:
            raise ValueError("burst growth >= 2, repetitions >= 1, verify >= 0")


@dataclass
class BurstOutcome:
    capacity: Estimate
    plateau: Estimate
    searches: list[int]
    trials: pd.DataFrame


def held(spec: TrialSpec) -> TrialSpec:
    return replace(spec, subscriber=replace(spec.subscriber, hold=True),
                   traffic=replace(spec.traffic, pacing="burst", rate_per_s=None))


def search_burst_capacity(platform: Platform, base: TrialSpec, store: ResultStore,
                          config: BurstConfig = BurstConfig()) -> BurstOutcome:
    spec = held(base)
    try:
        searches = [_search_once(platform, spec, store, config, rep) for rep in range(config.repetitions)]
    except SubscriptionFailed as exc:  # the search stops: a dead subscription has no capacity
        reason = f"not detectable: {exc}"
        return BurstOutcome(Estimate.undetectable("search", reason, subscription_failed=True),
                            Estimate.undetectable("plateau", reason, subscription_failed=True), [],
                            store.trials(EXPERIMENT))
    found = [s for s in searches if s is not None]
    if found:
        best = int(np.median(found))
        for factor in config.sweep:
            size = int(min(config.upper, max(1, round(best * factor))))
            run_recorded(platform, spec.with_count(size), store, EXPERIMENT, search=-1)
    trials = store.trials(EXPERIMENT)
    trials = trials.rename(columns={"count": "burst"})
    capacity = burst_capacity(trials[trials["search"] >= 0])
    if found and capacity.detectable:
        capacity.value = int(np.median(found))
        capacity.evidence.update({"searches": found, "min": int(min(found)), "max": int(max(found)),
                                  "std": float(np.std(found))})
    top = plateau(trials)
    capacity.evidence["rests_on"] = [int(t) for t in trials.loc[trials["search"] >= 0, "trial"]]
    top.evidence["rests_on"] = [int(t) for t in trials.loc[trials["lost"] > 0, "trial"]]
    return BurstOutcome(capacity, top, found, trials)


def _search_once(platform: Platform, spec: TrialSpec, store: ResultStore, config: BurstConfig,
                 rep: int) -> int | None:
    runs = 0

    def lost_at(n: int) -> tuple[int, int]:
        nonlocal runs
        runs += 1
        _, row = run_recorded(platform, spec.with_count(n), store, EXPERIMENT, search=rep)
        return int(row["lost"]), int(row["delivered"])

    goods: list[int] = [0]
    bad: int | None = None
    hints: list[int] = []
    n = config.start
    while True:  # grow until a burst loses events
        lost, delivered = lost_at(n)
        if lost:
            bad = n
            hints = [delivered, delivered + 1]
            break
        goods.append(n)
        if n >= config.upper:
            return n  # unbounded: nothing up to the upper bound lost events
        n = min(config.upper, n * config.growth)
    while runs < config.max_trials:
        good = max(goods)
        if bad - good <= 1:
            if good == 0:
                return None  # even the smallest burst tried lost events
            if all(lost_at(good)[0] == 0 for _ in range(config.verify)):
                return good
            bad = good  # verification failed: the platform is noisy, search lower
            goods = [g for g in goods if g < good] or [0]
            continue
        hints = [h for h in hints if good < h < bad]
        mid = hints.pop(0) if hints else (good + bad) // 2
        if lost_at(mid)[0]:
            bad = mid
        else:
            goods.append(mid)
    return max(goods) or None
