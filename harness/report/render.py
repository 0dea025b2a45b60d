"""Render a run folder (summary.json, trials.csv, events/) into PNG plots, report.html
(self-contained: images embedded) and report.md. Works from disk alone, so a stored run can be
rendered again with `wfpcap report DIR`."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.batches import find_boundaries
from harness.files import write_atomic
from harness.report import plots
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


def _fmt(value: Any) -> str:
    if value is None:
        return "not detectable"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _evidence(e: dict[str, Any]) -> str:
    skip = {"value", "detectable", "method", "reason", "interior_sizes_seen"}
    parts = [f"{k}={_fmt(v) if not isinstance(v, (list, dict)) else v}" for k, v in e.items() if k not in skip]
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
    if drain:
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
    write_atomic(run / "report.md", _markdown(summary, figures))
    write_atomic(run / "report.html", _html(summary, figures))
    return {"html": run / "report.html", "md": run / "report.md", **figures}


def status_banner(summary: dict[str, Any]) -> str | None:
    """One sentence for the top of the report when the run is not complete (None when it is)."""
    if status_of(summary) == "complete":
        return None
    return f"This run is not complete: {describe(summary)}. Its figures cover only what was measured."


def _headline_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for key, title, meaning in HEADLINES:
        e = summary["estimates"].get(key)
        if isinstance(e, dict):
            value = _fmt(e.get("value")) if e.get("detectable", True) else (e.get("reason") or "not detectable")
            rows.append((title, value, meaning, f"{e.get('method', '')}. {_evidence(e)}"))
    return rows


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
    lines = [f"# Capacity report: {summary['config_id']}", ""]
    banner = status_banner(summary)
    if banner:
        lines += [f"> **{banner}**", ""]
    lines += [f"Platform **{summary['platform']}**, {summary['trials']} trials, "
              f"run at {summary['fingerprint']['volatile'].get('timestamp_utc')}.", ""]
    if "ground_truth" in summary:
        lines += ["This run measured the **model** platform: its parameters are listed under ground truth, "
                  "and no estimate read them.", ""]
    lines += ["## Headline estimates", "", "| estimate | value | meaning | how |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _headline_rows(summary)]
    if summary["checks"]:
        lines += ["", "## Expectations", "", "| check | result | measured | expected |", "|---|---|---|---|"]
        lines += [f"| {c['name']} | {_verdict(c)} | {_fmt(c['measured'])} | {c['expected']} |"
                  for c in summary["checks"]]
    ndr = _ndr_rows(summary)
    if ndr:
        lines += ["", "## Sustained rate per callback cost (NDR)", "", "| " + " | ".join(NDR_HEADER) + " |",
                  "|" + "---|" * len(NDR_HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in ndr]
    for name, path in figures.items():
        lines += ["", f"![{name}]({path.name})"]
    for key in ("inline_copy", "template", "onset", "probe", "delivery"):
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
    lines += ["", "## Machine", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _machine(summary)]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]] | list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(summary: dict[str, Any], figures: dict[str, Path]) -> str:
    e = html.escape
    banner = status_banner(summary)
    parts = [f"<h1>Capacity report: {e(summary['config_id'])}</h1>",
             *([f'<p class="status-banner"><b>{e(banner)}</b></p>'] if banner else []),
             f"<p>Platform <b>{e(summary['platform'])}</b>, {summary['trials']} trials, run at "
             f"{e(str(summary['fingerprint']['volatile'].get('timestamp_utc')))}.</p>"]
    if "ground_truth" in summary:
        parts.append("<p class=note>This run measured the <b>model</b> platform; its parameters are shown under "
                     "ground truth and no estimate read them.</p>")
    parts += ["<h2>Headline estimates</h2>", _table(["estimate", "value", "meaning", "how"], _headline_rows(summary))]
    if summary["checks"]:
        parts += ["<h2>Expectations</h2>", _table(["check", "result", "measured", "expected", "message"], [
            (c["name"], _verdict(c), _fmt(c["measured"]), c["expected"], c["message"])
            for c in summary["checks"]])]
    ndr = _ndr_rows(summary)
    if ndr:
        parts += ["<h2>Sustained rate per callback cost (NDR)</h2>", _table(NDR_HEADER, ndr)]
    parts.append("<h2>Plots</h2>")
    for name, path in figures.items():
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<figure><img alt="{e(name)}" src="data:image/png;base64,{data}"></figure>')
    for key in ("inline_copy", "template", "onset", "probe", "delivery"):
        if key in summary["experiments"]:
            parts += [f"<h2>{e(key.replace('_', ' '))}</h2>",
                      f"<pre>{e(json.dumps(summary['experiments'][key], indent=2))}</pre>"]
    generator = _generator_lines(Path(summary["_run"]))
    if generator:
        parts += ["<h2>Traffic generator</h2>"] + [f"<p>{e(line)}</p>" for line in generator]
    run = Path(summary["_run"])
    untrusted = sustained_part.untrusted_rows(run)
    if untrusted:
        parts += ["<h2>Trials not used as evidence</h2>", _table(sustained_part.UNTRUSTED_HEADER, untrusted)]
    interference = sustained_part.interference_lines(run)
    if interference:
        parts += ["<h2>Interference</h2>"] + [f"<p>{e(line)}</p>" for line in interference]
    if "ground_truth" in summary:
        parts += ["<h2>Ground truth (model only)</h2>", f"<pre>{e(json.dumps(summary['ground_truth'], indent=2))}</pre>"]
    parts += ["<h2>Machine</h2>", _table(["key", "value"], _machine(summary))]
    style = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:left;vertical-align:top;font-size:14px}th{background:#f1f3f5}img{max-width:100%}"
             ".note{background:#fff9db;padding:6px}.status-banner{background:#ffe3e3;padding:8px}"
             "pre{background:#f8f9fa;padding:8px;overflow:auto}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{e(summary['config_id'])}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
