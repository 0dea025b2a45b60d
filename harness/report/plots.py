"""The plots a reader of a capacity report expects. Each function takes frames
and numbers, writes one PNG and returns its path; none of them touches a platform."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI runners
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.analysis.backlog import downsample_max  # noqa: E402
from harness.files import replacing  # noqa: E402
from harness.results.records import InlineCopyResult, NdrResult  # noqa: E402

COLORS = {"ok": "#2b8a3e", "lost": "#c92a2a", "queue": "#1971c2", "buffer": "#e8590c", "truth": "#868e96"}


def save_figure(fig: plt.Figure, path: Path, dpi: int = 110) -> Path:
    """Write a figure whole or not at all (never a 0-byte PNG on a full disk), then close it."""
    try:
        fig.tight_layout()
        with replacing(path) as tmp:  # whole or absent: never a 0-byte PNG on a full disk
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def delivered_vs_burst(trials: pd.DataFrame, cap: float | None, first: float | None, q: float | None,
                       path: Path) -> Path:
    """The burst trials' delivered counts, with the capacity, first batch + queue and the buffer marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ok = trials[trials["lost"] == 0]
    bad = trials[trials["lost"] > 0]
    top = max(trials["count"].max(), 1)
    ax.plot([0, top], [0, top], color=COLORS["truth"], lw=0.8, ls=":", label="delivered = sent")
    ax.scatter(ok["count"], ok["delivered"], color=COLORS["ok"], s=22, label="no loss", zorder=3)
    ax.scatter(bad["count"], bad["delivered"], color=COLORS["lost"], s=22, marker="x", label="events lost", zorder=3)
    if cap:
        ax.axhline(cap, color="black", lw=1, label=f"burst capacity {cap:,}")
    if first is not None and q:
        ax.axhline(first + q, color=COLORS["queue"], ls="--", lw=1, label=f"first batch + queue = {first + q:,}")
        ax.axhspan(first + q, cap or first + q, color=COLORS["buffer"], alpha=0.08,
                   label=f"system buffer {(cap or 0) - first - q:,}")
    ax.set_xlabel("burst size (events sent back to back, subscriber held)")
    ax.set_ylabel("events delivered")
    ax.set_title("Delivered vs burst size: the plateau is the burst capacity")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def drain_timeline(delivered: pd.DataFrame, boundaries: list[int] | None, t_release_ns: int | None,
                   path: Path) -> Path:
    d = delivered.sort_values("t_callback_ns", kind="stable")
    t0 = t_release_ns if t_release_ns is not None else int(d["t_callback_ns"].min())
    t_ms = (d["t_callback_ns"].to_numpy() - t0) / 1e6
    gaps_us = np.diff(d["t_callback_ns"].to_numpy()) / 1e3
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=False)
    ax1.plot(t_ms, np.arange(1, len(t_ms) + 1), color=COLORS["queue"], lw=1)
    ax1.set_xlabel("time since release (ms)")
    ax1.set_ylabel("callbacks started")
    ax1.set_title("Drain after release")
    ax2.plot(np.arange(1, len(gaps_us) + 1), gaps_us, color=COLORS["truth"], lw=0.6)
    for k, b in enumerate(boundaries or []):
        ax2.axvline(b, color=COLORS["lost"], lw=0.5, alpha=0.6, label="detected batch boundary" if k == 0 else None)
    ax2.set_yscale("log")
    ax2.set_xlabel("event (delivery order)")
    ax2.set_ylabel("gap to next callback (µs)")
    ax2.set_title(f"Batch boundaries: {len(boundaries or [])} detected")
    if boundaries:
        ax2.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    return save_figure(fig, path)


def backlog_plot(backlog: pd.DataFrame, truth: pd.DataFrame | None, q: float | None, b: float | None,
                 path: Path) -> Path:
    """The drain's backlog over time against Q and Q + B (measured, or expected where not measured)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    t0 = backlog["t_ns"].min() if len(backlog) else 0
    t, v = downsample_max(backlog["t_ns"].to_numpy(), backlog["backlog"].to_numpy())
    ax.plot((t - t0) / 1e6, v, color=COLORS["queue"], lw=1.2, label="backlog from records (sent, not yet called back)")
    if truth is not None and len(truth):
        occ = (truth["next_queue"] + truth["buffer"]).to_numpy()
        tt, vv = downsample_max(truth["t_ns"].to_numpy(), occ)
        ax.plot((tt - t0) / 1e6, vv, color=COLORS["truth"], lw=1, ls="--", label="model ground truth: queue + buffer")
    if q:
        ax.axhline(q, color=COLORS["queue"], ls=":", lw=1, label=f"Q = {q:,}")
    if q and b:
        ax.axhline(q + b, color=COLORS["buffer"], ls=":", lw=1, label=f"Q + B = {q + b:,}")
    ax.set_xlabel("time since first send (ms)")
    ax.set_ylabel("events waiting")
    ax.set_title("Backlog over time (held burst, then drain)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def loss_vs_rate(trials: pd.DataFrame, ndr: list[NdrResult], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    cmap = plt.get_cmap("viridis")
    costs = sorted(trials["search_cost_us"].dropna().unique()) if "search_cost_us" in trials else []
    for k, cost in enumerate(costs):
        color = cmap(k / max(1, len(costs) - 1) * 0.85)
        sub = trials[trials["search_cost_us"] == cost].sort_values("offered_rate_per_s")
        ax.plot(sub["offered_rate_per_s"], sub["loss_ratio"] * 100, "o-", color=color, ms=4, lw=1,
                label=f"callback {cost:g} µs")
        ax.axvline(1e6 / cost, color=color, ls=":", lw=1)
        hit = [r for r in ndr if r.callback_cost_us == cost and r.rate_per_s]
        if hit:
            ax.plot([hit[0].rate_per_s], [0], marker="v", color=color, ms=10, mec="black")
    ax.set_xscale("log")
    ax.set_xlabel("offered rate (events/s); dotted: 1/cost; triangle: NDR")
    ax.set_ylabel("events lost (%)")
    ax.set_title("Loss vs offered rate per callback cost")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)


def inline_copy_plot(result: InlineCopyResult, path: Path) -> Path:
    modes = [(name, m) for name, m in (("inline", result.inline), ("copy", result.copy)) if m is not None]
    keys = ["p50", "p99", "p99_9", "max"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    width = 0.38
    x = np.arange(len(keys))
    for k, (name, mode) in enumerate(modes):
        lat = mode.latency_to_work_done_us
        ax1.bar(x + (k - 0.5) * width, [lat.get(key) or 0 for key in keys], width, label=name)
    ax1.set_xticks(x, ["p50", "p99", "p99.9", "max"])
    ax1.set_ylabel("send to work done (µs)")
    ax1.set_yscale("log")
    ax1.set_title("Latency")
    ax1.legend(fontsize=8)
    ax2.bar([name for name, _ in modes], [m.loss_ratio * 100 for _, m in modes],
            color=[COLORS["lost"], COLORS["ok"]][: len(modes)])
    ax2.set_ylabel("events lost (%)")
    ax2.set_title("Loss at the same offered rate")
    return save_figure(fig, path)


def trend(labels: list[str], values: list[float], lows: list[float], highs: list[float],
          levels: list[tuple[int, int, float]], steps: list[int], title: str, unit: str, path: Path) -> Path:
    """One estimate over runs: each run's value with its measured spread, the fitted levels and
    the detected steps (index of the first run after each step)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    x = np.arange(1, len(values) + 1)
    v = np.asarray(values, dtype=float)
    err = np.vstack([v - np.asarray(lows, dtype=float), np.asarray(highs, dtype=float) - v])
    ax.errorbar(x, v, yerr=err, fmt="o", color=COLORS["queue"], ms=5, capsize=3, lw=1, label="run (measured spread)")
    for k, (start, end, level) in enumerate(levels):
        ax.hlines(level, start - 0.4, end + 0.4, color=COLORS["truth"], lw=2, alpha=0.7,
                  label="level between steps" if k == 0 else None)
    for k, index in enumerate(steps):
        ax.axvline(index + 0.5, color=COLORS["lost"], ls="--", lw=1.2,
                   label=f"step at run {index + 1}" if len(steps) == 1 else ("step" if k == 0 else None))
    every = max(1, len(labels) // 20)  # a long history keeps readable tick labels
    ax.set_xticks(x[::every], labels[::every], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _fleet_styles(n: int) -> list[tuple[Any, str]]:
    """Distinct colour and marker per configuration, readable up to a few dozen."""
    cmap = plt.get_cmap("tab20" if n <= 20 else "turbo")
    markers = "os^vD<>ph*"
    return [(cmap(k % 20 / 20 if n <= 20 else k / max(1, n - 1)), markers[k % len(markers)]) for k in range(n)]


def _fleet_legend(fig: plt.Figure, ax: plt.Axes, n: int) -> None:
    ax.legend(fontsize=7, ncol=max(1, (n + 14) // 15), loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title="configuration", title_fontsize=8, frameon=False)


def fleet_bursts(series: list[tuple[str, pd.DataFrame]], path: Path) -> Path:
    """Delivered vs burst size, one line per configuration (each burst trial of its run)."""
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for (label, trials), (color, marker) in zip(series, _fleet_styles(len(series))):
        t = trials.sort_values("count")
        ax.plot(t["count"], t["delivered"], marker=marker, ms=4, lw=1, color=color, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("burst size (events sent back to back, subscriber held)")
    ax.set_ylabel("events delivered")
    ax.set_title("Delivered vs burst size: each plateau is a configuration's burst capacity")
    ax.grid(alpha=0.3, which="both")
    _fleet_legend(fig, ax, len(series))
    return save_figure(fig, path)


def fleet_loss(series: list[tuple[str, pd.DataFrame]], path: Path) -> Path:
    """Loss vs offered rate, one panel per callback cost, one line per configuration."""
    costs = sorted({c for _, t in series for c in t["search_cost_us"].dropna().unique()})
    fig, axes = plt.subplots(1, max(1, len(costs)), figsize=(4 * max(1, len(costs)) + 2, 4.2), squeeze=False)
    styles = _fleet_styles(len(series))
    for ax, cost in zip(axes[0], costs):
        for (label, trials), (color, marker) in zip(series, styles):
            t = trials[trials["search_cost_us"] == cost].sort_values("offered_rate_per_s")
            if len(t):
                ax.plot(t["offered_rate_per_s"], t["loss_ratio"] * 100, marker=marker, ms=3, lw=0.8, color=color,
                        label=label)
        ax.axvline(1e6 / cost, color=COLORS["truth"], ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"callback {cost:g} µs (dotted: 1/cost)", fontsize=9)
        ax.set_xlabel("offered rate (events/s)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("events lost (%)")
    _fleet_legend(fig, axes[0][-1], len(series))
    return save_figure(fig, path)
