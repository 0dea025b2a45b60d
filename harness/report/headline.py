"""The one-screen summary of a run: status, headline numbers with their spread, the checks and
the baseline verdict. Printed at the end of `pytest scenarios/` (terminal and CI log) and kept
as headline.txt / headline.md in the run folder (the workflow puts the Markdown in the job summary)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report.spread import readings
from harness.report.status import describe, status_of

WIDTH = 78


def _value(reading) -> tuple[str, str]:
    if reading.value is None:
        return "not detectable", reading.note
    value = f"{reading.value:,.0f} {reading.unit}"
    spread = f"{reading.low:,.0f}..{reading.high:,.0f}" if reading.low != reading.high else ""
    return value, spread + (" inconclusive" if reading.inconclusive else "")


def _checks(summary: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    checks = summary.get("checks") or []
    return sum(1 for c in checks if c.get("passed")), [c for c in checks if not c.get("passed")]


def baseline_section(summary: dict[str, Any]) -> dict[str, Any] | None:
    return (summary.get("experiments") or {}).get("baseline")


def lines(summary: dict[str, Any], report: str | None = None, trials: pd.DataFrame | None = None) -> list[str]:
    title = f" wfpcap: {summary.get('config_id')} ({summary.get('platform')}) "
    out = [f"{title:=^{WIDTH}}", f"run: {describe(summary)}", f"  {'estimate':<18} {'value':>18}  measured spread"]
    not_finished = ((summary.get("run") or {}).get("scenarios") or {}).get("not_finished") or []
    if status_of(summary) != "complete" and not_finished:
        out.append(f"not finished: {', '.join(not_finished)}")
    for reading in readings(summary, trials).values():
        value, note = _value(reading)
        out.append(f"  {reading.title:<18} {value:>18}  {note}".rstrip()[:WIDTH])
    passed, failed = _checks(summary)
    if passed or failed:
        out.append(f"checks: {passed} passed, {len(failed)} failed")
        out += [f"  FAIL {c['name']}: {c.get('message') or c.get('measured')}"[:WIDTH] for c in failed]
    gate = baseline_section(summary)
    if gate:
        out += [f"baseline: {gate['lines'][0]}"] + [f"  {line}" for line in gate["lines"][1:] if "REGRESSION" in line]
    if report:
        out.append(f"report: {report}")
    return out + ["=" * WIDTH]


def markdown(summary: dict[str, Any], report: str | None = None, trials: pd.DataFrame | None = None) -> str:
    out = [f"### Capacity: {summary.get('config_id')} ({summary.get('platform')})", "",
           f"Run: **{describe(summary)}**", "", "| estimate | value | spread |", "|---|---|---|"]
    for reading in readings(summary, trials).values():
        value, note = _value(reading)
        out.append(f"| {reading.title} | {value} | {note} |")
    passed, failed = _checks(summary)
    if passed or failed:
        out += ["", f"Checks: {passed} passed, {len(failed)} failed"]
        out += [f"- FAIL {c['name']}: {c.get('message') or c.get('measured')}" for c in failed]
    gate = baseline_section(summary)
    if gate:
        out += ["", f"Baseline: {gate['lines'][0]}"] + [f"- {line}" for line in gate["lines"][1:]]
    if report:
        out += ["", f"Report: `{report}`"]
    return "\n".join(out) + "\n"
