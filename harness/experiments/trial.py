"""Run one trial and record it at once (or, in a resumed run, hand back the stored one)."""
from __future__ import annotations

from typing import Any, Callable

from harness.platforms.base import Platform, TrialResult
from harness.report.store import ResultStore
from harness.spec import TrialSpec


def run_recorded(platform: Platform, spec: TrialSpec, store: ResultStore, experiment: str,
                 keep_events: bool = False, derive: Callable[[TrialResult], dict[str, Any]] | None = None,
                 **extra: Any) -> tuple[TrialResult | None, dict[str, Any]]:
    """The trial's result and its row. `derive(result)` adds columns computed from the whole result
    (kept in the row, so that a resumed run has them). A replayed trial's result is None unless
    its events were kept: experiments read rows, and whole results only where they kept events."""
    store.at(experiment)
    row = store.replay.take(experiment, spec, extra) if store.replay is not None else None
    if row is not None:
        store.adopt(row)
        skip = getattr(platform, "skip_trial", None)  # seeded platforms keep their streams in step
        if skip is not None:
            skip()
        return (store.replay.result(row, spec, experiment) if keep_events else None), row
    result = platform.run_trial(spec)
    row = store.record_trial(experiment, result, keep_events=keep_events,
                             derived=derive(result) if derive else None, **extra)
    return result, row
