"""The status of a run, as summary.json records it under "run" (results/records.py, RunStatus):

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

from harness.results.records import RunSummary


def status_of(summary: RunSummary) -> str:
    """The run's status; summaries written before runs had one are 'unknown'."""
    return summary.status


def is_complete(summary: RunSummary) -> bool:
    return summary.status == "complete"


def company(summary: RunSummary) -> str:
    """Other harness runs that were live beside this one, in words ("" when none was seen): both
    shared the machine, and each measured less than it would alone."""
    others = summary.fingerprint.volatile.get("other_live_runs") or []
    named = [f"pid {o.get('pid')} ({o.get('backend')})" for o in others if isinstance(o, dict)]
    if not named:
        return ""
    return (f"another harness run was live beside this one ({', '.join(named)}): both shared the machine "
            "and may have measured less than alone")


def describe(summary: RunSummary) -> str:
    """One line for a banner or a table cell: 'complete', or the status with its detail."""
    state = summary.status
    if state == "running":
        return "incomplete: the run never finished (killed, or still running)"
    if state == "unknown":
        return "unknown: written before runs recorded their status"
    detail = summary.run.detail if summary.run else ""
    return f"{state}: {detail}" if detail and state != "complete" else state
