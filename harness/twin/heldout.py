"""The held-out check: trials the fit did not see, run again on the twin with their own specs.

The fit reads the bursts, the drain and the NDR searches' trend trials. Held out, and predicted:
- the loss-onset trials (overloaded at 1.5 x mu: when loss begins and how much is lost);
- the confirmation trials of every NDR search (a long trial at the rate found: loss or none);
- inline vs copy (the same work in the callback or on a worker, at twice what inline sustains);
- the template experiment's light trials and its searches' confirmations (mixed traffic, a
  quarter of it through the template).
They ask the questions a user asks the twin (when does loss begin, how much, what does copy mode
buy) at rates and lengths the fit never ran, and each trial's row says what it measured.

Tolerance: in virtual time (the model fitting itself) a prediction must equal the measurement;
in real time, loss within 5 % relative (0.5 percentage points where the measured loss is under
10 %) and the onset within 10 % (issue 22).
"""
from __future__ import annotations

from dataclasses import replace

from harness.analysis.loss import loss_by_sequence
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.records import HeldOutPrediction, TrialRow
from harness.twin.stalls import of_row as stalls_of_row
from harness.twin.stored import trial_spec

FIT_EXPERIMENTS = ["burst", "drain", "sustained (NDR search trials)"]
HELD_OUT_EXPERIMENTS = ["onset", "sustained (confirmation trials)", "inline_copy", "template"]
REAL_TIME = {"loss_relative": 0.05, "loss_points": 0.005, "points_below": 0.10, "onset_relative": 0.10}
VIRTUAL_TIME = {"exact": True}


def _confirmation(row: TrialRow) -> bool:
    return row.get("confirmation") in (True, "True")


def held_out(rows: list[TrialRow]) -> list[tuple[TrialRow, str]]:
    """The held-out trials with what each one is, in run order."""
    out = []
    onset = [r for r in rows if r.get("experiment") == "onset"]
    for r in rows:
        e = r.get("experiment")
        if e == "onset":
            what = f"loss onset {onset.index(r) + 1} of {len(onset)}"
        elif e == "sustained" and _confirmation(r):
            what = f"NDR {float(r['cost_us']):g} us confirmation"
        elif e == "inline_copy":
            what = f"{r.get('mode')} ({float(r['cost_us']):g} us of work)"
        elif e == "template" and r.get("search_cost_us") is None:
            what = f"template {r.get('template')}: light trial"
        elif e == "template" and _confirmation(r):
            what = f"template {r.get('template')}: NDR confirmation"
        else:
            continue
        out.append((r, what))
    return out


def predicted_loss(params: ModelParams, row: TrialRow) -> tuple[int, float, float | None]:
    """(events lost, loss ratio, onset s) of the twin run on this trial's spec and random stream."""
    result = ModelPlatform(params).replay_trial(trial_spec(row), int(row["trial"]))
    loss = loss_by_sequence(result.sent, result.delivered)
    return loss.lost, loss.ratio, loss.onset_s


def loss_error(measured: float, predicted: float, tolerance: dict) -> tuple[float, str, bool]:
    if tolerance.get("exact"):
        return abs(predicted - measured), "exact", predicted == measured
    if measured < tolerance["points_below"]:
        error = abs(predicted - measured)
        return error, "points", error <= tolerance["loss_points"]
    error = abs(predicted - measured) / measured
    return error, "relative", error <= tolerance["loss_relative"]


def onset_error(measured: float | None, predicted: float | None, tolerance: dict) -> tuple[float | None, bool | None]:
    """Relative error of the onset; None, None where neither lost (no onset to compare); a loss on
    one side only is a miss."""
    if measured is None and predicted is None:
        return None, None
    if measured is None or predicted is None:
        return None, False
    error = abs(predicted - measured) / measured if measured > 0 else abs(predicted - measured)
    return error, (predicted == measured if tolerance.get("exact") else error <= tolerance["onset_relative"])


def predict(params: ModelParams, row: TrialRow, what: str, tolerance: dict,
            bounds: tuple[ModelParams, ModelParams] | None = None) -> HeldOutPrediction:
    """One held-out trial: measured against predicted; `bounds` (the twin at the fit's two ends:
    least and most loss) give the range the fit's own uncertainty allows."""
    lost, ratio, onset = predicted_loss(params, row)
    measured = float(row["loss_ratio"])
    measured_onset = row.get("loss_onset_s")
    error, kind, loss_ok = loss_error(measured, ratio, tolerance)
    if tolerance.get("exact"):
        loss_ok = lost == int(row["lost"])
    o_error, onset_ok = onset_error(measured_onset, onset, tolerance)
    out = HeldOutPrediction(
        trial=int(row["trial"]), experiment=str(row["experiment"]), what=what,
        offered_rate_per_s=row.get("offered_rate_per_s"), cost_us=row.get("cost_us"), mode=row.get("mode"),
        events=int(row["expected"]), measured_lost=int(row["lost"]), predicted_lost=lost,
        measured_loss_ratio=round(measured, 6), predicted_loss_ratio=round(ratio, 6),
        loss_error=round(error, 6), loss_error_kind=kind, loss_within=loss_ok,
        measured_onset_s=measured_onset, predicted_onset_s=None if onset is None else round(onset, 6),
        onset_error=None if o_error is None else round(o_error, 6), onset_within=onset_ok,
        within=bool(loss_ok and onset_ok is not False), trusted=bool(row.get("trusted", True)),
        interference=str(row.get("interference") or ""))
    if bounds is not None:
        out.predicted_loss_low = round(predicted_loss(bounds[0], row)[1], 6)
        out.predicted_loss_high = round(predicted_loss(bounds[1], row)[1], 6)
        own = stalls_of_row(row)
        if own is not None and params.stall_rate_per_s > 0:
            _, own_ratio, own_onset = predicted_loss(replace(params, stall_rate_per_s=own.rate_per_s,
                                                             stall_mean_us=own.mean_us), row)
            out.own_stalls_loss_ratio = round(own_ratio, 6)
            out.own_stalls_within = bool(loss_error(measured, own_ratio, tolerance)[2]
                                         and onset_error(measured_onset, own_onset, tolerance)[1] is not False)
    return out


def _allowed(measured: float, tolerance: dict) -> tuple[float, float]:
    """The predictions of a loss ratio that the tolerance accepts for this measurement."""
    if tolerance.get("exact"):
        return measured, measured
    if measured < tolerance["points_below"]:
        return measured - tolerance["loss_points"], measured + tolerance["loss_points"]
    return measured * (1 - tolerance["loss_relative"]), measured * (1 + tolerance["loss_relative"])


def repeats(predictions: list[HeldOutPrediction], rows: dict[int, TrialRow], tolerance: dict) -> list[dict]:
    """Held-out trials run with the same spec (the onset's repetitions): how far they agree among
    themselves, and whether any one prediction could be within the tolerance of every one of
    them. Where none could, the machine's own irreproducibility is the floor of the twin's error."""
    groups: dict[tuple, list[HeldOutPrediction]] = {}
    for p in predictions:
        r = rows[p.trial]
        key = (p.experiment, r.get("count"), r.get("offered_rate_per_s"), r.get("cost_us"), p.mode, r.get("template"))
        groups.setdefault(key, []).append(p)
    out = []
    for members in groups.values():
        if len(members) < 2 or not all(p.trusted for p in members):
            continue
        losses = [float(p.measured_loss_ratio) for p in members]
        lows, highs = zip(*(_allowed(m, tolerance) for m in losses))
        onsets = [p.measured_onset_s for p in members]
        onset_agree = all(o is None for o in onsets) or (
            None not in onsets and max(onsets) / min(onsets) - 1 <= 2 * tolerance.get("onset_relative", 0))
        out.append({"trials": [p.trial for p in members], "what": members[0].what.rsplit(" ", 3)[0],
                    "measured_loss": [min(losses), max(losses)],
                    "measured_onset_s": [None if None in onsets else min(onsets), None if None in onsets else max(onsets)],
                    "no_loss_in": sum(o is None for o in onsets),
                    "one_prediction_can_fit_all": bool(max(lows) <= min(highs) and onset_agree)})
    return out


def verdict(predictions: list[HeldOutPrediction], tolerance: dict,
            repeated: list[dict] | None = None) -> tuple[str, str]:
    """(within | outside | no held-out trial, the headline sentence)."""
    judged = [p for p in predictions if p.trusted]
    if not judged:
        return "no held-out trial", "twin: no held-out trial to check it against (the run measured only what it fits)"
    bar = ("equal to the measurement" if tolerance.get("exact") else
           f"loss within {tolerance['loss_relative']:.0%} ({tolerance['loss_points'] * 100:g} points below "
           f"{tolerance['points_below']:.0%} loss), onset within {tolerance['onset_relative']:.0%}")
    misses = [p for p in judged if not p.within]
    if not misses:
        return "within", f"twin: all {len(judged)} held-out predictions within its tolerance ({bar})"
    worst = max(misses, key=lambda p: (p.loss_error or 0) + (p.onset_error or 0))
    noisy = sum(1 for p in misses if p.interference)
    text = (f"twin: held-out errors EXCEED its tolerance: {len(misses)} of {len(judged)} outside ({bar}); "
            f"{noisy} of the {len(misses)} saw interference; worst: trial {worst.trial} ({worst.what}) lost "
            f"{worst.measured_loss_ratio:.2%}, predicted {worst.predicted_loss_ratio:.2%}")
    apart = [g for g in repeated or [] if not g["one_prediction_can_fit_all"]]
    for g in apart:
        text += (f"; identical trials {', '.join(map(str, g['trials']))} themselves lost "
                 f"{g['measured_loss'][0]:.2%}..{g['measured_loss'][1]:.2%}: no prediction fits them all")
    return "outside", text
