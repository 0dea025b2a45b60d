"""The status of a run, as summary.json records it under "run".

    "run": {"status": "running" | "complete" | "interrupted" | "subset",
            "detail": "one sentence: why not complete (signal, where, which scenarios)",
            "interrupted_at": {"experiment": ..., "trial": ...} or null,
            "scenarios": {"selected": [...], "finished": [...], "not_finished": [...]},
            "started_utc": ..., "ended_utc": ... or null}

A run starts as "running"; the scenario session ends it as complete (every scenario of the suite
ran to its end), subset (-k, -x, a single file: some were never selected) or interrupted (a
signal or an error stopped it). A run killed outright (SIGKILL, power) stays "running" on disk.
History, comparison and baselines read complete runs only; everything else is flagged.
"""
from __future__ import annotations

from typing import Any

STATES = ("running", "complete", "interrupted", "subset")


def new_run(started_utc: str) -> dict[str, Any]:
    return {"status": "running", "detail": "", "interrupted_at": None,
            "scenarios": {"selected": [], "finished": [], "not_finished": []},
            "started_utc": started_utc, "ended_utc": None}


def status_of(summary: dict[str, Any]) -> str:
    """The run's status; summaries written before runs had one are 'unknown'."""
    run = summary.get("run")
    if not isinstance(run, dict) or run.get("status") not in STATES:
        return "unknown"
    return run["status"]


def is_complete(summary: dict[str, Any]) -> bool:
    return status_of(summary) == "complete"


def describe(summary: dict[str, Any]) -> str:
    """One line for a banner or a table cell: 'complete', or the status with its detail."""
    state = status_of(summary)
    if state == "running":
        return "incomplete: the run never finished (killed, or still running)"
    if state == "unknown":
        return "unknown: written before runs recorded their status"
    detail = (summary.get("run") or {}).get("detail") or ""
    return f"{state}: {detail}" if detail and state != "complete" else state
