"""Run one trial and record it at once (or, in a resumed run, hand back the stored one), with what
the machine was doing meanwhile."""
from __future__ import annotations

import time
from typing import Any, Callable

from harness.analysis.trust import trial_trust
from harness.interference import Probe, flags, references, speed_columns
from harness.platforms.base import Platform, TrialResult
from harness.report.store import ResultStore
from harness.spec import TrialSpec


class SubscriptionFailed(RuntimeError):
    """Traffic was offered and the subscription delivered nothing, or died: no trial after it can
    measure anything, and a capacity of 0 would be a lie."""


def _healthy(row: dict[str, Any]) -> None:
    state = row.get("subscription")
    if isinstance(state, str) and state != "alive":
        raise SubscriptionFailed(f"trial {row.get('trial')}: subscription {state}")


def run_recorded(platform: Platform, spec: TrialSpec, store: ResultStore, experiment: str,
                 keep_events: bool = False, derive: Callable[[TrialResult], dict[str, Any]] | None = None,
                 **extra: Any) -> tuple[TrialResult | None, dict[str, Any]]:
    """The trial's result and its row. `derive(result)` adds columns computed from the whole result
    (served rate, backlog slope, trust...; kept in the row, so that a resumed run has them). A
    replayed trial's result is None unless its events were kept: experiments read rows, and whole
    results only where they kept events. Every row says whether its generator delivered the load
    (`trusted`); interference is measured around real-time trials only: a simulation is not slowed
    by its neighbours; a CPU running off the run's typical speed is interference too
    (interference.speed_columns)."""
    store.at(experiment)
    row = store.replay.take(experiment, spec, extra) if store.replay is not None else None
    if row is not None:
        store.adopt(row)
        skip = getattr(platform, "skip_trial", None)  # seeded platforms keep their streams in step
        if skip is not None:
            skip()
        _healthy(row)
        return (store.replay.result(row, spec, experiment) if keep_events else None), row
    started = time.monotonic()
    probe = None if platform.capabilities.virtual_time else Probe()
    if probe is not None:
        probe.begin()
    result = platform.run_trial(spec)
    columns: dict[str, Any] = {}
    if probe is not None:
        columns = probe.end()
        ends = (columns.get("intf_cpu_ref_begin_ns"), columns.get("intf_cpu_ref_end_ns"))
        columns.update(speed_columns(ends, references(store.rows)))
    columns.update((result.telemetry or {}).get("row_columns", {}))  # sent/recorded/delivered, health
    if derive is not None:
        columns.update(derive(result))
    if "trusted" not in columns:
        columns.update(trial_trust(result.generator, None))
    if probe is not None:
        seen = {**{f"gen_{k}": v for k, v in (result.generator or {}).items()}, **columns}
        columns["interference"] = "; ".join(flags(seen))
    row = store.record_trial(experiment, result, keep_events=keep_events, derived=columns, **extra)
    for listener in store.trial_listeners:  # after the trial and on disk: live progress may print now
        listener(row, time.monotonic() - started)
    _healthy(row)
    return result, row
