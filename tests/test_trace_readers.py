"""The capture and net-event readers: against scapy's own dissection (hypothesis), on every
format variant, and refusing bad input with one line."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, Dot1Q, Loopback
from scapy.utils import PcapNgReader, rdpcap

from bad_input import refused
from captures import ether, ticks_per_second, write_pcap, write_pcapng
from harness.inputs import BadInput
from harness.traffic.capture import read_capture, read_capture_scapy, read_pcap_chunked, record_starts, record_starts_python
from harness.traffic.netevents_xml import parse_timestamp, read_netevents

ADDRESSES = ["10.0.0.1", "10.0.0.2", "192.0.2.7", "198.51.100.9"]
LINKS = {1: "ethernet", 101: "raw", 113: "sll", 0: "null"}


@st.composite
def frame(draw, linktype: int):
    kind = draw(st.sampled_from(["udp", "tcp", "icmp", "fragment", "ipv6", "arp", "vlan"]))
    src, dst = draw(st.sampled_from(ADDRESSES)), draw(st.sampled_from(ADDRESSES))
    sport, dport = draw(st.sampled_from([53, 80, 40000, 40001])), draw(st.sampled_from([53, 443, 40000]))
    options = b"\x01" * draw(st.sampled_from([0, 4, 40]))  # NOPs: IHL from 5 to 15 words
    if kind == "udp":
        l3 = IP(src=src, dst=dst, options=options) / UDP(sport=sport, dport=dport) / b"q"
    elif kind == "tcp":
        l3 = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport)
    elif kind == "icmp":
        l3 = IP(src=src, dst=dst) / ICMP()
    elif kind == "fragment":  # a non-first fragment carries no ports
        l3 = IP(src=src, dst=dst, proto=17, frag=draw(st.integers(1, 100))) / (b"\x01\x02\x03\x04" * 4)
    elif kind == "ipv6":
        l3 = IPv6() / UDP(sport=sport, dport=dport)
    else:
        l3 = IP(src=src, dst=dst) / UDP(sport=sport, dport=dport)
    if kind == "arp":
        return bytes(ether() / ARP()) if linktype == 1 else bytes(IPv6() / UDP())  # not IPv4 on any link
    if linktype == 1:
        return bytes(ether() / Dot1Q(vlan=7) / l3) if kind == "vlan" else bytes(ether() / l3)
    if linktype == 113:
        return bytes(CookedLinux(proto=0x86DD if kind == "ipv6" else 0x0800) / l3)
    if linktype == 0:
        return bytes(Loopback(type=24 if kind == "ipv6" else 2) / l3)
    return bytes(l3)


@st.composite
def capture_case(draw):
    linktype = draw(st.sampled_from(sorted(LINKS)))
    frames = draw(st.lists(frame(linktype), min_size=1, max_size=60))
    gaps = draw(st.lists(st.integers(0, 3_000_000_000), min_size=len(frames), max_size=len(frames)))
    base = draw(st.integers(1_000_000_000, 2_000_000_000)) * 1_000_000_000
    nano = draw(st.booleans())
    times = [base + int(t) // (1 if nano else 1000) * (1 if nano else 1000) for t in np.cumsum(gaps)]
    return linktype, frames, times, nano, draw(st.booleans()), draw(st.sampled_from([64, 300, 1 << 20]))


def reference(path, bidirectional=True):
    """Times and flow ids of the IPv4 packets, by scapy's full dissection."""
    times, keys = [], []
    for p in rdpcap(str(path)):
        ip = p.getlayer(IP)
        if ip is None:
            continue
        ports = (0, 0)
        if ip.frag == 0 and isinstance(ip.payload, (TCP, UDP)):
            ports = (ip.payload.sport, ip.payload.dport)
        a, b = (ip.src, ports[0]), (ip.dst, ports[1])
        if bidirectional:
            a, b = sorted([a, b], key=lambda e: (tuple(int(x) for x in e[0].split(".")), e[1]))
        times.append(int(p.time * 10**9))
        keys.append((ip.proto, a, b))
    ids: dict = {}
    return np.asarray(times) - (times[0] if times else 0), np.asarray([ids.setdefault(k, len(ids)) for k in keys])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=capture_case())
def test_both_readers_match_scapy_dissection(tmp_path_factory, case):
    linktype, frames, times, nano, big_endian, chunk = case
    path = write_pcap(tmp_path_factory.mktemp("cap") / "c.pcap", frames, times, linktype, nano, big_endian)
    t_ref, flow_ref = reference(path)
    ipv4 = len(t_ref)
    if ipv4 == 0:
        with pytest.raises(BadInput, match="holds no IPv4 packet"):
            read_pcap_chunked(path, chunk_bytes=chunk)
        return
    fast = read_pcap_chunked(path, chunk_bytes=chunk)  # tiny chunks: records straddle every boundary
    assert fast.offsets_ns.tolist() == t_ref.tolist()
    assert fast.flow.tolist() == flow_ref.tolist()
    assert sum(dict(fast.provenance.skipped).values()) == len(frames) - ipv4
    assert read_capture_scapy(path) == fast  # the scapy streaming path: same schedule, same provenance


def test_directional_flows_split_a_conversation(tmp_path):
    query = ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=53)
    reply = ether() / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=53, dport=40000)
    path = write_pcap(tmp_path / "c.pcap", [bytes(query), bytes(reply)] * 3, [i * 1000 for i in range(6)])
    assert read_capture(path).flow_count == 1
    assert read_capture(path, bidirectional=False).flow.tolist() == [0, 1] * 3
    assert read_capture(path, trace_events="flows").events.tolist() == [True] + [False] * 5


def test_pcapng_with_interfaces_of_several_link_types_and_resolutions(tmp_path):
    udp = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)
    interfaces = [(1, 6), (101, 9), (1, 0x80 | 40)]  # Ethernet in us, raw IP in ns, Ethernet in 2^-40 s
    frames = [bytes(ether() / udp), bytes(udp), bytes(ether() / udp)]
    packets = []
    for k in range(33):
        iface = k % 3
        t_ns = 5_000_000_000 + k * 1_234_567
        v6 = bytes(IPv6() / UDP()) if iface == 1 else bytes(ether() / IPv6() / UDP())
        frame = frames[iface] if k < 30 else v6  # three IPv6 at the end
        packets.append((iface, t_ns * ticks_per_second(interfaces[iface][1]) // 10**9, frame))
    path = write_pcapng(tmp_path / "c.pcapng", packets, interfaces)
    s = read_capture(path)
    truth = [int(p.time * 10**9) for p in PcapNgReader(str(path)) if IP in p]
    assert s.offsets_ns.tolist() == [t - truth[0] for t in truth]
    assert s.count == 30 and s.flow_count == 1 and s.provenance.kind == "pcapng"
    assert dict(s.provenance.skipped) == {"not IPv4": 3}


def test_gzip_and_out_of_order_captures(tmp_path):
    frames = [bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=k, dport=9)) for k in range(1, 5)]
    path = write_pcap(tmp_path / "c.pcap", frames, [3_000, 1_000, 2_000, 1_000], linktype=101)
    s = read_capture(path)
    assert s.offsets_ns.tolist() == [0, 0, 1_000, 2_000]  # sorted, stably: ports 2 and 4 tie at 1 us
    assert s.flow.tolist() == [0, 1, 2, 3]
    zipped = tmp_path / "c.pcap.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    assert read_capture(zipped).offsets_ns.tolist() == s.offsets_ns.tolist()


def test_snaplen_cut_headers_and_a_capture_cut_short(tmp_path):
    frames = [bytes(ether() / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 40) / UDP(sport=5, dport=6))] * 4
    cut = write_pcap(tmp_path / "cut.pcap", frames, [0, 1, 2, 3], snaplen=40)  # 14 + 26 bytes of a 60-byte header
    with pytest.raises(BadInput, match="holds no IPv4 packet .*4 IPv4 header cut short"):
        read_capture(cut)
    whole = write_pcap(tmp_path / "whole.pcap", frames, [0, 1000, 2000, 3000])
    stopped = tmp_path / "stopped.pcap"
    stopped.write_bytes(whole.read_bytes()[:-30])  # tcpdump killed in the middle of a record
    s = read_capture(stopped)
    assert s.count == 3 and dict(s.provenance.skipped) == {"record cut short at the end of the file": 1}


def test_the_native_and_python_record_walks_agree():
    rng = np.random.default_rng(1)
    records = b"".join(int(n).to_bytes(4, "little").rjust(12, b"\0") + bytes(4) + bytes(int(n))
                       for n in rng.integers(0, 300, 500))
    for end in (len(records), len(records) - 7):
        starts, pos, bad = record_starts(records[:end], 0, False, 1000)
        ref_starts, ref_pos, ref_bad = record_starts_python(records[:end], 0, False, 1000)
        assert starts.tolist() == ref_starts.tolist() and (pos, bad) == (ref_pos, ref_bad)
    assert record_starts(records, 0, False, 100)[2] == record_starts_python(records, 0, False, 100)[2] >= 0


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("make,line", [
    (lambda d: d / "missing.pcap", "cannot read capture .*missing.pcap: No such file or directory"),
    (lambda d: (d / "empty.pcap").write_bytes(b"") and d / "empty.pcap", "is empty"),
    (lambda d: write_pcap(d / "none.pcap", [], []), "holds no packets"),
    (lambda d: write_pcap(d / "v6.pcap", [bytes(ether() / IPv6() / UDP()), bytes(ether() / ARP())], [0, 1]),
     r"holds no IPv4 packet \(2 packets: 2 not IPv4\)"),
    (lambda d: write_pcap(d / "link.pcap", [b"\0" * 40], [0], linktype=147), r"holds no IPv4 packet \(1 packets: 1 unsupported link type 147\)"),
    (lambda d: (d / "text.pcap").write_bytes(b"hello, not a capture") and d / "text.pcap", "is not a pcap or pcapng capture"),
    (lambda d: (d / "short.pcap").write_bytes(bytes.fromhex("d4c3b2a1") + b"\0" * 5) and d / "short.pcap",
     "file header is cut short"),
    (lambda d: (d / "huge.pcap").write_bytes(write_pcap(d / "h", [], []).read_bytes()
                                              + (0).to_bytes(8, "little") + (1 << 30).to_bytes(4, "little") + bytes(200))
     and d / "huge.pcap", "the record at byte 24 claims 1,073,741,824 bytes"),
    (lambda d: (d / "bad.pcapng").write_bytes(bytes.fromhex("0a0d0d0a") + b"\xff" * 64) and d / "bad.pcapng",
     "is not a pcap or pcapng capture scapy can read"),
])
def test_bad_captures_are_refused_in_one_line(tmp_path, make, line):
    with pytest.raises(BadInput, match=line) as exc:
        read_capture(make(tmp_path))
    one_line(exc)


# -- netsh wfp show netevents -----------------------------------------------------------------------

def netevents_xml(events, item_tag=True) -> str:
    """An export in the documented format: a <netEvents> list of <item> (or <netEvent>) events."""
    rows = []
    for stamp, proto, local, lport, remote, rport in events:
        header = (f"<header><timeStamp>{stamp}</timeStamp><flags numItems=\"1\"><item>FWPM_NET_EVENT_FLAG_IP_PROTOCOL_SET"
                  f"</item></flags><ipVersion>FWP_IP_VERSION_V4</ipVersion><ipProtocol>{proto}</ipProtocol>"
                  f"<localAddrV4>{local}</localAddrV4><remoteAddrV4>{remote}</remoteAddrV4><localPort>{lport}</localPort>"
                  f"<remotePort>{rport}</remotePort><scopeId>0</scopeId><appId><data>00</data></appId></header>")
        body = ("<type>FWPM_NET_EVENT_TYPE_CLASSIFY_DROP</type><classifyDrop><filterId>68893</filterId>"
                "<layerId>48</layerId><msFwpDirection>MS_FWP_DIRECTION_OUT</msFwpDirection></classifyDrop>")
        tag = "item" if item_tag else "netEvent"
        rows.append(f"<{tag}>{header}{body}</{tag}>")
    inner = f"<netEvents numItems=\"{len(rows)}\">{''.join(rows)}</netEvents>"
    return f'<?xml version="1.0"?>\n{inner if item_tag else "<wfpdiag><events>" + "".join(rows) + "</events></wfpdiag>"}'


EVENTS = [("2026-10-09T07:13:40.100Z", 17, "10.0.0.5", 50000, "10.0.0.9", 53),
          ("2026-10-09T07:13:40.100Z", 17, "10.0.0.5", 50001, "10.0.0.9", 53),
          ("2026-10-09T07:13:40.250Z", 17, "10.0.0.5", 50000, "10.0.0.9", 53),
          ("2026-10-09T07:13:39.900Z", 6, "10.0.0.5", 61000, "10.0.0.7", 443),
          ("2026-10-09T09:13:42.9000001+02:00", 6, "10.0.0.5", 61000, "10.0.0.7", 443)]


@pytest.mark.parametrize("item_tag", [True, False])
def test_netevents_export_becomes_a_schedule(tmp_path, item_tag):
    path = tmp_path / "netevents.xml"
    path.write_text(netevents_xml(EVENTS, item_tag))
    s = read_netevents(path)
    assert s.offsets_ns.tolist() == [0, 200_000_000, 200_000_000, 350_000_000, 3_000_000_100]
    assert s.flow.tolist() == [0, 1, 2, 1, 0]  # the TCP flow came first in time
    assert read_netevents(path, "flows").event_count == 3
    assert s.provenance.kind == "netsh" and "1e-7 s" in s.provenance.note
    assert parse_timestamp("2020-05-22T21:29:28.601Z") == (1590182968_601_000_000, 3)


@pytest.mark.parametrize("text,line", [
    (None, "cannot read net-event file .*: No such file or directory"),
    ('<?xml version="1.0"?><netEvents numItems="0"></netEvents>', "holds no net events"),
    ('<?xml version="1.0"?><netEvents><item><header><timeStamp>2026', "is not well-formed XML"),
    ("<netEvents><item><type>FWPM_NET_EVENT_TYPE_CLASSIFY_DROP</type></item></netEvents>",
     "event 1 has no header/timeStamp"),
    ("<netEvents><item><header><timeStamp>yesterday</timeStamp></header></item></netEvents>",
     "event 1 has timeStamp 'yesterday', not an ISO 8601 time"),
])
def test_bad_netevents_files_are_refused_in_one_line(tmp_path, text, line):
    refused(read_netevents, tmp_path / "netevents.xml", text, line)


def test_a_large_export_streams(tmp_path):
    """100,000 events read with the elements dropped as they go (the schedule is what stays)."""
    path = tmp_path / "big.xml"
    with open(path, "w") as f:
        f.write('<?xml version="1.0"?><netEvents>')
        for k in range(100_000):
            f.write(f"<item><header><timeStamp>2026-10-09T07:13:{40 + k // 10_000}.{k % 10_000:04d}Z</timeStamp>"
                    f"<ipProtocol>17</ipProtocol><localPort>{k % 500}</localPort></header></item>")
        f.write("</netEvents>")
    s = read_netevents(path)
    assert s.count == 100_000 and s.flow_count == 500 and s.offsets_ns[-1] == 9_999_900_000
    assert pickle.loads(pickle.dumps(s)) == s


@pytest.fixture(scope="module")
def large_capture(tmp_path_factory):
    """28 MiB: 20,000 full-size UDP packets of 100 flows (ports patched into one built frame)."""
    template = bytearray(bytes(ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=9) / bytes(1400)))
    frames = []
    for k in range(20_000):
        template[34:36] = (k % 100 + 1).to_bytes(2, "big")  # the UDP source port (checksums are not read)
        frames.append(bytes(template))
    return write_pcap(tmp_path_factory.mktemp("large") / "big.pcap", frames, [k * 10_000 for k in range(20_000)])


@pytest.mark.parametrize("reader", [read_pcap_chunked, read_capture_scapy])
def test_a_capture_larger_than_the_readers_memory_streams(large_capture, reader):
    """A 28 MiB capture read with a few MiB held at once: headers only, a chunk at a time."""
    import tracemalloc
    kwargs = {"chunk_bytes": 1 << 20} if reader is read_pcap_chunked else {}
    reader(large_capture, **kwargs)  # the first call loads the compiled record walk: not the reader's memory
    tracemalloc.start()
    try:
        s = reader(large_capture, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert s.count == 20_000 and s.flow_count == 100
    size = large_capture.stat().st_size
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB capture"
