"""IPv4 five-tuples out of the first bytes of captured packets, for many packets at once.

The readers hand over each packet's first HEAD bytes as one (n, HEAD) block with how many of
them are the packet's own and its link type; everything below is column-wise numpy over that
block (a field at the same place in every packet is a column view, not a gather), so no Python
runs per packet. Only the headers are read: the link header (Ethernet with up to two
VLAN tags, Linux cooked v1/v2, BSD loopback, raw IP), the IPv4 header and the transport ports.

Flows are numbered across chunks by a `FlowTable`: one dict entry per flow, looked up once per
flow and chunk (never per packet). A flow is a connection: by default both directions of a
five-tuple are one flow, because WFP's ALE layers authorise a connection once for both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

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


def _at(head: np.ndarray, rel: np.ndarray | int) -> np.ndarray:
    """Byte `rel` of each packet: a column where every packet has it at the same place (the
    common case: one view, no gather), else one gather over the compact header block."""
    if not isinstance(rel, np.ndarray):
        return head[:, rel].astype(np.int32)
    if len(rel) and rel.min() == rel.max():
        return head[:, int(rel[0])].astype(np.int32)
    return head[np.arange(len(head)), np.minimum(rel, head.shape[1] - 1)].astype(np.int32)


def _be16(head: np.ndarray, rel: np.ndarray | int) -> np.ndarray:
    return (_at(head, rel) << 8) | _at(head, rel + 1)


def _be32(head: np.ndarray, rel: np.ndarray | int) -> np.ndarray:
    return (_be16(head, rel).astype(np.int64) << 16) | _be16(head, rel + 2)


def _network(head: np.ndarray, avail: np.ndarray, linktype: int) -> tuple[np.ndarray | int, np.ndarray]:
    """(offset of the network header, reason so far) for packets of one link type."""
    n = len(head)
    reason = np.zeros(n, dtype=np.int8)
    if linktype == ETHERNET:
        ethertype = _be16(head, 12)
        tagged = np.isin(ethertype, VLAN_TPIDS)
        off: np.ndarray | int = 14
        if tagged.any():  # 802.1Q / 802.1ad tags (up to two): the real type follows each 4-byte tag
            off = np.full(n, 14, dtype=np.int64)
            for _ in range(2):
                ethertype = np.where(tagged, _be16(head, off + 2), ethertype)
                off = np.where(tagged, off + 4, off)
                tagged = np.isin(ethertype, VLAN_TPIDS)
        reason[(ethertype != ETHERTYPE_IPV4) | (avail < off)] = NOT_IPV4
    elif linktype in (LINUX_SLL, LINUX_SLL2):
        at, off = (14, 16) if linktype == LINUX_SLL else (0, 20)
        reason[(_be16(head, at) != ETHERTYPE_IPV4) | (avail < off)] = NOT_IPV4
    elif linktype in (NULL, LOOP):
        # the address family, AF_INET = 2 on every system, in the capturing host's byte order (NULL)
        # or in network order (LOOP)
        family_be = _be32(head, 0)
        family_le = _at(head, 0) | (_at(head, 1) << 8) | (_at(head, 2) << 16) | (_at(head, 3).astype(np.int64) << 24)
        ipv4 = (family_be == 2) if linktype == LOOP else ((family_le == 2) | (family_be == 2))
        off = 4
        reason[~ipv4 | (avail < off)] = NOT_IPV4
    elif linktype in (RAW, RAW_OPENBSD, RAW_BSDOS, IPV4):
        off = 0
    else:
        return 0, np.full(n, UNKNOWN_LINK, dtype=np.int8)
    return off, reason


def ipv4_tuples(head: np.ndarray, avail: np.ndarray, linktype: int) -> Tuples:
    """Five-tuples of packets of one link type, from `head` (n, HEAD) uint8: each packet's first
    HEAD bytes, zero-padded, of which `avail` are the packet's own. Non-first fragments and
    protocols without ports get ports 0."""
    off, reason = _network(head, avail, linktype)
    here = avail - off  # bytes of the network packet present
    first = _at(head, off)
    reason[(reason == TAKEN) & (here < 1)] = CUT_SHORT
    reason[(reason == TAKEN) & (first >> 4 != 4)] = NOT_IPV4
    ihl = (first & 0x0F) * 4
    reason[(reason == TAKEN) & (ihl < 20)] = BAD_HEADER
    reason[(reason == TAKEN) & (here < np.maximum(ihl, 20))] = CUT_SHORT
    proto = _at(head, off + 9)
    first_fragment = (_be16(head, off + 6) & 0x1FFF) == 0
    ports = off + ihl
    ported = np.isin(proto, PORT_PROTOCOLS) & first_fragment & (here >= ihl + 4)
    sport = np.where(ported, _be16(head, ports), 0)
    dport = np.where(ported, _be16(head, ports + 2), 0)
    return Tuples(reason, proto, _be32(head, off + 12), _be32(head, off + 16), sport, dport)


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
        # hash-based factorising keeps first-appearance order; a pair is factorised through the
        # codes of its two halves (several times faster than sorting 128-bit keys)
        code_a, unique_a = pd.factorize(a)
        code_b, unique_b = pd.factorize(two)
        local, pairs = pd.factorize(code_a.astype(np.int64) * len(unique_b) + code_b)
        keys = zip(unique_a[pairs // len(unique_b)].tolist(), unique_b[pairs % len(unique_b)].tolist())
        table = self._ids
        ids = np.fromiter((table.setdefault(k, len(table)) for k in keys), dtype=np.int64, count=len(pairs))
        return ids[local]  # one lookup per flow of the chunk, in order of first appearance
