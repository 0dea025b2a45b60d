"""Mechanisms the model gained for the twin (issue 22), each off by default: off, the model repeats
every stored model trial bit for bit; on, it does what it says."""
import glob
import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.analysis.loss import loss_by_sequence
from harness.platforms.model import ModelParams, ModelPlatform
from harness.platforms.model.dispatcher import simulate
from harness.results.read import read_trial_rows
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from harness.twin.stored import trial_spec
from reference_dispatcher import reference

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


@st.composite
def thresholded(draw):
    n = draw(st.integers(1, 250))
    arrivals = np.cumsum(np.asarray(draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)), dtype=np.int64))
    service = np.asarray(draw(st.lists(st.integers(1, 60), min_size=n, max_size=n)), dtype=np.int64)
    Q = draw(st.integers(1, 12))
    return (arrivals, service, Q, draw(st.integers(0, 40)), draw(st.integers(0, 30)), draw(st.integers(0, 30)),
            draw(st.one_of(st.none(), st.integers(0, 3000))), draw(st.integers(1, Q)), draw(st.integers(1, 400)))


# found by this test: at the instant a waiting batch closes, more events arrived than it lacked and
# the model let all of them in, past Q + B
CLOSED_BY_A_CROWD = (np.array([0] * 16 + [15] + [17] * 10 + list(range(18, 83)) + [83] * 26, dtype=np.int64),
                     np.ones(118, dtype=np.int64), 8, 0, 0, 0, None, 2, 2)


@settings(max_examples=300, deadline=None)
@given(thresholded())
@example(CLOSED_BY_A_CROWD)
def test_a_batch_threshold_with_its_flush_timer_matches_the_event_by_event_reference(case):
    arrivals, service, Q, B, d, tau, release, threshold, timeout = case
    sim = simulate(arrivals, service, Q, B, d, tau, release, threshold, timeout)
    delivered, starts, lost = reference(arrivals.tolist(), service.tolist(), Q, B, d, tau, release, threshold, timeout)
    assert sim.delivered_index.tolist() == delivered
    assert sim.callback_start.tolist() == starts
    assert sim.lost_index.tolist() == lost


def test_a_batch_waits_for_its_threshold_or_its_flush_timer():
    """nflog's kernel batch: at 1,000/s a batch of 16 is handed over at its 16th event; at 100/s the
    flush timer (50 ms) hands over the 6 events it found; the dispatcher wakes 30 us later."""
    p = ModelParams(queue_limit=16, system_buffer=100, dispatch_latency_us=30, batch_threshold=16, flush_timeout_us=50_000)
    for rate, size, wait_ms in ((1000, 16, 15.0), (100, 6, 50.0)):
        spec = TrialSpec(TrafficSpec(count=64, pacing="constant", rate_per_s=rate), SubscriberSpec(cost_us=10))
        r = ModelPlatform(p).run_trial(spec)
        first = r.delivered.iloc[0]
        assert first["t_callback_ns"] - first["t_event_ns"] == wait_ms * 1e6 + 30_000
        assert int(r.ground_truth["batch_size"][0]) == size
    assert p.first_batch(1e9 / 1000) == 16 and p.first_batch(1e9 / 100) == 6
    burst = ModelPlatform(p).run_trial(TrialSpec(TrafficSpec(count=500), SubscriberSpec(hold=True)))
    assert loss_by_sequence(burst.sent, burst.delivered).delivered == p.true_burst_capacity() == 16 + 16 + 100


def test_a_batch_threshold_needs_a_timer_and_fits_in_the_queue():
    with pytest.raises(ValueError, match="needs a flush_timeout_us > 0"):
        ModelParams(queue_limit=16, batch_threshold=16)
    with pytest.raises(ValueError, match="must not exceed the queue limit"):
        ModelParams(queue_limit=16, batch_threshold=32, flush_timeout_us=1000)


def stalled(count: int, cost_us: float, **params) -> tuple[ModelParams, TrialSpec]:
    p = ModelParams(queue_limit=64, system_buffer=3000, per_event_overhead_us=2, **params)
    return p, TrialSpec(TrafficSpec(count=count, pacing="constant", rate_per_s=3e6 / cost_us), SubscriberSpec(cost_us=cost_us))


def test_stalls_add_a_compound_poisson_time_to_each_service():
    """Per service s: Poisson(rate x s) stalls of exponential length; over many services the
    stalled time is rate x mean per second of service, the number of stalled services follows
    1 - exp(-rate x s), and each stall's length is exponential (its std equals its mean)."""
    from harness.platforms.model.platform import stall_time
    rng = np.random.default_rng(4)
    busy = np.full(400_000, 22_000, dtype=np.int64)  # 22 us services: 8.8 s of work
    extra = stall_time(rng, busy, rate_per_s=70.0, mean_us=8_000.0)
    hit = extra[extra > 0]
    assert abs(extra.sum() / busy.sum() - 70 * 8e-3) < 0.08 * 70 * 8e-3
    assert abs(len(hit) - 400_000 * (1 - np.exp(-70 * 22e-6))) < 4 * np.sqrt(616)
    assert abs(hit.mean() - 8e6) < 0.1 * 8e6 and abs(hit.std() - 8e6) < 0.15 * 8e6
    assert stall_time(rng, busy, 0.0, 0.0).sum() == 0


def test_stalls_repeat_with_the_seed_and_leave_the_trials_other_draws_alone():
    p, spec = stalled(20_000, 20.0, stall_rate_per_s=70.0, stall_mean_us=8_000.0)
    a, b = ModelPlatform(p).run_trial(spec), ModelPlatform(p).run_trial(spec)
    assert a.delivered.equals(b.delivered)
    plain = ModelPlatform(ModelParams(queue_limit=64, system_buffer=3000, per_event_overhead_us=2)).run_trial(spec)
    assert a.sent.equals(plain.sent)  # the stalls draw on a stream of their own
    assert loss_by_sequence(a.sent, a.delivered).lost > loss_by_sequence(plain.sent, plain.delivered).lost
    assert "stall_rate_per_s" not in ModelPlatform(ModelParams()).describe()["model_params"]
    with pytest.raises(ValueError, match="go together"):
        ModelParams(stall_rate_per_s=10.0)


@pytest.mark.parametrize("rate, mean_us, cost_us", [(70.0, 8_000.0, 20.0), (20.0, 3_000.0, 100.0), (150.0, 1_500.0, 500.0)])
def test_the_service_analysis_counts_the_models_stalls_and_the_twin_inverts_them(rate, mean_us, cost_us):
    """The harness's stall count (gaps >= 1 ms and 5 typical, analysis/service.py) on a model trial
    with stalls, inverted by the twin (twin/stalls.py: exponential lengths), gives back the rate and
    the mean length the model was given, within what a few hundred stalls allow."""
    from harness.analysis.service import served_rate
    from harness.twin.stalls import of_row
    p, spec = stalled(int(3e6 / cost_us * 12), cost_us, stall_rate_per_s=rate, stall_mean_us=mean_us, seed=5)
    r = ModelPlatform(p).run_trial(spec)
    s = served_rate(r.sent, r.delivered)
    assert s.stalls > 150
    got = of_row({"mu_stalls": s.stalls, "mu_served_s": s.served_s, "mu_stall_share": s.stall_share,
                  "mu_median_gap_us": s.median_gap_us})
    assert abs(got.rate_per_s / rate - 1) < 0.2 and abs(got.mean_us / mean_us - 1) < 0.2, got
