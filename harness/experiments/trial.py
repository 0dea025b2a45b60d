"""Run one trial and record it at once."""
from __future__ import annotations

from typing import Any

from harness.platforms.base import Platform, TrialResult
from harness.report.store import ResultStore
from harness.spec import TrialSpec


def run_recorded(platform: Platform, spec: TrialSpec, store: ResultStore, experiment: str,
                 keep_events: bool = False, **extra: Any) -> tuple[TrialResult, dict[str, Any]]:
    result = platform.run_trial(spec)
    row = store.record_trial(experiment, result, keep_events=keep_events, **extra)
    return result, row
