"""The regression gate: a run against a baseline, estimate by estimate.

"Worse" is defined per estimate (results/catalog.py: a smaller buffer, a lower NDR, ...). A run
regresses on an estimate when it is worse than the baseline by more than the threshold AND its
measured spread does not reach the baseline's (a difference inside the measured spread is noise,
not a regression). A baseline is a run folder, a configuration folder (its latest complete run)
or a small JSON written by `wfpcap baseline save`, meant to be checked in.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.files import write_atomic
from harness.results import catalog
from harness.results.read import read_baseline
from harness.results.runs import Run, is_config, is_run, latest_complete, load_run, scan
from harness.judge.spread import Reading, readings

SCHEMA = "wfpcap-baseline/1"
DEFAULT_THRESHOLD_PCT = 5.0


@dataclass
class Baseline:
    source: str
    config_id: str
    platform: str
    runs: list[str]
    readings: dict[str, Reading]
    notes: list[str] = field(default_factory=list)  # run folders of the configuration that were skipped

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "saved_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "source": self.source, "config_id": self.config_id, "platform": self.platform, "runs": self.runs,
                "estimates": {k: asdict(r) for k, r in self.readings.items()}}


def _complete(run: Run) -> Run:
    if not run.complete:
        raise ValueError(f"{run.path} is not a complete run ({run.status_text}); a baseline must be complete")
    return run


def from_runs(runs: list[Run], source: str) -> Baseline:
    """One run as it is; several runs of one configuration as the median with the union of spreads."""
    per_run = [readings(r.summary, r.trials()) for r in runs]
    combined: dict[str, Reading] = {}
    for key in dict.fromkeys(k for rs in per_run for k in rs):
        seen = [rs[key] for rs in per_run if key in rs and rs[key].value is not None]
        if not seen:
            combined[key] = next(rs[key] for rs in per_run if key in rs)
            continue
        first = seen[0]
        doubts = "; ".join(dict.fromkeys(r.inconclusive for r in seen if r.inconclusive))
        combined[key] = Reading(key, first.title, first.unit, first.better,
                                statistics.median(r.value for r in seen),
                                min(r.low for r in seen), max(r.high for r in seen), inconclusive=doubts)
    last = runs[-1].summary
    return Baseline(source, last.config_id, last.platform or "?", [r.name for r in runs], combined)


def load(path: Path | str, last: int = 1) -> Baseline:
    path = Path(path)
    if path.is_file() and path.name != "summary.json":
        return _from_file(path)
    if path.is_file():
        return from_runs([_complete(load_run(path.parent))], str(path.parent))
    if is_run(path):
        return from_runs([_complete(load_run(path))], str(path))
    if is_config(path):
        found, damaged = scan(path)
        done = [latest_complete(path, found)[0]] if last <= 1 else [r for r in found if r.complete][-last:]
        if not done:
            raise ValueError(f"{path} has no complete run")
        baseline = from_runs(done, str(path))
        baseline.notes += [f"skipped {d.describe()}" for d in damaged]
        return baseline
    raise ValueError(f"baseline {path}: not a run folder, a configuration folder or a baseline JSON")


def _from_file(path: Path) -> Baseline:
    data = read_baseline(path)
    # which way is better is the catalogue's, not the file's: a hand-edited file cannot turn the gate off
    found = {k: Reading(**{**r, "better": catalog.kind_of(k).better if catalog.known(k) else r.get("better")})
             for k, r in data["estimates"].items()}
    return Baseline(str(path), data["config_id"], data["platform"], list(data["runs"]), found)


def save(source: Path | str, out: Path | str, last: int = 1) -> Baseline:
    baseline = load(source, last)
    write_atomic(out, json.dumps(baseline.to_json(), indent=2, allow_nan=False) + "\n")
    return baseline


@dataclass(frozen=True)
class Verdict:
    key: str
    title: str
    unit: str
    baseline: Reading
    current: Reading | None
    threshold: float   # fraction
    outcome: str  # "regression", "within spread", "ok", "better", "inconclusive", "not measured", "not gated"

    @property
    def change(self) -> float | None:
        if self.current is None or self.current.value is None or not self.baseline.value:
            return None
        return (self.current.value - self.baseline.value) / self.baseline.value

    @property
    def failed(self) -> bool:
        return self.outcome == "regression"

    def message(self) -> str:
        base, cur = self.baseline, self.current
        name = f"{self.title} ({self.key})"
        if cur is None:
            return f"{name}: not measured in this run (baseline {_num(base.value)})"
        if cur.value is None:
            return f"{name}: inconclusive, not detectable in this run ({cur.note}); baseline {_num(base.value)}"
        text = (f"{name}: {_num(cur.value)} {self.unit} now, baseline {_num(base.value)}: "
                f"{self.change:+.1%} (threshold {self.threshold:.0%})")
        spreads = f"baseline {_span(base)}, now {_span(cur)}"
        if self.outcome == "regression":
            return f"REGRESSION {text}, outside the measured spread ({spreads})"
        if self.outcome == "inconclusive":
            doubt = "; ".join(x for x in (f"baseline: {base.inconclusive}" if base.inconclusive else "",
                                          f"this run: {cur.inconclusive}" if cur.inconclusive else "") if x)
            return f"{text}: inconclusive, not judged ({doubt})"
        if self.outcome == "within spread":
            return f"{text}: inside the measured spread ({spreads}), not a regression"
        return f"{text}: {self.outcome}"


def _num(value: float | None) -> str:
    return "n/d" if value is None else (f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}")


def _span(r: Reading) -> str:
    return _num(r.value) if r.low == r.high else f"{_num(r.low)}..{_num(r.high)}"


def judge_one(base: Reading, cur: Reading | None, threshold: float) -> Verdict:
    def verdict(outcome: str) -> Verdict:
        return Verdict(base.key, base.title, base.unit, base, cur, threshold, outcome)
    if base.better is None or base.value is None:
        return verdict("not gated")
    if cur is None:
        return verdict("not measured")
    if cur.value is None:
        return verdict("inconclusive")  # this run could not tell the number: flagged, never a pass or a fail
    if base.inconclusive or cur.inconclusive:
        return verdict("inconclusive")  # a busy machine: its numbers say nothing either way
    change = (cur.value - base.value) / base.value if base.value else 0.0
    if change >= -threshold:
        return verdict("better" if change > threshold and cur.low > base.high else "ok")
    return verdict("within spread" if cur.high >= base.low else "regression")


def judge(baseline: dict[str, Reading], current: dict[str, Reading], threshold_pct: float) -> list[Verdict]:
    if not 0 <= threshold_pct < 100:
        raise ValueError(f"--fail-if-worse takes a percentage in [0, 100), got {threshold_pct}")
    return [judge_one(base, current.get(key), threshold_pct / 100) for key, base in baseline.items()]


def verdict_lines(verdicts: list[Verdict], baseline: Baseline, current_config: str) -> list[str]:
    failed = [v for v in verdicts if v.failed]
    judged = [v for v in verdicts if v.outcome not in ("not gated", "inconclusive", "not measured")]
    doubtful = sum(v.outcome == "inconclusive" for v in verdicts)
    head = (f"baseline {baseline.source} ({baseline.config_id}, run {', '.join(baseline.runs)}): "
            + (f"{len(failed)} regression(s) in {len(judged)} estimates" if failed
               else f"no regression in {len(judged)} estimates")
            + (f", {doubtful} inconclusive (not judged)" if doubtful else ""))
    lines = [head]
    if baseline.config_id != current_config:
        lines.append(f"note: the baseline is another configuration ({baseline.config_id}, this run {current_config})")
    lines += [f"note: {note}" for note in baseline.notes]
    lines += [v.message() for v in failed]
    lines += [v.message() for v in judged if not v.failed]
    return lines
