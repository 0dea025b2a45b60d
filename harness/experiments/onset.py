"""Loss onset: overloaded at a multiple of the measured service rate mu, loss should begin once the
backlog has filled the capacity, after C / (r - mu) seconds. The prediction's interval comes from
the measured spreads (mu's, the capacity's, the sender's lag); in real time several trials measure
the onset's own spread."""
from __future__ import annotations

import math

import numpy as np

from harness.experiments.search import NdrConfig, SustainedTrials
from harness.platforms.base import Platform
from harness.results.records import NdrResult, OnsetResult, TrialRow
from harness.results.store import ResultStore
from harness.spec import TrialSpec


def loss_onset(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float, rate: float,
               duration_s: float, capacity: int | None = None, attempts: int = 3) -> TrialRow:
    """One overloaded trial (run again while its generator misses the load): when did the first loss
    happen, and what did the subscriber serve meanwhile."""
    s = SustainedTrials(platform, base, store, cost_us, capacity, NdrConfig(attempts=attempts), "onset", {})
    j = s.attempt(rate, duration_s)
    return {**j.row, "untrusted_trials": s.untrusted}


def measure_onset(platform: Platform, base: TrialSpec, store: ResultStore, ndr_row: NdrResult,
                  capacity_low: int | None, capacity_high: int | None, batch: int | None,
                  overload: float = 1.5, repeats: int = 1) -> OnsetResult:
    """Overloaded at `overload` x the measured mu, loss should begin after the backlog has filled
    the capacity: onset = C / (r - mu). `repeats` overloaded trials measure the onset's own spread
    (onset_low_s .. onset_high_s). The prediction's interval comes from the measured spreads: mu's
    confidence interval (of the NDR search, and what each trial served over its onset's stretch),
    the capacity's range (plus one batch in service, which the backlog holds too), and the
    sender's worst lag."""
    cost = ndr_row.callback_cost_us
    mu, mu_low, mu_high = ndr_row.mu_per_s, ndr_row.mu_low_per_s, ndr_row.mu_high_per_s
    if not mu or not capacity_low:
        return OnsetResult(cost, reason="needs a measured mu and a burst capacity")
    rate = overload * mu
    duration = max(0.5, 2 * capacity_high / (rate - mu))  # no loss in twice the expected time: a miss
    c_high = capacity_high + (batch or 0)
    rows = [loss_onset(platform, base, store, cost, rate, duration, capacity_low) for _ in range(repeats)]
    seen: list[str] = []
    predicted: list[tuple[float, float | None]] = []  # per trusted trial; high None: unbounded
    onsets: list[float] = []
    for row in rows:
        seen += [f for f in (row.get("interference") or "").split("; ") if f and f not in seen]
        if not row["trusted"]:  # no evidence: nothing to predict against
            seen.append(f"overloaded trial {row['trial']} was not trusted: {row['untrusted_reason']}")
            continue
        t_low, t_high = _predicted_onset(row, rate, capacity_low, c_high, (mu_low or mu, mu_high or mu))
        if t_low is None:
            seen.append(f"trial {row['trial']} was offered {row.get('gen_achieved_rate_per_s')}/s, no more than "
                        f"the slowest service measured: no onset to predict")
            continue
        predicted.append((t_low, t_high))
        onsets.append(row["loss_onset_s"] if row["loss_onset_s"] is not None else math.inf)
        trial_mu = row.get("mu_per_s")
        if trial_mu and mu_low and mu_high and not mu_low <= trial_mu <= mu_high:
            seen.append(f"served {trial_mu:.0f}/s in trial {row['trial']}, {mu:.0f}/s in the NDR search")
    low = min((p[0] for p in predicted), default=None)
    highs = [p[1] for p in predicted]
    high = max(highs) if highs and None not in highs else None
    trusted = [r for r in rows if r["trusted"]]
    median = lambda key: float(np.median([r[key] for r in trusted])) if trusted and all(r.get(key) for r in trusted) else None  # noqa: E731
    achieved = median("gen_achieved_rate_per_s")
    return OnsetResult(**{"callback_cost_us": cost, "trial": rows[0]["trial"], "trials": [int(r["trial"]) for r in rows],
            "trusted": bool(trusted), "untrusted_trials": sorted({t for r in rows for t in r["untrusted_trials"]}),
            "rate_per_s": round(achieved or rate, 1), "mu_per_s": mu, "trial_mu_per_s": median("mu_per_s"),
            "capacity_low": capacity_low, "capacity_high": c_high,
            # None: no loss in the whole trial (twice the predicted onset)
            "onset_s": _finite(float(np.median(onsets))) if onsets else None,
            "onsets_s": [_finite(round(o, 6)) for o in onsets],
            "onset_low_s": _finite(min(onsets)) if onsets else None, "onset_high_s": _finite(max(onsets)) if onsets else None,
            "lost": int(sum(r["lost"] for r in rows)),
            "predicted_low_s": round(low, 4) if low is not None else None,
            "predicted_high_s": round(high, 4) if high is not None else None, "interference": seen,
            "rests_on": sorted({int(r["trial"]) for r in trusted} | set(ndr_row.rests_on))})


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _predicted_onset(row: TrialRow, rate: float, capacity_low: int, capacity_high: int,
                     search_mu: tuple[float, float]) -> tuple[float, float | None]:
    """The onset one overloaded trial should show: from the NDR search's mu and, since at 1.5 x mu
    the onset moves by twice any relative change of mu, from what this very trial served (so that
    the run-to-run change of mu widens the prediction instead of failing it; a wrong capacity
    still misses both). High is None when the service could keep up; both are None when even
    the slowest service measured keeps up (nothing to predict)."""
    r = row.get("gen_achieved_rate_per_s") or rate
    lag_s = (row.get("gen_lag_max_events") or 0) / r

    def between(served_low: float, served_high: float) -> tuple[float | None, float | None]:
        if r <= served_low:
            return None, None
        return (capacity_low / (r - served_low) - lag_s,
                capacity_high / (r - served_high) + lag_s if r > served_high else None)

    low, high = between(*search_mu)
    if low is not None and row.get("mu_per_s") and r > row["mu_per_s"]:
        t_low, t_high = between(*_served_before_onset(row, (low + (high or low)) / 2))
        if t_low is not None:
            low = min(low, t_low)
            high = max(high, t_high) if high is not None and t_high is not None else None
    return low, high


def _served_before_onset(row: TrialRow, window_s: float) -> tuple[float, float]:
    """The range of the rate served over the first `window_s` of an overloaded trial: its mean's
    confidence interval, widened to what a stretch that long varies by (the trial's chunks, a tenth
    of its service time each, varied by mu_cv): the onset rests on that stretch, not on the mean."""
    mu = row["mu_per_s"]
    low, high = row.get("mu_low_per_s") or mu, row.get("mu_high_per_s") or mu
    cv, served_s = row.get("mu_cv"), row.get("mu_served_s")
    if cv and served_s and window_s > 0:
        chunks_in_window = max(1.0, window_s / (served_s / 10))
        band = 2 * cv * mu / math.sqrt(chunks_in_window)
        low, high = min(low, mu - band), max(high, mu + band)
    return low, high
