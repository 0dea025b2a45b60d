"""The readers on a real capture recorded on this machine (tcpdump on the loopback of a network
namespace of the test's own, a burst of DNS queries and a small HTTP transfer)."""
from __future__ import annotations

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import PcapNgWriter, PcapReader

import recorded_capture
from tiers import needs
from harness.traffic.capture import read_capture, read_capture_scapy
from harness.traffic.window import apply_window

pytestmark = pytest.mark.skipif(recorded_capture.reason() is not None, reason=str(recorded_capture.reason()))


@pytest.fixture(scope="module")
@needs("root")  # tcpdump in a network namespace of its own
def recorded(tmp_path_factory) -> recorded_capture.Recorded:
    r = recorded_capture.record(tmp_path_factory.mktemp("recorded"))
    assert r.dns_queries == recorded_capture.DNS_QUERIES and r.http_bytes == 2 * recorded_capture.HTTP_BYTES
    return r


def test_the_reader_takes_every_packet_and_flow_of_a_real_capture(recorded):
    s = read_capture(recorded.path)
    assert s.count == recorded.captured  # every packet tcpdump wrote: all of it IPv4 on this loopback
    assert s.flow_count == recorded.flows  # one per DNS query (its own socket) and per HTTP connection
    assert s.with_trace_events("flows").event_count == recorded.flows
    assert np.all(np.diff(s.offsets_ns) >= 0) and s.duration_s < 30
    # what the packets are, by scapy's dissection: a query and an answer per DNS flow, TCP for the rest
    packets = list(PcapReader(str(recorded.path)))
    udp = [p for p in packets if UDP in p]
    tcp = [p for p in packets if TCP in p]
    assert len(udp) == 2 * recorded.dns_queries and len(udp) + len(tcp) == s.count
    assert sum(p[TCP].flags == "S" for p in tcp) == recorded.http_connections  # one opening SYN each
    dns_flows = {s.flow[k] for k, p in enumerate(packets) if UDP in p}
    assert len(dns_flows) == recorded.dns_queries
    assert read_capture_scapy(recorded.path) == s


def test_the_same_capture_as_pcapng_reads_the_same(recorded, tmp_path):
    out = tmp_path / "recorded.pcapng"
    with PcapNgWriter(str(out)) as w:
        for p in PcapReader(str(recorded.path)):
            w.write(p)
    ng = read_capture(out)
    s = read_capture(recorded.path)
    assert ng.flow.tolist() == s.flow.tolist() and ng.provenance.kind == "pcapng"
    assert np.abs(ng.offsets_ns - s.offsets_ns).max() <= 1000  # scapy's writer keeps microseconds


def test_a_window_of_the_real_capture(recorded):
    s = read_capture(recorded.path)
    busiest = apply_window(s, f"auto:{max(s.duration_s / 4, 1e-3)}")
    assert 0 < busiest.count <= s.count and busiest.provenance.window[1] > 0
    assert busiest.provenance.sha256 == s.provenance.sha256
    assert all(IP in p for p in PcapReader(str(recorded.path)))
