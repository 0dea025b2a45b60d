"""Headroom: how much faster the user's trace may get before their subscriber loses events.

The NDR's search, along the trace's time scale instead of a rate (harness/headroom.py brackets and
bisects the scale geometrically, from the scale the user replays):
1. each scale is one replay trial; a trial whose sender could not keep the schedule is run again,
   and if it still could not, the search stops there: the headroom is at least the largest scale
   served without loss ("generator-limited");
2. the largest loss-free scale is confirmed by replaying it again; a confirmation that loses steps
   the result down by one resolution step (twice as far each further time) and confirms again; if
   the machine interfered while it lost, the search stops, not confirmed. The first lossy scale is
   replayed again too: a loss the trace does not reproduce was the machine's;
3. the result is conclusive only if the bracket is resolved, confirmed, loss grew with the scale
   (a slower replay that lost while a faster one did not says the machine, not the trace, decided)
   and the trials it rests on saw no interference; otherwise inconclusive, with each reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from harness.experiments.replay import Capacity, run_replay
from harness.headroom import first_lossy_scale
from harness.interference import flags, worst
from harness.platforms.base import Platform
from harness.results.records import Estimate, HeadroomResult, HeadroomTrial, TrialRow
from harness.results.store import ResultStore
from harness.spec import TrafficSpec, TrialSpec

EXPERIMENT = "headroom"


@dataclass(frozen=True)
class HeadroomConfig:
    resolution: float = 0.02      # stop when first lossy / largest clean - 1 <= this
    min_scale: float = 1 / 64
    max_scale: float = 64.0
    max_trials: int = 30          # search trials (confirmations come on top)
    max_confirmations: int = 3
    max_replay_s: float | None = None  # real time: no scale so slow that one replay takes longer

    def __post_init__(self) -> None:
        if not (0 < self.resolution < 1 and 0 < self.min_scale < self.max_scale and self.max_trials >= 2):
            raise ValueError("headroom: 0 < resolution < 1, 0 < min_scale < max_scale, max_trials >= 2")


class _Unkept(Exception):
    """The sender could not keep the trace's schedule at this scale, even when run again."""

    def __init__(self, scale: float, reason: str) -> None:
        super().__init__(reason)
        self.scale, self.reason = scale, reason


def _interference(rows: list[TrialRow]) -> list[str]:
    measured = any(r.get("intf_others_cores") is not None or r.get("intf_cpu_ref_begin_ns") is not None for r in rows)
    return flags(worst(rows)) if rows and measured else []


def search_headroom(platform: Platform, spec: TrialSpec, store: ResultStore, config: HeadroomConfig = HeadroomConfig(),
                    capacity: Capacity = Capacity(), required: float | None = None,
                    experiment: str = EXPERIMENT) -> HeadroomResult:
    """The largest loss-free scale of `spec`'s schedule (see the module text); `spec` is the replay
    at the scale the search starts from."""
    schedule = spec.traffic.schedule
    if schedule is None:
        raise ValueError("a headroom search replays a schedule: the trial's traffic has none")
    rows: dict[int, TrialRow] = {}
    trials: list[HeadroomTrial] = []
    untrusted: list[int] = []
    notes: list[str] = []

    def run_at(scale: float, role: str) -> HeadroomTrial:
        at = replace(spec, traffic=TrafficSpec.replay(schedule.scaled(scale), seed=spec.traffic.seed,
                                                       remote_addresses=spec.traffic.remote_addresses),
                     label=f"headroom@{scale:.4g}x")
        row, refused = run_replay(platform, at, store, capacity, experiment, headroom_scale=round(scale, 6), role=role)
        untrusted.extend(refused)
        rows[int(row["trial"])] = row
        t = HeadroomTrial(int(row["trial"]), float(scale), int(row["lost"]), int(row["expected"]), bool(row["trusted"]),
                          _float(row.get("loss_onset_s")), role)
        trials.append(t)
        if not t.trusted:
            untrusted.append(t.trial)
            raise _Unkept(scale, str(row.get("untrusted_reason") or "the sender missed its schedule"))
        return t

    slowest = config.min_scale
    if config.max_replay_s:  # a trace of 10 s at 1/64x is 11 minutes a trial: not below what the budget allows
        slowest = min(max(slowest, schedule.base_offsets_ns[-1] / 1e9 / config.max_replay_s), config.max_scale / 2)
        config = replace(config, min_scale=slowest)
    start = min(max(schedule.scale, config.min_scale), config.max_scale)
    unkept: _Unkept | None = None
    clean = lossy = None
    try:
        bracket = first_lossy_scale(lambda s: run_at(s, "search").lost, start, config.resolution, config.min_scale,
                                    config.max_scale, config.max_trials)
        clean, lossy = bracket.clean, bracket.lossy
    except _Unkept as exc:
        unkept = exc
        searched = [t for t in trials if t.trusted]
        clean = max((t.scale for t in searched if t.lost == 0), default=None)
        lossy = min((t.scale for t in searched if t.lost > 0), default=None)
        notes.append(f"the sender could not keep the trace's schedule at {exc.scale:.3g}x: {exc.reason}")

    confirmed, confirmations, stop_reason = None, 0, ""
    if clean is not None:  # confirmed also where the sender stopped the search: it kept up there
        try:
            confirmed, clean, lossy, confirmations, stop_reason = _confirm(run_at, clean, lossy, config, rows, notes)
            if confirmed and lossy is not None:  # does the trace lose there again?
                run_at(lossy, "confirmation")
        except _Unkept as exc:
            confirmed, stop_reason = False, f"the sender missed its schedule confirming {exc.scale:.3g}x: {exc.reason}"

    return _result(spec, trials, rows, untrusted, clean, lossy, confirmed, confirmations, stop_reason, unkept,
                   config, start, required, notes)


def _confirm(run_at, clean: float, lossy: float | None, config: HeadroomConfig, rows: dict[int, TrialRow],
             notes: list[str]) -> tuple[bool, float | None, float | None, int, str]:
    """Replay the largest loss-free scale again; step down while it loses (see the module text)."""
    failures = 0
    for _ in range(config.max_confirmations):
        t = run_at(clean, "confirmation")
        if t.lost == 0:
            return True, clean, lossy, failures + 1, ""
        failures += 1
        seen = _interference([rows[t.trial]])
        lossy = clean
        if seen:
            notes.append(f"the confirmation at {clean:.3g}x lost {t.lost} events while the machine interfered")
            return False, None, lossy, failures, f"the confirmation at {lossy:.3g}x lost while the machine interfered ({'; '.join(seen)})"
        clean = clean / (1 + config.resolution * 2 ** (failures - 1))
        notes.append(f"the confirmation at {lossy:.3g}x lost {t.lost} events: stepping down to {clean:.3g}x")
        if clean < config.min_scale:
            break
    return False, None, lossy, failures, f"no scale confirmed in {failures} replays (the last at {lossy:.3g}x lost)"


def _result(spec: TrialSpec, trials: list[HeadroomTrial], rows: dict[int, TrialRow], untrusted: list[int],
            clean: float | None, lossy: float | None, confirmed: bool | None, confirmations: int, stop_reason: str,
            unkept: _Unkept | None, config: HeadroomConfig, start: float, required: float | None,
            notes: list[str]) -> HeadroomResult:
    trusted = [t for t in trials if t.trusted]
    at_lossy = [t for t in trusted if lossy is not None and abs(t.scale - lossy) <= 1e-9 * lossy and t.lost]
    lossy_trial = at_lossy[-1] if at_lossy else None
    at_clean = [t for t in trusted if clean is not None and abs(t.scale - clean) <= 1e-9 * clean and not t.lost]
    rests_on = sorted({t.trial for t in at_clean} | ({lossy_trial.trial} if lossy_trial else set()))
    seen = _interference([rows[i] for i in rests_on])
    reasons: list[str] = []
    status = "conclusive"
    if unkept is not None:
        status = "generator-limited"
        reasons.append(f"the sender could not play the trace faster than {unkept.scale:.3g}x on this machine: "
                       f"the headroom is at least {clean:.3g}x" if clean else
                       f"the sender could not keep the trace's schedule at {unkept.scale:.3g}x")
    if stop_reason:
        reasons.append(stop_reason)
    resolved = clean is not None and lossy is not None and lossy / clean - 1 <= config.resolution * 2 ** max(confirmations - 1, 0) + 1e-9
    if clean is not None and lossy is not None and not resolved and unkept is None:
        reasons.append(f"the bracket {clean:.3g}..{lossy:.3g}x is wider than the resolution "
                       f"({config.max_trials} trials)")
    # loss must grow with the scale, and come again at the same scale: a replay that lost beside one
    # as fast or faster that did not says the machine, not the trace, decided
    late = [(a, b) for a in trusted for b in trusted if a.scale <= b.scale and a.lost > 0 and b.lost == 0]
    if late:
        a, b = min(late, key=lambda p: p[1].scale / p[0].scale)
        what = (f"{a.scale:.3g}x lost {a.lost} in trial {a.trial} and nothing in trial {b.trial}" if a.scale == b.scale
                else f"{a.scale:.3g}x lost {a.lost} while {b.scale:.3g}x lost nothing")
        reasons.append(f"loss was not monotone in the scale: {what} (the machine, not the trace, decided)")
    if seen:
        reasons.append("interference in the trials it rests on: " + "; ".join(seen))
    if reasons and status == "conclusive":
        status = "inconclusive"
    if clean is None and lossy is not None and lossy <= config.min_scale * (1 + 1e-9) and status == "conclusive":
        notes.append(f"the trace lost events even at {config.min_scale:.3g}x")
    out = HeadroomResult(
        headroom=clean, first_lossy_scale=lossy,
        lost_at_lossy=lossy_trial.lost if lossy_trial else None,
        expected_at_lossy=lossy_trial.expected if lossy_trial else None,
        loss_ratio_at_lossy=round(lossy_trial.lost / lossy_trial.expected, 6) if lossy_trial and lossy_trial.expected else None,
        onset_at_lossy_s=lossy_trial.first_loss_s if lossy_trial else None,
        resolution=config.resolution, resolved=bool(resolved), bracket=[clean, lossy], start_scale=start,
        confirmed=confirmed, confirmations=confirmations, status=status, status_reasons=reasons, interference=seen,
        untrusted_trials=sorted(set(untrusted)), rests_on=rests_on, trials=trials, required=required, notes=notes)
    if clean is not None and lossy is None and unkept is None:
        out.notes.append(f"no loss up to {config.max_scale:g}x, the search's ceiling: the headroom is at least that")
    out.sentence = sentence(out)
    return out


def sentence(r: HeadroomResult) -> str:
    """The answer in words: "your trace at 3.2x loses nothing; at 3.6x it loses 1.4 % starting 2.1 s in"."""
    parts = []
    if r.headroom is not None:
        parts.append(f"your trace at {r.headroom:.3g}x loses nothing")
    if r.first_lossy_scale is not None:
        loss = f"{r.loss_ratio_at_lossy:.1%}" if r.loss_ratio_at_lossy is not None else "events"
        onset = f" starting {r.onset_at_lossy_s:.3g} s in" if r.onset_at_lossy_s is not None else ""
        parts.append(f"at {r.first_lossy_scale:.3g}x it loses {loss}{onset}")
    text = "; ".join(parts) if parts else "no headroom could be measured"
    if r.headroom is None and r.first_lossy_scale is not None or (r.headroom is not None and r.headroom < 1):
        text = f"events are lost at the trace's own speed: {text}"
    if r.status != "conclusive":
        text += f" ({r.status}: {'; '.join(r.status_reasons)})"
    return text


def headroom_estimate(r: HeadroomResult, trace: dict[str, Any]) -> Estimate:
    """The catalogue's headroom (gated, tracked, on the fleet page): the confirmed scale with its bracket."""
    evidence = {"first_lossy_scale": r.first_lossy_scale, "loss_ratio_at_lossy": r.loss_ratio_at_lossy,
                "onset_at_lossy_s": r.onset_at_lossy_s, "status": r.status, "status_reasons": r.status_reasons,
                "confirmed": r.confirmed, "resolution": r.resolution, "rests_on": r.rests_on,
                "trace": trace.get("source"), "trace_digest": trace.get("digest"), "required": r.required}
    method = "bisection of the trace's time scale by replay, confirmed by a replay at the result"
    if r.headroom is None:
        why = r.sentence or "no loss-free scale found"
        return Estimate.undetectable(method, why, **evidence)
    return Estimate(r.headroom, method, evidence)


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
