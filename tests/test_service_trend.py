"""Served rate mu and the backlog trend recover what the model was never told."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from harness.analysis.service import served_rate
from harness.analysis.trend import backlog_trend
from harness.experiments.drain import drain_rate
from harness.experiments.trial import sustained_spec
from harness.platforms.model import ModelParams, ModelPlatform
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec

BASE = TrialSpec(TrafficSpec(count=1), SubscriberSpec(cost_us=5.0, cost_cv=0.2))


def saturated_rate(p: ModelParams, cost_us: float) -> float:
    """The model's throughput with full batches: Q events of (cost + overhead), one turnaround each."""
    s = (cost_us + p.per_event_overhead_us) * 1e-6
    return p.queue_limit / (p.queue_limit * s + p.batch_turnaround_us * 1e-6)


@pytest.mark.parametrize("cost_us,params", [
    (20.0, ModelParams()),
    (100.0, ModelParams(queue_limit=64, batch_turnaround_us=400.0, per_event_overhead_us=7.0, seed=4)),
    (500.0, ModelParams(queue_limit=512, batch_turnaround_us=50.0, per_event_overhead_us=0.5, seed=9)),
    (50.0, ModelParams(queue_limit=128, batch_turnaround_us=1000.0, per_event_overhead_us=15.0, seed=2)),
])
def test_mu_of_an_overloaded_trial_is_the_saturated_rate(cost_us, params):
    mu = saturated_rate(params, cost_us)
    r = ModelPlatform(params).run_trial(sustained_spec(BASE, cost_us, 1.5 * mu, 8_000 / mu))
    first = int(r.sent["t_send_ns"].min() + 0.25 * (r.sent["t_send_ns"].max() - r.sent["t_send_ns"].min()))
    got = served_rate(r.sent, r.delivered, after_ns=first)
    assert got.mu_per_s == pytest.approx(mu, rel=0.01)
    assert got.low_per_s <= mu * 1.005 and got.high_per_s >= mu * 0.995
    # what the harness adds per event beyond the callback: the dispatcher's overhead + turnaround share
    assert got.overhead_us(cost_us) == pytest.approx(1e6 / mu - cost_us, abs=0.02 * 1e6 / mu)


def test_idle_time_is_not_service():
    """Poisson arrivals at 60 % load: the subscriber is idle 40 % of the time, and the gaps between
    callbacks are mostly waits for traffic. mu reads the service alone."""
    p = ModelParams(batch_turnaround_us=0.0, per_event_overhead_us=3.0)
    spec = sustained_spec(BASE, 100.0, 0.6e6 / 103, 4.0)
    spec = replace(spec, traffic=replace(spec.traffic, pacing="poisson"),
                   subscriber=replace(spec.subscriber, cost_cv=0.0))
    r = ModelPlatform(p).run_trial(spec)
    got = served_rate(r.sent, r.delivered)
    assert got.mu_per_s == pytest.approx(1e6 / 103, rel=0.005)
    everything = len(r.delivered) / ((r.delivered["t_callback_ns"].max() - r.delivered["t_callback_ns"].min()) / 1e9)
    assert everything < 0.65 * got.mu_per_s  # callbacks per second overall: the offered rate, not the service


def nflog_like_drain(full_batches=40, batch=16, tail=7, per_event_ns=5_000, turnaround_ns=100_000,
                     flush_timer_ns=100_000_000):
    """A held drain as nflog delivers it: full batches of 16 back to back, then the last partial
    batch only when the kernel's flush timer fires."""
    n = full_batches * batch + tail
    sent = pd.DataFrame({"seq": np.arange(n), "t_send_ns": np.arange(n) * 1_000})
    release = n * 1_000 + 1_000_000
    t, clock = [], release
    for b in range(full_batches):
        for _ in range(batch):
            t.append(clock)
            clock += per_event_ns
        clock += turnaround_ns
    clock += flush_timer_ns
    for _ in range(tail):
        t.append(clock)
        clock += per_event_ns
    delivered = pd.DataFrame({"seq": np.arange(n), "t_callback_ns": np.asarray(t, dtype=np.int64)})
    return sent, delivered, release, batch / (batch * per_event_ns + turnaround_ns) * 1e9


def test_drain_rate_counts_full_batches_not_the_flush_timer():
    sent, delivered, release, truth = nflog_like_drain()
    rate = drain_rate(sent, delivered, release, ready=16)
    assert rate.value == pytest.approx(truth, rel=0.01)
    # what the old definition (events / time from release to the last callback) read
    naive = len(delivered) / ((delivered["t_callback_ns"].max() - release) / 1e9)
    assert naive < truth / 2


def synthetic(slope_per_s: float, seconds: float = 1.0, rate: float = 10_000, noise_events: float = 4.0, seed: int = 0):
    """Arrivals at `rate`, callbacks such that the backlog is 20 events plus `slope_per_s` x t plus
    noise: by time t, rate x t - backlog(t) callbacks have started."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t_send = np.arange(n) * (1e9 / rate)
    k = np.arange(n)  # every event is called back, the last ones after sending has ended
    t_cb = (k + 20 + rng.normal(0, noise_events, len(k))) / (rate - slope_per_s) * 1e9
    t_cb = np.maximum(np.maximum.accumulate(t_cb), t_send[: len(k)])
    sent = pd.DataFrame({"seq": np.arange(n), "t_send_ns": t_send.astype(np.int64)})
    delivered = pd.DataFrame({"seq": k, "t_callback_ns": t_cb.astype(np.int64)})
    return sent, delivered


@pytest.mark.parametrize("slope,verdict", [(0.0, "sustained"), (400.0, "overloaded"), (2000.0, "overloaded")])
def test_trend_verdicts_on_synthetic_backlogs(slope, verdict):
    sent, delivered = synthetic(slope)
    trend = backlog_trend(sent, delivered, margin_per_s=100.0)
    assert trend.verdict == verdict, trend
    if slope:
        assert trend.low_per_s <= slope * 1.02 and trend.high_per_s >= slope * 0.98


@pytest.mark.parametrize("cost_us", [20.0, 100.0, 500.0])
def test_trend_tells_apart_rates_two_resolution_steps_around_mu(cost_us):
    p = ModelParams(seed=11)
    mu = saturated_rate(p, cost_us)
    for factor, expected in ((0.97, "sustained"), (1.03, "overloaded")):
        r = ModelPlatform(p).run_trial(sustained_spec(BASE, cost_us, factor * mu, 10_000 / mu))
        trend = backlog_trend(r.sent, r.delivered, margin_per_s=0.01 * factor * mu)
        assert trend.verdict == expected, (factor, trend)
