"""Run folders for report tests, written from real model runs: a run is copied and its stored
estimates get the run-to-run noise a real machine shows (the model itself repeats exactly)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from harness.campaign import Campaign, load_expectations
from harness.platforms.model import ModelParams, ModelPlatform
from harness.report.render import render

CAPACITY_KEYS = ("burst_capacity", "plateau")


def real_run(root: Path, ndr_costs: tuple[float, ...] = (), label: str = "box", **params) -> Path:
    """A model campaign (burst, drain, NDR at the given costs), rendered; returns its run folder."""
    c = Campaign.open(ModelPlatform(ModelParams(**params)), str(root), "quick", load_expectations(None), label)
    c.drain()
    for cost in ndr_costs:
        c.ndr(cost)
    set_status(c.store.path, "complete")
    render(c.store.path)
    return c.store.path


def set_status(run: Path, status: str, started_utc: str | None = None, **fields) -> dict:
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    summary["run"].update({"status": status, **fields})
    if started_utc:
        summary["run"]["started_utc"] = started_utc
    path.write_text(json.dumps(summary, indent=2))
    return summary


def noisy_copy(source: Path, config: Path, name: str, rng: np.random.Generator, started_utc: str,
               run_sd: float = 0.015, within_sd: float = 0.006, ndr_sd: float = 0.02) -> Path:
    """Copy `source` to config/name; shift every capacity reading by one run-to-run draw, spread
    the oversized bursts' readings around it, and move the NDR brackets by their own noise."""
    dest = config / name
    shutil.copytree(source, dest)
    summary = json.loads((dest / "summary.json").read_text())
    est = summary["estimates"]
    buffer = est["buffer_depth"]["value"]
    shift = int(round(buffer * run_sd * rng.standard_normal()))
    cap = est["burst_capacity"]["value"] + shift
    readings = cap + np.round(buffer * within_sd * rng.standard_normal(5)).astype(int)
    est["burst_capacity"].update(value=cap, min=cap, max=cap, searches=[cap])
    est["plateau"].update(value=int(np.median(readings)), min=int(readings.min()), max=int(readings.max()))
    est["buffer_depth"].update(value=buffer + shift, capacity=est["buffer_depth"]["capacity"] + shift)
    for row in est.get("ndr", []):
        factor = 1 + ndr_sd * rng.standard_normal()
        row["rate_per_s"] = round(row["rate_per_s"] * factor, 1)
        row["first_overloaded_rate_per_s"] = round(row["rate_per_s"] + row["resolution_per_s"], 1)
    summary["run"].update(status="complete", started_utc=started_utc)
    (dest / "summary.json").write_text(json.dumps(summary, indent=2))
    return dest


def graft_ndr(source: Path, dest: Path) -> None:
    """Give `dest` the NDR rows and sustained trials of `source` (both real runs)."""
    src, dst = (json.loads((p / "summary.json").read_text()) for p in (source, dest))
    own = pd.read_csv(dest / "trials.csv")
    grafted = pd.read_csv(source / "trials.csv")
    grafted = grafted[grafted["experiment"] == "sustained"].copy()
    grafted["trial"] = range(len(own), len(own) + len(grafted))  # trials.csv numbers its rows in order
    merged = pd.concat([own, grafted], ignore_index=True)
    merged.to_csv(dest / "trials.csv", index=False)
    dst["estimates"]["ndr"] = src["estimates"]["ndr"]
    dst["trials"] = len(merged)
    (dest / "summary.json").write_text(json.dumps(dst, indent=2))
