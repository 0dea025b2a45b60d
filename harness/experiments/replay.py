"""Replay the user's trace once, at one scale, with their subscriber: delivered, lost and when the
first loss happened, the peak backlog against the queue limit Q and Q + B, latency from event to
callback, and the sender's lateness against the schedule (a replay it could not keep is run again,
and if it still could not, said to be evidence of nothing).

The trial's row holds everything the result is made of, so a resumed run makes the same result;
the plots' frames (backlog over time, the loss timeline, a native library's measured cost) are
saved beside it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.analysis.loss import loss_by_sequence
from harness.analysis.replay import (backlog_frame, histogram_frame, library_cost_ns, loss_timeline, peak_backlog,
                                     replay_columns)
from harness.experiments.trial import trusted_run
from harness.platforms.base import Platform, TrialResult
from harness.results.records import ReplayResult, TrialRow
from harness.results.store import ResultStore
from harness.spec import TrialSpec

EXPERIMENT = "replay"


@dataclass(frozen=True)
class Capacity:
    """What the backlog is held against: the queue limit Q and Q + B, and where they come from."""

    queue_limit: int | None = None
    total: int | None = None
    source: str = "not known"


def frame_name(trial: int, what: str) -> str:
    return f"replay-{int(trial):04d}-{what}"


def run_replay(platform: Platform, spec: TrialSpec, store: ResultStore, capacity: Capacity,
               experiment: str = EXPERIMENT, **tags: Any) -> tuple[TrialRow, list[int]]:
    """One replay trial that must be evidence (run again while its sender missed the schedule):
    its row, and the trials refused. Saves its plot frames."""
    box: dict[str, Any] = {}

    def derive(result: TrialResult) -> TrialRow:
        loss = loss_by_sequence(result.sent, result.delivered)
        columns = replay_columns(result, loss)
        backlog = backlog_frame(result)
        columns["peak_backlog"] = peak_backlog(backlog)
        box["frames"] = {"backlog": backlog, "loss": loss_timeline(result, loss)}
        cost = library_cost_ns(result)
        if len(cost):
            box["frames"]["library-cost"] = histogram_frame(cost)
        return columns

    _, row, refused = trusted_run(platform, spec, store, experiment, capacity.total, derive=derive, **tags)
    for what, frame in box.get("frames", {}).items():  # a fresh trial (a replayed one stored them the first time)
        store.save_frame(frame_name(row["trial"], what), frame)
    return row, refused


def replay_result(row: TrialRow, spec: TrialSpec, capacity: Capacity, interference: list[str],
                  why_events: str = "", notes: list[str] | None = None) -> ReplayResult:
    """The record of a replay trial, from its row."""
    schedule = spec.traffic.schedule
    sub = spec.subscriber
    described: dict[str, Any] = {"mode": sub.mode}
    if sub.cost_distribution is not None:
        described["cost"] = sub.cost_distribution.describe()
    elif sub.function is None:
        described["cost_us"] = sub.cost_us
    if sub.function is not None:
        described["function"] = sub.function
    trial = int(row["trial"])
    frames = {"backlog": frame_name(trial, "backlog"), "loss": frame_name(trial, "loss")}
    library = None
    if row.get("library_cost_p50_us") is not None:
        library = {"p50": row["library_cost_p50_us"], "p99": row.get("library_cost_p99_us")}
        frames["library_cost"] = frame_name(trial, "library-cost")
    return ReplayResult(
        trial=trial, scale=float(schedule.scale), trace_events=schedule.trace_events, trace_events_why=why_events,
        expected=int(row["expected"]), delivered=int(row["delivered"]), lost=int(row["lost"]),
        loss_ratio=float(row["loss_ratio"]), first_loss_s=_number(row.get("loss_onset_s")),
        repeat_events=int(row.get("repeat_events") or 0), unexpected=int(row.get("unexpected") or 0),
        peak_backlog=_whole(row.get("peak_backlog")), queue_limit=capacity.queue_limit, capacity=capacity.total,
        capacity_source=capacity.source,
        latency_us={k: _number(row.get(f"event_latency_{k}_us")) for k in ("p50", "p99", "max")},
        sender_late_us={k: _number(row.get(f"gen_late_{k}_us")) for k in ("p50", "p99", "max")},
        trusted=bool(row["trusted"]), untrusted_reason=str(row.get("untrusted_reason") or ""),
        interference=interference, trace=schedule.describe(), subscriber=described, library_cost_us=library,
        window=({"start_s": schedule.provenance.window[0] / 1e9, "length_s": schedule.provenance.window[1] / 1e9}
                if schedule.provenance.window else None),
        function_errors=_whole(row.get("function_errors")), frames=frames, notes=list(notes or []))


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def _whole(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
