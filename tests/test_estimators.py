"""Estimators recover model parameters they were never given."""
import numpy as np
import pandas as pd
import pytest

from harness.analysis.batches import estimate_queue_limit
from harness.analysis.latency import latency_summary
from harness.analysis.loss import loss_by_sequence
from harness.experiments.burst import BurstConfig, search_burst_capacity
from harness.experiments.drain import measure_drain
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.fingerprint import fingerprint
from harness.results.store import ResultStore
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec


def measure(params: ModelParams, tmp_path, cost_us=5.0, cost_cv=0.3):
    platform = ModelPlatform(params)
    store = ResultStore(tmp_path, fingerprint(platform.describe()), platform.name)
    base = TrialSpec(TrafficSpec(count=1), SubscriberSpec(cost_us=cost_us, cost_cv=cost_cv))
    burst = search_burst_capacity(platform, base, store, BurstConfig(start=256))
    drain = measure_drain(platform, base, store, int(burst.capacity.value * 1.25) + 1, burst.capacity)
    return burst, drain


@pytest.mark.parametrize("queue_limit,system_buffer,latency_us", [
    (64, 1_000, 20.0), (128, 5_000, 0.0), (512, 40_000, 50.0), (256, 16_500, 5.0), (100, 3_333, 80.0)])
def test_recovers_queue_and_buffer_with_jitter(tmp_path, queue_limit, system_buffer, latency_us):
    p = ModelParams(queue_limit=queue_limit, system_buffer=system_buffer, dispatch_latency_us=latency_us, seed=7)
    burst, drain = measure(p, tmp_path)
    assert burst.capacity.value == p.true_burst_capacity()
    assert burst.plateau.value == p.true_burst_capacity()
    assert drain.queue_limit.value == queue_limit, drain.queue_limit.to_dict()
    assert drain.first_batch.value == p.first_batch(1e9 / p.sender_rate_per_s)
    assert drain.buffer_depth.value == system_buffer


def test_first_boundary_hidden_by_the_hold_is_inferred(tmp_path):
    # no dispatch latency: the first batch is the held event alone, and its boundary hides in the hold
    p = ModelParams(queue_limit=128, system_buffer=2000, dispatch_latency_us=0)
    _, drain = measure(p, tmp_path)
    assert drain.first_batch.value == 1  # the lattice runs on through the hold


def test_not_detectable_without_turnaround(tmp_path):
    p = ModelParams(batch_turnaround_us=0)
    burst, drain = measure(p, tmp_path)
    assert burst.capacity.value == p.true_burst_capacity()  # the burst search does not need boundaries
    assert not drain.queue_limit.detectable
    assert "not detectable" in drain.queue_limit.reason
    assert drain.buffer_depth.value is None


def test_not_detectable_when_turnaround_drowns_in_jitter(tmp_path):
    # a 5 us turnaround against a 200 us callback with 30 % jitter cannot be seen
    p = ModelParams(batch_turnaround_us=5, system_buffer=3000)
    _, drain = measure(p, tmp_path, cost_us=200.0, cost_cv=0.3)
    assert not drain.queue_limit.detectable


def test_regular_gaps_synthetic():
    # 10 events per batch, 1 us apart, 50 us between batches, first batch 3, held first callback
    t, clock = [0], 1_000_000
    sizes = [3] + [10] * 6 + [4]
    for b, size in enumerate(sizes):
        for k in range(size - (1 if b == 0 else 0)):
            t.append(clock)
            clock += 1_000
        clock += 50_000
    q, first = estimate_queue_limit(np.asarray(t), held=True)
    assert (q.value, first.value) == (10, 3)


@pytest.mark.parametrize("limit,stretched_every", [(128, 4), (64, 2), (100, 3)])
def test_a_period_that_only_every_kth_stretched_turnaround_shows_is_not_taken(limit, stretched_every):
    # Under a CPU hog (tests/test_wfp_fake.py, 128-3000) some turnarounds took milliseconds while
    # the rest stayed at 60 us: the big ones alone, on every 4th boundary, read as a queue of 512.
    rng = np.random.default_rng(5)
    t, clock = [0], 1_000_000
    for b in range(24):
        for _ in range(1 if b == 0 else limit):
            t.append(clock)
            clock += 2_000 + int(rng.integers(0, 400))
        clock += 5_000_000 if b % stretched_every == 0 else 60_000
    q, _ = estimate_queue_limit(np.asarray(t[:-1]), held=True)
    assert not q.detectable and "turnarounds missed" in q.reason, q.to_dict()
    assert q.evidence["finer_lattice"]["period"] == limit


def test_irregular_batches_are_not_detectable():
    rng = np.random.default_rng(1)
    sizes = rng.integers(5, 40, 30)
    t, clock = [], 0
    for size in sizes:
        for _ in range(size):
            t.append(clock)
            clock += 1_000
        clock += 80_000
    q, _ = estimate_queue_limit(np.asarray(t), held=False)
    assert not q.detectable and "irregular" in q.reason, q.to_dict()


def test_loss_positions():
    sent = pd.DataFrame({"seq": np.arange(10), "t_send_ns": np.arange(10) * 1000})
    delivered = pd.DataFrame({"seq": [2, 3, 5, 7, 7, 99]})
    loss = loss_by_sequence(sent, delivered)
    assert (loss.lost_head, loss.lost_middle, loss.lost_tail) == (2, 2, 2)
    assert loss.lost_seq.tolist() == [0, 1, 4, 6, 8, 9]
    assert (loss.duplicates, loss.unexpected, loss.onset_s) == (1, 1, 0.0)


def test_latency_percentiles():
    lat = np.arange(1, 1001) * 1000  # 1..1000 us
    s = latency_summary(lat)
    assert s["count"] == 1000 and s["max"] == 1000.0
    assert s["p50"] == pytest.approx(500.5) and s["p99"] == pytest.approx(990.01)


def test_stray_pauses_inside_batches_are_rejoined():
    rng = np.random.default_rng(3)
    t, clock = [0], 1_000_000
    sizes = [16] * 40
    for size in sizes:
        for _ in range(size):
            t.append(clock)
            clock += 5_000 + int(rng.integers(0, 300))
        clock += 25_000
    t = np.asarray(t[:-1])
    # a few preemptions in the middle of batches
    for at in (100, 333, 517, 600):
        t[at:] += 40_000
    q, first = estimate_queue_limit(t, held=True)
    assert q.value == 16 and q.evidence["strays"] == 4

