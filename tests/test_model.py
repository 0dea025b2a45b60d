"""The model platform against closed-form expectations."""
import numpy as np
import pytest

from harness.analysis.loss import loss_by_sequence
from harness.platforms.model import ModelParams, ModelPlatform
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec


def burst(platform, n, cost_us=5.0, **sub):
    return platform.run_trial(TrialSpec(TrafficSpec(count=n), SubscriberSpec(cost_us=cost_us, hold=True, **sub)))


def sustained(platform, rate, seconds, cost_us, pacing="constant", **sub):
    count = int(rate * seconds)
    return platform.run_trial(TrialSpec(TrafficSpec(count=count, pacing=pacing, rate_per_s=rate),
                                        SubscriberSpec(cost_us=cost_us, **sub)))


def effective_rate(p: ModelParams, cost_us: float) -> float:
    """Saturated throughput: full batches of Q events plus one turnaround each."""
    s = (cost_us + p.per_event_overhead_us) * 1e-6
    return p.queue_limit / (p.queue_limit * s + p.batch_turnaround_us * 1e-6)


@pytest.mark.parametrize("params", [ModelParams(), ModelParams(queue_limit=64, system_buffer=1000),
                                    ModelParams(queue_limit=512, system_buffer=40_000, dispatch_latency_us=0)])
def test_held_burst_capacity_is_first_batch_plus_queue_plus_buffer(params):
    m = ModelPlatform(params)
    cap = params.true_burst_capacity()
    assert loss_by_sequence(*_frames(burst(m, cap))).lost == 0
    over = loss_by_sequence(*_frames(burst(m, cap + 100)))
    assert over.lost == 100 and over.lost_tail == 100  # the newest events are the ones lost


def test_first_batch_closed_form():
    p = ModelParams(dispatch_latency_us=20, sender_rate_per_s=1e6)
    assert p.first_batch(1000) == 21
    assert ModelParams(dispatch_latency_us=0).first_batch(1000) == 1
    r = ModelPlatform(p).run_trial(TrialSpec(TrafficSpec(count=5000), SubscriberSpec(hold=True)))
    assert r.ground_truth["batch_size"][0] == 21


def test_same_seed_same_result_and_seed_matters():
    a = sustained(ModelPlatform(ModelParams(seed=3)), 9000, 2, 100, pacing="poisson", cost_cv=0.5)
    b = sustained(ModelPlatform(ModelParams(seed=3)), 9000, 2, 100, pacing="poisson", cost_cv=0.5)
    c = sustained(ModelPlatform(ModelParams(seed=4)), 9000, 2, 100, pacing="poisson", cost_cv=0.5)
    assert a.delivered.equals(b.delivered)
    assert not a.delivered.equals(c.delivered)


@pytest.mark.parametrize("cost_us", [20.0, 100.0, 500.0])
def test_no_loss_below_service_rate_and_loss_above(cost_us):
    p = ModelParams()
    m = ModelPlatform(p)
    mu = effective_rate(p, cost_us)
    seconds = 4 * p.true_burst_capacity() / (0.1 * mu)  # long enough to overflow at +10 %
    assert loss_by_sequence(*_frames(sustained(m, 0.95 * mu, seconds, cost_us))).lost == 0
    assert loss_by_sequence(*_frames(sustained(m, 1.1 * mu, seconds, cost_us))).lost > 0


@pytest.mark.parametrize("factor", [1.2, 1.5, 2.0])
def test_loss_onset_is_capacity_over_excess_rate(factor):
    p = ModelParams(system_buffer=5000)
    cost = 100.0
    mu = effective_rate(p, cost)
    rate = factor * mu
    predicted = p.true_burst_capacity() / (rate - mu)
    loss = loss_by_sequence(*_frames(sustained(ModelPlatform(p), rate, 3 * predicted, cost)))
    assert loss.onset_s == pytest.approx(predicted, rel=0.03)
    # after onset the path delivers at its saturated rate: the loss ratio tends to 1 - mu/rate
    assert loss.ratio == pytest.approx((1 - mu / rate) * (1 - predicted / (3 * predicted)), rel=0.05)


def test_copy_mode_frees_the_dispatcher_and_queues_on_the_worker():
    m = ModelPlatform()
    inline = sustained(m, 12_000, 10, 100)
    copy = sustained(m, 12_000, 10, 100, mode="copy")
    assert loss_by_sequence(*_frames(inline)).lost > 0
    assert loss_by_sequence(*_frames(copy)).lost == 0
    d = copy.delivered
    # the worker runs FIFO and never finishes an event before its copy, nor faster than the work
    assert np.all(d["t_done_ns"].to_numpy() >= d["t_callback_ns"].to_numpy())
    assert np.all(np.diff(d["t_done_ns"].to_numpy()) >= 100_000)


def test_worker_matches_a_plain_loop():
    from harness.platforms.model.platform import _worker_done
    rng = np.random.default_rng(0)
    copied = np.cumsum(rng.integers(0, 50, 500))
    work = rng.integers(1, 80, 500)
    done, last = [], 0
    for c, w in zip(copied, work):
        last = max(c, last) + w
        done.append(last)
    assert _worker_done(copied, work).tolist() == done


def test_template_filters_before_the_queue():
    from harness.experiments.template import MIXED_ADDRESSES, template_for
    m = ModelPlatform()
    spec = TrialSpec(TrafficSpec(count=4000, remote_addresses=MIXED_ADDRESSES), SubscriberSpec(hold=True),
                     template=template_for())
    r = m.run_trial(spec)
    assert r.delivered_count == 1000
    assert set(r.delivered["seq"] % 4) == {0}


def test_model_param_overrides():
    p = ModelParams.from_overrides({"queue_limit": "128", "batch_turnaround_us": "50.5"})
    assert p.queue_limit == 128 and p.batch_turnaround_us == 50.5
    with pytest.raises(ValueError, match="unknown model parameter"):
        ModelParams.from_overrides({"queue": "1"})
    with pytest.raises(ValueError, match="needs a whole number"):
        ModelParams.from_overrides({"queue_limit": "many"})


def _frames(result):
    return result.sent, result.delivered
