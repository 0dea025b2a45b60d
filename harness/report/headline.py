"""The one-screen summary of a run: status, headline numbers with their spread, the checks and
the baseline verdict. Printed at the end of `pytest scenarios/` (terminal and CI log) and kept
as headline.txt / headline.md in the run folder (the workflow puts the Markdown in the job summary)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.files import write_atomic
from harness.judge.spread import Reading, readings, shown
from harness.results.records import BaselineSection, Check, RunSummary
from harness.results.status import company, describe

WIDTH = 78


def _value(reading: Reading) -> tuple[str, str]:
    if reading.value is None:
        return "not detectable", reading.note
    value = f"{shown(reading.value)} {reading.unit}"
    spread = f"{shown(reading.low)}..{shown(reading.high)}" if reading.low != reading.high else ""
    return value, spread + (" inconclusive" if reading.inconclusive else "")


def _checks(summary: RunSummary) -> tuple[int, list[Check]]:
    checks = summary.checks
    return sum(1 for c in checks if c.passed), [c for c in checks if not c.passed]


def baseline_section(summary: RunSummary) -> BaselineSection | None:
    return summary.experiments.baseline


def lines(summary: RunSummary, report: str | None = None, trials: pd.DataFrame | None = None,
          twin: str | None = None) -> list[str]:
    title = f" wfpcap: {summary.config_id} ({summary.platform}) "
    out = [f"{title:=^{WIDTH}}", f"run: {describe(summary)}"]
    if company(summary):
        out.append(f"WARNING: {company(summary)}")
    out.append(f"  {'estimate':<18} {'value':>18}  measured spread")
    not_finished = (summary.run.scenarios.get("not_finished") or []) if summary.run else []
    if summary.status != "complete" and not_finished:
        out.append(f"not finished: {', '.join(not_finished)}")
    for reading in readings(summary, trials).values():
        value, note = _value(reading)
        out.append(f"  {reading.title:<18} {value:>18}  {note}".rstrip()[:WIDTH])
    passed, failed = _checks(summary)
    if passed or failed:
        out.append(f"checks: {passed} passed, {len(failed)} failed")
        out += [f"  FAIL {c.name}: {c.message or c.measured}"[:WIDTH] for c in failed]
    gate = baseline_section(summary)
    if gate and gate.lines:
        out += [f"baseline: {gate.lines[0]}"] + [f"  {line}" for line in gate.lines[1:] if "REGRESSION" in line]
    if twin:  # the held-out check's sentence: a twin outside its tolerance says so here
        out.append(twin)
    if report:
        out.append(f"report: {report}")
    return out + ["=" * WIDTH]


def write(folder: Path, summary: RunSummary, report: str | None, trials: pd.DataFrame | None,
          more: list[str] | None = None, twin: str | None = None) -> None:
    """headline.txt and headline.md beside the report (each whole or absent); `more`: lines that
    follow the headline (what --require found); `twin`: the held-out check's sentence."""
    write_atomic(folder / "headline.txt", "\n".join(lines(summary, report, trials, twin) + (more or [])) + "\n")
    write_atomic(folder / "headline.md",
                 markdown(summary, report, trials, twin) + "".join(f"\n- {line}" for line in more or []))


def markdown(summary: RunSummary, report: str | None = None, trials: pd.DataFrame | None = None,
             twin: str | None = None) -> str:
    out = [f"### Capacity: {summary.config_id} ({summary.platform})", "",
           f"Run: **{describe(summary)}**", ""]
    if company(summary):
        out += [f"Warning: {company(summary)}.", ""]
    out += ["| estimate | value | spread |", "|---|---|---|"]
    for reading in readings(summary, trials).values():
        value, note = _value(reading)
        out.append(f"| {reading.title} | {value} | {note} |")
    passed, failed = _checks(summary)
    if passed or failed:
        out += ["", f"Checks: {passed} passed, {len(failed)} failed"]
        out += [f"- FAIL {c.name}: {c.message or c.measured}" for c in failed]
    gate = baseline_section(summary)
    if gate and gate.lines:
        out += ["", f"Baseline: {gate.lines[0]}"] + [f"- {line}" for line in gate.lines[1:]]
    if twin:
        out += ["", twin[0].upper() + twin[1:]]
    if report:
        out += ["", f"Report: `{report}`"]
    return "\n".join(out) + "\n"
