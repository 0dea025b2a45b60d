"""Finding stored runs: reports/<config-id>/<UTC timestamp>/summary.json.

A path given by a user may be a run folder, a configuration folder (its runs) or a root of
configuration folders. Only complete runs are judged (history, comparison, baselines); the others
are listed with their status so that nobody wonders where a run went.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.results.read import read_summary, read_trials
from harness.results.records import RunSummary
from harness.results.status import describe


@dataclass
class Run:
    """A stored run: its folder and its summary; its trials are read once, when first asked for."""

    path: Path
    summary: RunSummary
    _trials: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.summary.status

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def status_text(self) -> str:
        return describe(self.summary)

    def trials(self) -> pd.DataFrame:
        if self._trials is None:
            self._trials = read_trials(self.path / "trials.csv")
        return self._trials

    @property
    def started(self) -> str:
        started = self.summary.run.started_utc if self.summary.run else None
        return str(started or self.summary.fingerprint.volatile.get("timestamp_utc") or self.name)


def load_summary(path: Path) -> RunSummary:
    return read_summary(path)  # checked: one line naming the file when it does not fit


def load_run(path: Path) -> Run:
    return Run(path, load_summary(path / "summary.json"))


def is_run(path: Path) -> bool:
    return (path / "summary.json").is_file()


def is_config(path: Path) -> bool:
    return path.is_dir() and not is_run(path) and any(is_run(p) for p in path.iterdir() if p.is_dir())


@dataclass(frozen=True)
class Damaged:
    """A run folder whose files could not be read: skipped, and named wherever its folder is read."""

    path: Path
    reason: str

    def describe(self) -> str:
        return f"{self.path.name} (damaged: {self.reason})"


def scan(config: Path) -> tuple[list[Run], list[Damaged]]:
    """Every readable run of one configuration folder, oldest first, and the damaged ones: one bad
    summary hides nothing else of the configuration."""
    if not config.is_dir():
        raise ValueError(f"{config} is not a folder")
    if is_run(config):
        raise ValueError(f"{config} is a run folder; give its configuration folder, {config.parent}")
    runs, damaged = [], []
    for p in sorted(config.iterdir()):
        if not (p.is_dir() and is_run(p)):
            continue
        try:
            run = load_run(p)
            run.trials()  # read now: a damaged table hides no more than its own run
            runs.append(run)
        except ValueError as exc:
            damaged.append(Damaged(p, str(exc)))
    if not runs:
        why = f"; damaged: {damaged[0].reason}" if damaged else ""
        raise ValueError(f"no readable run folder (with summary.json) under {config}{why}")
    return sorted(runs, key=lambda r: (r.started, r.name)), damaged


def runs_of(config: Path) -> list[Run]:
    """Every readable run of one configuration folder, oldest first (scan() names the damaged)."""
    return scan(config)[0]


def latest_complete(config: Path, runs: list[Run] | None = None) -> tuple[Run, list[Run]]:
    """The newest complete run of a configuration (of `runs`, when already scanned), and the newer
    ones that were skipped."""
    runs = runs_of(config) if runs is None else runs
    done = [r for r in runs if r.complete]
    if not done:
        flagged = ", ".join(f"{r.name} ({r.status_text})" for r in runs[-3:])
        raise ValueError(f"{config} has no complete run (latest: {flagged})")
    newest = done[-1]
    return newest, [r for r in runs if r.started > newest.started or (r.started == newest.started and r.name > newest.name)]


def config_folders(path: Path) -> list[Path]:
    """A configuration folder, or every configuration folder under a root."""
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if is_config(path):
        return [path]
    found = sorted(p for p in path.iterdir() if is_config(p)) if path.is_dir() else []
    if not found:
        raise ValueError(f"no configuration folder (with run folders) under {path}")
    return found
