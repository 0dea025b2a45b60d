"""Schedules: scale, windows, events per packet or flow, the arrival profile, shapes, and a
TrafficSpec that carries one (frozen, compared and pickled by content)."""
from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.inputs import BadInput
from harness.spec import TrafficSpec, TrialSpec
from harness.traffic.pacing import deadlines_ns
from harness.traffic.plan import plan_traffic
from harness.traffic.schedule import Schedule, default_trace_events, parse_scale
from harness.traffic.shapes import on_off, ramp
from harness.traffic.window import apply_window, arrival_profile, busiest_window


def test_times_are_sorted_shifted_to_zero_and_flows_numbered_by_first_packet():
    s = Schedule(np.array([50, 20, 30, 20]), np.array([7, 9, 7, 3]))
    assert s.offsets_ns.tolist() == [0, 0, 10, 30]
    assert s.flow.tolist() == [0, 1, 2, 2]  # flows 9, 3 (tied at 20, kept in order), then 7
    assert s.events.tolist() == [True] * 4
    assert s.with_trace_events("flows").events.tolist() == [True, True, True, False]
    assert s.with_trace_events("flows").event_count == 3
    with pytest.raises(ValueError):
        s.offsets_ns[0] = 5  # read-only: a schedule shared by specs cannot change under them


def test_the_default_events_follow_the_layer():
    assert default_trace_events("ALE_AUTH_CONNECT_V4") == default_trace_events("ALE_AUTH_RECV_ACCEPT_V4") == "flows"
    assert default_trace_events("OUTBOUND_TRANSPORT_V4") == default_trace_events("INBOUND_TRANSPORT_V4") == "packets"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=200), st.floats(0.01, 100))
def test_scaling_divides_time_and_keeps_order(times, scale):
    s = Schedule(np.array(times))
    fast = s.scaled(scale)
    assert np.all(np.diff(fast.offsets_ns) >= 0)
    assert np.abs(fast.offsets_ns - s.offsets_ns / scale).max() <= 0.5
    assert fast.scaled(1.0) == s  # a scale is relative to the source: no compounding
    assert fast.digest == s.digest and (fast != s) == (scale != 1.0)  # the scale is part of what it is


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "2", True])
def test_a_scale_must_be_a_finite_number_above_zero(bad):
    with pytest.raises(BadInput, match="--traffic-scale must be a finite number > 0"):
        Schedule(np.array([0, 1])).scaled(bad)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "fast", ""])
def test_the_scale_option_is_refused_in_one_line(text):
    with pytest.raises(BadInput, match=f"--traffic-scale must be a finite number > 0, got '{text}'"):
        parse_scale(text)
    assert parse_scale("2.5") == 2.5


def test_the_busiest_window_is_found_and_cut():
    rng = np.random.default_rng(3)
    quiet = np.sort(np.append(rng.integers(0, 60 * 10**9, 2999), 0))  # 50 events/s over a minute, from 0
    storm = 37 * 10**9 + np.arange(5000) * 200_000         # 5,000 events in one second, 37 s in
    s = Schedule(np.concatenate([quiet, storm]))
    best = busiest_window(s, 10**9)
    assert 36.9e9 <= best.start_ns <= 37 * 10**9 and best.events >= 5000
    cut = apply_window(s, "auto:1")
    assert cut.count == best.events and cut.offsets_ns[0] == 0
    assert cut.provenance.window == (best.start_ns, 10**9)
    by_hand = apply_window(s, "37:1")
    assert by_hand.provenance.window == (37 * 10**9, 10**9) and by_hand.count >= 5000


def test_a_window_renumbers_flows_and_a_flow_already_begun_makes_its_event_inside():
    s = Schedule(np.array([0, 10, 20, 30, 40]), np.array([1, 2, 1, 2, 3]), trace_events="flows")
    w = s.window(15, 100)
    assert w.offsets_ns.tolist() == [0, 10, 20] and w.flow.tolist() == [0, 1, 2]
    assert w.events.tolist() == [True, True, True]  # the replay is new to the machine


@pytest.mark.parametrize("spec,line", [
    ("99:1", "lies outside the trace"),
    ("0.5:0.1", "holds no packet of the trace"),
    ("auto", "must be auto:LENGTH or START:LENGTH"),
    ("auto:0", "the length must be > 0 s"),
    ("-1:2", "the start must be >= 0 s"),
    ("x:2", "the start must be a finite number of seconds"),
    ("1:nan", "the length must be a finite number of seconds"),
])
def test_bad_windows_are_refused_in_one_line(spec, line):
    s = Schedule(np.array([0, 10**8, 10**9, 2 * 10**9]))
    with pytest.raises(BadInput, match=line):
        apply_window(s, spec)


def test_arrival_profile_counts_events_per_millisecond():
    s = Schedule(np.array([0, 100, 999_999, 1_000_000, 5_500_000]), np.array([0, 0, 1, 2, 2]), "flows")
    t, counts = arrival_profile(s)
    assert t.tolist() == [0, 1_000_000] and counts.tolist() == [2, 1]  # flow 2's second packet is no event
    assert arrival_profile(s.with_trace_events("packets").scaled(2), 1_000_000)[1].tolist() == [4, 0, 1]


def test_on_off_has_its_rates():
    s = on_off(mean_rate_per_s=1000, burst_rate_per_s=20_000, burst_s=0.05, duration_s=10)
    assert s.count == 10_000  # 1,000 per burst, one burst a second
    gaps = np.diff(s.offsets_ns)
    assert np.all(gaps[gaps < 10**6] == 50_000)                 # 20,000/s inside a burst
    assert s.count / (s.offsets_ns[-1] / 1e9 + 0.95) == pytest.approx(1000, rel=1e-3)
    with pytest.raises(BadInput, match="mean rate 30000/s must not exceed the burst rate"):
        on_off(30_000, 20_000, 0.05, 10)
    with pytest.raises(BadInput, match="on/off burst length must be a finite number > 0"):
        on_off(1000, 20_000, 0, 10)


@pytest.mark.parametrize("r0,r1", [(1000, 5000), (5000, 1000), (2000, 2000)])
def test_a_ramp_goes_from_one_rate_to_the_other(r0, r1):
    s = ramp(r0, r1, 10)
    assert s.count == int((r0 + r1) / 2 * 10) + 1
    t = s.offsets_ns / 1e9
    first, last = np.sum(t < 1), np.sum(t >= 9)  # packets in the first and the last second
    assert first == pytest.approx(r0 + (r1 - r0) / 20, rel=0.01)
    assert last == pytest.approx(r1 - (r1 - r0) / 20, rel=0.01)


def test_traffic_spec_carries_a_schedule_by_content():
    s = on_off(1000, 20_000, 0.05, 2)
    a, b = TrafficSpec.replay(s), TrafficSpec.replay(on_off(1000, 20_000, 0.05, 2))
    assert a == b and hash(a) == hash(b)
    assert a != TrafficSpec.replay(s.scaled(2))
    with pytest.raises(FrozenInstanceError):
        a.count = 5
    back = pickle.loads(pickle.dumps(a))
    assert back == a and back.schedule.offsets_ns.tolist() == s.offsets_ns.tolist()
    assert len(pickle.dumps(a)) < 17 * s.count + 2000  # the arrays, once, not per field
    assert a.duration_s == s.duration_s and a.pacing == "schedule"
    assert deadlines_ns(TrafficSpec.replay(s.scaled(4))).tolist() == s.scaled(4).offsets_ns.tolist()
    with pytest.raises(ValueError, match="differs from the schedule"):
        TrafficSpec(count=3, pacing="schedule", schedule=s)
    with pytest.raises(ValueError, match="goes with pacing 'schedule'"):
        TrafficSpec(count=s.count, schedule=s)


def test_the_plan_expects_events_by_the_schedule():
    s = Schedule(np.arange(6) * 1000, np.array([0, 1, 0, 2, 1, 0]), "flows")
    plan = plan_traffic(TrialSpec(TrafficSpec.replay(s)))
    assert plan.expected.tolist() == [True, True, False, True, False, False]
    # events per flow (ALE): a flow's packets share its tuple, and every decoder names its first packet
    assert plan.remote_port.tolist() == [20000, 20001, 20000, 20002, 20001, 20000]
    assert plan.decode(plan.remote_v4, plan.remote_port).tolist() == [0, 1, 0, 3, 1, 0]
    assert plan.event_of(np.arange(6)).tolist() == [0, 1, 0, 3, 1, 0]
    assert plan.decode(int(plan.remote_v4[0]), 20003) == -1  # a tuple of no flow of the trace
    # events per packet: every packet its own tuple, as before
    per_packet = plan_traffic(TrialSpec(TrafficSpec.replay(s.with_trace_events("packets"))))
    assert len(np.unique(per_packet.remote_port)) == 6 and per_packet.expected.all()
    assert per_packet.decode(per_packet.remote_v4, per_packet.remote_port).tolist() == list(range(6))
