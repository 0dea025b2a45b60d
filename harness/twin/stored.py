"""A stored trial read back as the twin needs it: the spec it ran (rebuilt from its row of
trials.csv, which holds what the trial asked for) and, where the run kept them, its events.

Rows keep the traffic (count, pacing, rate), the subscriber (cost, cv, mode, hold) and whether a
template applied; the rest of a spec is what the experiments always use (campaign.base_spec,
the template experiment's mixed addresses and template), so the spec rebuilt here is the one the
trial ran.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness.experiments.template import MIXED_ADDRESSES, template_for
from harness.results.read import read_events
from harness.results.records import TrialRow
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec


def _number(value: Any) -> float | None:
    """A cell as a float; None where empty (pandas reads an empty cell as NaN)."""
    if value is None or isinstance(value, str):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _flag(value: Any) -> bool:
    return value is True or str(value) == "True"


def trial_spec(row: TrialRow) -> TrialSpec:
    """The spec a stored trial ran, from its row."""
    pacing = str(row["pacing"])
    rate = _number(row.get("offered_rate_per_s")) if pacing != "burst" else None
    mixed = row.get("experiment") == "template"
    traffic = TrafficSpec(count=int(row["count"]), pacing=pacing, rate_per_s=rate,
                          remote_addresses=MIXED_ADDRESSES if mixed else ("127.0.0.1",))
    subscriber = SubscriberSpec(cost_us=_number(row.get("cost_us")) or 0.0, cost_cv=_number(row.get("cost_cv")) or 0.0,
                                hold=_flag(row.get("hold")), mode=str(row.get("mode") or "inline"))
    template = template_for() if _flag(row.get("templated")) else None
    return TrialSpec(traffic, subscriber, template=template, label=str(row.get("label") or ""))


KEPT_COLUMNS = {"sent": ("seq", "t_send_ns"), "delivered": ("seq", "t_event_ns", "t_callback_ns", "t_done_ns")}


def kept_events(run: Path, trial: int, experiment: str) -> dict[str, pd.DataFrame]:
    """The event frames a run kept for one trial (the drain keeps "sent" and "delivered"), checked
    as results/read.py checks every events frame (StoredFileError naming the file)."""
    out = {}
    for name, columns in KEPT_COLUMNS.items():
        path = run / "events" / f"{int(trial):04d}-{experiment}-{name}.csv.gz"
        if path.exists():
            out[name] = read_events(path, columns)
    return out
