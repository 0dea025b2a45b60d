"""The report's twin section: the model's parameters fitted to this run, what they stand in for on
this platform, and the held-out check (predicted vs measured, side by side, with the error).
Read from the run's twin.json (results/read.py); written by nothing here."""
from __future__ import annotations

from pathlib import Path

from harness.report.page import fmt
from harness.results.read import read_twin
from harness.results.records import HeldOutPrediction, Twin

PARAMETER_HEADER = ["parameter", "value", "range", "trials", "how", "stands in for"]
HELD_OUT_HEADER = ["trial", "what", "offered /s", "cost µs", "measured loss", "predicted loss", "loss error",
                   "measured onset s", "predicted onset s", "onset error", "within",
                   "predicted given its own stalls", "interference"]


def twin_of(run: Path) -> Twin | None:
    return read_twin(run / "twin.json")


def _trials(ids: list[int]) -> str:
    if len(ids) > 6:
        return f"{ids[0]}..{ids[-1]} ({len(ids)})"
    return ", ".join(str(i) for i in ids)


def parameter_rows(twin: Twin) -> list[tuple]:
    rows = []
    for p in twin.parameters:
        value = fmt(p.value) if p.determined else f"missing: {p.missing}"
        spread = f"{fmt(p.low)} .. {fmt(p.high)}" if p.determined and p.low is not None and p.low != p.high else ""
        rows.append((p.name, value, spread, _trials(p.rests_on), p.method, p.stands_for or ""))
    return rows


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def _loss_error(p: HeldOutPrediction) -> str:
    if p.loss_error is None:
        return ""
    if p.loss_error_kind == "points":
        return f"{p.loss_error * 100:.2f} pt"
    if p.loss_error_kind == "exact":
        return "0" if p.loss_within else f"{p.predicted_lost - p.measured_lost:+d} events"
    return f"{p.loss_error:.1%}"


def _predicted(p: HeldOutPrediction) -> str:
    text = _ratio(p.predicted_loss_ratio)
    if p.predicted_loss_low is not None and p.predicted_loss_high is not None and p.predicted_loss_low != p.predicted_loss_high:
        text += f" ({_ratio(p.predicted_loss_low)} .. {_ratio(p.predicted_loss_high)})"
    return text


def _seconds(value: float | None) -> str:
    return "no loss" if value is None else f"{value:.4g}"


def _within(p: HeldOutPrediction) -> str:
    if not p.trusted:
        return "untrusted trial"
    return "yes" if p.within else "NO"


def _own(p: HeldOutPrediction) -> str:
    if p.own_stalls_loss_ratio is None:
        return ""
    return f"{_ratio(p.own_stalls_loss_ratio)} ({'within' if p.own_stalls_within else 'outside'})"


def held_out_rows(twin: Twin) -> list[tuple]:
    return [(p.trial, p.what, fmt(p.offered_rate_per_s), fmt(p.cost_us), _ratio(p.measured_loss_ratio), _predicted(p),
             _loss_error(p), _seconds(p.measured_onset_s), _seconds(p.predicted_onset_s),
             "" if p.onset_error is None else f"{p.onset_error:.1%}", _within(p), _own(p), p.interference)
            for p in twin.predictions]


def lines(twin: Twin) -> list[str]:
    """What the section says before its tables."""
    out = [twin.headline]
    out.append(f"Fitted on: {', '.join(twin.fitted_on)}. Held out and predicted: {', '.join(twin.held_out)}; each "
               "held-out trial is run again on the twin with its own spec.")
    if twin.tolerance.get("exact"):
        out.append("Tolerance: in virtual time a prediction must equal the measurement (events lost and onset).")
    elif twin.tolerance:
        t = twin.tolerance
        out.append(f"Tolerance: loss within {t['loss_relative']:.0%} relative ({t['loss_points'] * 100:g} percentage "
                   f"points where the measured loss is under {t['points_below']:.0%}), onset within "
                   f"{t['onset_relative']:.0%}. The predicted range is the twin at the two ends of its fitted ranges.")
    noisy = [p for p in twin.predictions if p.interference]
    if noisy:
        out.append(f"{len(noisy)} of {len(twin.predictions)} held-out trials saw interference (their rows say what); "
                   "the twin predicts the machine it was fitted to, not its neighbours.")
    own = [p for p in twin.predictions if p.own_stalls_loss_ratio is not None]
    if own:
        out.append(f"'Given its own stalls': the twin descheduled as that trial's subscriber was (the stalls it "
                   f"counted), in place of the fit trials' pooled stalls: what the twin would predict had it known "
                   f"what the neighbours did during the trial; {sum(bool(p.own_stalls_within) for p in own)} of "
                   f"{len(own)} within the tolerance so.")
    for g in twin.repeats:
        onset = g["measured_onset_s"]
        spread = (f"onset {fmt(onset[0])}..{fmt(onset[1])} s" if onset[0] is not None else
                  f"{g['no_loss_in']} of them lost nothing")
        agree = ("one prediction can be within the tolerance of all of them" if g["one_prediction_can_fit_all"] else
                 "no single prediction can be within the tolerance of all of them: the machine's own "
                 "irreproducibility, not the twin, sets the error there")
        out.append(f"Trials {', '.join(map(str, g['trials']))} ({g['what']}) ran alike and lost "
                   f"{g['measured_loss'][0]:.2%}..{g['measured_loss'][1]:.2%} ({spread}): {agree}.")
    if twin.stand_ins:
        out.append(f"On {twin.platform} the model's parameters stand in for: " + "; ".join(twin.stand_ins) + ".")
    out += twin.notes
    return out


def summary_line(twin: Twin | None) -> str | None:
    """The twin's sentence for the verdict at the top of the report and the headline."""
    return twin.headline if twin is not None and twin.headline else None


def terminal_lines(twin: Twin) -> list[str]:
    """`wfpcap twin`'s answer: the headline, the parameters, then each held-out trial on one line."""
    out = [twin.headline, "parameters:"]
    for name, value, spread, trials, _, _ in parameter_rows(twin):
        out.append(f"  {name:<22} {value:>14}  {spread:<24} trials {trials}")
    if twin.predictions:
        out.append("held out (measured vs predicted loss; onset s):")
    for p in twin.predictions:
        onset = f"; onset {_seconds(p.measured_onset_s)} vs {_seconds(p.predicted_onset_s)}"
        flag = "" if p.within else "  OUTSIDE" if p.trusted else "  (untrusted trial)"
        noise = "  [interference]" if p.interference else ""
        if p.own_stalls_loss_ratio is not None:
            noise = f"; given its own stalls {_own(p)}" + noise
        out.append(f"  trial {p.trial:>4} {p.what:<34} {_ratio(p.measured_loss_ratio):>7} vs {_predicted(p)}"
                   f"{onset}{flag}{noise}")
    return out
