"""Render a run folder (summary.json, trials.csv, events/) into PNG plots, report.html
(self-contained: images embedded) and report.md. Works from disk alone, so a stored run can be
rendered again with `wfpcap report DIR`.

The report is built once as a list of sections (a title, paragraphs, a table, a JSON block, images)
and written twice from it: Markdown for a CI job summary or a repository, HTML for a browser.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.batches import find_boundaries
from harness.files import write_atomic
from harness.judge.spread import readings, shown
from harness.report import agent_section, findings, headline, ndr_section, plots, twin_section
from harness.report.page import document, esc, fmt, image, md_table, table
from harness.results.catalog import CATALOG
from harness.results.read import read_events
from harness.results.records import Check, Estimate, RunSummary, plain
from harness.results.runs import Run, load_run
from harness.results.status import company, describe

HEADLINE_HEADER = ["estimate", "value", "measured spread", "meaning", "how"]
CHECK_HEADER = ["check", "result", "measured", "expected", "message"]
FACTS = ("doctor", "allow_visibility", "probe", "delivery")  # a platform's facts, shown as found


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: tuple[list[str], list[Any], str] | None = None   # header, rows, html id
    block: Any = None                                         # shown as JSON
    images: dict[str, Path] = field(default_factory=dict)
    css: str = ""                                             # html: "verdict", "verdict fail", "banner"


def _evidence(e: Estimate) -> str:
    skip = {"value", "detectable", "method", "reason", "interior_sizes_seen"}
    parts = [f"{k}={(shown(v) if isinstance(v, float) else fmt(v)) if not isinstance(v, (list, dict)) else v}"
             for k, v in e.to_json().items() if k not in skip]
    return "; ".join(parts[:8])


def make_plots(run: Run) -> dict[str, Path]:
    summary, trials, where = run.summary, run.trials(), run.path
    est = summary.estimates
    out: dict[str, Path] = {}
    if not trials.empty and (trials["experiment"] == "burst").any():
        values = {k: (e.value if (e := est.get(k)) is not None else None) for k in ("burst_capacity", "first_batch",
                                                                                     "queue_limit")}
        out["delivered_vs_burst"] = plots.delivered_vs_burst(
            trials[trials["experiment"] == "burst"], values["burst_capacity"], values["first_batch"],
            values["queue_limit"], where / "delivered_vs_burst.png")
    drain = summary.experiments.drain
    if drain is not None and drain.trial is not None:
        events = sorted((where / "events").glob(f"{drain.trial:04d}-drain-delivered.csv.gz"))
        if events:
            delivered = read_events(events[0], ("t_callback_ns",)).sort_values("t_callback_ns", kind="stable")
            boundaries, _ = find_boundaries(delivered["t_callback_ns"].to_numpy(), held=True)
            out["drain_timeline"] = plots.drain_timeline(delivered, boundaries.tolist(), drain.t_release_ns,
                                                         where / "drain_timeline.png")
        backlog_path = where / "events" / "drain_backlog.csv.gz"
        if backlog_path.exists():
            truth_path = where / "events" / "drain_truth.csv.gz"
            truth = read_events(truth_path, ("t_ns",)) if truth_path.exists() else None
            expected = summary.experiments.expected
            queue, buffer = est.get("queue_limit"), est.get("buffer_depth")
            q = (queue.value if queue else None) or (expected.queue_limit if expected else None)
            b = (buffer.value if buffer else None) or (expected.buffer_depth if expected else None)
            out["backlog"] = plots.backlog_plot(read_events(backlog_path, ("t_ns", "backlog")), truth, q, b,
                                                where / "backlog.png")
    if not trials.empty and (trials["experiment"] == "sustained").any() and "search_cost_us" in trials:
        sustained = trials[(trials["experiment"] == "sustained") & trials["templated"].eq(False)
                           & trials["offered_rate_per_s"].notna()]
        out["loss_vs_rate"] = plots.loss_vs_rate(sustained, est.ndr, where / "loss_vs_rate.png")
    if summary.experiments.inline_copy is not None:
        out["inline_copy"] = plots.inline_copy_plot(summary.experiments.inline_copy, where / "inline_copy.png")
    backlog_ndr = ndr_section.backlog_plot(run, where / "backlog_vs_ndr.png")
    if backlog_ndr:
        out["backlog_vs_ndr"] = backlog_ndr
    out.update(agent_section.make_plots(run))
    return out


def render(path: Path | str, plots: bool = True) -> dict[str, Path]:
    """Write report.md and report.html (and the plots, unless `plots` is False: a run stopped by a
    signal gets its report at once, `wfpcap report` draws the plots later)."""
    run = load_run(Path(path))  # checked before any plot is drawn
    figures = make_plots(run) if plots else {}
    parts = sections(run, figures)
    if not plots:
        parts.insert(0, Section("", [f"The plots were not drawn (the run was stopped); `wfpcap report {run.path}` "
                                     "draws them."], css="banner"))
    write_atomic(run.path / "report.md", to_markdown(run.summary, parts))  # UTF-8, whole or absent
    write_atomic(run.path / "report.html", to_html(run.summary, parts))
    return {"html": run.path / "report.html", "md": run.path / "report.md", **figures}


# -- what the report says -------------------------------------------------------------------
def _headline_rows(run: Run) -> list[tuple[str, str, str, str, str]]:
    rows = []
    found = readings(run.summary, run.trials())
    for kind in CATALOG:
        e = run.summary.estimates.get(kind.key)
        if e is not None:
            value = (shown(e.value) if isinstance(e.value, float) else fmt(e.value)) if e.detectable else \
                (e.reason or "not detectable")
            spread = found[kind.key].spread_text() if kind.key in found else ""
            rows.append((kind.title, value, spread, kind.meaning, f"{e.method}. {_evidence(e)}"))
    return rows


def incomplete_lines(summary: RunSummary) -> list[str]:
    """The banner of a run that did not complete: what happened and what did not finish."""
    if summary.status == "complete":
        return []
    out = [f"This run is not complete: {describe(summary)}. The numbers below are what it measured before it stopped."]
    where = summary.run.interrupted_at if summary.run else None
    if isinstance(where, dict) and where:
        out.append("Stopped at: " + ", ".join(f"{k} {v}" for k, v in where.items()))
    not_finished = (summary.run.scenarios.get("not_finished") or []) if summary.run else []
    if not_finished:
        out.append(f"Scenarios that did not finish: {', '.join(not_finished)}")
    return out


def verdict_lines(run: Run) -> list[str]:
    """The short verdict at the top of the report: the run, the expectations, the baseline, the
    capacity in one sentence, the loss-free rates, then the field notes' questions answered."""
    summary = run.summary
    est = summary.estimates
    out = [f"Run: {describe(summary)}."]
    if company(summary):
        out.append(f"Warning: {company(summary)}.")
    yours = agent_section.verdict_line(summary)
    if yours:  # the user's own question first: below 1, events are lost today
        out.append(yours)
    checks = summary.checks
    failed = [c.name for c in checks if not c.passed]
    if checks:
        out.append(f"Expectations: {len(checks) - len(failed)} of {len(checks)} met"
                   + (f"; not met: {', '.join(failed)}." if failed else "."))
    gate = headline.baseline_section(summary)
    if gate and gate.lines:
        out += [f"Baseline: {gate.lines[0]}."] + [line for line in gate.lines[1:] if "REGRESSION" in line]
    values = {k: (e.value if (e := est.get(k)) is not None else None)
              for k in ("burst_capacity", "first_batch", "queue_limit", "buffer_depth")}
    if all(isinstance(v, (int, float)) for v in values.values()):
        out.append(f"A held subscriber loses nothing up to {fmt(values['burst_capacity'])} events: first batch "
                   f"{fmt(values['first_batch'])} + next queue {fmt(values['queue_limit'])} + system buffer "
                   f"{fmt(values['buffer_depth'])}.")
    elif isinstance(values["burst_capacity"], (int, float)):
        out.append(f"A held subscriber loses nothing up to {fmt(values['burst_capacity'])} events.")
    ndr = [r for r in est.ndr if r.rate_per_s]
    if ndr:
        out.append("Highest loss-free rate: " + ", ".join(f"{fmt(r.rate_per_s)}/s with a {r.callback_cost_us:g} µs "
                                                          "callback" for r in ndr) + ".")
    twin = twin_section.summary_line(twin_section.twin_of(run.path))
    if twin:
        out.append(twin[0].upper() + twin[1:] + ".")
    return out + findings.finding_lines(run)


def _generator_lines(trials: pd.DataFrame) -> list[str]:
    """How well the traffic generator kept its schedule (real platforms only)."""
    if "gen_trusted" not in trials:
        return []
    paced = trials[trials["pacing"] != "burst"]
    bursts = trials[trials["pacing"] == "burst"]
    lines = [f"Back-to-back bursts left the generator at a median {bursts['gen_achieved_rate_per_s'].median():,.0f} "
             f"packets/s." if len(bursts) else ""]
    if len(paced):
        untrusted = int((paced["gen_trusted"] == False).sum())  # noqa: E712 (pandas column)
        lines.append(f"Paced trials: {len(paced)}; lateness p99 median {paced['gen_late_p99_us'].median():.1f} us, "
                     f"worst {paced['gen_late_p99_us'].max():.1f} us; {untrusted} trial(s) missed their offered "
                     "load and are not to be trusted.")
    return [line for line in lines if line]


def _check_row(c: Check) -> tuple[str, str, str, Any, str]:
    return (c.name, "FAIL" if c.verdict == "fail" else str(c.verdict), fmt(c.measured), c.expected, c.message)


def _machine(summary: RunSummary) -> list[tuple[str, str]]:
    stable = summary.fingerprint.stable
    rows = [(k, str(v)) for k, v in stable.items() if k != "platform"]
    rows += [(f"platform.{k}", json.dumps(v) if isinstance(v, dict) else str(v))
             for k, v in (stable.get("platform") or {}).items()]
    rows += [(f"measured at open: {k}", json.dumps(v) if isinstance(v, (dict, list)) else str(v))
             for k, v in summary.fingerprint.measured.items()]
    return rows


def _experiment_blocks(summary: RunSummary) -> list[Section]:
    """Each experiment's and platform fact's record, as JSON (in the order a reader meets them)."""
    x = summary.experiments
    found = [("doctor", x.doctor), ("allow_visibility", x.allow_visibility), ("inline_copy", x.inline_copy),
             ("template", x.template), ("onset", x.onset), ("probe", x.probe), ("delivery", x.delivery)]
    return [Section(name.replace("_", " "), block=plain(value)) for name, value in found if value is not None]


def _twin_sections(run: Run) -> list[Section]:
    """The model fitted to this run and its held-out check (twin.json), when the run has one."""
    twin = twin_section.twin_of(run.path)
    if twin is None:
        return []
    out = [Section("Twin: the model fitted to this run", twin_section.lines(twin),
                   table=(twin_section.PARAMETER_HEADER, twin_section.parameter_rows(twin), "twin"))]
    if twin.predictions:
        out.append(Section("Twin: held-out trials, predicted vs measured",
                           table=(twin_section.HELD_OUT_HEADER, twin_section.held_out_rows(twin), "twin-held-out")))
    return out


def sections(run: Run, figures: dict[str, Path]) -> list[Section]:
    summary, trials = run.summary, run.trials()
    banner = incomplete_lines(summary)
    gate = headline.baseline_section(summary)
    failing = any(not c.passed for c in summary.checks) or bool(gate and gate.regressions)
    out: list[Section] = []
    if banner:
        out.append(Section("", banner, css="banner"))
    out.append(Section("Verdict", verdict_lines(run), css="verdict fail" if failing or banner else "verdict"))
    about = [f"Platform **{summary.platform}**, {summary.trials} trials, run at "
             f"{summary.fingerprint.volatile.get('timestamp_utc')}."]
    if summary.ground_truth is not None:
        about.append("This run measured the **model** platform: its parameters are listed under ground truth, "
                     "and no estimate read them.")
    out.append(Section("", about))
    out.append(Section("Headline estimates", table=(HEADLINE_HEADER, _headline_rows(run), "headline")))
    if gate:
        out.append(Section("Baseline", list(gate.lines)))
    if summary.checks:
        out.append(Section("Expectations", table=(CHECK_HEADER, [_check_row(c) for c in summary.checks], "checks")))
    ndr = ndr_section.ndr_rows(summary)
    if ndr:
        out.append(Section("Sustained rate per callback cost (NDR)", table=(ndr_section.NDR_HEADER, ndr, "ndr")))
    replay, headroom_found = summary.experiments.replay, summary.experiments.headroom
    if replay is not None or headroom_found is not None:
        out.append(Section("Your traffic, your subscriber", agent_section.headroom_lines(headroom_found)
                           if headroom_found else [],
                           table=(agent_section.REPLAY_HEADER, agent_section.replay_rows(replay), "replay")
                           if replay else None))
        if headroom_found is not None and headroom_found.trials:
            out.append(Section("Headroom search", table=(agent_section.TRIALS_HEADER,
                                                         agent_section.trial_rows(headroom_found), "headroom")))
    out += _twin_sections(run)
    counts, matrix = findings.count_rows(run), findings.matrix_rows(summary)
    if counts:
        out.append(Section("Sent, recorded by the system, delivered", table=(findings.COUNT_HEADER, counts, "counts")))
    if matrix:
        out.append(Section("Template conditions on this machine", table=(findings.MATRIX_HEADER, matrix, "matrix")))
    if figures:
        out.append(Section("Plots", images=figures))
    out += _experiment_blocks(summary)
    generator = _generator_lines(trials)
    if generator:
        out.append(Section("Traffic generator", generator))
    untrusted = ndr_section.untrusted_rows(trials)
    if untrusted:
        out.append(Section("Trials not used as evidence", table=(ndr_section.UNTRUSTED_HEADER, untrusted, "untrusted")))
    interference = ndr_section.interference_lines(run)
    if interference:
        out.append(Section("Interference", interference))
    if summary.ground_truth is not None:
        out.append(Section("Ground truth (model only)", block=summary.ground_truth))
    out.append(Section("Machine", table=(["key", "value"], _machine(summary), "machine")))
    return out


# -- the two forms ----------------------------------------------------------------------------
def to_markdown(summary: RunSummary, parts: list[Section]) -> str:
    lines = [f"# Capacity report: {summary.config_id}", ""]
    for s in parts:
        if s.title:
            lines += [f"## {s.title}", ""]
        if s.css == "banner":
            lines += [f"> **{p}**" for p in s.paragraphs] + [""]
        elif s.css.startswith("verdict"):
            lines += [f"- {p}" for p in s.paragraphs] + [""]
        elif s.paragraphs:
            lines += [p for para in s.paragraphs for p in (para, "")]
        if s.table is not None:
            lines += [*md_table(s.table[0], s.table[1]), ""]
        if s.block is not None:
            lines += ["```json", json.dumps(s.block, indent=2), "```", ""]
        lines += [f"![{name}]({path.name})" for name, path in s.images.items()] + ([""] if s.images else [])
    return "\n".join(lines).rstrip("\n") + "\n"


def _bold(text: str) -> str:
    """The Markdown **bold** of a paragraph, in HTML."""
    out, parts = [], esc(text).split("**")
    for k, part in enumerate(parts):
        out.append(f"<b>{part}</b>" if k % 2 else part)
    return "".join(out)


def to_html(summary: RunSummary, parts: list[Section]) -> str:
    out = [f"<h1>Capacity report: {esc(summary.config_id)}</h1>"]
    for s in parts:
        inner = [f"<h2>{esc(s.title)}</h2>"] if s.title else []
        inner += [f"<p>{_bold(p)}</p>" for p in s.paragraphs]
        if s.table is not None:
            inner.append(table(s.table[0], s.table[1], s.table[2]))
        if s.block is not None:
            inner.append(f"<pre>{esc(json.dumps(s.block, indent=2))}</pre>")
        inner += [image(path, name) for name, path in s.images.items()]
        if s.css == "banner":
            out.append('<div class="banner" id="incomplete">' + "".join(inner) + "</div>")
        elif s.css.startswith("verdict"):
            out.append(f'<div class="{s.css}" id="verdict">' + "".join(inner) + "</div>")
        else:
            out += inner
    return document(summary.config_id, out)
