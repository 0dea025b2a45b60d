"""Render a run folder (summary.json, trials.csv, events/) into PNG plots, report.html
(self-contained: images embedded) and report.md. Works from disk alone, so a stored run can be
rendered again with `wfpcap report DIR`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.batches import find_boundaries
from harness.files import write_atomic
from harness.report import findings, headline, plots
from harness.report.page import document, esc, fmt, image, md_table, table
from harness.report.spread import readings
from harness.report.status import describe, status_of
from harness.report.stored import read_summary, read_trials
from harness.report import sustained as sustained_part

HEADLINES = [
    ("burst_capacity", "Burst capacity", "longest burst delivered without loss (events)"),
    ("queue_limit", "Next-queue limit", "full batch size seen in the drain (events)"),
    ("first_batch", "First batch", "events taken while the dispatcher woke (events)"),
    ("buffer_depth", "System buffer", "capacity - first batch - queue limit, one drain trial (events)"),
    ("plateau", "Plateau", "delivered count of oversized bursts (events)"),
    ("drain_rate", "Drain rate", "events/s delivered after release"),
]


def _evidence(e: dict[str, Any]) -> str:
    skip = {"value", "detectable", "method", "reason", "interior_sizes_seen"}
    parts = [f"{k}={fmt(v) if not isinstance(v, (list, dict)) else v}" for k, v in e.items() if k not in skip]
    return "; ".join(parts[:8])


def make_plots(run: Path) -> dict[str, Path]:
    summary = read_summary(run / "summary.json")
    estimates = summary.get("estimates", {})
    experiments = summary.get("experiments", {})
    expected = experiments.get("expected", {})
    trials = read_trials(run / "trials.csv")
    out: dict[str, Path] = {}
    if not trials.empty and (trials["experiment"] == "burst").any():
        out["delivered_vs_burst"] = plots.delivered_vs_burst(
            trials[trials["experiment"] == "burst"], estimates, run / "delivered_vs_burst.png")
    drain = experiments.get("drain")
    if drain and "trial" in drain:
        events = sorted((run / "events").glob(f"{drain['trial']:04d}-drain-delivered.csv.gz"))
        if events:
            delivered = pd.read_csv(events[0]).sort_values("t_callback_ns", kind="stable")
            boundaries, _ = find_boundaries(delivered["t_callback_ns"].to_numpy(), held=True)
            out["drain_timeline"] = plots.drain_timeline(delivered, boundaries.tolist(), drain.get("t_release_ns"),
                                                         run / "drain_timeline.png")
        backlog_path = run / "events" / "drain_backlog.csv.gz"
        if backlog_path.exists():
            truth_path = run / "events" / "drain_truth.csv.gz"
            truth = pd.read_csv(truth_path) if truth_path.exists() else None
            out["backlog"] = plots.backlog_plot(pd.read_csv(backlog_path), truth, estimates, expected,
                                                run / "backlog.png")
    if not trials.empty and (trials["experiment"] == "sustained").any() and "search_cost_us" in trials:
        sustained = trials[(trials["experiment"] == "sustained") & trials["templated"].eq(False)
                           & trials["offered_rate_per_s"].notna()]
        ndr = [r for r in estimates.get("ndr", []) if isinstance(r, dict)]
        out["loss_vs_rate"] = plots.loss_vs_rate(sustained, ndr, run / "loss_vs_rate.png")
    if "inline_copy" in experiments:
        out["inline_copy"] = plots.inline_copy_plot(experiments["inline_copy"], run / "inline_copy.png")
    backlog_ndr = sustained_part.backlog_plot(run, summary, run / "backlog_vs_ndr.png")
    if backlog_ndr:
        out["backlog_vs_ndr"] = backlog_ndr
    return out


def render(run: Path | str) -> dict[str, Path]:
    run = Path(run)
    summary = read_summary(run / "summary.json")  # checked before any plot is drawn
    figures = make_plots(run)
    summary["_run"] = str(run)
    write_atomic(run / "report.md", _markdown(summary, figures))  # UTF-8, whole or absent
    write_atomic(run / "report.html", _html(summary, figures))
    return {"html": run / "report.html", "md": run / "report.md", **figures}


def _headline_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    found = readings(summary, read_trials(Path(summary["_run"]) / "trials.csv"))
    for key, title, meaning in HEADLINES:
        e = summary["estimates"].get(key)
        if isinstance(e, dict):
            value = fmt(e.get("value")) if e.get("detectable", True) else (e.get("reason") or "not detectable")
            spread = found[key].spread_text() if key in found else ""
            rows.append((title, value, spread, meaning, f"{e.get('method', '')}. {_evidence(e)}"))
    return rows


HEADLINE_HEADER = ["estimate", "value", "measured spread", "meaning", "how"]


def incomplete_lines(summary: dict[str, Any]) -> list[str]:
    """The banner of a run that did not complete: what happened and what did not finish."""
    if status_of(summary) == "complete":
        return []
    run = summary.get("run") or {}
    out = [f"This run is not complete: {describe(summary)}. The numbers below are what it measured before it stopped."]
    where = run.get("interrupted_at")
    if isinstance(where, dict) and where:
        out.append("Stopped at: " + ", ".join(f"{k} {v}" for k, v in where.items()))
    not_finished = (run.get("scenarios") or {}).get("not_finished") or []
    if not_finished:
        out.append(f"Scenarios that did not finish: {', '.join(not_finished)}")
    return out


def verdict_lines(summary: dict[str, Any]) -> list[str]:
    """The short verdict at the top of the report. Other verdicts (a diagnosis of the machine,
    issue 8) add their lines here, before the numbers."""
    est = summary["estimates"]
    out = [f"Run: {describe(summary)}."]
    checks = summary.get("checks") or []
    failed = [c["name"] for c in checks if not c["passed"]]
    if checks:
        out.append(f"Expectations: {len(checks) - len(failed)} of {len(checks)} met"
                   + (f"; not met: {', '.join(failed)}." if failed else "."))
    gate = headline.baseline_section(summary)
    if gate:
        out += [f"Baseline: {gate['lines'][0]}."] + [line for line in gate["lines"][1:] if "REGRESSION" in line]
    values = {k: (est.get(k) or {}).get("value") for k in ("burst_capacity", "first_batch", "queue_limit",
                                                           "buffer_depth")}
    if all(isinstance(v, (int, float)) for v in values.values()):
        out.append(f"A held subscriber loses nothing up to {fmt(values['burst_capacity'])} events: first batch "
                   f"{fmt(values['first_batch'])} + next queue {fmt(values['queue_limit'])} + system buffer "
                   f"{fmt(values['buffer_depth'])}.")
    elif isinstance(values["burst_capacity"], (int, float)):
        out.append(f"A held subscriber loses nothing up to {fmt(values['burst_capacity'])} events.")
    ndr = [r for r in est.get("ndr") or [] if r.get("rate_per_s")]
    if ndr:
        out.append("Highest loss-free rate: " + ", ".join(f"{fmt(r['rate_per_s'])}/s with a {r['callback_cost_us']:g} µs "
                                                          "callback" for r in ndr) + ".")
    return out + findings.finding_lines(summary)  # the seed's questions, each with numbers or a reason


def _generator_lines(run: Path) -> list[str]:
    """How well the traffic generator kept its schedule (real platforms only)."""
    trials = read_trials(run / "trials.csv")
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


def _ndr_rows(summary: dict[str, Any]) -> list[list[str]]:
    return sustained_part.ndr_rows(summary)


NDR_HEADER = sustained_part.NDR_HEADER


def _verdict(check: dict[str, Any]) -> str:
    verdict = check.get("verdict") or ("pass" if check["passed"] else "fail")
    return "FAIL" if verdict == "fail" else verdict


def _machine(summary: dict[str, Any]) -> list[tuple[str, str]]:
    stable = summary["fingerprint"]["stable"]
    rows = [(k, str(v)) for k, v in stable.items() if k != "platform"]
    rows += [(f"platform.{k}", json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in stable["platform"].items()]
    measured = summary["fingerprint"].get("measured", {})
    rows += [(f"measured at open: {k}", json.dumps(v) if isinstance(v, (dict, list)) else str(v))
             for k, v in measured.items()]
    return rows


def _markdown(summary: dict[str, Any], figures: dict[str, Path]) -> str:
    lines = [f"# Capacity report: {summary['config_id']}", "",
             f"Platform **{summary['platform']}**, {summary['trials']} trials, "
             f"run at {summary['fingerprint']['volatile'].get('timestamp_utc')}.", ""]
    if "ground_truth" in summary:
        lines += ["This run measured the **model** platform: its parameters are listed under ground truth, "
                  "and no estimate read them.", ""]
    lines += [f"> **{line}**" for line in incomplete_lines(summary)] + ([""] if incomplete_lines(summary) else [])
    lines += ["## Verdict", ""] + [f"- {line}" for line in verdict_lines(summary)] + [""]
    lines += ["## Headline estimates", "", *md_table(HEADLINE_HEADER, _headline_rows(summary))]
    gate = headline.baseline_section(summary)
    if gate:
        lines += ["", "## Baseline", ""] + [f"- {line}" for line in gate["lines"]]
    if summary["checks"]:
        lines += ["", "## Expectations", "", *md_table(["check", "result", "measured", "expected"], [
            (c["name"], _verdict(c), fmt(c["measured"]), c["expected"]) for c in summary["checks"]])]
    ndr = _ndr_rows(summary)
    if ndr:
        lines += ["", "## Sustained rate per callback cost (NDR)", "", *md_table(NDR_HEADER, ndr)]
    counts, matrix = findings.count_rows(summary), findings.matrix_rows(summary)
    if counts:
        lines += ["", "## Sent, recorded by the system, delivered", "", *md_table(findings.COUNT_HEADER, counts)]
    if matrix:
        lines += ["", "## Template conditions on this machine", "", *md_table(findings.MATRIX_HEADER, matrix)]
    for name, path in figures.items():
        lines += ["", f"![{name}]({path.name})"]
    for key in ("doctor", "allow_visibility", "inline_copy", "template", "onset", "probe", "delivery"):
        if key in summary["experiments"]:
            lines += ["", f"## {key.replace('_', ' ')}", "", "```json",
                      json.dumps(summary["experiments"][key], indent=2), "```"]
    generator = _generator_lines(Path(summary["_run"]))
    if generator:
        lines += ["", "## Traffic generator", ""] + generator
    run = Path(summary["_run"])
    untrusted = sustained_part.untrusted_rows(run)
    if untrusted:
        lines += ["", "## Trials not used as evidence", "", "| " + " | ".join(sustained_part.UNTRUSTED_HEADER) + " |",
                  "|" + "---|" * len(sustained_part.UNTRUSTED_HEADER)] + ["| " + " | ".join(r) + " |" for r in untrusted]
    interference = sustained_part.interference_lines(run)
    if interference:
        lines += ["", "## Interference", ""] + interference
    if "ground_truth" in summary:
        lines += ["", "## Ground truth (model only)", "", "```json", json.dumps(summary["ground_truth"], indent=2), "```"]
    lines += ["", "## Machine", "", *md_table(["key", "value"], _machine(summary))]
    return "\n".join(lines) + "\n"


def _html(summary: dict[str, Any], figures: dict[str, Path]) -> str:
    e = esc
    parts = [f"<h1>Capacity report: {e(summary['config_id'])}</h1>"]
    banner = incomplete_lines(summary)
    if banner:
        parts.append('<div class="banner" id="incomplete">' + "".join(f"<p>{e(x)}</p>" for x in banner) + "</div>")
    failing = any(not c["passed"] for c in summary.get("checks") or []) or \
        bool((headline.baseline_section(summary) or {}).get("regressions"))
    parts += [f'<div class="verdict{" fail" if failing or banner else ""}" id="verdict"><h2>Verdict</h2>'
              + "".join(f"<p>{e(x)}</p>" for x in verdict_lines(summary)) + "</div>",
             f"<p>Platform <b>{e(summary['platform'])}</b>, {summary['trials']} trials, run at "
             f"{e(str(summary['fingerprint']['volatile'].get('timestamp_utc')))}.</p>"]
    if "ground_truth" in summary:
        parts.append("<p class=note>This run measured the <b>model</b> platform; its parameters are shown under "
                     "ground truth and no estimate read them.</p>")
    parts += ["<h2>Headline estimates</h2>", table(HEADLINE_HEADER, _headline_rows(summary), "headline")]
    gate = headline.baseline_section(summary)
    if gate:
        parts += ["<h2>Baseline</h2>"] + [f"<p>{e(line)}</p>" for line in gate["lines"]]
    if summary["checks"]:
        parts += ["<h2>Expectations</h2>", table(["check", "result", "measured", "expected", "message"], [
            (c["name"], _verdict(c), fmt(c["measured"]), c["expected"], c["message"])
            for c in summary["checks"]])]
    ndr = _ndr_rows(summary)
    if ndr:
        parts += ["<h2>Sustained rate per callback cost (NDR)</h2>", table(NDR_HEADER, ndr, "ndr")]
    counts, matrix = findings.count_rows(summary), findings.matrix_rows(summary)
    if counts:
        parts += ["<h2>Sent, recorded by the system, delivered</h2>", table(findings.COUNT_HEADER, counts, "counts")]
    if matrix:
        parts += ["<h2>Template conditions on this machine</h2>", table(findings.MATRIX_HEADER, matrix, "matrix")]
    parts.append("<h2>Plots</h2>")
    for name, path in figures.items():
        parts.append(image(path, name))
    for key in ("doctor", "allow_visibility", "inline_copy", "template", "onset", "probe", "delivery"):
        if key in summary["experiments"]:
            parts += [f"<h2>{e(key.replace('_', ' '))}</h2>",
                      f"<pre>{e(json.dumps(summary['experiments'][key], indent=2))}</pre>"]
    generator = _generator_lines(Path(summary["_run"]))
    if generator:
        parts += ["<h2>Traffic generator</h2>"] + [f"<p>{e(line)}</p>" for line in generator]
    run = Path(summary["_run"])
    untrusted = sustained_part.untrusted_rows(run)
    if untrusted:
        parts += ["<h2>Trials not used as evidence</h2>", table(sustained_part.UNTRUSTED_HEADER, untrusted, "untrusted")]
    interference = sustained_part.interference_lines(run)
    if interference:
        parts += ["<h2>Interference</h2>"] + [f"<p>{e(line)}</p>" for line in interference]
    if "ground_truth" in summary:
        parts += ["<h2>Ground truth (model only)</h2>", f"<pre>{e(json.dumps(summary['ground_truth'], indent=2))}</pre>"]
    parts += ["<h2>Machine</h2>", table(["key", "value"], _machine(summary), "machine")]
    return document(str(summary["config_id"]), parts)
