"""One machine configuration over time (`wfpcap history CONFIG`).

Every run of the folder is listed with its status; the complete ones form one series per
estimate (value and the run's own spread), in which step changes are detected (changepoint.py)
and named by the run where they happened. report/history_page.py draws it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.judge.changepoint import Step, detect_steps
from harness.results import catalog
from harness.results.runs import Damaged, Run, scan
from harness.judge.spread import Reading, readings

@dataclass
class Series:
    key: str
    title: str
    unit: str
    runs: list[Run] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


@dataclass
class History:
    config: Path
    runs: list[Run]
    series: list[Series]
    damaged: list[Damaged] = field(default_factory=list)  # run folders that could not be read

    @property
    def complete(self) -> list[Run]:
        return [r for r in self.runs if r.complete]

    @property
    def steps(self) -> list[tuple[Series, Step]]:
        return [(s, step) for s in self.series for step in s.steps]


def build(config: Path) -> History:
    runs, damaged = scan(config)
    complete = [r for r in runs if r.complete]
    by_run = [readings(r.summary, r.trials()) for r in complete]
    keys = catalog.sort_keys({k for rs in by_run for k in rs if catalog.kind_of(k).gated})
    series = []
    for key in keys:
        s = None
        for run, rs in zip(complete, by_run):
            reading = rs.get(key)
            if reading is None or reading.value is None or reading.inconclusive:
                continue  # listed in the run table, kept out of the series
            s = s or Series(key, reading.title, reading.unit)
            s.runs.append(run)
            s.readings.append(reading)
        if s:
            s.steps = detect_steps([r.value for r in s.readings], [r.half_width for r in s.readings])
            series.append(s)
    return History(config, runs, series, damaged)
