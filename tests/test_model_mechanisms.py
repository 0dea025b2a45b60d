"""Mechanisms the model gained for the twin (issue 22), each off by default: off, the model repeats
every stored model trial bit for bit; on, it does what it says."""
import glob
import json

import numpy as np
import pytest

from harness.analysis.loss import loss_by_sequence
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.read import read_trial_rows
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from harness.twin.stored import trial_spec

STORED_MODEL_RUNS = sorted(glob.glob("tests/data/format1/reports/golden*-model-*/*/"))


@pytest.mark.parametrize("run", STORED_MODEL_RUNS)
def test_with_every_mechanism_off_the_model_repeats_stored_runs_bit_for_bit(run):
    """Runs stored by the harness before the mechanisms existed: each trial, replayed from its row
    on its own random stream, delivers and loses the very same events."""
    params = json.loads(open(run + "summary.json").read())["fingerprint"]["stable"]["platform"]["model_params"]
    rows = read_trial_rows(run + "trials.csv")
    assert rows
    for row in rows:
        result = ModelPlatform(ModelParams(**params)).replay_trial(trial_spec(row), row["trial"])
        loss = loss_by_sequence(result.sent, result.delivered)
        assert (loss.delivered, loss.lost, loss.onset_s) == (row["delivered"], row["lost"], row["loss_onset_s"]), row


def test_a_mechanism_at_its_default_leaves_the_description_and_the_results_as_they_were():
    spec = TrialSpec(TrafficSpec(count=30_000, pacing="poisson", rate_per_s=50_000), SubscriberSpec(cost_us=20, cost_cv=0.3))
    plain, explicit = ModelPlatform(ModelParams()), ModelPlatform(ModelParams(cpu_share=1.0))
    a, b = plain.run_trial(spec), explicit.run_trial(spec)
    assert a.delivered.equals(b.delivered) and a.sent.equals(b.sent)
    assert "cpu_share" not in plain.describe()["model_params"]  # so the config id stays what it was
    assert "cpu_share" in ModelPlatform(ModelParams(cpu_share=0.5)).describe()["model_params"]


def test_a_cpu_share_stretches_every_service_and_the_copy_workers_work():
    """share s: a callback of work w and overhead o occupies the dispatcher for (w + o) / s."""
    spec = TrialSpec(TrafficSpec(count=2000), SubscriberSpec(cost_us=10, hold=True))
    for share in (1.0, 0.5, 0.8):
        p = ModelParams(queue_limit=64, system_buffer=4000, per_event_overhead_us=2, batch_turnaround_us=0, cpu_share=share)
        d = ModelPlatform(p).run_trial(spec).delivered.sort_values("t_callback_ns")
        gaps = np.diff(d["t_callback_ns"].to_numpy())[5:]  # after the held first callback
        assert set(gaps.tolist()) == {round(12_000 / share)}
    copy = TrialSpec(TrafficSpec(count=1000, pacing="constant", rate_per_s=1000), SubscriberSpec(cost_us=100, mode="copy"))
    done = {share: ModelPlatform(ModelParams(cpu_share=share)).run_trial(copy).delivered for share in (1.0, 0.25)}
    work = {share: np.diff(d["t_done_ns"].to_numpy())[10:].min() for share, d in done.items()}
    assert work[1.0] == 1_000_000 and (done[0.25]["t_done_ns"] - done[0.25]["t_callback_ns"]).min() >= 400_000


def test_a_cpu_share_lowers_the_saturated_rate_by_its_factor():
    """Overloaded, full batches: mu = Q / (Q (cost + overhead) / share + turnaround)."""
    p = ModelParams(queue_limit=128, system_buffer=2000, per_event_overhead_us=3, batch_turnaround_us=100, cpu_share=0.4)
    rate, seconds = 10_000, 4.0
    result = ModelPlatform(p).run_trial(TrialSpec(TrafficSpec(count=int(rate * seconds), pacing="constant", rate_per_s=rate),
                                                  SubscriberSpec(cost_us=50)))
    mu = p.queue_limit / (p.queue_limit * 53e-6 / 0.4 + 100e-6)
    lost = loss_by_sequence(result.sent, result.delivered).lost
    expected = rate * seconds - mu * seconds - p.true_burst_capacity()
    assert abs(lost - expected) < 0.01 * rate * seconds
