"""The fleet page: one self-contained HTML page across many configurations (`wfpcap compare
--html`). Verdict first, then the headline table, the differences to the reference, the overlaid
delivered-vs-burst and loss-vs-rate plots, and a link to each run's own report. Configurations
are rows and short labels (C1..Cn), so thirty of them still read well."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from harness.report import page, plots
from harness.report.compare import Fleet, difference_rows, headline_header, headline_rows, summary_lines


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
    out.write_text(page.document(f"Capacity across {len(fleet.entries)} configurations", parts), encoding="utf-8")
    return out
