"""Headroom along a trace's time scale: the first scale at which replaying it loses events.

The core of the headroom search: `first_lossy_scale` brackets, then bisects the scale
geometrically, given any function that says how many events a replay at a scale lost. It assumes
what the model guarantees and a real platform only approximates: loss does not decrease as the
trace gets faster. Confirmation trials and "inconclusive" verdicts on a noisy machine are the
experiment's (harness/experiments/headroom.py), which runs it on every platform and records each
trial; `lost_at_scale` is the bare search through the Platform protocol, for a what-if in code.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.analysis.loss import loss_by_sequence
from harness.platforms.base import Platform
from harness.spec import TrafficSpec, TrialSpec


@dataclass(frozen=True)
class ScaleBracket:
    """The search's answer: every scale up to `clean` lost nothing, `lossy` lost (None: not found
    within the search's bounds); `trials` are (scale, events lost) in the order they ran."""

    clean: float | None
    lossy: float | None
    resolution: float
    trials: tuple[tuple[float, int], ...]

    @property
    def resolved(self) -> bool:
        return self.clean is not None and self.lossy is not None and self.lossy / self.clean - 1 <= self.resolution


def first_lossy_scale(lost_at: Callable[[float], int], start: float = 1.0, resolution: float = 0.01,
                      min_scale: float = 1 / 1024, max_scale: float = 1024.0, max_trials: int = 60) -> ScaleBracket:
    """Bracket the first lossy scale by doubling or halving from `start`, then bisect (geometric
    mean) until lossy / clean - 1 <= resolution."""
    if not (resolution > 0 and 0 < min_scale <= start <= max_scale):
        raise ValueError("need resolution > 0 and 0 < min_scale <= start <= max_scale")
    trials: list[tuple[float, int]] = []

    def lost(scale: float) -> int:
        n = int(lost_at(scale))
        trials.append((scale, n))
        return n

    clean: float | None = None
    lossy: float | None = None
    scale = start
    if lost(scale):
        lossy = scale
        while clean is None and scale > min_scale and len(trials) < max_trials:
            scale = max(scale / 2, min_scale)
            if lost(scale):
                lossy = scale
            else:
                clean = scale
    else:
        clean = scale
        while lossy is None and scale < max_scale and len(trials) < max_trials:
            scale = min(scale * 2, max_scale)
            if lost(scale):
                lossy = scale
            else:
                clean = scale
    while clean is not None and lossy is not None and lossy / clean - 1 > resolution and len(trials) < max_trials:
        middle = math.sqrt(clean * lossy)
        if lost(middle):
            lossy = middle
        else:
            clean = middle
    return ScaleBracket(clean, lossy, resolution, tuple(trials))


def lost_at_scale(platform: Platform, spec: TrialSpec) -> Callable[[float], int]:
    """A function scale -> events lost when `platform` replays the trial's schedule at that scale."""
    schedule = spec.traffic.schedule
    if schedule is None:
        raise ValueError("a headroom search replays a schedule: the trial's traffic has none")

    def lost(scale: float) -> int:
        traffic = TrafficSpec.replay(schedule.scaled(scale), seed=spec.traffic.seed,
                                     remote_addresses=spec.traffic.remote_addresses)
        result = platform.run_trial(replace(spec, traffic=traffic))
        return loss_by_sequence(result.sent, result.delivered).lost

    return lost
