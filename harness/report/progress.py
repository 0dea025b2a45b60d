"""Live progress: one line per trial, written when the trial has ended and is on disk (never
during a trial: printing could disturb its timing). The same lines go to progress.log in the
run folder, whether or not the terminal shows them.

A line names the experiment, the burst size or the offered rate, what was delivered and lost,
the trial's length, and the elapsed and estimated remaining time of the search it belongs to.
A search is a run of consecutive trials of one experiment (and one callback cost); its expected
length comes from the profile (`SearchPlan`), so the remaining time is an estimate ("~").
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.results.records import TrialRow


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def _number(row: TrialRow, key: str) -> float | None:
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class SearchPlan:
    """How many trial units a search is expected to take (a confirmation of an NDR counts as
    `confirm_factor` units: it is that much longer)."""
    burst_repetitions: int = 1
    burst_verify: int = 1
    burst_sweep: int = 6
    ndr_resolution: float = 0.02
    ndr_confirm_factor: float = 3.0
    onset_repeats: int = 1

    def units(self, row: TrialRow) -> float:
        return self.ndr_confirm_factor if row.get("confirmation") is True else 1.0

    def expected_units(self, experiment: str, rows: list[TrialRow]) -> float | None:
        if experiment == "sustained":
            return 1 + math.ceil(math.log2(1 / self.ndr_resolution)) + self.ndr_confirm_factor
        if experiment == "burst":
            searching = [r for r in rows if (_number(r, "search") or 0) >= 0]
            if not any((_number(r, "lost") or 0) > 0 for r in searching):
                return None  # still growing: the length depends on where the first loss is
            growth = next(k for k, r in enumerate(searching, start=1) if (_number(r, "lost") or 0) > 0)
            return self.burst_repetitions * (growth + 3 + self.burst_verify) + self.burst_sweep
        if experiment == "inline_copy":
            return 2
        if experiment == "onset":
            return self.onset_repeats
        return 1


class Progress:
    """A trial listener (ResultStore.trial_listeners): formats, logs and optionally shows a line."""

    def __init__(self, log_path: Path, show: Callable[[str], None] | None, plan: SearchPlan | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log_path = log_path
        self.show = show
        self.plan = plan or SearchPlan()
        self.clock = clock
        self.started = clock()
        self._search: tuple | None = None
        self._search_started = 0.0
        self._rows: list[TrialRow] = []

    def _key(self, row: TrialRow) -> tuple:
        cost = _number(row, "search_cost_us")
        return (row.get("experiment"), cost, row.get("template"))

    def __call__(self, row: TrialRow, wall_s: float) -> None:
        now = self.clock()
        key = self._key(row)
        if key != self._search:
            self._search, self._search_started, self._rows = key, now - wall_s, []
        self._rows.append(row)
        line = self.line(row, wall_s, now)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self.show is not None:
            self.show(line)

    def line(self, row: TrialRow, wall_s: float, now: float) -> str:
        experiment = str(row.get("experiment"))
        cost = _number(row, "search_cost_us")
        name = experiment if cost is None else f"{experiment} {cost:g}us"
        rate = _number(row, "offered_rate_per_s")
        load = f"rate {rate:,.0f}/s" if rate else f"burst {int(_number(row, 'count') or 0):,}"
        if row.get("confirmation") is True:
            load += " (confirming)"
        span = _number(row, "send_span_s") or 0.0
        elapsed = now - self._search_started
        done = sum(self.plan.units(r) for r in self._rows)
        expected = self.plan.expected_units(experiment, self._rows)
        if expected is None:
            left = "left ?"
        elif done > expected:
            left = "longer than planned"
        else:
            left = f"~{_clock(elapsed / done * (expected - done))} left"
        return (f"wfpcap +{_clock(now - self.started)} {name} #{len(self._rows)}: {load}, "
                f"delivered {int(_number(row, 'delivered') or 0):,}, lost {int(_number(row, 'lost') or 0):,}, "
                f"trial {span:.2f} s ({wall_s:.2f} s wall); search {_clock(elapsed)}, {left}")
