"""The fleet page and its Markdown: one self-contained HTML page across many configurations
(`wfpcap compare --html`; the Markdown for a CI job summary). Verdict first, then the headline table, the differences to the reference, the overlaid
delivered-vs-burst and loss-vs-rate plots, and a link to each run's own report. Configurations
are rows and short labels (C1..Cn), so thirty of them still read well."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from harness.files import write_atomic
from harness.report import page, plots
from harness.judge.baseline import Verdict
from harness.judge.compare import Entry, Fleet
from harness.judge.spread import Reading, shown


def cell(reading: Reading | None) -> str:
    if reading is None:
        return "-"
    if reading.value is None:
        return "n/d"
    return page.fmt(round(reading.value)) if abs(reading.value) >= 100 else shown(reading.value)  # a scale keeps decimals


def numeric(text: str) -> tuple[str, str]:
    return text, "num"


def difference_cell(verdict: Verdict | None) -> tuple[str, str]:
    """Text and css class of one difference to the reference."""
    if verdict is None or verdict.change is None:
        return ("-" if verdict is None or verdict.outcome == "not measured" else "n/d", "num same")
    text = f"{verdict.change:+.1%}"
    if verdict.outcome == "inconclusive":
        return text + " (inconclusive)", "num same"
    if verdict.outcome == "regression":
        return text + " worse", "num bad"
    if verdict.outcome == "better":
        return text + " better", "num good"
    return text + (" (in spread)" if verdict.outcome == "within spread" else ""), "num same"


def _run_cell(e: Entry) -> str:
    """When the run started, and its status where it is not complete (a run folder named on the
    command line is compared whatever its status)."""
    started = e.run.started[:16].replace("T", " ")
    return started if e.run.complete else f"{started} ({e.run.status_text})"


def headline_rows(fleet: Fleet) -> list[list[str]]:
    keys = fleet.keys()
    return [[e.label, (e.config_id, "id"), e.stable("machine"), e.run.summary.platform or "?",
             (_run_cell(e), "id"), *[numeric(cell(e.readings.get(k))) for k in keys]]
            for e in fleet.entries]


def headline_header(fleet: Fleet) -> list[str]:
    return ["#", "configuration", "machine", "platform", "run", *[fleet.title(k) for k in fleet.keys()]]


def difference_rows(fleet: Fleet) -> list[list]:
    keys = fleet.keys()
    rows = []
    for e in fleet.entries:
        if e is fleet.reference:
            continue
        diff = fleet.differences(e)
        rows.append([e.label, (e.config_id, "id"), *[difference_cell(diff.get(k)) for k in keys]])
    return rows


def summary_lines(fleet: Fleet) -> list[str]:
    lines = [f"{len(fleet.entries)} configurations compared, reference {fleet.reference.label} "
             f"({fleet.reference.config_id}); worse means beyond {fleet.threshold_pct:g} % and outside the "
             "measured spread"]
    worse = list(dict.fromkeys(e.label for e, _ in fleet.regressions()))
    lines.append(f"{len(worse)} of {len(fleet.entries) - 1} configurations are worse than {fleet.reference.label} in "
                 f"at least one estimate: {', '.join(worse)} (see the differences)" if worse
                 else f"no configuration is worse than {fleet.reference.label}")
    damaged = [(path, why) for path, why in fleet.left_out if why.startswith("damaged")]
    incomplete = [(path, why) for path, why in fleet.left_out if not why.startswith("damaged")]
    if incomplete:
        lines.append(f"left out, no complete run: {', '.join(path.name for path, _ in incomplete)}")
    if damaged:
        lines.append("left out, damaged runs: " + "; ".join(f"{path.parent.name}/{path.name} ({why})"
                                                           for path, why in damaged))
    return lines


def regression_lines(fleet: Fleet) -> list[str]:
    return [f"{e.label} {e.config_id}: {v.message()}" for e, v in fleet.regressions()]


def markdown(fleet: Fleet) -> str:
    """For a CI job summary: no images, two tables."""
    out = ["## Capacity across configurations", "", *[f"- {line}" for line in summary_lines(fleet)], "",
           "### Headline", "", *page.md_table(headline_header(fleet), headline_rows(fleet))]
    if len(fleet.entries) > 1:
        out += ["", f"### Differences to {fleet.reference.label}", "",
                *page.md_table(["#", "configuration", *[fleet.title(k) for k in fleet.keys()]],
                               difference_rows(fleet))]
    return "\n".join(out) + "\n"


def _trials(fleet: Fleet, experiment: str) -> list[tuple[str, pd.DataFrame]]:
    out = []
    for e in fleet.entries:
        path = e.run.path / "trials.csv"
        if not path.exists():
            continue
        t = pd.read_csv(path)
        t = t[t["experiment"] == experiment]
        if experiment == "sustained":
            if "search_cost_us" not in t:
                continue
            t = t[t["templated"].eq(False) & t["offered_rate_per_s"].notna()]
        if len(t):
            out.append((e.label, t))
    return out


def _report_link(fleet_html: Path, e) -> page.Raw | str:
    report = e.run.path / "report.html"
    if not report.exists():
        return "no report.html (wfpcap report RUN)"
    return page.link(os.path.relpath(report, fleet_html.parent).replace(os.sep, "/"), e.run.name)


def write_html(fleet: Fleet, out: Path) -> Path:
    regressions = fleet.regressions()
    parts = [f"<h1>Capacity across {len(fleet.entries)} configurations</h1>",
             f'<div class="verdict{" fail" if regressions else ""}" id="verdict">'
             + "".join(f"<p>{page.esc(line)}</p>" for line in summary_lines(fleet)) + "</div>",
             "<h2>Headline</h2>",
             page.table([*headline_header(fleet), "report"],
                        [[*row, _report_link(out, e)] for row, e in zip(headline_rows(fleet), fleet.entries)],
                        "headline")]
    if len(fleet.entries) > 1:
        parts += [f"<h2>Differences to {page.esc(fleet.reference.label)} ({page.esc(fleet.reference.config_id)})</h2>",
                  page.table(["#", "configuration", *[fleet.title(k) for k in fleet.keys()]], difference_rows(fleet),
                             "differences")]
    with tempfile.TemporaryDirectory() as tmp:
        bursts, loss = _trials(fleet, "burst"), _trials(fleet, "sustained")
        if bursts or loss:
            parts.append("<h2>Plots</h2>")
        if bursts:
            parts.append(page.image(plots.fleet_bursts(bursts, Path(tmp) / "bursts.png"), "delivered vs burst size"))
        if loss:
            parts.append(page.image(plots.fleet_loss(loss, Path(tmp) / "loss.png"), "loss vs offered rate"))
    rows = [[e.label, e.config_id, e.stable("os"), e.stable("cpu"), e.stable("num_cpu"), e.run.status_text,
             ", ".join(f"{r.name} ({r.status_text})" for r in e.skipped) or "-"] for e in fleet.entries]
    parts += ["<h2>Configurations</h2>",
              page.table(["#", "configuration", "os", "cpu", "cores", "run", "newer runs left out"], rows, "configs")]
    write_atomic(out, page.document(f"Capacity across {len(fleet.entries)} configurations", parts))
    return out
