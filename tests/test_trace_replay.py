"""Replaying traces on the model: equal to a direct simulation of the same arrivals and costs
(exactly, in virtual time), and losing from a scale that can be computed by hand on."""
from __future__ import annotations

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP

from captures import ether, write_pcap
from harness.analysis.loss import loss_by_sequence
from harness.headroom import first_lossy_scale, lost_at_scale
from harness.platforms.model import ModelParams, ModelPlatform
from harness.platforms.model.dispatcher import simulate
from harness.platforms.model.platform import _worker_done
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from harness.subscriber_cost import CostDistribution
from harness.traffic.capture import read_capture
from harness.traffic.schedule import Schedule
from harness.traffic.shapes import on_off, ramp

NS = 1000


def long_tail(seed=3) -> CostDistribution:
    rng = np.random.default_rng(seed)
    return CostDistribution(rng.lognormal(np.log(60), 1.0, 5000), np.ones(5000), seed=seed, source="lognormal")


def captured(tmp_path) -> Schedule:
    """A capture with flows of several packets each: DNS-like queries and a TCP conversation."""
    rng = np.random.default_rng(7)
    frames, times, t = [], [], 0
    for k in range(3000):
        t += int(rng.exponential(80_000))
        if k % 3:
            frames.append(bytes(ether() / IP(src="10.0.0.1", dst="10.0.0.53") / UDP(sport=30000 + k % 400, dport=53)))
        else:
            frames.append(bytes(ether() / IP(src="10.0.0.1", dst="10.0.0.80") / TCP(sport=40000 + k % 7, dport=80)))
        times.append(t)
    return read_capture(write_pcap(tmp_path / "trace.pcap", frames, times))


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> dict[str, Schedule]:
    rng = np.random.default_rng(1)
    trace = captured(tmp_path_factory.mktemp("capture"))
    return {
        "on/off": on_off(mean_rate_per_s=5_000, burst_rate_per_s=60_000, burst_s=0.1, duration_s=2),
        "ramp": ramp(1_000, 30_000, 1.5),
        "capture, events per packet": trace,
        "capture, events per flow": trace.with_trace_events("flows"),
        "poisson with ties, 3x": Schedule(np.cumsum(rng.exponential(40_000, 20_000)).astype(np.int64) // 1000 * 1000,
                                          rng.integers(0, 300, 20_000), "flows").scaled(3),
    }


def direct(params: ModelParams, schedule: Schedule, work: np.ndarray, mode: str, copy_cost_us: float):
    """The dispatcher simulated straight from the schedule's event times and the costs."""
    arrivals = schedule.offsets_ns[schedule.events]
    overhead = int(round(params.per_event_overhead_us * NS))
    in_callback = work if mode == "inline" else np.full(len(arrivals), int(round(copy_cost_us * NS)), np.int64)
    sim = simulate(arrivals, in_callback + overhead, params.queue_limit, params.system_buffer,
                   int(round(params.dispatch_latency_us * NS)), int(round(params.batch_turnaround_us * NS)))
    done = sim.callback_end if mode == "inline" else _worker_done(sim.callback_end, work[: len(sim.callback_end)])
    seq = np.flatnonzero(schedule.events)
    return seq[sim.delivered_index], sim.callback_start, done, seq[sim.lost_index]


@pytest.mark.parametrize("mode", ["inline", "copy"])
@pytest.mark.parametrize("cost", ["distribution", "constant"])
def test_a_replay_equals_a_direct_simulation_of_its_times_and_costs(traces, mode, cost):
    params = ModelParams(queue_limit=64, system_buffer=2_000, seed=9)
    lost_somewhere = 0
    for name, schedule in traces.items():
        n = schedule.event_count
        if cost == "distribution":
            sub = SubscriberSpec(cost_distribution=long_tail(), mode=mode)
            work = long_tail().draw(n)  # the distribution's own seed: nothing of the platform's
        else:
            sub = SubscriberSpec(cost_us=45.0, mode=mode)
            work = np.full(n, 45_000, np.int64)
        result = ModelPlatform(params).run_trial(TrialSpec(TrafficSpec.replay(schedule), sub))
        seq, started, done, lost = direct(params, schedule, work, mode, sub.copy_cost_us)
        d = result.delivered
        assert d["seq"].tolist() == seq.tolist(), name
        assert d["t_callback_ns"].tolist() == started.tolist(), name
        assert d["t_done_ns"].tolist() == done.tolist(), name
        assert result.ground_truth["lost_seq"].tolist() == lost.tolist(), name
        assert result.sent["t_send_ns"].tolist() == schedule.offsets_ns.tolist(), name
        assert int(result.sent["expected"].sum()) == n, name
        lost_somewhere += len(lost)
    if mode == "inline":
        assert lost_somewhere > 0  # the shapes overload the dispatcher somewhere: the comparison covers loss


# The headroom case computed by hand. With one slot in the queue (Q = 1), no dispatch latency,
# no turnaround and no overhead, the dispatcher is a single server of constant service s that
# holds at most C = Q + B waiting events. A burst of N events g apart, played at scale x, arrives
# at a_k = rint(k g / x); the server starts event m at m s, and the m-th swap admits what arrived
# by then: the queue overflows iff some swap finds A(m s) - m > C, and in an overloaded burst
# that first happens once the whole burst is in: iff ceil(a_{N-1} / s) < N - C, i.e.
# rint((N - 1) g / x) <= (N - C - 1) s. The first lossy scale is x* = (N-1) g / ((N-C-1) s + 1/2).
N, B, G_NS, S_NS = 1000, 399, 149_900, 100_000
C = 1 + B
X_STAR = (N - 1) * G_NS / ((N - C - 1) * S_NS + 0.5)  # 2.500001...
HAND = ModelParams(queue_limit=1, system_buffer=B, dispatch_latency_us=0, batch_turnaround_us=0,
                   per_event_overhead_us=0)


def hand_trace() -> Schedule:
    trace = on_off(mean_rate_per_s=1_000, burst_rate_per_s=1e9 / G_NS, burst_s=N * G_NS / 1e9, duration_s=5)
    gaps = np.diff(trace.offsets_ns)
    assert trace.count == 5 * N and np.all(gaps[gaps < 10**6] == G_NS)  # five bursts of N, g apart
    return trace


def hand_spec(schedule: Schedule) -> TrialSpec:
    return TrialSpec(TrafficSpec.replay(schedule), SubscriberSpec(cost_us=S_NS / NS))


def test_the_model_loses_exactly_from_the_computed_scale_on():
    trace = hand_trace()
    lost = lost_at_scale(ModelPlatform(HAND), hand_spec(trace))
    below = [0.5, 1.0, 2.0, 2.4, X_STAR * (1 - 1e-7)]
    above = [X_STAR * (1 + 1e-7), 2.6, 4.0, 10.0, 50.0]
    assert [lost(x) for x in below] == [0] * len(below)
    losses = [lost(x) for x in above]
    assert all(n > 0 for n in losses) and losses == sorted(losses)  # from x* on, and more the faster
    # just past x*, each burst's last arrival finds the queue full: one event per burst
    assert losses[0] == 5


def test_the_bisection_brackets_the_computed_scale():
    trace = hand_trace()
    bracket = first_lossy_scale(lost_at_scale(ModelPlatform(HAND), hand_spec(trace)), resolution=1e-4)
    assert bracket.clean < X_STAR <= bracket.lossy and bracket.resolved
    assert bracket.lossy / bracket.clean - 1 <= 1e-4
    # the search doubled from 1 to bracket x* in [2, 4], then bisected: every step recorded
    assert [s for s, _ in bracket.trials[:3]] == [1.0, 2.0, 4.0]
    assert len(bracket.trials) <= 3 + int(np.ceil(np.log2(np.log(2) / np.log1p(1e-4)))) + 1
    # started above it, the search halves down instead and finds the same bracket
    down = first_lossy_scale(lost_at_scale(ModelPlatform(HAND), hand_spec(trace)), start=16, resolution=1e-4)
    assert down.clean < X_STAR <= down.lossy and down.trials[0] == (16, down.trials[0][1]) and down.trials[0][1] > 0


def test_a_long_tailed_cost_lowers_the_headroom_of_a_trace():
    """Same mean cost, a long tail: the worst of fifty short bursts meets a run of slow callbacks,
    so the model says the trace tolerates less speed-up (0.78x against 0.98x here)."""
    params = ModelParams(queue_limit=16, system_buffer=200)
    trace = on_off(mean_rate_per_s=500, burst_rate_per_s=20_000, burst_s=0.02, duration_s=20)  # 50 bursts of 400
    tail = long_tail()
    flat = CostDistribution(np.array([tail.mean_us]), np.array([1]), source="its mean")

    def headroom(dist):
        spec = TrialSpec(TrafficSpec.replay(trace), SubscriberSpec(cost_distribution=dist))
        return first_lossy_scale(lost_at_scale(ModelPlatform(params), spec), resolution=0.01)

    heavy, even = headroom(tail), headroom(flat)
    assert heavy.resolved and even.resolved
    assert heavy.lossy < even.clean


def test_losses_counted_by_the_search_are_the_trials_own():
    trace = hand_trace().scaled(3.0)
    result = ModelPlatform(HAND).run_trial(hand_spec(trace))
    assert loss_by_sequence(result.sent, result.delivered).lost == lost_at_scale(ModelPlatform(HAND), hand_spec(trace))(3.0)
