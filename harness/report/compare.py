"""Lay several machine configurations side by side (`wfpcap compare`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.status import describe, is_complete
from harness.report.stored import read_summary

ROWS = ["burst_capacity", "queue_limit", "first_batch", "buffer_depth", "plateau", "drain_rate"]


def latest_summary(path: Path) -> dict[str, Any]:
    """A run folder, a summary.json itself, or a config folder: its newest complete run (runs
    that were interrupted or measured a subset are skipped; if none is complete, the newest run,
    whose status the table then shows)."""
    if path.is_file() and path.name == "summary.json":
        return read_summary(path)
    if (path / "summary.json").exists():
        return read_summary(path / "summary.json")
    runs = sorted(path.glob("*/summary.json"), reverse=True)
    if not runs:
        raise ValueError(f"no summary.json under {path}")
    summaries = [read_summary(p) for p in runs]
    return next((s for s in summaries if is_complete(s)), summaries[0])


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    """Summaries for every given folder; a folder of config folders expands to all of them."""
    out = []
    for path in paths:
        if not path.exists():
            raise ValueError(f"{path} does not exist")
        configs = [p for p in sorted(path.iterdir()) if p.is_dir() and list(p.glob("*/summary.json"))] \
            if path.is_dir() and not (path / "summary.json").exists() and not list(path.glob("*/summary.json")) else [path]
        for c in configs:
            out.append(latest_summary(c))
    if not out:
        raise ValueError("nothing to compare")
    return out


def _value(summary: dict[str, Any], key: str) -> str:
    e = summary.get("estimates", {}).get(key)
    if not isinstance(e, dict):
        return "-"
    v = e.get("value")
    return "n/d" if v is None else (f"{v:,.0f}" if isinstance(v, (int, float)) else str(v))


def compare_markdown(summaries: list[dict[str, Any]]) -> str:
    header = "| estimate | " + " | ".join(s["config_id"] for s in summaries) + " |"
    lines = [header, "|---" * (len(summaries) + 1) + "|"]
    lines.append("| platform | " + " | ".join(s["platform"] for s in summaries) + " |")
    lines.append("| run status | " + " | ".join(describe(s) for s in summaries) + " |")
    lines.append("| machine | " + " | ".join(str(s["fingerprint"]["stable"].get("machine")) for s in summaries) + " |")
    lines.append("| os | " + " | ".join(str(s["fingerprint"]["stable"].get("os")) for s in summaries) + " |")
    for key in ROWS:
        lines.append(f"| {key} | " + " | ".join(_value(s, key) for s in summaries) + " |")
    costs = sorted({r["callback_cost_us"] for s in summaries for r in s.get("estimates", {}).get("ndr", [])})
    for cost in costs:
        cells = []
        for s in summaries:
            hit = [r for r in s.get("estimates", {}).get("ndr", []) if r["callback_cost_us"] == cost]
            cells.append(f"{hit[0]['rate_per_s']:,.0f}" if hit and hit[0].get("rate_per_s") else "-")
        lines.append(f"| NDR @ {cost:g} µs (events/s) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
