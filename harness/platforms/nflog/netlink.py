"""NFLOG over a raw NETLINK_NETFILTER socket: configuration messages out, packet messages in.

Numbers from include/uapi/linux/netfilter/nfnetlink_log.h and linux/netlink.h. Packet messages
are parsed in bulk: every message the kernel builds for our fixed-size test packets has the same
layout, so the layout is learned from the first message of a datagram and the fields of all of
them are read with numpy strides; anything irregular falls back to a plain walk. A message that
is cut or whose attributes overrun it raises MalformedMessage: never a record read from the wrong
bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

NETLINK_NETFILTER = 12
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
MSG_PACKET = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
MSG_CONFIG = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG

# config attributes
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_NLBUFSIZ, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH, NFULA_CFG_FLAGS = 1, 2, 3, 4, 5, 6
CMD_BIND, CMD_UNBIND = 1, 2
COPY_PACKET = 2
NFULNL_CFG_F_SEQ = 0x0001
# packet attributes
NFULA_TIMESTAMP = 3
NFULA_PAYLOAD = 9
NFULA_SEQ = 12

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NFGEN = struct.Struct("=BBH")        # family, version, res_id (big-endian value, packed by hand)
NLA = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    return NLA.pack(NLA.size + len(payload), kind) + payload + b"\0" * (_align(len(payload)) - len(payload))


def config_message(group: int, seq: int, *attrs: bytes, family: int = 0) -> bytes:
    body = struct.pack("=BB", family, 0) + struct.pack(">H", group) + b"".join(attrs)
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def bind_messages(group: int, copy_range: int, qthresh: int, timeout_cs: int, nlbufsiz: int) -> list[bytes]:
    """Bind the group, copy packets (copy_range bytes), batch qthresh per message, flush after
    timeout_cs hundredths of a second, and number every event (NFULNL_CFG_F_SEQ)."""
    return [
        config_message(group, 1, attr(NFULA_CFG_CMD, bytes([CMD_BIND]))),
        config_message(group, 2, attr(NFULA_CFG_MODE, struct.pack(">IBB", copy_range, COPY_PACKET, 0))),
        config_message(group, 3, attr(NFULA_CFG_QTHRESH, struct.pack(">I", qthresh))),
        config_message(group, 4, attr(NFULA_CFG_TIMEOUT, struct.pack(">I", timeout_cs))),
        config_message(group, 5, attr(NFULA_CFG_NLBUFSIZ, struct.pack(">I", nlbufsiz))),
        config_message(group, 6, attr(NFULA_CFG_FLAGS, struct.pack(">H", NFULNL_CFG_F_SEQ))),
    ]


def ack_error(data: bytes) -> int:
    """errno of an NLMSG_ERROR ack (0 = success); -1 if the message is not an ack."""
    length, kind, _, _, _ = NLMSG_HDR.unpack_from(data, 0)
    if kind != NLMSG_ERROR:
        return -1
    return -struct.unpack_from("=i", data, NLMSG_HDR.size)[0]


class MalformedMessage(ValueError):
    """A datagram the kernel cannot have sent whole (cut, or lengths that overrun it)."""


@dataclass
class Events:
    """Fields of the logged packets in one datagram, in arrival order."""

    payload_seq: np.ndarray   # the harness's own sequence number carried in the packet payload
    nflog_seq: np.ndarray     # the NFLOG instance's counter: gaps are exact losses
    timestamp_ns: np.ndarray  # kernel timestamp (CLOCK_REALTIME) or -1 if the kernel sent none
    # where each logged IP packet lies in the datagram (offset, bytes), for a subscriber that reads it
    packet_at: np.ndarray | None = None
    packet_size: np.ndarray | None = None

    @classmethod
    def empty(cls) -> "Events":
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, z, z)

    def then(self, other: "Events") -> "Events":
        """These events followed by `other`'s (of the same datagram)."""
        return Events(*(np.concatenate((a, b)) for a, b in zip(self._columns(), other._columns())))

    def _columns(self) -> tuple[np.ndarray, ...]:
        z = np.zeros(len(self.payload_seq), dtype=np.int64)
        return (self.payload_seq, self.nflog_seq, self.timestamp_ns,
                z if self.packet_at is None else self.packet_at, z if self.packet_size is None else self.packet_size)


@dataclass(frozen=True)
class Layout:
    length: int        # bytes per message (aligned)
    seq_at: int        # offset of the be32 NFULA_SEQ value
    payload_at: int    # offset of the IP packet
    ts_at: int         # offset of the timestamp (two be64), -1 if absent
    payload_size: int  # bytes of the IP packet (the copy range or less)
    heads_at: tuple[int, ...]  # offsets of the attribute headers
    signature: bytes   # the attribute headers, to check that other messages match

    def matches(self, raw: np.ndarray) -> bool:
        """Every row (one message each) has this layout's attribute headers where it has them."""
        cols = np.add.outer(np.asarray(self.heads_at), np.arange(NLA.size)).ravel()
        return bool(np.all(raw[:, cols] == np.frombuffer(self.signature, dtype=np.uint8)))


class PacketParser:
    """Parses NFLOG packet datagrams. `seq_offset`: where, inside the IP packet, the harness's
    8-byte big-endian sequence number sits (IP header + UDP header = 28 for our packets)."""

    def __init__(self, seq_offset: int = 28) -> None:
        self.seq_offset = seq_offset
        self.layout: Layout | None = None
        self.slow_messages = 0

    def _learn(self, buf: memoryview, start: int) -> Layout | None:
        """The layout of the packet message at `start`; None if it carries no harness packet (no
        payload, or one too short to hold the sequence number)."""
        length = NLMSG_HDR.unpack_from(buf, start)[0]
        end = start + length
        if length < NLMSG_HDR.size + NFGEN.size or end > len(buf):
            raise MalformedMessage(f"NFLOG message at byte {start} claims {length} bytes, "
                                   f"{len(buf) - start} remain")
        pos = start + NLMSG_HDR.size + NFGEN.size
        seq_at = payload_at = ts_at = payload_size = -1
        heads_at: list[int] = []
        signature = bytearray()
        while pos < end:
            if pos + NLA.size > end:
                raise MalformedMessage(f"NFLOG message at byte {start}: attribute header cut at byte {pos}")
            alen, kind = NLA.unpack_from(buf, pos)
            if alen < NLA.size or pos + alen > end:
                raise MalformedMessage(f"NFLOG message at byte {start}: attribute of {alen} bytes at byte {pos} "
                                       f"overruns the message ({end - pos} left)")
            heads_at.append(pos - start)
            signature += bytes(buf[pos:pos + NLA.size])
            size = alen - NLA.size
            kind &= 0x7FFF
            if kind == NFULA_SEQ:
                if size < 4:
                    raise MalformedMessage(f"NFLOG message at byte {start}: sequence attribute of {size} bytes")
                seq_at = pos + NLA.size - start
            elif kind == NFULA_PAYLOAD:
                if size < self.seq_offset + 8:
                    return None
                payload_at = pos + NLA.size - start
                payload_size = size
            elif kind == NFULA_TIMESTAMP:
                if size < 16:
                    raise MalformedMessage(f"NFLOG message at byte {start}: timestamp attribute of {size} bytes")
                ts_at = pos + NLA.size - start
            pos += _align(alen)
        if payload_at < 0:
            return None
        if seq_at < 0:
            raise MalformedMessage(f"NFLOG message at byte {start} has no sequence number (NFULNL_CFG_F_SEQ not set?)")
        return Layout(_align(length), seq_at, payload_at, ts_at, payload_size, tuple(heads_at), bytes(signature))

    def parse(self, data: bytes | bytearray | memoryview, nbytes: int | None = None) -> Events:
        buf = memoryview(data)[: nbytes if nbytes is not None else len(data)]
        if len(buf) < NLMSG_HDR.size:
            return self._walk(buf)  # empty, or a cut header
        length, kind = NLMSG_HDR.unpack_from(buf, 0)[:2]
        if kind == MSG_PACKET and (self.layout is None or length != self.layout.length):
            self.layout = self._learn(buf, 0)
        lay = self.layout
        if lay is not None:
            # a batch ends with an NLMSG_DONE; every message before it has the learned layout
            k = len(buf) // lay.length
            raw = np.frombuffer(buf[: k * lay.length], dtype=np.uint8).reshape(k, lay.length)
            lengths = raw[:, 0:4].copy().view("<u4").ravel()
            types = raw[:, 4:6].copy().view("<u2").ravel()
            if k and np.all(lengths == lay.length) and np.all(types == MSG_PACKET) and lay.matches(raw):
                events = self._bulk(raw, lay)
                rest = buf[k * lay.length:]
                if len(rest):  # the NLMSG_DONE that ends a batch, or messages of another layout
                    tail = self._walk(rest, k * lay.length)
                    return events.then(tail)
                return events
        return self._walk(buf)

    def _bulk(self, raw: np.ndarray, lay: Layout) -> Events:
        nf_seq = raw[:, lay.seq_at:lay.seq_at + 4].copy().view(">u4").ravel().astype(np.int64)
        at = lay.payload_at + self.seq_offset
        seq = raw[:, at:at + 8].copy().view(">u8").ravel().astype(np.int64)
        if lay.ts_at >= 0:
            t = raw[:, lay.ts_at:lay.ts_at + 16].copy().view(">i8").reshape(-1, 2).astype(np.int64)
            ts = t[:, 0] * 1_000_000_000 + t[:, 1] * 1_000
        else:
            ts = np.full(len(seq), -1, dtype=np.int64)
        at = np.arange(len(seq), dtype=np.int64) * lay.length + lay.payload_at
        return Events(seq, nf_seq, ts, at, np.full(len(seq), lay.payload_size, dtype=np.int64))

    def _walk(self, buf: memoryview, at: int = 0) -> Events:
        """One message at a time, for datagrams whose messages differ (never on the hot path).
        `at`: where `buf` starts in the datagram, for error messages."""
        seqs, nfs, secs, usecs, stamped, ats, sizes = [], [], [], [], [], [], []
        pos = 0
        while pos < len(buf):
            if pos + NLMSG_HDR.size > len(buf):
                raise MalformedMessage(f"netlink header cut at byte {at + pos} ({len(buf) - pos} bytes left)")
            length, kind = NLMSG_HDR.unpack_from(buf, pos)[:2]
            if length < NLMSG_HDR.size or pos + length > len(buf):
                raise MalformedMessage(f"netlink message at byte {at + pos} claims {length} bytes, "
                                       f"{len(buf) - pos} remain")
            if kind == MSG_PACKET:
                lay = self._learn(buf, pos)
                if lay is not None:
                    self.slow_messages += 1
                    nfs.append(struct.unpack_from(">I", buf, pos + lay.seq_at)[0])
                    # signed, as the bulk path's int64 view reads it
                    seqs.append(struct.unpack_from(">q", buf, pos + lay.payload_at + self.seq_offset)[0])
                    sec, usec = struct.unpack_from(">qq", buf, pos + lay.ts_at) if lay.ts_at >= 0 else (0, 0)
                    stamped.append(lay.ts_at >= 0)
                    secs.append(sec)
                    usecs.append(usec)
                    ats.append(at + pos + lay.payload_at)
                    sizes.append(lay.payload_size)
            pos += _align(length)
        sec, usec = np.asarray(secs, np.int64), np.asarray(usecs, np.int64)
        ts = np.where(np.asarray(stamped, bool), sec * 1_000_000_000 + usec * 1_000, -1)
        return Events(np.asarray(seqs, np.int64), np.asarray(nfs, np.int64), ts.astype(np.int64),
                      np.asarray(ats, np.int64), np.asarray(sizes, np.int64))
