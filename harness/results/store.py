"""The result store of one run: reports/<config-id>/<UTC timestamp>/.

It holds the run's summary (a RunSummary, results/records.py) and its trial rows, and writes
them; it computes nothing. Every trial is on disk before the next one starts: trials.csv is
rewritten through a temporary file and an atomic rename after each trial, so it is always whole
(never cut mid-row, even on a full disk), and the trials already on it stay readable. Every
result set here is written to summary.json at once, the same way (strict JSON: no NaN or
Infinity), so an interrupted run keeps what it measured.

A reopened store (`ResultStore.reopen`) continues an interrupted run folder: the trials on disk
are replayed in order to the experiments that ask for them again (results/replay.py).
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from harness.files import WriteFailed, make_unique_dir, replacing, write_atomic
from harness.results.fingerprint import config_id
from harness.results.read import read_summary, read_trial_rows
from harness.results.records import (BaselineSection, Check, DrainSection, Estimate, Expectations, Fingerprint,
                                     HeadroomResult, InlineCopyResult, NdrResult, OnsetResult, PlatformFacts, ReplayResult, RunStatus,
                                     RunSummary, TemplateResult, TrialRow, Twin, plain)
from harness.spec import TrialSpec

Experiment = (DrainSection | OnsetResult | InlineCopyResult | TemplateResult | Expectations | BaselineSection
              | ReplayResult | HeadroomResult)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def spec_columns(experiment: str, spec: TrialSpec, extra: Mapping[str, Any]) -> TrialRow:
    """The part of a trial row that the trial's request decides (nothing measured): a resumed run
    replays a stored trial only where these agree."""
    return {"experiment": experiment, "label": spec.label, "count": spec.traffic.count,
            "pacing": spec.traffic.pacing, "offered_rate_per_s": spec.traffic.rate_per_s,
            "cost_us": spec.subscriber.cost_us, "cost_cv": spec.subscriber.cost_cv,
            "mode": spec.subscriber.mode, "hold": spec.subscriber.hold,
            "templated": spec.template is not None, **extra}


def cell(value: Any) -> str:
    """How a value is written into trials.csv (and compared when a run is resumed)."""
    return "" if value is None else str(value)


class ResultStore:
    def __init__(self, root: Path | str, fingerprint: Fingerprint | Mapping[str, Any], platform_name: str,
                 path: Path | None = None) -> None:
        fp = fingerprint if isinstance(fingerprint, Fingerprint) else Fingerprint.from_json(fingerprint)
        self.summary = RunSummary(platform_name, config_id(fp), RunStatus(started_utc=utc_now()), fp)
        if path is None:
            # mkdir is atomic: two runs in the same second keep separate folders (-2, -3, ...)
            path = make_unique_dir(Path(root) / self.config_id, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        self.path = path
        try:
            (self.path / "events").mkdir(exist_ok=True)
        except OSError as exc:
            raise WriteFailed(self.path / "events", exc.strerror or str(exc)) from None
        self.rows: list[TrialRow] = []
        self.stored_rows: list[TrialRow] = []  # a reopened run's trials, before they are replayed
        self._columns: list[str] = []
        # where the run is: {"experiment", "trial", "running"}; listeners hear every change
        self.position: dict[str, Any] = {"experiment": None, "trial": None, "running": False}
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.trial_listeners: list[Callable[[TrialRow, float], None]] = []  # (row, wall s), see experiments/trial.py
        self.replay: Any = None  # results.replay.Replay when this run continues an interrupted one

    @property
    def config_id(self) -> str:
        return self.summary.config_id

    @property
    def platform_name(self) -> str:
        return self.summary.platform

    @property
    def fingerprint(self) -> Fingerprint:
        return self.summary.fingerprint

    @property
    def run(self) -> RunStatus:
        return self.summary.run

    # -- where the run is --------------------------------------------------------------------
    def at(self, experiment: str, running: bool = True) -> None:
        """The run is now in `experiment` (a trial of it is running, or e.g. calibration)."""
        self.position = {"experiment": experiment, "trial": len(self.rows) if running else None,
                         "running": running}
        for listener in self.listeners:
            listener(dict(self.position))

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    # -- trials ------------------------------------------------------------------------------
    def append_trial(self, row: TrialRow, events: Mapping[str, pd.DataFrame] | None = None) -> TrialRow:
        """Put a trial's row on disk at once (numbered in order) with its kept event frames
        (events/<trial>-<experiment>-<name>.csv.gz), and return it."""
        row = {"trial": len(self.rows), **{k: plain(v) for k, v in row.items() if k != "trial"}}
        for name, frame in (events or {}).items():
            self._write_frame(self.path / "events" / f"{row['trial']:04d}-{row['experiment']}-{name}.csv.gz", frame)
        self.rows.append(row)
        for key in row:  # experiments add their own columns; keep the file rectangular
            if key not in self._columns:
                self._columns.append(key)
        self._write_rows()
        self.position["running"] = False
        return row

    def adopt(self, row: TrialRow) -> None:
        """A stored trial replayed by a resumed run: counted, already on disk."""
        self.rows.append(row)
        self._columns += [k for k in row if k not in self._columns]
        self.position["running"] = False

    @property
    def replaying(self) -> bool:
        """A resumed run that has not yet replayed every stored trial: its folder is the stored run's
        until it has (a resume that stops partway leaves the folder as it was)."""
        return self.replay is not None and self.replay.remaining > 0

    def flush_trials(self) -> None:
        """Write trials.csv again from the rows counted: a signal can cut the write that follows a
        trial, which leaves the trial counted (and whole in memory) but not on disk."""
        if self.rows and not self.replaying:
            self._write_rows()

    def _write_rows(self) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self._columns)
        for row in self.rows:
            writer.writerow([cell(row.get(k)) for k in self._columns])
        write_atomic(self.trials_csv, out.getvalue())

    def _write_frame(self, path: Path, frame: pd.DataFrame) -> Path:
        with replacing(path) as tmp:
            frame.to_csv(tmp, index=False)
        return path

    def save_frame(self, name: str, frame: pd.DataFrame) -> Path:
        """Keep a frame that a plot needs, so that the report can be rendered again from disk."""
        return self._write_frame(self.path / "events" / f"{name}.csv.gz", frame)

    def trials(self, experiment: str | None = None) -> pd.DataFrame:
        if not self.trials_csv.exists():
            return pd.DataFrame()
        frame = pd.read_csv(self.trials_csv)
        return frame if experiment is None else frame[frame["experiment"] == experiment].reset_index(drop=True)

    # -- results: each is on disk as soon as it is set -----------------------------------------
    def set_estimate(self, key: str, estimate: Estimate) -> None:
        self.summary.estimates.set(key, estimate)
        self.write_summary()

    def set_ndr(self, result: NdrResult) -> None:
        """The NDR of one callback cost, in place of an earlier one of that cost."""
        rows = [r for r in self.summary.estimates.ndr if r.callback_cost_us != result.callback_cost_us]
        self.summary.estimates.ndr = sorted([*rows, result], key=lambda r: r.callback_cost_us)
        self.write_summary()

    def set_experiment(self, name: str, record: Experiment | PlatformFacts) -> None:
        """An experiment's result beside its estimates, or a platform's facts, under its name."""
        self.summary.experiments.set(name, record)
        self.write_summary()

    def add_check(self, check: Check) -> None:
        self.summary.checks.append(check)
        self.write_summary()

    def set_ground_truth(self, truth: Mapping[str, Any]) -> None:
        """The model's parameters, once (kept for the reader; no estimator reads them)."""
        if self.summary.ground_truth is None:
            self.summary.ground_truth = plain(dict(truth))

    def set_run(self, run: RunStatus) -> None:
        self.summary.run = run
        self.write_summary()

    def set_measured(self, facts: Mapping[str, Any]) -> None:
        """What the platform measured about itself when it opened (generator rate, subscribers)."""
        self.summary.fingerprint.measured = dict(facts)
        self.write_summary()

    def note(self, key: str, value: Any) -> None:
        """A volatile fact of this run (leftovers removed, other live runs), written with the next write."""
        self.summary.fingerprint.volatile[key] = value

    def continue_from(self, stored: RunSummary, expected: Expectations) -> None:
        """Go on with an interrupted run: its trials are replayed first (results/replay.py), its
        start time and ground truth stay, and the run says when it was resumed."""
        from harness.results.replay import Replay
        self.replay = Replay(self.path, self.stored_rows)
        self.summary.ground_truth = stored.ground_truth
        self.summary.run = RunStatus(started_utc=(stored.run.started_utc if stored.run else None) or utc_now())
        self.summary.fingerprint.volatile.setdefault("resumed", []).append(
            {"timestamp_utc": utc_now(), "stored_trials": len(self.stored_rows)})
        self.summary.experiments.expected = expected
        self.write_summary()

    @property
    def checks(self) -> list[Check]:
        return self.summary.checks

    def to_json(self) -> dict[str, Any]:
        self.summary.trials = len(self.rows)
        return self.summary.to_json()

    def write_summary(self) -> Path:
        path = self.path / "summary.json"
        if not self.replaying:
            write_atomic(path, json.dumps(self.to_json(), indent=2, default=str, allow_nan=False))
        return path

    # -- continuing an interrupted run -------------------------------------------------------
    @classmethod
    def reopen(cls, path: Path | str) -> tuple["ResultStore", RunSummary]:
        """The store of an existing run folder, with its trials loaded (not yet replayed), and the
        stored summary it was written with. Bad files: ValueError naming the file."""
        path = Path(path)
        summary = read_summary(path / "summary.json")
        rows = read_trial_rows(path / "trials.csv") if (path / "trials.csv").exists() else []
        store = cls("", summary.fingerprint, summary.platform, path=path)
        store.summary.config_id = summary.config_id  # results come again as the trials are replayed
        store.stored_rows = rows
        return store, summary


def write_twin(run: Path | str, twin: Twin) -> Path:
    """twin.json beside the run's summary: the model fitted to the run and its held-out check
    (harness/twin/), written whole or not at all."""
    path = Path(run) / "twin.json"
    write_atomic(path, json.dumps(twin.to_json(), indent=2, allow_nan=False))
    return path
