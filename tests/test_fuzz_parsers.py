"""Hypothesis throws malformed and truncated bytes at the two event decoders: the NFLOG datagram
parser and the WFP classify-drop decoder (the lean callback's copy, then the bulk decoder). The
outcome is a correct record or a clear error (MalformedMessage; an event decoded as INCOMPLETE),
never another exception, never a record read from the wrong bytes. (Stored files thrown at report, compare and --resume: tests/test_files.py.)"""
from __future__ import annotations

import ctypes as C
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.platforms.nflog import netlink as nl
from harness.platforms.nflog.netlink import MalformedMessage, PacketParser
from harness.platforms.wfp import abi
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.event_rows import FOREIGN, INCOMPLETE, MINE, OTHER_TYPE, RawEvents, decode
from harness.platforms.wfp.subscription import DeliveryThreads, lean_callback
from harness.platforms.wfp.kernel32 import filetime_to_unix_ns
from harness.spec import SubscriberSpec

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- NFLOG: messages as the kernel builds them
NFULA_PACKET_HDR, NFULA_IFINDEX_INDEV = 1, 4
SEQ_OFFSET = 28  # IP + UDP header before the harness's sequence number


def packet_message(seq: int, nf: int, stamp: tuple[int, int] | None, pad: int, order: tuple[str, ...]) -> bytes:
    parts = {
        "hdr": nl.attr(NFULA_PACKET_HDR, struct.pack(">HBx", 0x0800, 1)),
        "ifindex": nl.attr(NFULA_IFINDEX_INDEV, struct.pack(">I", 1)),
        "ts": nl.attr(nl.NFULA_TIMESTAMP, struct.pack(">QQ", *stamp)) if stamp else b"",
        "seq": nl.attr(nl.NFULA_SEQ, struct.pack(">I", nf)),
        "payload": nl.attr(nl.NFULA_PAYLOAD, bytes(SEQ_OFFSET) + struct.pack(">Q", seq) + bytes(pad)),
    }
    body = struct.pack("=BBH", 2, 0, 0) + b"".join(parts[k] for k in order)
    return nl.NLMSG_HDR.pack(nl.NLMSG_HDR.size + len(body), nl.MSG_PACKET, 0, 0, 0) + body


DONE = nl.NLMSG_HDR.pack(nl.NLMSG_HDR.size + 4, nl.NLMSG_DONE, 2, 0, 0) + bytes(4)

record = st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**32 - 1),
                   st.one_of(st.none(), st.tuples(st.integers(0, 2**32), st.integers(0, 999_999))))
orders = st.permutations(["hdr", "ifindex", "ts", "seq", "payload"]).map(tuple)


@st.composite
def datagrams(draw, uniform: bool | None = None):
    """(bytes, expected records) for one datagram: messages of one layout (the kernel's case for
    fixed-size packets) or of several, with or without the NLMSG_DONE of a batch."""
    recs = draw(st.lists(record, min_size=1, max_size=12))
    same = draw(st.booleans()) if uniform is None else uniform
    if same:
        stamped = draw(st.booleans())
        recs = [(s, n, t if stamped else None) for s, n, t in recs]
        recs = [(s, n, t or (1, 2)) for s, n, t in recs] if stamped else recs
        layouts = [(draw(st.sampled_from([0, 4, 36])), draw(orders))] * len(recs)
    else:
        layouts = [(draw(st.integers(0, 9)), draw(orders)) for _ in recs]
    data = b"".join(packet_message(s, n, t, pad, order) + bytes(-len(packet_message(s, n, t, pad, order)) % 4)
                    for (s, n, t), (pad, order) in zip(recs, layouts))
    if draw(st.booleans()):
        data += DONE
    return data, recs


def as_rows(events: nl.Events) -> list[tuple[int, int, int]]:
    return list(zip(events.payload_seq.tolist(), events.nflog_seq.tolist(), events.timestamp_ns.tolist()))


def expected_rows(recs) -> list[tuple[int, int, int]]:
    return [(s, n, t[0] * 1_000_000_000 + t[1] * 1_000 if t else -1) for s, n, t in recs]


def parse_or_error(parser: PacketParser, data: bytes) -> list | None:
    try:
        return as_rows(parser.parse(bytearray(data)))
    except MalformedMessage:
        return None


@FUZZ
@given(warmup=datagrams(uniform=True), dgram=datagrams())
def test_nflog_whole_datagrams_give_their_records(warmup, dgram):
    parser = PacketParser(SEQ_OFFSET)
    assert as_rows(parser.parse(warmup[0])) == expected_rows(warmup[1])  # leaves a learned layout
    assert as_rows(parser.parse(dgram[0])) == expected_rows(dgram[1])


@FUZZ
@given(dgram=datagrams(), cut=st.integers(0, 2000))
def test_nflog_a_cut_datagram_is_an_error_or_the_whole_messages_before_the_cut(dgram, cut):
    data, recs = dgram
    data = data[: cut % (len(data) + 1)]
    rows = parse_or_error(PacketParser(SEQ_OFFSET), data)
    if rows is not None:
        assert rows == expected_rows(recs)[: len(rows)]


@FUZZ
@given(warmup=datagrams(uniform=True), dgram=datagrams(),
       edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6))
def test_nflog_altered_bytes_never_read_from_the_wrong_place(warmup, dgram, edits):
    """The fast path (a layout learned from an earlier datagram) reads what the careful path, a
    fresh message-by-message walk, reads, or both refuse."""
    data = bytearray(dgram[0])
    for at, value in edits:
        data[at % len(data)] = value
    warm = PacketParser(SEQ_OFFSET)
    warm.parse(warmup[0])
    fast = parse_or_error(warm, bytes(data))
    try:
        careful = as_rows(PacketParser(SEQ_OFFSET)._walk(memoryview(bytes(data))))
    except MalformedMessage:
        careful = None
    assert fast == careful


@FUZZ
@given(st.binary(max_size=600))
def test_nflog_random_bytes_are_refused_or_parsed(data):
    parse_or_error(PacketParser(SEQ_OFFSET), data)


def test_nflog_same_length_other_attribute_order_is_not_read_with_the_learned_layout():
    """Before the fix the bulk path checked one attribute header per message only against the
    other messages of the datagram: a datagram whose messages all had another order of equal
    length was read at the learned offsets (the timestamp read as the NFLOG sequence number)."""
    parser = PacketParser(SEQ_OFFSET)
    first = [(1, 10, (5, 6)), (2, 11, (5, 7))]
    parser.parse(b"".join(packet_message(s, n, t, 4, ("seq", "ts", "payload")) for s, n, t in first))
    then = [(3, 12, (8, 9)), (4, 13, (8, 10))]
    data = b"".join(packet_message(s, n, t, 4, ("ts", "seq", "payload")) for s, n, t in then)
    assert as_rows(parser.parse(data)) == expected_rows(then)


@pytest.mark.parametrize("cut", [1, 15, 17, 30, 60])
def test_nflog_cut_messages_are_a_clear_error_naming_the_byte(cut):
    whole = packet_message(7, 70, (1, 1), 0, ("seq", "ts", "payload"))
    with pytest.raises(MalformedMessage, match=r"byte \d+"):
        PacketParser(SEQ_OFFSET).parse(whole + whole[:cut])


def test_nflog_an_attribute_overrunning_its_message_is_a_clear_error():
    """Before the fix an attribute longer than its message was read from the next message."""
    good = packet_message(1, 1, None, 0, ("seq", "payload"))
    bad = bytearray(packet_message(2, 2, None, 0, ("seq", "payload")))
    at = nl.NLMSG_HDR.size + nl.NFGEN.size + 8  # the payload attribute's header
    struct.pack_into("=H", bad, at, struct.unpack_from("=H", bad, at)[0] + 40)
    with pytest.raises(MalformedMessage, match="overruns"):
        PacketParser(SEQ_OFFSET).parse(bytes(bad) + good)


# ---------------------------------------------------------------- WFP: the classify-drop decoder
SUBSCRIBE_VERSION = 4
EVENT = abi.EVENT_FOR_SUBSCRIBE[SUBSCRIBE_VERSION]
DROP_TYPE = K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"]
F_LPORT, F_RPORT = K["FWPM_NET_EVENT_FLAG_LOCAL_PORT_SET"], K["FWPM_NET_EVENT_FLAG_REMOTE_PORT_SET"]
F_LADDR, F_RADDR = K["FWPM_NET_EVENT_FLAG_LOCAL_ADDR_SET"], K["FWPM_NET_EVENT_FLAG_REMOTE_ADDR_SET"]
F_VERSION = K["FWPM_NET_EVENT_FLAG_IP_VERSION_SET"]


def wfp_event(header_bytes: bytes, drop_bytes: bytes, kind: int, with_drop: bool, flags: int, version: int):
    """An event whose header and drop data are arbitrary bytes (pointers excepted: a wild pointer
    is not something a decoder can survive or be asked to)."""
    header = abi.FWPM_NET_EVENT_HEADER3.from_buffer_copy(header_bytes.ljust(C.sizeof(abi.FWPM_NET_EVENT_HEADER3), b"\0"))
    header.userId = header.packageSid = header.enterpriseId = None
    header.appId.data = header.effectiveName.data = None
    header.flags, header.ipVersion = flags, version
    drop = abi.FWPM_NET_EVENT_CLASSIFY_DROP2.from_buffer_copy(
        drop_bytes.ljust(C.sizeof(abi.FWPM_NET_EVENT_CLASSIFY_DROP2), b"\0"))
    drop.vSwitchId.data = None
    e = EVENT(header=header, type=kind)
    if with_drop:
        e.classifyDrop = C.pointer(drop)
    return e, header, drop


def wrapped(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def decode_one(e, inbound: bool, filter_id: int):
    """What the platform does with one event: the lean callback copies it, the bulk decoder reads
    the copy (row 0); also whether the subscriber was run for it. The native callback (the default
    path) must copy the same bytes and serve the same rows."""
    raw, served = RawEvents(SUBSCRIBE_VERSION, 4), []
    lean_callback(raw, filter_id, served.append, DeliveryThreads())(None, C.addressof(e))
    native_raw, native_served = native_copy(e, filter_id)
    assert native_raw.events.tobytes() == raw.events.tobytes() and native_raw.drops.tobytes() == raw.drops.tobytes()
    assert native_served == served
    return decode(raw, 1, inbound, filter_id), served


def native_copy(e, filter_id: int):
    """The native callback's rows and served rows for one event (its clock and thread id from the
    fake's kernel32 exports)."""
    from harness.platforms.wfp.native import Block, native_system
    from harness.subscriber import Callback, Release
    from platforms import fake_wfp_library
    system = native_system(fake_wfp_library())
    raw = RawEvents(SUBSCRIBE_VERSION, 4)
    with Callback(SubscriberSpec(cost_us=0.0), 4, Release(), 0) as callback:
        block = Block(system, raw, filter_id, callback.native_parts())
        system.callback(block.context, C.addressof(e))
        served = callback.finish()["key"].tolist()
    return raw, served


@FUZZ
@given(header=st.binary(min_size=C.sizeof(abi.FWPM_NET_EVENT_HEADER3), max_size=C.sizeof(abi.FWPM_NET_EVENT_HEADER3)),
       drop=st.binary(min_size=C.sizeof(abi.FWPM_NET_EVENT_CLASSIFY_DROP2),
                      max_size=C.sizeof(abi.FWPM_NET_EVENT_CLASSIFY_DROP2)),
       kind=st.sampled_from([DROP_TYPE, DROP_TYPE, 0, 6, 7, 2**32 - 1]), with_drop=st.booleans(),
       flags=st.integers(0, 0x3FF) | st.just(0x11F), version=st.sampled_from([0, 0, 1, 5]), inbound=st.booleans(),
       mine=st.booleans())
def test_wfp_decoder_gives_the_event_fields_or_a_clear_error(header, drop, kind, with_drop, flags, version, inbound,
                                                             mine):
    e, h, d = wfp_event(header, drop, kind, with_drop, flags, version)
    filter_id = d.filterId if mine else d.filterId ^ 1
    got, served = decode_one(e, inbound, filter_id)
    needed = (F_LPORT | F_LADDR if inbound else F_RPORT | F_RADDR) | F_VERSION
    k = int(got.kind[0])
    assert served == ([0] if kind == DROP_TYPE and with_drop and mine else [])  # only own drops reach the subscriber
    if kind != DROP_TYPE:
        assert k == OTHER_TYPE
        return
    if not with_drop:
        assert k == INCOMPLETE
        return
    if not mine:  # another filter's drop, whatever its header says (IPv6, no ports)
        assert k == FOREIGN and got.filter_id[0] == wrapped(d.filterId)
        return
    if flags & needed != needed or version != 0:
        assert k == INCOMPLETE
        return
    assert k == MINE
    assert got.port[0] == (h.localPort if inbound else h.remotePort)
    assert got.remote_v4[0] == (h.localAddrV4 if inbound else h.remoteAddrV4)
    assert got.unix_ns[0] == wrapped(filetime_to_unix_ns(h.timeStamp))  # int64 ns: years 1677-2262
    assert (got.filter_id[0], got.layer_id[0], got.loopback[0], got.direction[0]) == (
        wrapped(d.filterId), d.layerId, d.isLoopback, d.msFwpDirection)


@pytest.mark.parametrize("flags,version", [(0x1 | 0x2 | 0x4 | 0x100, 0),   # ports not set
                                           (0x1 | 0x8 | 0x10 | 0x100, 0),  # addresses not set
                                           (0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x100, 1)])  # IPv6
def test_wfp_a_drop_without_port_address_or_ipv4_is_refused_not_misread(flags, version):
    """Before the fix the decoder read the port and the IPv4 address whatever the header's flags
    said (an IPv6 event's address union read as an IPv4 address)."""
    e, _, d = wfp_event(bytes(range(200)) * 2, bytes(64), DROP_TYPE, True, flags, version)
    got, _ = decode_one(e, inbound=True, filter_id=d.filterId)
    assert got.kind[0] == INCOMPLETE
    # the same drop of another filter (a runner's IPv6 or portless drop) is foreign, not incomplete
    other, _ = decode_one(e, inbound=True, filter_id=d.filterId ^ 1)
    assert other.kind[0] == FOREIGN
