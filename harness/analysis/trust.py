"""Is a trial evidence? Only if the generator delivered the load it was asked for.

A trial whose sender missed its rate, or fell far behind its schedule, did not test the offered
load: it is neither loss-free nor lossy at that rate. Two rules:
- the generator's own verdict (harness/traffic/pacing.py: average rate and lag within 5 %);
- the lag against the path's capacity: a sender that falls L events behind releases them as one
  burst when it catches up, so once the lag reaches half the burst capacity a loss may be the
  sender's doing. Such a lossy trial is evidence only if it shows overload another way (its
  subscriber served less than was offered). Without a loss the burst did no harm.
Virtual-time platforms have no generator: their trials are always evidence.
"""
from __future__ import annotations

from typing import Any

from harness.results.records import TrialRow

LAG_SHARE_OF_CAPACITY = 0.5


def trial_trust(generator: dict[str, Any] | None, capacity: int | None, lost: int = 0,
                overload_seen: bool = False) -> TrialRow:
    if generator is None:
        return {"trusted": True, "untrusted_reason": ""}
    reasons = [] if generator.get("trusted", True) else [str(generator.get("reason") or "generator missed its load")]
    lag = generator.get("lag_max_events")
    if capacity and lost and not overload_seen and lag is not None and lag >= LAG_SHARE_OF_CAPACITY * capacity:
        reasons.append(f"lost {lost} events after the sender fell {lag} events behind: its catch-up burst "
                       f"alone could fill {lag / capacity:.0%} of the {capacity}-event capacity")
    return {"trusted": not reasons, "untrusted_reason": "; ".join(reasons)}


def generator_short(generator: dict[str, Any] | None, target_per_s: float, tolerance: float = 0.05) -> bool:
    """The generator could not reach the rate (as opposed to stumbling once): lower the ceiling."""
    if generator is None:
        return False
    achieved = generator.get("achieved_rate_per_s")
    return achieved is not None and achieved < (1 - tolerance) * target_per_s
