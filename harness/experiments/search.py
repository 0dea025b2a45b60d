"""The trials of one sustained-rate search: each is run at a rate for a length, analysed
(analysis/sustained.py), recorded, and judged; a trial whose generator missed its load is run
again. The NDR searches (ndr.py, ndr_loss.py) and the loss onset (onset.py) share it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.backlog import backlog_over_time, downsample_max
from harness.analysis.sustained import analyse_sustained
from harness.analysis.trust import generator_short
from harness.experiments.trial import run_recorded, sustained_spec
from harness.platforms.base import Platform, TrialResult
from harness.results.records import TrialRow
from harness.results.store import ResultStore
from harness.spec import TrialSpec

SLOPE_HELD = 0.75  # a growth that keeps this share of its slope in a trial twice as long is no climb


@dataclass(frozen=True)
class NdrConfig:
    loss_tolerance: float = 0.0     # 0: NDR; e.g. 0.001: PDR at 0.1 % (loss-only search)
    resolution: float = 0.02        # trend search: stop when high - low <= resolution * low;
                                    # loss search: <= resolution * max_rate (ndr_bench pdr_error)
    max_iterations: int = 12
    trial_s: float = 0.25           # trend search: first length of a trial, at least ...
    trial_events: int = 2500        # ... this many events (a queue near saturation needs a while) ...
    max_trial_s: float = 16.0       # ... doubled while undecided, up to this
    max_confirm_s: float = 600.0    # the loss trial that confirms the result
    attempts: int = 3               # runs of a trial whose generator missed its load
    max_spread: float = 0.025       # conclusive only if mu varied less (relative): two runs then agree within 5 %
    max_trials: int = 40            # trend search: all trials, repeats and extensions included
    quiet_s: float | None = None    # drain wait after a sustained trial (None: the base spec's)
    min_duration_s: float = 0.5     # loss search: trial length bounds
    max_duration_s: float = 600.0
    max_rate_per_s: float | None = None  # default: twice the callback's own rate 1/cost
    confirm_factor: float = 3.0     # loss search: RFC 2544 section 24, confirm with a longer trial
    max_confirmations: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.loss_tolerance < 1 or not 0 < self.resolution < 1 or self.max_iterations < 1:
            raise ValueError("ndr: loss_tolerance in [0,1), resolution in (0,1), max_iterations >= 1")
        if not 0 < self.trial_s <= self.max_trial_s or self.attempts < 1:
            raise ValueError("ndr: 0 < trial_s <= max_trial_s, attempts >= 1")

@dataclass
class Judged:
    """A sustained trial, analysed. trials.csv keeps each trial's own verdict; the row here may
    carry the search's decision about it (a point estimate at the longest trial, a slope that held
    up in a trial twice as long). Everything the search reads is in the row, so that a resumed run,
    which replays stored rows, decides the same."""

    row: TrialRow

    @property
    def verdict(self) -> str:
        return self.row["verdict"]

def trace_name(trial: int) -> str:
    """The stored backlog-over-time frame of a sustained trial (events/backlog-NNNN.csv.gz)."""
    return f"backlog-{int(trial):04d}"


class SustainedTrials:
    """The trials of one NDR search and what they showed."""

    def __init__(self, platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float,
                 capacity: int | None, config: NdrConfig, experiment: str, tags: dict[str, Any]) -> None:
        self.platform, self.base, self.store, self.cost_us = platform, base, store, cost_us
        self.capacity, self.config, self.experiment, self.tags = capacity, config, experiment, tags
        self.judged: list[Judged] = []
        self.untrusted: list[int] = []
        self.notes: list[str] = []

    @property
    def share(self) -> float:
        """Share of the offered packets that become events (a template filters the rest)."""
        return (self.judged[-1].row.get("expected_share") if self.judged else None) or 1.0

    def trial(self, rate: float, duration_s: float, **tags: Any) -> Judged:
        spec = sustained_spec(self.base, self.cost_us, rate, duration_s, quiet_s=self.config.quiet_s)
        box: dict[str, Any] = {}

        def analyse(result: TrialResult) -> TrialRow:
            backlog = backlog_over_time(result.sent, result.delivered)
            columns = analyse_sustained(result, self.capacity, self.config.resolution / 2,
                                        self.config.loss_tolerance, backlog)
            box["trace"] = _trace(result, backlog)
            return columns

        _, row = run_recorded(self.platform, spec, self.store, self.experiment, derive=analyse,
                              search_cost_us=self.cost_us, **self.tags, **tags)
        if "trace" in box:  # a fresh trial (a replayed one stored its trace the first time)
            self.store.save_frame(trace_name(row["trial"]), box["trace"])
        judged = Judged(row)
        self.judged.append(judged)
        if not row["trusted"]:
            self.untrusted.append(int(row["trial"]))
        return judged

    def attempt(self, rate: float, duration_s: float, **tags: Any) -> Judged:
        """A trial the generator delivered, tried up to `attempts` times (the last one is returned
        even if untrusted; the caller must look)."""
        for _ in range(self.config.attempts):
            j = self.trial(rate, duration_s, **tags)
            if j.row["trusted"] or generator_short(generator_of(j.row), rate):
                return j
        return j

    def judge(self, rate: float) -> Judged:
        """Run trend trials at `rate` until one decides (doubling the length while undecided)."""
        duration = max(self.config.trial_s, self.config.trial_events / (rate * self.share))
        previous: float | None = None  # slope of a weak overload in the trial half as long
        while True:
            j = self.attempt(rate, duration)
            weak = j.verdict == "overloaded" and j.row["verdict_by"] == "backlog slope" and j.row["slope_weak"]
            # a weak overload by slope may be a stable queue still climbing to its level, whose apparent
            # slope halves each time the trial doubles: look longer, unless it held up the last time
            if weak and previous is not None and j.row["slope_per_s"] >= SLOPE_HELD * previous:
                j.row["verdict_by"] = "backlog slope (held up in a trial twice as long)"
                break
            previous = j.row["slope_per_s"] if weak or j.verdict == "undecided" else None
            if not (weak or j.verdict == "undecided") or duration * 2 > max(
                    self.config.max_trial_s, self.config.trial_events / (rate * self.share)):
                break
            duration *= 2
        if j.verdict == "undecided":  # as long as allowed and still undecided: the point estimate decides
            j.row["verdict"] = "overloaded" if (j.row["slope_per_s"] or 0) > j.row["slope_margin_per_s"] else "sustained"
            j.row["verdict_by"] = "backlog slope (point estimate: undecided at the longest trial)"
            self.notes.append(f"{rate:.0f}/s undecided after {duration:g} s: judged by the slope's point estimate")
        return j


def _trace(result: TrialResult, backlog: pd.DataFrame) -> pd.DataFrame:
    """Backlog over time from the first send, in seconds, with the sending period marked."""
    t0 = int(result.sent["t_send_ns"].min())
    t, b = downsample_max(backlog["t_ns"].to_numpy(), backlog["backlog"].to_numpy())
    return pd.DataFrame({"t_s": (np.asarray(t) - t0) / 1e9, "backlog": b,
                         "send_end_s": (int(result.sent["t_send_ns"].max()) - t0) / 1e9})

def generator_of(row: TrialRow) -> dict[str, float] | None:
    if "gen_achieved_rate_per_s" not in row:
        return None
    return {"achieved_rate_per_s": row["gen_achieved_rate_per_s"]}
