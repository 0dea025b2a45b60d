"""Lay several machine configurations side by side (`wfpcap compare`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROWS = ["burst_capacity", "queue_limit", "first_batch", "buffer_depth", "plateau", "drain_rate"]


def latest_summary(path: Path) -> Path:
    """A run folder, or a config folder (its newest run), or a summary.json itself."""
    if path.is_file() and path.name == "summary.json":
        return path
    if (path / "summary.json").exists():
        return path / "summary.json"
    runs = sorted(p for p in path.glob("*/summary.json"))
    if not runs:
        raise ValueError(f"no summary.json under {path}")
    return runs[-1]


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    """Summaries for every given folder; a folder of config folders expands to all of them."""
    out = []
    for path in paths:
        if not path.exists():
            raise ValueError(f"{path} does not exist")
        configs = [p for p in sorted(path.iterdir()) if p.is_dir() and list(p.glob("*/summary.json"))] \
            if path.is_dir() and not (path / "summary.json").exists() and not list(path.glob("*/summary.json")) else [path]
        for c in configs:
            out.append(json.loads(latest_summary(c).read_text()))
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
