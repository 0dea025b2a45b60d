"""The result store: reports/<config-id>/<UTC timestamp>/.

Every trial is appended to trials.csv (and flushed) before the next one starts, so an
interrupted run still leaves its evidence. Estimates and the summary go to summary.json.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.estimate import Estimate
from harness.analysis.latency import latencies_ns, latency_summary
from harness.analysis.loss import loss_by_sequence
from harness.platforms.base import TrialResult
from harness.report.fingerprint import config_id
from harness.report.status import new_run


def _jsonable(value: Any) -> Any:
    if isinstance(value, Estimate):
        return _jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class ResultStore:
    def __init__(self, root: Path | str, fingerprint: dict[str, Any], platform_name: str) -> None:
        self.fingerprint = fingerprint
        self.config_id = config_id(fingerprint)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.path = Path(root) / self.config_id / stamp
        suffix = 1
        while self.path.exists():  # two runs in the same second keep separate folders
            suffix += 1
            self.path = Path(root) / self.config_id / f"{stamp}-{suffix}"
        (self.path / "events").mkdir(parents=True)
        self.platform_name = platform_name
        self.estimates: dict[str, Any] = {}
        self.sections: dict[str, Any] = {}   # experiment name -> extra data for the report
        self.checks: list[dict[str, Any]] = []  # expectation checks made by scenarios
        self.ground_truth: dict[str, Any] | None = None
        self.run = new_run(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))  # see report/status.py
        self._trials = 0
        self._csv_columns: list[str] | None = None

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    def record_trial(self, experiment: str, result: TrialResult, keep_events: bool = False,
                     **extra: Any) -> dict[str, Any]:
        """Summarise one trial into a row, append it to trials.csv at once, and return it."""
        loss = loss_by_sequence(result.sent, result.delivered)
        lat = latency_summary(latencies_ns(result.sent, result.delivered))
        spec = result.spec
        t = result.sent["t_send_ns"].to_numpy()
        row: dict[str, Any] = {
            "trial": self._trials, "experiment": experiment, "label": spec.label,
            "count": spec.traffic.count, "pacing": spec.traffic.pacing,
            "offered_rate_per_s": spec.traffic.rate_per_s,
            "send_span_s": float(t.max() - t.min()) / 1e9 if len(t) else 0.0,
            "cost_us": spec.subscriber.cost_us, "cost_cv": spec.subscriber.cost_cv,
            "mode": spec.subscriber.mode, "hold": spec.subscriber.hold,
            "templated": spec.template is not None,
            **loss.to_dict(),
            **{f"latency_{k}_us" if k != "count" else "latency_samples": v for k, v in lat.items()},
        }
        if result.generator:
            row.update({f"gen_{k}": v for k, v in result.generator.items()})
        row.update(extra)
        self._append_row(row)
        if keep_events:
            name = f"{row['trial']:04d}-{experiment}"
            result.delivered.to_csv(self.path / "events" / f"{name}-delivered.csv.gz", index=False)
            result.sent.to_csv(self.path / "events" / f"{name}-sent.csv.gz", index=False)
        if result.ground_truth and self.ground_truth is None:
            gt = result.ground_truth
            self.ground_truth = {"params": gt["params"], "true_burst_capacity": gt["true_burst_capacity"]}
        self._trials += 1
        return row

    def _append_row(self, row: dict[str, Any]) -> None:
        new_file = self._csv_columns is None
        if new_file:
            self._csv_columns = list(row)
        else:
            for key in row:  # experiments add their own columns; keep the file rectangular
                if key not in self._csv_columns:
                    self._rewrite_with_column(key)
        with open(self.trials_csv, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._csv_columns)
            if new_file:
                writer.writeheader()
            writer.writerow({k: row.get(k) for k in self._csv_columns})
            f.flush()

    def _rewrite_with_column(self, key: str) -> None:
        frame = pd.read_csv(self.trials_csv)
        frame[key] = None
        self._csv_columns.append(key)
        frame.to_csv(self.trials_csv, index=False)

    def save_frame(self, name: str, frame: pd.DataFrame) -> Path:
        """Keep a frame that a plot needs, so that the report can be rendered again from disk."""
        path = self.path / "events" / f"{name}.csv.gz"
        frame.to_csv(path, index=False)
        return path

    def load_frame(self, name: str) -> pd.DataFrame | None:
        path = self.path / "events" / f"{name}.csv.gz"
        return pd.read_csv(path) if path.exists() else None

    def trials(self, experiment: str | None = None) -> pd.DataFrame:
        if not self.trials_csv.exists():
            return pd.DataFrame()
        frame = pd.read_csv(self.trials_csv)
        return frame if experiment is None else frame[frame["experiment"] == experiment].reset_index(drop=True)

    def set_estimate(self, name: str, value: Any) -> None:
        self.estimates[name] = value
        self.write_summary()

    def add_check(self, name: str, passed: bool, measured: Any, expected: Any, message: str) -> None:
        self.checks.append({"name": name, "passed": bool(passed), "measured": measured,
                            "expected": expected, "message": message})
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
            "trials": self._trials,
        }
        if self.ground_truth is not None:
            out["ground_truth"] = self.ground_truth
        return _jsonable(out)

    def write_summary(self) -> Path:
        path = self.path / "summary.json"
        path.write_text(json.dumps(self.summary(), indent=2, default=str))
        return path
