"""What-if answers from a run's twin, in virtual time (`wfpcap predict`): the same questions the
harness measures, for traffic and subscribers that were not run. A constant rate or a burst, a
cost or the user's cost distribution, a trace (capture, netsh record, shape) at a time scale, and
the headroom: the first time scale at which that traffic loses events (harness/headroom.py's
search, on the twin). Every answer says it is a prediction and from which run.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.analysis.latency import latencies_ns, latency_summary
from harness.analysis.loss import LossSummary, loss_by_sequence
from harness.headroom import ScaleBracket, first_lossy_scale, lost_at_scale
from harness.inputs import BadInput
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.read import read_twin
from harness.results.records import Twin
from harness.results.store import write_twin
from harness.spec import TrafficSpec, TrialSpec
from harness.traffic.schedule import Schedule
from harness.twin.params import bounds_of


def twin_of(run: Path) -> tuple[Twin, ModelParams]:
    """The run's twin (twin.json; fitted and written first if the run has none) and its ModelParams.
    A twin that could not be fitted cannot answer: one line saying what it misses."""
    if not (run / "summary.json").is_file():
        raise BadInput(f"{run} is not a run folder (no summary.json)")
    twin = read_twin(run / "twin.json")
    if twin is None:  # a run from before the twin: fit it once (seconds), as `wfpcap twin` would
        from harness.twin.calibrate import calibrate
        twin = calibrate(run)
        write_twin(run, twin)
    if twin.model_params is None:
        raise BadInput(f"the twin of {run} cannot answer: {twin.headline}")
    return twin, ModelParams(**twin.model_params)


def bounds(twin: Twin, params: ModelParams) -> tuple[ModelParams, ModelParams] | None:
    """The twin at the two ends of its fitted ranges (least loss, most loss); None in virtual time,
    where the fit pins every parameter (the model fitting itself)."""
    return None if twin.tolerance.get("exact") else bounds_of(params, twin.parameters)


@dataclass
class Outcome:
    loss: LossSummary
    latency_us: dict[str, float | None]
    peak_waiting: int


def run(params: ModelParams, spec: TrialSpec) -> Outcome:
    result = ModelPlatform(params).run_trial(spec)
    series = result.ground_truth["series"]
    waiting = series["next_queue"] + series["buffer"]
    return Outcome(loss_by_sequence(result.sent, result.delivered),
                   latency_summary(latencies_ns(result.sent, result.delivered)),
                   int(waiting.max()) if len(waiting) else 0)


def as_schedule(spec: TrialSpec, params: ModelParams) -> Schedule:
    """The trial's traffic as a schedule, so that the headroom search can scale it in time."""
    t = spec.traffic
    if t.schedule is not None:
        return t.schedule
    rate = t.rate_per_s if t.pacing != "burst" else params.sender_rate_per_s
    if t.pacing == "poisson":
        raise BadInput("a headroom search needs fixed send times: give a rate (constant), a burst or a trace")
    return Schedule((np.arange(t.count) * (1e9 / rate)).astype(np.int64))


def headroom(params: ModelParams, spec: TrialSpec, resolution: float = 0.01) -> ScaleBracket:
    """The first time scale at which the traffic loses events on the twin (1 = as given)."""
    schedule = as_schedule(spec, params)
    replayed = replace(spec, traffic=TrafficSpec.replay(schedule, remote_addresses=spec.traffic.remote_addresses))
    return first_lossy_scale(lost_at_scale(ModelPlatform(params), replayed), resolution=resolution)


def _parameters(params: ModelParams) -> str:
    share = f", CPU share {params.cpu_share:.2f}" if params.cpu_share != 1.0 else ""
    if params.stall_rate_per_s:
        share += f", stalled {params.stall_rate_per_s:.4g} times a second of work for {params.stall_mean_us / 1e3:.3g} ms"
    return (f"queue {params.queue_limit}, buffer {params.system_buffer:,}, dispatch latency "
            f"{params.dispatch_latency_us:.4g} us, turnaround {params.batch_turnaround_us:.4g} us, per-event overhead "
            f"{params.per_event_overhead_us:.4g} us{share}")


def describe(run_dir: Path, twin: Twin, params: ModelParams) -> list[str]:
    """Who answers: the run, its platform and the held-out check's verdict."""
    return [f"PREDICTION (not a measurement) by the twin of run {run_dir} ({twin.platform}, config {twin.config_id})",
            f"  twin: {_parameters(params)}",
            f"  {twin.headline}"]


def outcome_lines(out: Outcome, spread: tuple[Outcome, Outcome] | None) -> list[str]:
    loss = out.loss
    onset = f", first loss {loss.onset_s:.4g} s after the first event" if loss.onset_s is not None else ""
    lines = [f"delivered {loss.delivered:,} of {loss.expected:,} events, lost {loss.lost:,} ({loss.ratio:.2%}){onset}"]
    if spread is not None:
        low, high = spread
        lines.append(f"  within the twin's fitted ranges: lost {low.loss.lost:,} .. {high.loss.lost:,} "
                     f"({low.loss.ratio:.2%} .. {high.loss.ratio:.2%})")
    lat = out.latency_us
    if lat.get("p50") is not None:
        lines.append(f"latency from event to callback: p50 {lat['p50']:,.0f} us, p99 {lat['p99']:,.0f} us, "
                     f"max {lat['max']:,.0f} us")
    lines.append(f"peak waiting (next queue + buffer): {out.peak_waiting:,} events")
    return lines


def headroom_lines(bracket: ScaleBracket) -> list[str]:
    if bracket.clean is None:
        return [f"headroom: the traffic loses events even {1 / bracket.lossy:.0f}x slower (scale {bracket.lossy:.4g})"]
    if bracket.lossy is None:
        return [f"headroom: no loss up to {bracket.clean:.4g}x (the search's limit)"]
    verdict = "loses events as given" if bracket.clean < 1 else "loses nothing as given"
    return [f"headroom: {verdict}; loss-free up to {bracket.clean:.4g}x, loses from {bracket.lossy:.4g}x "
            f"(resolution {bracket.resolution:.0%}, {len(bracket.trials)} runs of the twin)"]


def answer(run_dir: Path, twin: Twin, params: ModelParams, spec: TrialSpec, traffic_text: str, subscriber_text: str,
           with_headroom: bool) -> list[str]:
    """Everything `wfpcap predict` prints for one question to the run's twin (twin_of)."""
    lines = describe(run_dir, twin, params)
    lines.append(f"traffic: {traffic_text}; subscriber: {subscriber_text}")
    ends = bounds(twin, params)
    out = run(params, spec)
    lines += outcome_lines(out, (run(ends[0], spec), run(ends[1], spec)) if ends else None)
    if with_headroom:
        lines += headroom_lines(headroom(params, spec))
    return lines
