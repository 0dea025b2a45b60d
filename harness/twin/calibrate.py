"""Fit the twin to a run folder and check it on the trials the fit did not see: the Twin record
that twin.json holds (results/records.py)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from harness.inputs import BadInput
from harness.platforms.model import ModelParams
from harness.results.read import read_summary
from harness.results.records import Twin, TwinParameter
from harness.twin import heldout
from harness.twin.fit import RunData, load, mark_stand_ins, structure
from harness.twin.params import bounds_of, model_of
from harness.twin.service import SERVICE_PARAMETERS, per_event_overhead


MECHANISMS = ("cpu_share", "kernel_batches", "stalls")  # the model's additions the fit may use


def fit(data: RunData, mechanisms: tuple[str, ...] = MECHANISMS) -> tuple[dict[str, TwinParameter], ModelParams | None, list[str]]:
    """Every parameter with its evidence, the ModelParams they make (None while any is missing),
    and the notes of what kept it from being made."""
    values = structure(data)
    notes: list[str] = []
    missing = [n for n, p in values.items() if not p.determined]
    if missing:
        reason = f"needs {', '.join(missing)}"
        for name in SERVICE_PARAMETERS:
            values[name] = TwinParameter(name, None, unit="us" if name.endswith("_us") else "", missing=reason)
        return values, None, notes
    try:
        base = model_of({**values, "per_event_overhead_us": TwinParameter("o", 0.0), "cpu_share": TwinParameter("a", 1.0),
                         "stall_rate_per_s": TwinParameter("r", 0.0), "stall_mean_us": TwinParameter("m", 0.0)}, data.seed)
    except BadInput as exc:
        notes.append(f"the fitted structure is outside what the model takes: {exc}")
        return values, None, notes
    values.update(per_event_overhead(base, data.rows, data.ready_backlog, "cpu_share" in mechanisms, "stalls" in mechanisms))
    if not values["per_event_overhead_us"].determined:
        return values, None, notes
    try:
        return values, model_of(values, data.seed), notes
    except BadInput as exc:
        notes.append(f"the fitted parameters are outside what the model takes: {exc}")
        return values, None, notes


def calibrate(path: Path | str, mechanisms: tuple[str, ...] = MECHANISMS) -> Twin:
    """The twin of the run in `path`: fitted, and checked on the held-out trials. `mechanisms`
    narrows what the fit may use of the model's additions (to measure what each buys)."""
    data = load(Path(path))
    data.model_kernel_batches = "kernel_batches" in mechanisms
    values, params, notes = fit(data, mechanisms)
    twin = Twin(run=data.path.name, config_id=data.summary.config_id, platform=data.platform,
                fitted_on=heldout.FIT_EXPERIMENTS, held_out=heldout.HELD_OUT_EXPERIMENTS,
                parameters=list(values.values()), stand_ins=mark_stand_ins(values, data.platform), notes=notes)
    twin.missing = [f"{p.name}: {p.missing}" for p in values.values() if not p.determined]
    virtual = data.platform == "model"
    twin.tolerance = dict(heldout.VIRTUAL_TIME if virtual else heldout.REAL_TIME)
    if params is None:
        twin.verdict = "not fitted"
        twin.headline = "twin: not fitted: " + ("; ".join(twin.missing) or "; ".join(notes))
        return twin
    twin.model_params = asdict(params)
    bounds = None if virtual else bounds_of(params, values.values())
    twin.predictions = [heldout.predict(params, row, what, twin.tolerance, bounds)
                        for row, what in heldout.held_out(data.rows)]
    twin.repeats = heldout.repeats(twin.predictions, {int(r["trial"]): r for r in data.rows}, twin.tolerance)
    twin.verdict, twin.headline = heldout.verdict(twin.predictions, twin.tolerance, twin.repeats)
    return twin


def calibrate_run(path: Path | str) -> Twin:
    """calibrate() for the end of a run: whatever goes wrong is the twin's own verdict (one line),
    never the run's failure (the scenarios do not fail on the twin)."""
    path = Path(path)
    try:
        return calibrate(path)
    except Exception as exc:  # noqa: BLE001 - the run's report must be written whatever the twin does
        try:
            summary = read_summary(path / "summary.json")
        except ValueError:
            summary = None
        return Twin(run=path.name, config_id=summary.config_id if summary else "", platform=summary.platform if summary else "",
                    verdict="not fitted", headline=f"twin: not fitted: {type(exc).__name__}: {exc}")
