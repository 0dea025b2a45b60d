"""IPv4 five-tuples out of the first bytes of captured packets, for many packets at once.

The readers hand over one flat byte buffer with, per packet, where its data starts, how many of
its bytes are there and its link type; everything below is column-wise numpy over that buffer,
so no Python runs per packet. Only the headers are read: the link header (Ethernet with up to two
VLAN tags, Linux cooked v1/v2, BSD loopback, raw IP), the IPv4 header and the transport ports.

Flows are numbered across chunks by a `FlowTable`: one dict entry per flow, looked up once per
flow and chunk (never per packet). A flow is a connection: by default both directions of a
five-tuple are one flow, because WFP's ALE layers authorise a connection once for both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEAD = 96  # bytes of a packet that can hold the link header, the longest IPv4 header and the ports

ETHERNET, NULL, RAW, RAW_OPENBSD, LOOP, RAW_BSDOS, LINUX_SLL, IPV4, LINUX_SLL2 = 1, 0, 101, 14, 108, 12, 113, 228, 276
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
ETHERTYPE_IPV4 = 0x0800
PORT_PROTOCOLS = (6, 17, 132, 136)  # TCP, UDP, SCTP, UDP-Lite: the ones whose first 4 bytes are ports

# why a packet was not taken (index into SKIP_REASONS; 0 = taken)
SKIP_REASONS = ("", "not IPv4", "IPv4 header cut short", "bad IPv4 header", "unsupported link type")
TAKEN, NOT_IPV4, CUT_SHORT, BAD_HEADER, UNKNOWN_LINK = range(5)


@dataclass
class Tuples:
    """Per packet: why it was skipped (0 = taken) and, for taken ones, its five-tuple."""

    reason: np.ndarray   # int8
    proto: np.ndarray    # int64
    src: np.ndarray      # int64, host order
    dst: np.ndarray
    sport: np.ndarray
    dport: np.ndarray


def _u8(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    # the buffer is padded with HEAD bytes past its last packet: a read beyond a packet's own bytes
    # stays inside it, and every such read is masked out by a length check
    return buf[pos].astype(np.int64)


def _be16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return (_u8(buf, pos) << 8) | _u8(buf, pos + 1)


def _be32(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return (_be16(buf, pos) << 16) | _be16(buf, pos + 2)


def _network(buf: np.ndarray, start: np.ndarray, avail: np.ndarray, linktype: int) -> tuple[np.ndarray, np.ndarray]:
    """(offset of the network header, reason so far) for packets of one link type."""
    n = len(start)
    reason = np.zeros(n, dtype=np.int8)
    if linktype == ETHERNET:
        off = np.full(n, 14, dtype=np.int64)
        ethertype = _be16(buf, start + 12)
        for _ in range(2):  # 802.1Q / 802.1ad tags: the real type follows each 4-byte tag
            tagged = np.isin(ethertype, VLAN_TPIDS)
            ethertype = np.where(tagged, _be16(buf, start + off + 2), ethertype)
            off = np.where(tagged, off + 4, off)
        reason[(ethertype != ETHERTYPE_IPV4) | (avail < off)] = NOT_IPV4
    elif linktype in (LINUX_SLL, LINUX_SLL2):
        at, off = (14, 16) if linktype == LINUX_SLL else (0, 20)
        off = np.full(n, off, dtype=np.int64)
        reason[(_be16(buf, start + at) != ETHERTYPE_IPV4) | (avail < off)] = NOT_IPV4
    elif linktype in (NULL, LOOP):
        # the address family, AF_INET = 2 on every system, in the capturing host's byte order (NULL)
        # or in network order (LOOP)
        family_le = _u8(buf, start) | (_u8(buf, start + 1) << 8) | (_u8(buf, start + 2) << 16) | (_u8(buf, start + 3) << 24)
        family_be = _be32(buf, start)
        ipv4 = (family_be == 2) if linktype == LOOP else ((family_le == 2) | (family_be == 2))
        off = np.full(n, 4, dtype=np.int64)
        reason[~ipv4 | (avail < off)] = NOT_IPV4
    elif linktype in (RAW, RAW_OPENBSD, RAW_BSDOS, IPV4):
        off = np.zeros(n, dtype=np.int64)
    else:
        return np.zeros(n, dtype=np.int64), np.full(n, UNKNOWN_LINK, dtype=np.int8)
    return off, reason


def ipv4_tuples(buf: np.ndarray, start: np.ndarray, avail: np.ndarray, linktype: int) -> Tuples:
    """Five-tuples of packets of one link type whose data start at `start` in `buf` (padded with
    HEAD bytes past the last packet), with `avail` bytes of each present. Non-first fragments and protocols without ports get ports 0."""
    off, reason = _network(buf, start, avail, linktype)
    ip = start + off
    here = avail - off  # bytes of the network packet present
    first = _u8(buf, ip)
    undecided = reason == TAKEN
    reason[undecided & (here < 1)] = CUT_SHORT
    reason[(reason == TAKEN) & (first >> 4 != 4)] = NOT_IPV4
    ihl = (first & 0x0F) * 4
    reason[(reason == TAKEN) & (ihl < 20)] = BAD_HEADER
    reason[(reason == TAKEN) & (here < np.maximum(ihl, 20))] = CUT_SHORT
    proto = _u8(buf, ip + 9)
    first_fragment = (_be16(buf, ip + 6) & 0x1FFF) == 0
    ported = np.isin(proto, PORT_PROTOCOLS) & first_fragment & (here >= ihl + 4)
    sport = np.where(ported, _be16(buf, ip + ihl), 0)
    dport = np.where(ported, _be16(buf, ip + ihl + 2), 0)
    return Tuples(reason, proto, _be32(buf, ip + 12), _be32(buf, ip + 16), sport, dport)


class FlowTable:
    """Flow ids by first appearance, kept across the chunks of one capture."""

    def __init__(self, bidirectional: bool = True) -> None:
        self.bidirectional = bidirectional
        self._ids: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self, proto: np.ndarray, src: np.ndarray, sport: np.ndarray, dst: np.ndarray, dport: np.ndarray) -> np.ndarray:
        """The flow id of each packet (new flows get the next ids, in order of their first packet)."""
        if len(proto) == 0:
            return np.zeros(0, dtype=np.int64)
        one = (src.astype(np.uint64) << np.uint64(16)) | sport.astype(np.uint64)  # 48 bits per endpoint
        two = (dst.astype(np.uint64) << np.uint64(16)) | dport.astype(np.uint64)
        if self.bidirectional:
            one, two = np.minimum(one, two), np.maximum(one, two)
        a = (proto.astype(np.uint64) << np.uint64(48)) | one
        unique_a, unique_b, first, inverse = _unique_pairs(a, two)
        ids = np.empty(len(first), dtype=np.int64)
        table = self._ids
        keys = list(zip(unique_a.tolist(), unique_b.tolist()))
        for k in np.argsort(first, kind="stable").tolist():  # one lookup per flow of the chunk
            ids[k] = table.setdefault(keys[k], len(table))
        return ids[inverse]


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """np.unique over (a, b) pairs with return_index and return_inverse, by a stable lexsort
    (several times faster than sorting a structured array)."""
    order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    inverse = np.empty(len(a), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return sa[new], sb[new], order[new], inverse  # stable: each group's first is its earliest packet
