"""What a run measured, estimate by estimate, with the spread the run itself saw.

Every consumer that judges numbers (history, the baseline gate, the fleet page, the headline)
reads them through `readings(summary)`, so a new spread field (a confidence interval, a
repetition's min/max) plugs in here and nowhere else. Which estimates there are, and which way is
better, is the catalogue's (results/catalog.py).

A reading's spread is the interval [low, high] inside which this run cannot tell values apart:
- burst capacity: every reading of the capacity the run made (the searches, the oversized bursts
  of the plateau, the drain's own burst);
- buffer depth: capacity - first batch - queue limit, so it inherits the capacity's spread;
- NDR per callback cost: the search's bracket, from the loss-free rate to the first lossy one,
  widened to the highest rate that any trial of the search passed (a noisy platform passes a
  short trial at a rate where a longer one loses);
- headroom: its search's bracket, from the largest loss-free scale to the first lossy one.
An estimate without spread information has low == high == value.

A reading is `inconclusive` when the run says its own number cannot be trusted: an NDR whose
row says so (`status` other than conclusive, with `status_reasons`), or whose deciding trials (at
or below the first lossy rate) missed their offered load (the traffic generator's own report,
`gen_trusted`/`trusted`); an estimate whose evidence says `status` inconclusive or
generator-limited (the headroom), with its `status_reasons`. The gate never passes or fails on such a number. An NDR row's relative
`spread` (the service rate's variation) widens its interval on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.results import catalog
from harness.results.catalog import EstimateKind, ndr_key, ndr_title
from harness.results.records import Estimate, Estimates, NdrResult, RunSummary

@dataclass(frozen=True)
class Reading:
    key: str             # "buffer_depth", "ndr@20us"
    title: str
    unit: str
    better: str | None   # "higher", or None for estimates that are not gated
    value: float | None  # None: measured but not detectable
    low: float | None
    high: float | None
    note: str = ""       # why there is no value
    inconclusive: str = ""  # why this run's value cannot be trusted ("" when it can)

    @property
    def half_width(self) -> float:
        if self.value is None or self.low is None or self.high is None:
            return 0.0
        return max(self.value - self.low, self.high - self.value)

    def spread_text(self) -> str:
        if self.value is None or self.low is None or self.high is None or self.low == self.high:
            return ""
        return f"{shown(self.low)}..{shown(self.high)}"


def shown(value: float) -> str:
    """A reading's number for a reader: whole events and rates, a scale (headroom 3.2x) with its decimals."""
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"


def _numbers(*values: Any) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _flat(estimate: Estimate | None) -> dict[str, Any]:
    """An estimate as summary.json holds it: value, method and its evidence's keys side by side."""
    return estimate.to_json() if estimate is not None else {}


def _capacity_range(estimates: Estimates) -> tuple[float, float] | None:
    """Every reading of the burst capacity that the run made."""
    # a stored summary is input: anything that is not the shape written is ignored, never a crash
    cap, plat, depth = (_flat(estimates.get(k)) for k in ("burst_capacity", "plateau", "buffer_depth"))
    searches = cap.get("searches") if isinstance(cap.get("searches"), list) else []
    seen = _numbers(cap.get("value"), cap.get("min"), cap.get("max"), *searches,
                    plat.get("value"), plat.get("min"), plat.get("max"), depth.get("capacity"))
    return (min(seen), max(seen)) if seen else None


def _estimate_reading(kind: EstimateKind, e: Estimate, estimates: Estimates) -> Reading:
    key, title, unit, better = kind.key, kind.title, kind.unit, kind.better
    value = e.value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return Reading(key, title, unit, better, None, None, None, e.reason or "not detectable")
    value = float(value)
    low = high = value
    if key in ("burst_capacity", "plateau"):
        span = _capacity_range(estimates)
        if span:
            low, high = min(low, span[0]), max(high, span[1])
    elif key == "buffer_depth":
        span = _capacity_range(estimates)
        used = e.evidence.get("capacity")
        if span and isinstance(used, (int, float)):
            low, high = value - (used - span[0]), value + (span[1] - used)
    elif key == "headroom":
        lossy = _numbers(e.evidence.get("first_lossy_scale"))
        high = max(value, lossy[0]) if lossy else value
    status = e.evidence.get("status")
    why = ""
    if isinstance(status, str) and status != "conclusive":
        reasons = e.evidence.get("status_reasons")
        why = "; ".join(map(str, reasons)) if isinstance(reasons, list) and reasons else status
    return Reading(key, title, unit, better, value, low, high, inconclusive=why)


def _ndr_trials(trials: pd.DataFrame | None, cost: float) -> pd.DataFrame:
    """The sustained trials of the search at this callback cost (a subscription template's search
    offers more than reaches the callback: not the same number)."""
    if trials is None or trials.empty or "search_cost_us" not in trials:
        return pd.DataFrame()
    plain = trials["templated"].astype(str) != "True" if "templated" in trials else True
    return trials[(trials["experiment"] == "sustained") & (trials["search_cost_us"] == cost) & plain]


def _ndr_reading(row: NdrResult, trials: pd.DataFrame | None) -> Reading:
    cost = float(row.callback_cost_us)
    key, title = ndr_key(cost), ndr_title(cost)
    unit, better = catalog.NDR.unit, catalog.NDR.better
    rate = row.rate_per_s
    if not rate:
        return Reading(key, title, unit, better, None, None, None, row.note or "no loss-free rate")
    rate = float(rate)
    lossy = _numbers(row.first_overloaded_rate_per_s)
    step = _numbers(row.resolution_per_s) or [0.0]
    low, high = rate, lossy[0] if lossy else rate + step[0]
    spread = _numbers(row.spread)  # relative: how much the service rate behind the NDR varied
    if spread and 0 < spread[0] < 1:
        low, high = rate * (1 - spread[0]), max(high, rate * (1 + spread[0]))
    reasons = row.status_reasons
    # a varying service rate is what `spread` measures and widens the interval by: the gate judges
    # around it; every other reason (not confirmed, generator-limited, interference) means no verdict
    reasons = [str(r) for r in reasons if not str(r).startswith("mu varied")] if isinstance(reasons, list) else []
    why = "; ".join(reasons) if row.status not in (None, "conclusive") else ""
    if row.status not in (None, "conclusive", "inconclusive"):
        why = why or str(row.status)
    if row.by_trend:  # the search judged its own trials (by backlog trend, not by loss)
        return Reading(key, title, unit, better, rate, low, max(rate, high), inconclusive=why)
    search = _ndr_trials(trials, cost)
    if len(search):
        deciding = search[search["offered_rate_per_s"] <= high * (1 + 1e-9)]  # the trials that made the bracket
        passed = search[search["lost"] == 0]["offered_rate_per_s"]
        high = max(high, float(passed.max())) if len(passed) else high
        trusted = next((c for c in ("trusted", "gen_trusted") if c in deciding), None)
        missed = int((deciding[trusted].astype(str) == "False").sum()) if trusted else 0
        if missed and not why:
            why = f"the generator missed its offered load in {missed} of {len(deciding)} deciding trials"
    return Reading(key, title, unit, better, rate, low, max(rate, high), inconclusive=why)


def readings(summary: RunSummary, trials: pd.DataFrame | None = None) -> dict[str, Reading]:
    """Every estimate of the run that has a value or a reason, keyed as in the catalogue and by
    ndr_key. `trials` (the run's trials.csv) adds what only the trials tell: the NDR searches' noise."""
    estimates = summary.estimates
    out: dict[str, Reading] = {}
    for kind in catalog.CATALOG:
        e = estimates.get(kind.key)
        if e is not None:
            out[kind.key] = _estimate_reading(kind, e, estimates)
    for row in sorted(estimates.ndr, key=lambda r: r.callback_cost_us):
        reading = _ndr_reading(row, trials)
        out[reading.key] = reading
    return out
