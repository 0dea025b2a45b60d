"""The report's part for the user's own question: their trace, their subscriber, and the headroom.

The answer first ("your trace at 3.2x loses nothing; at 3.6x it loses 1.4 % starting 2.1 s in";
headroom below 1 leads the verdict: events are lost today), then the replay at the agent's scale
(delivered, lost and when, the peak backlog against Q and Q + B, latency from event to callback,
the sender's lateness against the schedule), the headroom search's trials, and four plots: the
trace's arrival profile with the replayed window marked, the backlog over time against Q and
Q + B, the loss timeline, and the cost distribution used (or a native library's measured one).
Works from a run folder alone, like the rest of the report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.plots import COLORS, save_figure  # noqa: E402
from harness.results.records import HeadroomResult, ReplayResult, RunSummary  # noqa: E402
from harness.results.runs import Run  # noqa: E402

REPLAY_HEADER = ["", "value"]
TRIALS_HEADER = ["trial", "scale", "role", "events", "lost", "first loss (s)", "sender kept the schedule"]


def _n(v: Any, fmt: str = ",.0f") -> str:
    return "-" if v is None or v != v else format(v, fmt)


def verdict_line(summary: RunSummary) -> str | None:
    """The headroom in one sentence, for the report's verdict."""
    h = summary.experiments.headroom
    if h is None:
        return None
    need = f" (required: {h.required:g}x)" if h.required is not None else ""
    return f"Your traffic and subscriber: {h.sentence}{need}."


def replay_rows(r: ReplayResult) -> list[list[str]]:
    late = r.sender_late_us
    rows = [
        ["trace", f"{r.trace.get('source')} ({r.trace.get('kind')}), {_n(r.trace.get('packets'))} packets, "
                  f"{_n(r.trace.get('flows'))} flows, {_n(r.trace.get('duration_s'), '.3g')} s at {r.scale:g}x"],
        ["events", f"one per {r.trace_events[:-1]} ({r.trace_events_why})"],
        ["delivered / lost", f"{_n(r.delivered)} / {_n(r.lost)} of {_n(r.expected)} ({r.loss_ratio:.2%})"],
        ["first loss", "none" if r.first_loss_s is None else f"{r.first_loss_s:.4g} s after the first packet"],
        ["peak backlog", f"{_n(r.peak_backlog)} events against Q {_n(r.queue_limit)} and Q + B {_n(r.capacity)} "
                         f"({r.capacity_source})"],
        ["latency event -> callback", f"p50 {_n(r.latency_us.get('p50'), ',.1f')} µs, p99 "
                                      f"{_n(r.latency_us.get('p99'), ',.1f')} µs, max {_n(r.latency_us.get('max'), ',.1f')} µs"],
        ["sender lateness vs schedule", "virtual time: none" if late.get("p99") is None else
         f"p50 {_n(late.get('p50'), ',.1f')} µs, p99 {_n(late.get('p99'), ',.1f')} µs, max {_n(late.get('max'), ',.1f')} µs"],
        ["replay kept", "yes" if r.trusted else f"no, evidence of nothing: {r.untrusted_reason}"],
        ["subscriber", _subscriber(r.subscriber)],
    ]
    if r.library_cost_us:
        rows.append(["your library, measured per event", f"median {_n(r.library_cost_us.get('p50'), ',.3f')} µs, "
                                                          f"p99 {_n(r.library_cost_us.get('p99'), ',.3f')} µs"])
    if r.repeat_events:
        rows.append(["repeat events", f"{r.repeat_events:,} events beyond one per {r.trace_events[:-1]}: this "
                                      "machine classified a blocked flow's later packets again"])
    if r.function_errors:
        rows.append(["your function raised", f"{r.function_errors:,} time(s)"])
    if r.interference:
        rows.append(["interference", "; ".join(r.interference)])
    rows += [["note", note] for note in r.notes]
    return rows


def _subscriber(s: dict[str, Any]) -> str:
    parts = [f"{s.get('mode')} mode"]
    cost = s.get("cost")
    if isinstance(cost, dict):
        parts.append(f"costs from {cost.get('source')} (sha256 {str(cost.get('sha256'))[:12]}, mean "
                     f"{_n(cost.get('mean_us'), ',.1f')} µs, p99 {_n(cost.get('p99_us'), ',.1f')} µs, seed {cost.get('seed')})")
    elif s.get("cost_us") is not None:
        parts.append(f"{s['cost_us']:g} µs per event")
    if s.get("function"):
        parts.append(f"your Python function {s['function']}")
    library = s.get("library")
    if isinstance(library, dict) and library:
        parts.append(f"your library {library.get('path')}:{library.get('symbol')} (sha256 {library.get('sha256')})")
    return ", ".join(parts)


def trial_rows(h: HeadroomResult) -> list[list[str]]:
    return [[str(t.trial), f"{t.scale:.4g}x", t.role, _n(t.expected), _n(t.lost), _n(t.first_loss_s, ".4g"),
             "yes" if t.trusted else "no"] for t in h.trials]


def headroom_lines(h: HeadroomResult) -> list[str]:
    lines = [f"**{h.sentence[0].upper() + h.sentence[1:]}**."]
    bracket = ", ".join(_n(b, ".4g") for b in h.bracket)
    lines.append(f"Search: bracket [{bracket}] at a resolution of {h.resolution:.1%}, from {h.start_scale:g}x; "
                 f"status {h.status}" + (f" ({'; '.join(h.status_reasons)})" if h.status_reasons else "")
                 + f"; confirmed: {'yes' if h.confirmed else 'no'}; rests on trials {h.rests_on}.")
    if h.required is not None and h.headroom is not None:
        met = "meets" if h.headroom >= h.required else "does not meet"
        lines.append(f"The headroom {h.headroom:.3g}x {met} the required {h.required:g}x.")
    lines += h.notes
    return lines


# -- plots --------------------------------------------------------------------------------------
def _frame(run: Run, name: str | None) -> pd.DataFrame | None:
    path = run.path / "events" / f"{name}.csv.gz" if name else None
    return pd.read_csv(path) if path is not None and path.exists() else None


def make_plots(run: Run) -> dict[str, Path]:
    r = run.summary.experiments.replay
    if r is None:
        return {}
    out: dict[str, Path] = {}
    profile = _frame(run, "trace-profile")
    if profile is not None and len(profile):
        out["trace_profile"] = _profile_plot(profile, r, run.path / "trace_profile.png")
    backlog = _frame(run, r.frames.get("backlog"))
    if backlog is not None and len(backlog):
        out["replay_backlog"] = _backlog_plot(backlog, r, run.path / "replay_backlog.png")
    loss = _frame(run, r.frames.get("loss"))
    if loss is not None and len(loss):
        out["replay_loss"] = _loss_plot(loss, r, run.path / "replay_loss.png")
    cost, library = _frame(run, "subscriber-cost"), _frame(run, r.frames.get("library_cost"))
    if (cost is not None and len(cost)) or (library is not None and len(library)):
        out["subscriber_cost"] = _cost_plot(cost, library, r, run.path / "subscriber_cost.png")
    return out


def _profile_plot(profile: pd.DataFrame, r: ReplayResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.plot(profile["t_s"], profile["events_per_ms"], color=COLORS["queue"], lw=0.8)
    if r.window:
        start, length = r.window["start_s"], r.window["length_s"]
        ax.axvspan(start, start + length, color=COLORS["buffer"], alpha=0.15,
                   label=f"replayed window {start:.3g}..{start + length:.3g} s")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("time in the trace (s, its own speed)")
    ax.set_ylabel("events per ms")
    ax.set_title(f"Arrival profile: {r.trace.get('source')}", fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _backlog_plot(backlog: pd.DataFrame, r: ReplayResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    rec = backlog.dropna(subset=["backlog"]) if "backlog" in backlog else backlog.iloc[0:0]
    ax.plot(rec["t_s"], rec["backlog"], color=COLORS["queue"], lw=1, label="backlog from records (sent, not yet called back)")
    if "queued" in backlog:
        truth = backlog.dropna(subset=["queued"])
        ax.plot(truth["t_s"], truth["queued"], color=COLORS["truth"], lw=1, ls="--", label="model: queue + buffer held")
    if r.queue_limit:
        ax.axhline(r.queue_limit, color=COLORS["queue"], ls=":", lw=1, label=f"Q = {r.queue_limit:,}")
    if r.capacity:
        ax.axhline(r.capacity, color=COLORS["buffer"], ls=":", lw=1, label=f"Q + B = {r.capacity:,}")
    ax.set_xlabel(f"time from the first packet (s, at {r.scale:g}x)")
    ax.set_ylabel("events waiting")
    ax.set_title(f"Backlog over the replay (Q, Q + B {r.capacity_source})", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _loss_plot(loss: pd.DataFrame, r: ReplayResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    width = float(loss["t_s"].diff().median()) if len(loss) > 1 else 1.0
    edges = [*loss["t_s"], float(loss["t_s"].iloc[-1]) + width]  # one artist per series: 400 bars took seconds
    ax.stairs(loss["events"], edges, fill=True, color=COLORS["ok"], alpha=0.5, label="events")
    ax.stairs(loss["lost"], edges, fill=True, color=COLORS["lost"], label="lost")
    ax.set_xlabel(f"send time from the first packet (s, at {r.scale:g}x)")
    ax.set_ylabel("events per bin")
    ax.set_title(f"Loss timeline: {r.lost:,} of {r.expected:,} lost", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _cost_plot(cost: pd.DataFrame | None, library: pd.DataFrame | None, r: ReplayResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    if cost is not None and len(cost):
        ax.step(cost["us"], cost["cdf"], where="post", color=COLORS["queue"], label="cost distribution used (CDF)")
    if library is not None and len(library):
        total = max(int(library["count"].sum()), 1)
        ax.step(library["us"], library["count"].cumsum() / total, where="post", color=COLORS["buffer"],
                label="your library, measured per event (CDF)")
    shown = [f["us"] for f in (cost, library) if f is not None and len(f)]
    if shown and min(float(v.min()) for v in shown) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("work per event (µs)")
    ax.set_ylabel("share of events at or below")
    ax.set_title("Subscriber cost per event", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
