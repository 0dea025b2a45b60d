"""Continuing an interrupted run (`pytest scenarios/ --resume RUN_DIR`).

The resumed session runs the same scenarios with the same options (taken from the run folder)
into the same folder. Every trial that the experiments ask for is first looked up in the stored
trials, in order: while the request matches the next stored trial (same experiment and spec), the
stored row is handed back and the platform does not run it; the first trial past the stored ones
runs for real. Searches decide from rows only, so they take the same path as the first time, and
on the model (seeded per trial) the resumed summary equals an uninterrupted run's.
"""
from __future__ import annotations

from pathlib import Path


from harness.platforms.base import TrialResult
from harness.results.read import read_events
from harness.results.records import TrialRow
from harness.results.store import cell, spec_columns
from harness.spec import TrialSpec


class ResumeMismatch(ValueError):
    """The resumed run asked for a different trial than the stored run made at that point."""


class Replay:
    def __init__(self, run_dir: Path, rows: list[TrialRow]) -> None:
        self.run_dir = run_dir
        self.rows = rows
        self.next = 0

    @property
    def remaining(self) -> int:
        return len(self.rows) - self.next

    def take(self, experiment: str, spec: TrialSpec, extra: TrialRow) -> TrialRow | None:
        """The stored row for this request, or None once every stored trial has been replayed."""
        if self.next >= len(self.rows):
            return None
        row = self.rows[self.next]
        wanted = spec_columns(experiment, spec, extra)
        differ = [k for k, v in wanted.items() if cell(v) != cell(row.get(k))]
        if differ:
            k = differ[0]
            raise ResumeMismatch(f"cannot resume {self.run_dir}: its trial {self.next} has {k}={cell(row.get(k))!r}, "
                                 f"this run asks for {k}={cell(wanted[k])!r} (resume with the scenarios and "
                                 "options of the interrupted run)")
        self.next += 1
        return row

    def result(self, row: TrialRow, spec: TrialSpec, experiment: str) -> TrialResult:
        """A kept trial rebuilt from its event files (only trials recorded with keep_events)."""
        events = self.run_dir / "events"
        name = f"{row['trial']:04d}-{experiment}"
        try:
            sent = read_events(events / f"{name}-sent.csv.gz", ("seq", "t_send_ns"))
            delivered = read_events(events / f"{name}-delivered.csv.gz", ("seq",))
            truth_path = events / f"{name}-truth.csv.gz"
            truth = {"series": read_events(truth_path)} if truth_path.exists() else None
        except ValueError as exc:
            raise ResumeMismatch(f"cannot resume {self.run_dir}: {exc}") from None
        return TrialResult(spec=spec, sent=sent, delivered=delivered, t_release_ns=row.get("t_release_ns"),
                           ground_truth=truth)
