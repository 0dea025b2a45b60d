"""The per-event overhead fitted to the service rates a run measured at several callback costs.

mu = 1 / (cost + overhead) holds per event inside a batch; what a trial's mu measures also holds
batch turnarounds and depends on how full its batches were (analysis/service.py), so the fit does
not invert the formula: it runs the twin on the very specs of the NDR searches' trials, measures
mu on the simulation exactly as the harness measured it on the platform, and moves the overhead
until the two agree (the residual is a mean service gap in ns; its weight, the gaps measured).

Where one overhead cannot explain every cost (the mean residual of a cost lies outside what its
trials' spread allows), a second parameter is fitted: the share of a CPU the subscriber gets while
it has work, service = (cost + overhead) / share. A shared machine shows it: neighbours take the
CPU from a callback in proportion to the time it runs, so the per-event time grows with the cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable
import numpy as np

from harness.analysis.sustained import service_gaps
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.records import TrialRow, TwinParameter
from harness.twin import stalls as stalls_of
from harness.twin.stalls import Stalls
from harness.twin.stored import trial_spec

MAX_ROUNDS = 12
MIN_GAPS = 20  # service gaps a simulated trial needs before its mean is compared
Z = 1.96


@dataclass
class Measured:
    """One fit trial: its row and the mean service gap it measured (ns) over `gaps` gaps."""

    row: TrialRow
    mean_gap_ns: float
    gaps: int
    relative_spread: float  # half-width of its mu interval, relative
    stalls: Stalls | None = None  # what the trial's subscriber was descheduled for (analysis/service.py)

    @property
    def cost_ns(self) -> float:
        return float(self.row["cost_us"]) * 1e3


def fit_trials(rows: list[TrialRow]) -> list[Measured]:
    """The NDR searches' own trials (not their confirmations, which the twin predicts instead),
    trusted, with a service rate measured."""
    out = []
    for r in rows:
        if r.get("experiment") != "sustained" or r.get("confirmation") in (True, "True") or not r.get("trusted"):
            continue
        gaps, served = r.get("mu_gaps"), r.get("mu_served_s")
        if not gaps or not served or int(gaps) < 2 or r.get("cost_us") is None:
            continue
        mu = float(r["mu_per_s"])
        spread = ((r.get("mu_high_per_s") or mu) - (r.get("mu_low_per_s") or mu)) / 2 / mu
        out.append(Measured(r, float(served) * 1e9 / int(gaps), int(gaps), max(spread, 0.0), stalls_of.of_row(r)))
    return out


def simulated_gaps(params: ModelParams, trial: Measured, ready: int, own_stalls: bool = False) -> tuple[float, float]:
    """The mean and the median service gap (ns) the twin shows on this trial's spec, measured as the
    harness measures. Where the twin never had work waiting (it serves faster than the trial's
    rate: too little overhead yet), the gap of a full batch stands in, so that the fit still moves.
    `own_stalls`: the twin is descheduled as this trial's subscriber was (its counted stalls), so
    that what the neighbours did during each trial does not pass for the subscriber's own cost."""
    if own_stalls and trial.stalls is not None:
        params = replace(params, stall_rate_per_s=trial.stalls.rate_per_s, stall_mean_us=trial.stalls.mean_us)
    result = ModelPlatform(params).replay_trial(trial_spec(trial.row), int(trial.row["trial"]))
    gaps = service_gaps(result, ready)
    if len(gaps) >= MIN_GAPS:
        return float(gaps.mean()), float(np.median(gaps))
    per_event = (trial.cost_ns + params.per_event_overhead_us * 1e3) / params.cpu_share
    per_event *= 1 + params.stall_rate_per_s * params.stall_mean_us / 1e6
    return per_event + params.batch_turnaround_us * 1e3 / params.queue_limit, per_event


class Residuals:
    """measured - simulated gaps of the fit trials at given parameters (each evaluation runs the
    twin on every trial), and their weighted absolute sum, the fit's objective."""

    def __init__(self, trials: list[Measured], ready: int, own_stalls: bool = False) -> None:
        self.trials, self.ready, self.w, self.own_stalls = trials, ready, weights(trials), own_stalls
        self.mean = np.array([t.mean_gap_ns for t in trials])
        self.median = np.array([(t.row.get("mu_median_gap_us") or math.nan) * 1e3 for t in trials])

    def __call__(self, params: ModelParams) -> tuple[np.ndarray, np.ndarray]:
        sim = np.array([simulated_gaps(params, t, self.ready, self.own_stalls) for t in self.trials])
        return self.mean - sim[:, 0], self.median - sim[:, 1]

    def spread(self, residual: np.ndarray) -> float:
        """Weighted mean absolute residual: what the robust steps lower."""
        return float(np.sum(self.w * np.abs(residual)) / self.w.sum())

    def cost(self, residual: np.ndarray) -> float:
        """Weighted mean squared residual: loss follows the mean service rate, stalls and all."""
        return float(np.sum(self.w * residual ** 2) / self.w.sum())


def _with(params: ModelParams, overhead_ns: float, share: float) -> ModelParams:
    return replace(params, per_event_overhead_us=max(0.0, overhead_ns) / 1e3, cpu_share=float(np.clip(share, 0.01, 1.0)))


def _solve(params: ModelParams, trials: list[Measured], ready: int, fit_share: bool,
           own_stalls: bool = False) -> tuple[ModelParams, np.ndarray]:
    """Fit (overhead[, share]); returns the parameters and the residuals of the mean gaps (ns).

    The mean service gap of a trial near saturation is not smooth in the overhead: its batches
    fill or empty as the overhead moves. So: (1) start from the median gaps, which batch
    turnarounds hardly move; (2) robust steps on the mean gaps (the weighted median residual, kept
    while the weighted absolute residual falls): where the twin can repeat every trial (the
    model fitting itself) this lands on the overhead that repeats them all; (3) least-squares steps
    (overhead, and share where fitted), kept while the weighted squared residual falls: loss
    follows the mean service rate, stalls and all; (4) the overhead snapped to the model's
    resolution, 1 ns, as the best of the nearest few."""
    f = Residuals(trials, ready, own_stalls)
    o, a = params.per_event_overhead_us * 1e3, params.cpu_share
    usable = np.isfinite(f.median)
    if not fit_share and usable.any():
        for _ in range(4):
            step = a * weighted_median(f(_with(params, o, a))[1][usable], f.w[usable])
            o = max(0.0, o + step)
            if abs(step) < 5:  # the rows keep the median to 10 ns
                break
    residual = f(_with(params, o, a))[0]
    if not fit_share:
        o, a, residual = _descend(f, params, o, a, residual, lambda r, o, a: (a * weighted_median(r, f.w), 0.0), f.spread)
    cost_ns = np.array([t.cost_ns for t in trials])

    def least_squares(r: np.ndarray, o: float, a: float) -> tuple[float, float]:
        if not fit_share:
            return a * float(np.average(r, weights=f.w)), 0.0
        J = np.column_stack((np.full(len(trials), 1 / a), -(cost_ns + o) / a ** 2))  # d gap / d (overhead, share)
        WJ = J * f.w[:, None]
        step = np.linalg.lstsq(WJ.T @ J, WJ.T @ r, rcond=None)[0]
        return float(step[0]), float(step[1])

    o, a, residual = _descend(f, params, o, a, residual, least_squares, f.cost)
    best = (f.cost(residual), o, a, residual)
    shares = {a, round(a, 4)} if fit_share else {a}  # a round share where the data cannot tell them apart
    for share in shares:
        for candidate in {round(o) + d for d in (-2, -1, 0, 1, 2)}:
            if candidate >= 0 and (candidate, share) != (o, a):
                r = f(_with(params, candidate, share))[0]
                best = min(best, (f.cost(r), float(candidate), share, r), key=lambda b: b[0])
    return _with(params, best[1], best[2]), best[3]


def _descend(f: "Residuals", params: ModelParams, o: float, a: float, residual: np.ndarray,
             step_of: Callable[[np.ndarray, float, float], tuple[float, float]],
             objective: Callable[[np.ndarray], float]) -> tuple[float, float, np.ndarray]:
    """Steps from (o, a) while they lower `objective` (each tried whole, then halved twice)."""
    cost = objective(residual)
    for _ in range(MAX_ROUNDS):
        if cost == 0:
            break
        d_o, d_a = step_of(residual, o, a)
        for shrink in (1.0, 0.5, 0.25):
            new = _with(params, o + shrink * d_o, a + shrink * d_a)
            new_residual = f(new)[0]
            if objective(new_residual) < cost:
                break
        else:
            break
        moved = abs(new.per_event_overhead_us * 1e3 - o) + abs(new.cpu_share - a) * 1e3
        o, a, residual, cost = new.per_event_overhead_us * 1e3, new.cpu_share, new_residual, objective(new_residual)
        if moved < 0.25:
            break
    return o, a, residual


def weights(trials: list[Measured]) -> np.ndarray:
    """Each trial's relative error counts the same (1 / mean gap^2): on a shared machine the service
    rate moves from trial to trial far more than within one, so a trial of many gaps is no surer."""
    return np.array([1.0 / t.mean_gap_ns ** 2 for t in trials], dtype=float)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    v, cw = values[order], np.cumsum(weights[order])
    return float(v[np.searchsorted(cw, cw[-1] / 2)])


def _adequate(trials: list[Measured], residual: np.ndarray) -> tuple[bool, dict[str, float]]:
    """Does one overhead explain every cost? Per cost, the mean relative residual against what its
    trials' spread allows (their mu intervals, and their scatter between trials)."""
    by_cost: dict[float, list[int]] = {}
    for i, t in enumerate(trials):
        by_cost.setdefault(float(t.row["cost_us"]), []).append(i)
    worst: dict[str, float] = {}
    ok = True
    for cost, idx in by_cost.items():
        rel = residual[idx] / np.array([trials[i].mean_gap_ns for i in idx])
        # the standard error of the group's mean: its trials' scatter, or their own intervals
        own = float(np.mean([trials[i].relative_spread for i in idx])) / Z
        allowed = Z * max(float(rel.std(ddof=1)) if len(rel) > 1 else 0.0, own) / math.sqrt(len(rel))
        mean = float(rel.mean())
        worst[f"{cost:g}us"] = round(mean, 5)
        if abs(mean) > allowed + 1e-9:
            ok = False
    return ok, worst


SERVICE_PARAMETERS = ("per_event_overhead_us", "cpu_share", "stall_rate_per_s", "stall_mean_us")


def per_event_overhead(params: ModelParams, rows: list[TrialRow], ready: int, share_allowed: bool = True,
                       stalls_allowed: bool = True) -> dict[str, TwinParameter]:
    """per_event_overhead_us, cpu_share and the stalls (stall_rate_per_s, stall_mean_us), each with
    its evidence; `params` holds the structure. `share_allowed` False keeps the share at 1,
    `stalls_allowed` False leaves the stalls out (the field notes' model, to compare).

    Stalls: the fit trials' counted stalls, pooled, are the twin's; while the overhead is fitted,
    each trial is simulated with its own, so that what neighbours did during one trial does not
    move the overhead or the share."""
    trials = fit_trials(rows)
    if not trials:
        reason = "the run has no NDR search trial with a measured service rate"
        return {name: TwinParameter(name, None, unit="us" if name.endswith("_us") else "", missing=reason)
                for name in SERVICE_PARAMETERS}
    pooled = stalls_of.pooled([t.row for t in trials]) if stalls_allowed else stalls_of.NONE
    own = pooled.rate_per_s > 0
    costs = sorted({float(t.row["cost_us"]) for t in trials})
    start = max(0.0, float(np.median([t.mean_gap_ns / (1 + (t.stalls.rate_per_s * t.stalls.mean_us / 1e6
                                                            if own and t.stalls else 0.0)) - t.cost_ns
                                      for t in trials])))  # ns
    params = replace(params, per_event_overhead_us=start / 1e3, cpu_share=1.0,
                     stall_rate_per_s=pooled.rate_per_s, stall_mean_us=pooled.mean_us)
    fitted, residual = _solve(params, trials, ready, fit_share=False, own_stalls=own)
    adequate, by_cost = _adequate(trials, residual)
    share_fitted = False
    if not adequate and len(costs) >= 2 and share_allowed:
        fitted, residual = _solve(fitted, trials, ready, fit_share=True, own_stalls=own)
        share_fitted = True
        adequate, by_cost = _adequate(trials, residual)
    a = fitted.cpu_share
    implied = fitted.per_event_overhead_us + residual * a / 1e3 if not share_fitted else None
    rests = sorted(int(t.row["trial"]) for t in trials)
    w = weights(trials)
    # the standard error from the trials' scatter about the fit (each trial's own noise is in it);
    # never finer than the model's resolution, 1 ns
    n_eff = w.sum() ** 2 / (w ** 2).sum()
    spread_ns = math.sqrt(np.average(residual ** 2, weights=w) / max(1.0, n_eff - 1 - share_fitted))
    half_ns = max(Z * spread_ns / math.sqrt(n_eff), 0.5)
    o = round(fitted.per_event_overhead_us, 3)
    rel = residual / np.array([t.mean_gap_ns for t in trials])
    half = Z * math.sqrt(np.average(rel ** 2, weights=w) / max(1.0, n_eff - 2)) / math.sqrt(n_eff)  # the share's
    evidence = {"trials": len(trials), "costs_us": costs, "mean_residual_by_cost": by_cost,
                "one_overhead_explains_every_cost": adequate if not share_fitted else False,
                "implied_overhead_us": None if implied is None else [round(float(v), 3) for v in implied]}
    overhead = TwinParameter("per_event_overhead_us", o, max(0.0, o - half_ns / 1e3), o + half_ns / 1e3, "us",
                             "the twin run on the NDR searches' trials; overhead moved until their mean service "
                             "gaps agree (mu = 1 / (cost + overhead))", rests, evidence=evidence)
    share = TwinParameter("cpu_share", a, a, a, "", "not needed: one overhead explains every cost", rests,
                          evidence={"stall_share_measured": _stall_share(trials)})
    if share_fitted:
        share.method = "fitted beside the overhead: service = (cost + overhead) / share"
        longest = max(t.cost_ns for t in trials) + o * 1e3
        half = max(half, 1.0 / longest)  # the model's resolution: 1 ns on the longest service
        share.low, share.high = max(0.01, a * (1 - half)), min(1.0, a * (1 + half))
    seen = {"stalls_counted": pooled.seen, "service_s": round(pooled.served_s, 6), "stalled_share": round(pooled.share, 4)}
    if not stalls_allowed:
        method = "left out (the field notes' model)"
    elif own:
        method = ("the fit trials' stalls as analysis/service.py counted them (gaps >= 1 ms and 5 typical), pooled; "
                  "exponential lengths, so the uncounted short ones follow from the counted")
    else:
        method = "none counted: the subscriber was never descheduled for 1 ms or more while it had work"
    r, m = round(pooled.rate_per_s, 3), round(pooled.mean_us, 3)
    rate = TwinParameter("stall_rate_per_s", r, r, r, "per s of service", method, rests, evidence=seen)
    mean = TwinParameter("stall_mean_us", m, m, m, "us", method, rests, evidence=seen)
    return {"per_event_overhead_us": overhead, "cpu_share": share, "stall_rate_per_s": rate, "stall_mean_us": mean}


def _stall_share(trials: list[Measured]) -> float | None:
    """The service time the trials themselves saw stalled (>= 1 ms), weighted by their gaps: what
    a fitted share below 1 should roughly match."""
    values = [(t.row.get("mu_stall_share"), t.gaps) for t in trials if t.row.get("mu_stall_share") is not None]
    if not values:
        return None
    return round(float(np.average([v for v, _ in values], weights=[g for _, g in values])), 4)
