"""The report's sustained-rate part: beside every NDR its service rate mu, the harness's per-event
overhead 1/mu - cost, the backlog-slope evidence on both sides and the loss confirmation; the
trials refused as evidence; the interference measured; a plot of backlog over time for one trial
below and one above NDR. Works from a run folder alone, like the rest of the report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.interference import references  # noqa: E402
from harness.report.plots import save_figure  # noqa: E402
from harness.results.read import read_events  # noqa: E402
from harness.results.records import Confirmation, RunSummary, SlopeEvidence  # noqa: E402
from harness.results.runs import Run, runs_of  # noqa: E402

HISTORY_RUNS = 20  # earlier runs of the configuration the CPU reference is compared with

NDR_HEADER = ["callback cost (µs)", "1/cost (/s)", "NDR (/s)", "status", "mu (/s), 95% CI", "overhead 1/mu - cost (µs)",
              "backlog slope below NDR (/s)", "backlog slope above NDR (/s)", "loss confirmation", "trials (refused)"]


def _n(v: Any, digits: int = 0) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:,.{digits}f}"


def _slope(e: SlopeEvidence | None) -> str:
    if e is None:
        return "-"
    return (f"{_n(e.slope_per_s)} [{_n(e.slope_low_per_s)}, {_n(e.slope_high_per_s)}] "
            f"at {_n(e.offered_rate_per_s)}/s ({e.verdict_by})")


def _confirmation(c: Confirmation | None) -> str:
    if c is None:
        return "-"
    text = (f"{_n(c.duration_s, 1)} s at {_n(c.rate_per_s)}/s, lost {c.lost}; "
            f"an overload of {_n(c.confirmed_resolution_per_s)}/s would have shown")
    return text + ("" if c.confirmed else f" — not confirmed: {c.reason}")


def ndr_rows(summary: RunSummary) -> list[list[str]]:
    rows = []
    for r in summary.estimates.ndr:
        if not r.by_trend:  # a loss-only search: no service rate measured
            continue
        status = r.status or ""
        if r.spread is not None:
            status += f" (spread {r.spread:.1%})"
        if r.status_reasons:
            status += ": " + "; ".join(r.status_reasons)
        mu = f"{_n(r.mu_per_s)} [{_n(r.mu_low_per_s)}, {_n(r.mu_high_per_s)}]"
        over = f"{_n(r.overhead_us, 2)} [{_n(r.overhead_low_us, 2)}, {_n(r.overhead_high_us, 2)}]"
        ndr = _n(r.rate_per_s) + (f" ± {_n(r.resolution_per_s)}" if r.resolution_per_s else "")
        evidence = r.slope_evidence or {}
        rows.append([_n(r.callback_cost_us, 0), _n(r.callback_rate_per_s), ndr, status, mu, over,
                     _slope(evidence.get("below")), _slope(evidence.get("above")), _confirmation(r.confirmation),
                     f"{r.trials} ({len(r.untrusted_trials or [])})"])
    return rows


def untrusted_rows(t: pd.DataFrame) -> list[list[str]]:
    """Every trial refused as evidence because its generator missed the load."""
    if "trusted" not in t:
        return []
    bad = t[t["trusted"].astype(str) == "False"]
    return [[str(r["trial"]), str(r["experiment"]), _n(r.get("offered_rate_per_s")), _n(r.get("gen_achieved_rate_per_s")),
             str(r.get("untrusted_reason", ""))] for _, r in bad.iterrows()]


UNTRUSTED_HEADER = ["trial", "experiment", "offered (/s)", "achieved (/s)", "why it is not evidence"]


def interference_lines(run: Run) -> list[str]:
    """What the machine was doing during the real-time trials (nothing to say in virtual time)."""
    t = run.trials()
    if "intf_others_cores" not in t or t["intf_others_cores"].isna().all():
        return shared_lines(t) + cpu_speed_lines(run, t)  # Windows: no /proc; these are measured there too
    flagged = t["interference"].astype(object).fillna("").astype(str).str.len() > 0 if "interference" in t else pd.Series(False, t.index)
    lines = [f"{int(flagged.sum())} of {len(t)} trials saw interference. Other processes used a median "
             f"{t['intf_others_cores'].median():.2f} (max {t['intf_others_cores'].max():.2f}) of "
             f"{int(t['intf_cpus'].max())} cores; hypervisor steal max {t['intf_steal_share'].max():.1%}; "
             f"1-minute load median {t['intf_load1'].median():.2f}."]
    if "gen_late_p99_us" in t and t["gen_late_p99_us"].notna().any():
        lines.append(f"Sender p99 lateness: median {t['gen_late_p99_us'].median() / 1000:.2f} ms, "
                     f"worst {t['gen_late_p99_us'].max() / 1000:.1f} ms.")
    if "mu_stall_share" in t and t["mu_stall_share"].notna().any():
        lines.append(f"Subscriber stalls (backlogged, not running): median {t['mu_stall_share'].median():.1%} of "
                     f"service time, worst {t['mu_stall_share'].max():.1%}.")
    lines += shared_lines(t) + cpu_speed_lines(run, t)
    if "intf_other_runs" in t and t["intf_other_runs"].notna().any():
        lines.append(f"Other harness runs alive: up to {int(t['intf_other_runs'].max())}.")
    else:
        lines.append("Other harness runs: not measured (live-run registry not connected).")
    return lines


def shared_lines(t: pd.DataFrame) -> list[str]:
    """wfp: the events that were not the trials' own but went through the same queue."""
    if "intf_shared_events" not in t or t["intf_shared_events"].isna().all():
        return []
    return [f"Events not the trials' own through the same queue (other filters' drops, other event types, other "
            f"programs' packets): median {t['intf_shared_events'].median():.0f}, max {t['intf_shared_events'].max():.0f} "
            f"(up to {t['intf_shared_share'].max():.1%} of a trial's own)."]


def _median_reference(trials: pd.DataFrame) -> float | None:
    refs = references(trials.to_dict("records"))
    return float(pd.Series(refs).median()) if refs else None


def cpu_speed_lines(run: Run, t: pd.DataFrame) -> list[str]:
    """The CPU's own speed (harness/interference.py): its reference over the run, the trials that
    ran off the run's typical, and the run against this configuration's earlier complete runs."""
    refs = pd.Series(references(t.to_dict("records")), dtype=float)
    if refs.empty:
        return []
    here = float(refs.median())
    line = (f"CPU reference (a fixed interpreter loop timed at both ends of each trial; lower is faster): median "
            f"{here:.1f} ns, {refs.min():.1f}-{refs.max():.1f} ns.")
    if "intf_cpu_speed_off" in t:
        off = t["intf_cpu_speed_off"].astype(float)
        limit = t["intf_cpu_speed_limit"].astype(float)
        beyond = off.abs() > limit
        if beyond.any():
            line += (f" {int(beyond.sum())} trials ran off the run's typical speed (up to {off[beyond].abs().max():.0%}; "
                     f"limit {limit[beyond].min():.0%}): interference, like a busy neighbour.")
    lines = [line]
    try:  # the configuration's folder, read as `wfpcap history` reads it
        history = [r for r in runs_of(run.path.parent) if r.complete and r.path != run.path and r.name < run.name]
        earlier = [v for v in (_median_reference(r.trials()) for r in history[-HISTORY_RUNS:]) if v]
    except ValueError:
        earlier = []  # a folder whose runs cannot be read: no history line (history itself says why)
    if earlier:
        typical = float(pd.Series(earlier).median())
        lines.append(f"This configuration's earlier runs: median reference {typical:.1f} ns over {len(earlier)} run(s); "
                     f"this run's CPU ran {abs(typical / here - 1):.1%} {'faster' if here < typical else 'slower'}. "
                     f"Rates follow it where the harness's own per-event work, not the callback's cost, dominates.")
    return lines


def backlog_plot(run: Run, path: Path) -> Path | None:
    """Backlog over time of one trial below and one above NDR, per callback cost."""
    rows = [r for r in run.summary.estimates.ndr if r.backlog_traces]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 1, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        for side, color in (("below", "#2b8a3e"), ("above", "#c92a2a")):
            name = r.backlog_traces.get(side)
            frame_path = run.path / "events" / f"{name}.csv.gz"
            e = (r.slope_evidence or {}).get(side) or SlopeEvidence()
            if not name or not frame_path.exists():
                continue
            f = read_events(frame_path, ("t_s", "backlog", "send_end_s"))
            ax.step(f["t_s"], f["backlog"], where="post", color=color, lw=1,
                    label=f"{side} NDR: {_n(e.offered_rate_per_s)}/s, slope {_n(e.slope_per_s)}/s"
                          + (f", lost {e.lost}" if e.lost else ""))
            ax.axvline(float(f["send_end_s"].iloc[0]), color=color, ls=":", lw=0.8)
        ax.set_title(f"{r.callback_cost_us:g} µs callback: NDR {_n(r.rate_per_s)}/s, "
                     f"mu {_n(r.mu_per_s)}/s", fontsize=9)
        ax.set_ylabel("backlog (events)")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time from first send (s); dotted: last send")
    return save_figure(fig, path)
