"""The user's traffic and subscriber on a real Linux kernel (nflog, as root): a capture recorded on
this machine (tcpdump in a namespace of the test's own: DNS queries and an HTTP transfer) replays
with its lateness against the schedule reported and every event counted, per packet and per flow
(the rule then logs a flow's first packet only), and a Python subscriber is handed each logged
packet's bytes."""
from __future__ import annotations

import numpy as np
import pytest

import recorded_capture
from harness.experiments.replay import Capacity, replay_result, run_replay
from harness.results.fingerprint import fingerprint
from harness.results.store import ResultStore
from harness.spec import FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec
from harness.traffic.capture import read_capture
from harness.traffic.shapes import on_off
from platforms import needs_nflog

pytestmark = [needs_nflog, pytest.mark.root, pytest.mark.realtime,
              pytest.mark.skipif(recorded_capture.reason() is not None, reason=str(recorded_capture.reason()))]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> recorded_capture.Recorded:
    return recorded_capture.record(tmp_path_factory.mktemp("recorded"))


@pytest.fixture(scope="module")
def nflog():
    from harness.platforms.nflog.platform import NflogConfig, NflogPlatform
    with NflogPlatform(NflogConfig(qthresh=16)) as p:
        yield p


@pytest.mark.parametrize("events", ["packets", "flows"])
def test_a_recorded_capture_replays_with_every_event_counted(recorded, nflog, tmp_path, events):
    """Twice as fast as recorded, 30 us of work per event: the sender reports its lateness against
    the schedule (p50, p99, max), and delivered + lost is exactly the events the trace makes: every
    packet, or one per flow (the kernel logs a flow's first packet, and only it)."""
    trace = read_capture(recorded.path, trace_events=events).scaled(2.0)
    assert trace.count == recorded.captured and trace.flow_count == recorded.flows
    spec = TrialSpec(TrafficSpec.replay(trace), SubscriberSpec(cost_us=30.0), drain_quiet_s=0.3)
    store = ResultStore(tmp_path, fingerprint({"platform": "nflog"}), "nflog")
    row, _ = run_replay(nflog, spec, store, Capacity(16, None, "qthresh"))
    r = replay_result(row, spec, Capacity(16, None, "qthresh"), [])
    want = recorded.captured if events == "packets" else recorded.flows
    assert r.expected == want and r.delivered + r.lost == want
    assert r.repeat_events == 0 and r.unexpected == 0  # per flow: no later packet of a flow was logged
    assert row["count"] == recorded.captured  # every packet was sent either way
    late = r.sender_late_us
    assert late["p50"] is not None and late["p99"] is not None and late["max"] >= late["p99"] >= late["p50"]
    assert r.latency_us["p99"] is not None and r.latency_us["p99"] >= 0
    if r.trusted:  # a replay the sender kept: a small trace at twice its speed loses nothing here
        assert r.lost == 0, r
    assert all((store.path / "events" / f"{name}.csv.gz").exists() for name in r.frames.values())


SEEN: list[bytes] = []


def keep(event: bytes) -> None:
    SEEN.append(event)


@pytest.mark.parametrize("mode", ["inline", "copy"])
def test_a_python_subscriber_gets_each_logged_packet(nflog, mode):
    """The function is called once per event with the logged IPv4 packet: to the harness's blocked
    port range, carrying the packet's own sequence number (the trial's tag in its top 16 bits)."""
    SEEN.clear()
    trace = on_off(mean_rate_per_s=2000, burst_rate_per_s=20_000, burst_s=0.02, duration_s=0.5)
    spec = TrialSpec(TrafficSpec.replay(trace), SubscriberSpec(function=f"{__name__}:keep", mode=mode),
                     FilterSpec(layer="OUTBOUND_TRANSPORT_V4"), drain_quiet_s=0.3)
    result = nflog.run_trial(spec)
    assert len(SEEN) == result.delivered_count == trace.count
    assert all(len(b) >= 36 and b[0] >> 4 == 4 and b[9] == 17 for b in SEEN)
    ports = np.array([int.from_bytes(b[22:24], "big") for b in SEEN])
    assert ((ports >= spec.filter.remote_port_low) & (ports <= spec.filter.remote_port_high)).all()
    seqs = np.array([int.from_bytes(b[28:36], "big") & ((1 << 48) - 1) for b in SEEN])
    assert sorted(seqs.tolist()) == sorted(result.delivered["seq"].tolist()) == list(range(trace.count))
