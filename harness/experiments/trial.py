"""Run one trial and record it at once (or, in a resumed run, hand back the stored one), with what
the machine was doing meanwhile; a trial that must be evidence (`trusted_run`); the spec of a
sustained (constant-rate) trial."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Mapping

import pandas as pd

from harness.analysis.latency import latencies_ns, latency_summary
from harness.analysis.loss import loss_by_sequence
from harness.analysis.trust import trial_trust
from harness.interference import Probe, flags, references, speed_columns
from harness.platforms.base import Platform, TrialResult
from harness.results.records import TrialRow
from harness.results.store import ResultStore, spec_columns
from harness.spec import TrialSpec


class SubscriptionFailed(RuntimeError):
    """Traffic was offered and the subscription delivered nothing, or died: no trial after it can
    measure anything, and a capacity of 0 would be a lie."""


def _healthy(row: TrialRow) -> None:
    state = row.get("subscription")
    if isinstance(state, str) and state != "alive":
        raise SubscriptionFailed(f"trial {row.get('trial')}: subscription {state}")


def run_recorded(platform: Platform, spec: TrialSpec, store: ResultStore, experiment: str,
                 keep_events: bool = False, derive: Callable[[TrialResult], TrialRow] | None = None,
                 **extra: Any) -> tuple[TrialResult | None, TrialRow]:
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
    columns: TrialRow = {}
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
    events = None
    if keep_events:
        events = {"delivered": result.delivered, "sent": result.sent}
        if result.ground_truth is not None and "series" in result.ground_truth:
            events["truth"] = pd.DataFrame(result.ground_truth["series"])
    row = store.append_trial(trial_row(experiment, result, columns, extra), events)
    if result.ground_truth:
        store.set_ground_truth({k: result.ground_truth[k] for k in ("params", "true_burst_capacity")})
    for listener in store.trial_listeners:  # after the trial and on disk: live progress may print now
        listener(row, time.monotonic() - started)
    _healthy(row)
    return result, row


def trial_row(experiment: str, result: TrialResult, derived: TrialRow, extra: Mapping[str, Any]) -> TrialRow:
    """A trial's row of trials.csv: what was asked (spec_columns), the send span, loss by sequence,
    latency from each packet's send time, the generator's report (gen_*), the caller's tags and
    the derived columns."""
    loss = loss_by_sequence(result.sent, result.delivered)
    lat = latency_summary(latencies_ns(result.sent, result.delivered))
    t = result.sent["t_send_ns"].to_numpy()
    row: TrialRow = {
        **spec_columns(experiment, result.spec, {}),
        "send_span_s": float(t.max() - t.min()) / 1e9 if len(t) else 0.0,
        **loss.to_dict(),
        **{f"latency_{k}_us" if k != "count" else "latency_samples": v for k, v in lat.items()},
        "t_release_ns": result.t_release_ns,
    }
    row.update({f"gen_{k}": v for k, v in (result.generator or {}).items()})
    return {**row, **extra, **derived}


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


def trusted_run(platform: Platform, spec: TrialSpec, store: ResultStore, experiment: str, capacity: int | None,
                attempts: int = 3, derive: Callable[[TrialResult], TrialRow] | None = None,
                **tags: Any) -> tuple[TrialResult | None, TrialRow, list[int]]:
    """One trial that must be evidence: run again (up to `attempts` times) while its generator
    missed the load. `derive` adds columns of the caller's. Returns the last result (None when a
    resumed run replayed it), its row and the ids of the trials refused."""
    refused: list[int] = []
    for _ in range(attempts):
        def columns(result: TrialResult) -> TrialRow:
            out = trial_trust(result.generator, capacity, loss_by_sequence(result.sent, result.delivered).lost)
            return {**out, **(derive(result) if derive else {})}

        result, row = run_recorded(platform, spec, store, experiment, derive=columns, **tags)
        if row["trusted"]:
            break
        refused.append(int(row["trial"]))
    return result, row, refused
