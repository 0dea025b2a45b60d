"""The result store: reports/<config-id>/<UTC timestamp>/.

Every trial is on disk before the next one starts: trials.csv is rewritten through a temporary
file and an atomic rename after each trial, so it is always whole (never cut mid-row, even on a
full disk), and the trials already on it stay readable. Estimates and the summary go to
summary.json, written the same way (strict JSON: no NaN or Infinity).

A resumed store (`ResultStore.resume`) reopens an interrupted run folder: the trials on disk are
replayed in order to the experiments that ask for them again, so finished trials are never
measured twice (harness/resume.py).
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from harness.analysis.estimate import Estimate
from harness.analysis.latency import latencies_ns, latency_summary
from harness.analysis.loss import loss_by_sequence
from harness.files import WriteFailed, make_unique_dir, replacing, write_atomic
from harness.platforms.base import TrialResult
from harness.report.fingerprint import config_id
from harness.report.stored import read_summary, read_trial_rows
from harness.report.status import new_run
from harness.spec import TrialSpec


def _jsonable(value: Any) -> Any:
    """Plain JSON values; a number that is not finite has no JSON form and is written as null."""
    if isinstance(value, Estimate):
        return _jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def spec_columns(experiment: str, spec: TrialSpec, extra: dict[str, Any]) -> dict[str, Any]:
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
    def __init__(self, root: Path | str, fingerprint: dict[str, Any], platform_name: str,
                 path: Path | None = None) -> None:
        self.fingerprint = fingerprint
        self.config_id = config_id(fingerprint)
        if path is None:
            # mkdir is atomic: two runs in the same second keep separate folders (-2, -3, ...)
            path = make_unique_dir(Path(root) / self.config_id, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        self.path = path
        try:
            (self.path / "events").mkdir(exist_ok=True)
        except OSError as exc:
            raise WriteFailed(self.path / "events", exc.strerror or str(exc)) from None
        self.platform_name = platform_name
        self.estimates: dict[str, Any] = {}
        self.sections: dict[str, Any] = {}   # experiment name -> extra data for the report
        self.checks: list[dict[str, Any]] = []  # expectation checks made by scenarios
        self.ground_truth: dict[str, Any] | None = None
        self.run = new_run(utc_now())  # see report/status.py
        self.extra: dict[str, Any] = {}   # further top-level sections (cleanup, other live runs)
        self.rows: list[dict[str, Any]] = []
        self._columns: list[str] = []
        # where the run is: {"experiment", "trial", "running"}; listeners hear every change
        self.position: dict[str, Any] = {"experiment": None, "trial": None, "running": False}
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.trial_listeners: list[Callable[[dict[str, Any], float], None]] = []  # (row, wall s), see trial.py
        self.replay: Any = None  # harness.resume.Replay when this run continues an interrupted one

    # -- where the run is --------------------------------------------------------------------
    def at(self, experiment: str, running: bool = True) -> None:
        """The run is now in `experiment` (a trial of it is running, or e.g. calibration)."""
        self.position = {"experiment": experiment, "trial": len(self.rows) if running else None,
                         "running": running}
        for listener in self.listeners:
            listener(dict(self.position))

    @property
    def _trials(self) -> int:
        return len(self.rows)

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    # -- trials ------------------------------------------------------------------------------
    def record_trial(self, experiment: str, result: TrialResult, keep_events: bool = False,
                     derived: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Summarise one trial into a row, put it on disk at once, and return it. `derived`:
        columns computed from the whole result that an experiment needs again on resume."""
        loss = loss_by_sequence(result.sent, result.delivered)
        lat = latency_summary(latencies_ns(result.sent, result.delivered))
        t = result.sent["t_send_ns"].to_numpy()
        row: dict[str, Any] = {
            "trial": len(self.rows), **spec_columns(experiment, result.spec, {}),
            "send_span_s": float(t.max() - t.min()) / 1e9 if len(t) else 0.0,
            **loss.to_dict(),
            **{f"latency_{k}_us" if k != "count" else "latency_samples": v for k, v in lat.items()},
            "t_release_ns": result.t_release_ns,
        }
        if result.generator:
            row.update({f"gen_{k}": v for k, v in result.generator.items()})
        row.update(extra)
        row.update(derived or {})
        row = {k: _jsonable(v) for k, v in row.items()}
        if keep_events:
            name = f"{row['trial']:04d}-{experiment}"
            self._write_frame(self.path / "events" / f"{name}-delivered.csv.gz", result.delivered)
            self._write_frame(self.path / "events" / f"{name}-sent.csv.gz", result.sent)
            if result.ground_truth is not None and "series" in result.ground_truth:
                self._write_frame(self.path / "events" / f"{name}-truth.csv.gz",
                                  pd.DataFrame(result.ground_truth["series"]))
        self._append_row(row)
        if result.ground_truth and self.ground_truth is None:
            gt = result.ground_truth
            self.ground_truth = _jsonable({"params": gt["params"], "true_burst_capacity": gt["true_burst_capacity"]})
        self.position["running"] = False
        return row

    def adopt(self, row: dict[str, Any]) -> None:
        """A stored trial replayed by a resumed run: counted, already on disk."""
        self.rows.append(row)
        self._columns += [k for k in row if k not in self._columns]
        self.position["running"] = False

    def _append_row(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        for key in row:  # experiments add their own columns; keep the file rectangular
            if key not in self._columns:
                self._columns.append(key)
        self._write_rows()

    def flush_trials(self) -> None:
        """Write trials.csv again from the rows counted: a signal can cut the write that follows a
        trial, which leaves the trial counted (and whole in memory) but not on disk."""
        if self.rows:
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

    def load_frame(self, name: str) -> pd.DataFrame | None:
        path = self.path / "events" / f"{name}.csv.gz"
        return pd.read_csv(path) if path.exists() else None

    def trials(self, experiment: str | None = None) -> pd.DataFrame:
        if not self.trials_csv.exists():
            return pd.DataFrame()
        frame = pd.read_csv(self.trials_csv)
        return frame if experiment is None else frame[frame["experiment"] == experiment].reset_index(drop=True)

    # -- estimates and the summary -----------------------------------------------------------
    def set_estimate(self, name: str, value: Any) -> None:
        self.estimates[name] = value
        self.write_summary()

    def add_check(self, name: str, passed: bool, measured: Any, expected: Any, message: str,
                  verdict: str | None = None, spread: dict[str, Any] | None = None) -> None:
        """verdict: pass / fail / inconclusive (analysis/verdict.py); default from `passed`."""
        self.checks.append({"name": name, "passed": bool(passed), "measured": measured,
                            "expected": expected, "message": message,
                            "verdict": verdict or ("pass" if passed else "fail"), "spread": spread or {}})
        self.write_summary()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "platform": self.platform_name,
            "config_id": self.config_id,
            "run": self.run,
            "fingerprint": self.fingerprint,
            "estimates": self.estimates,
            "checks": self.checks,
            "experiments": self.sections,
            "trials": len(self.rows),
            **self.extra,
        }
        if self.ground_truth is not None:
            out["ground_truth"] = self.ground_truth
        return _jsonable(out)

    def write_summary(self) -> Path:
        path = self.path / "summary.json"
        write_atomic(path, json.dumps(self.summary(), indent=2, default=str, allow_nan=False))
        return path

    # -- continuing an interrupted run -------------------------------------------------------
    @classmethod
    def reopen(cls, path: Path | str) -> tuple["ResultStore", dict[str, Any]]:
        """The store of an existing run folder, with its trials loaded (not yet replayed), and the
        stored summary it was written with. Bad files: ValueError naming the file."""
        path = Path(path)
        summary = read_summary(path / "summary.json")
        rows = read_trial_rows(path / "trials.csv") if (path / "trials.csv").exists() else []
        store = cls("", summary["fingerprint"], summary["platform"], path=path)
        store.config_id = summary["config_id"]
        store.stored_rows = rows
        return store, summary
