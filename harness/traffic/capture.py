"""A capture (pcap or pcapng) read into a Schedule: each IPv4 packet's time and flow, nothing else.

A capture gives times and flow structure only; its addresses never become destinations.

Two streaming readers, both holding one chunk of headers at a time, so a capture larger than
memory reads in the memory of its schedule (17 bytes a packet):
- classic pcap: record headers walked in chunks of the file, the packets' headers parsed with
  numpy straight out of the chunk (`read_pcap_chunked`, the fast path);
- pcapng (and gzip'd captures): scapy's streaming reader, asked for the first HEAD bytes of each
  packet only (`read_capture_scapy`, which reads classic pcap too: the reference for the fast path).
Non-IPv4 packets are skipped and counted by reason; a capture with none left is refused. Every
refusal is one line (BadInput): a missing file, not a capture, a broken record, no IPv4 packet.
"""
from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from harness.inputs import BadInput
from harness.traffic.headers import HEAD, SKIP_REASONS, TAKEN, FlowTable, ipv4_tuples
from harness.traffic.schedule import Provenance, Schedule

PCAP_MAGICS = {  # magic -> (byte order, ns per unit of the sub-second field)
    b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD = 1 << 24  # no link carries a 16 MiB frame: a larger record length is a broken file
CHUNK_BYTES = 8 << 20
SCAPY_BATCH = 1 << 13  # packets parsed at once on the scapy path


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open(path: str | Path, what: str = "capture") -> tuple[object, bytes]:
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return f, f.read(4)


class _Collector:
    """Times, flows and skip counts of the packets read so far, chunk by chunk."""

    def __init__(self, bidirectional: bool) -> None:
        self.flows = FlowTable(bidirectional)
        self.times: list[np.ndarray] = []
        self.flow: list[np.ndarray] = []
        self.skipped: Counter[str] = Counter()
        self.packets = 0

    def add(self, head: np.ndarray, avail: np.ndarray, linktype: np.ndarray | int, time_ns: np.ndarray) -> None:
        """Packets given by their first HEAD bytes (n, HEAD), bytes present and link type."""
        self.packets += len(head)
        for link in np.unique(linktype).tolist() if isinstance(linktype, np.ndarray) else [linktype]:
            pick = slice(None) if not isinstance(linktype, np.ndarray) else np.flatnonzero(linktype == link)
            t = ipv4_tuples(head[pick], avail[pick], int(link))
            taken = t.reason == TAKEN
            for code, n in zip(*np.unique(t.reason[~taken], return_counts=True)):
                label = SKIP_REASONS[code] + (f" {link}" if SKIP_REASONS[code] == "unsupported link type" else "")
                self.skipped[label] += int(n)
            self.times.append(time_ns[pick][taken])
            self.flow.append(self.flows.ids(t.proto[taken], t.src[taken], t.sport[taken], t.dst[taken], t.dport[taken]))

    def schedule(self, path: str | Path, kind: str, trace_events: str, sha256: str | None = None) -> Schedule:
        times = np.concatenate(self.times) if self.times else np.zeros(0, dtype=np.int64)
        if self.packets == 0:
            raise BadInput(f"capture {path} holds no packets (an empty trace)")
        if len(times) == 0:
            why = ", ".join(f"{n:,} {reason}" for reason, n in sorted(self.skipped.items()))
            raise BadInput(f"capture {path} holds no IPv4 packet ({self.packets:,} packets: {why})")
        provenance = Provenance(source=str(path), kind=kind, sha256=sha256 or sha256_of(path),
                                skipped=tuple(sorted(self.skipped.items())))
        return Schedule(times, np.concatenate(self.flow), trace_events, provenance)


def read_capture(path: str | Path, trace_events: str = "packets", bidirectional: bool = True) -> Schedule:
    """A pcap or pcapng file (gzip'd too) as a schedule of its IPv4 packets: the fast chunked
    reader for classic pcap, scapy's streaming reader for the rest."""
    f, magic = _open(path)
    f.close()
    if magic in PCAP_MAGICS:
        return read_pcap_chunked(path, trace_events, bidirectional)
    if magic == PCAPNG_MAGIC or magic[:2] == GZIP_MAGIC:
        return read_capture_scapy(path, trace_events, bidirectional)
    if not magic:
        raise BadInput(f"capture {path} is empty (an empty trace)")
    raise BadInput(f"{path} is not a pcap or pcapng capture (it starts with {magic.hex()})")


# -- classic pcap, record headers walked in chunks ------------------------------------------------

def record_starts_python(buf: bytes, pos: int, big_endian: bool, limit: int) -> tuple[np.ndarray, int, int]:
    """Where each whole record of `buf` starts, from `pos`; where the first incomplete one does;
    and the position of a record longer than `limit` (-1: none). One unpack and an add per record."""
    unpack, end, starts = struct.Struct(">I" if big_endian else "<I").unpack_from, len(buf), []
    append = starts.append
    while pos + 16 <= end:
        caplen = unpack(buf, pos + 8)[0]
        if caplen > limit:
            return np.asarray(starts, dtype=np.int64), pos, pos
        nxt = pos + 16 + caplen
        if nxt > end:
            break
        append(pos)
        pos = nxt
    return np.asarray(starts, dtype=np.int64), pos, -1


def _walk_native(buf: np.ndarray, pos: int, big_endian: bool, limit: int, starts: np.ndarray) -> tuple[int, int, int]:
    """record_starts_python's loop over a uint8 array, for numba: (records, next position, bad position)."""
    end, count = len(buf), 0
    while pos + 16 <= end:
        b = buf[pos + 8:pos + 12]
        if big_endian:
            caplen = (np.int64(b[0]) << 24) | (np.int64(b[1]) << 16) | (np.int64(b[2]) << 8) | np.int64(b[3])
        else:
            caplen = (np.int64(b[3]) << 24) | (np.int64(b[2]) << 16) | (np.int64(b[1]) << 8) | np.int64(b[0])
        if caplen > limit:
            return count, pos, pos
        nxt = pos + 16 + caplen
        if nxt > end:
            break
        starts[count] = pos
        count += 1
        pos = nxt
    return count, pos, -1


def _native_walk():
    """The record walk compiled by numba (a dependency wherever it has wheels; cached on disk after
    the first compile), else None: the Python walk does the same, about five times slower."""
    try:
        from numba import njit
        return njit(cache=True, nogil=True)(_walk_native)
    except Exception:  # numba missing or broken (no wheel on Windows ARM64): the Python walk
        return None


_WALK = _native_walk()


def record_starts(buf: bytes, pos: int, big_endian: bool, limit: int) -> tuple[np.ndarray, int, int]:
    """record_starts_python, compiled where numba is there."""
    if _WALK is None:
        return record_starts_python(buf, pos, big_endian, limit)
    arr = np.frombuffer(buf, dtype=np.uint8)
    starts = np.empty(max(0, (len(buf) - pos) // 16 + 1), dtype=np.int64)
    count, pos, bad = _WALK(arr, pos, big_endian, limit, starts)
    return starts[:count], pos, bad


def read_pcap_chunked(path: str | Path, trace_events: str = "packets", bidirectional: bool = True,
                      chunk_bytes: int = CHUNK_BYTES) -> Schedule:
    """Classic pcap: per chunk, a Python walk over the 16-byte record headers, then times and
    five-tuples gathered with numpy from the chunk. A record cut short at the end (a capture
    stopped mid-write) is counted as skipped; a record longer than any frame is a broken file."""
    f, magic = _open(path)
    with f:
        if magic not in PCAP_MAGICS:
            raise BadInput(f"{path} is not a classic pcap capture (it starts with {magic.hex()})")
        order, frac_ns = PCAP_MAGICS[magic]
        header = f.read(20)
        if len(header) < 20:
            raise BadInput(f"capture {path} is malformed: its file header is cut short ({len(header) + 4} of 24 bytes)")
        _, _, _, _, snaplen, linktype = struct.unpack(order + "HHIIII", header)
        linktype &= 0x0FFFFFFF  # the upper bits carry FCS length flags
        caplen_at = struct.Struct(order + "I")
        limit = max(snaplen, 262_144) if snaplen <= MAX_RECORD else MAX_RECORD
        out = _Collector(bidirectional)
        digest = hashlib.sha256(magic + header)  # the file's SHA-256, taken on the way
        pending, offset, done = b"", 24, False  # offset: file position of pending[0]
        while not done:
            block = f.read(chunk_bytes)
            digest.update(block)
            done = not block
            buf = pending + block
            s, pos, bad = record_starts(buf, 0, order == ">", limit)
            if bad >= 0:
                raise BadInput(f"capture {path} is malformed: the record at byte {offset + bad:,} claims "
                               f"{caplen_at.unpack_from(buf, bad + 8)[0]:,} bytes")
            if len(s):
                arr = np.frombuffer(buf[:pos] + bytes(HEAD), dtype=np.uint8)  # padded: every window fits
                # one row per record: its 16-byte record header and the packet's first HEAD bytes
                rows = np.lib.stride_tricks.sliding_window_view(arr, 16 + HEAD)[s]
                fields = np.ascontiguousarray(rows[:, :16]).view(order + "u4").astype(np.int64)
                time_ns = fields[:, 0] * 1_000_000_000 + fields[:, 1] * frac_ns
                out.add(rows[:, 16:], fields[:, 2], linktype, time_ns)
            pending, offset = buf[pos:], offset + pos
        if pending:
            out.skipped["record cut short at the end of the file"] += 1
    return out.schedule(path, "pcap", trace_events, digest.hexdigest())


# -- anything scapy reads, streaming --------------------------------------------------------------

@contextmanager
def _scapy_quiet() -> Iterator[None]:
    """scapy logs a warning per odd block; the reader counts and reports what it skips instead."""
    log = logging.getLogger("scapy.runtime")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def read_capture_scapy(path: str | Path, trace_events: str = "packets", bidirectional: bool = True) -> Schedule:
    """Any capture scapy reads (pcap, pcapng, gzip'd), through its streaming raw reader, keeping
    only the first HEAD bytes of each packet; the same parse as the chunked reader."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader, RawPcapReader

    f, magic = _open(path)
    f.close()
    if not magic:
        raise BadInput(f"capture {path} is empty (an empty trace)")
    size = os.path.getsize(path)
    out = _Collector(bidirectional)
    with _scapy_quiet():
        try:
            reader = RawPcapReader(str(path))  # scapy's metaclass picks the pcapng reader by the magic
        except (Scapy_Exception, EOFError, OSError, struct.error) as exc:
            raise BadInput(f"{path} is not a pcap or pcapng capture scapy can read: {exc}") from None
        ng = isinstance(reader, RawPcapNgReader)
        heads: list[bytes] = []
        times: list[int] = []
        resolutions: list[int] = []
        links: list[int] = []
        lengths: list[int] = []
        no_time = 0
        try:
            while True:
                try:
                    data, meta = reader._read_packet(size=HEAD)  # the streaming call, cut to the headers
                except EOFError:
                    break
                if ng:
                    if meta.tshigh is None:  # a simple packet block carries no time
                        no_time += 1
                        continue
                    times.append((meta.tshigh << 32) | meta.tslow)
                    resolutions.append(meta.tsresol)
                    links.append(meta.linktype)
                else:
                    times.append(meta.sec * 1_000_000_000 + meta.usec * (1 if reader.nano else 1000))
                heads.append(data)
                lengths.append(len(data))
                if len(heads) >= SCAPY_BATCH:
                    _add_scapy_batch(out, heads, lengths, times, resolutions, links, ng, reader)
            if heads:
                _add_scapy_batch(out, heads, lengths, times, resolutions, links, ng, reader)
            position = reader.f.tell() if magic[:2] != GZIP_MAGIC else size
        except (Scapy_Exception, struct.error) as exc:
            raise BadInput(f"capture {path} is malformed after {out.packets:,} packets: {exc}") from None
        finally:
            reader.close()
    if no_time:
        out.skipped["no timestamp (simple packet block)"] += no_time
    if position < size:  # scapy stops at a block it cannot read as if the file ended there
        if out.packets == 0:
            raise BadInput(f"capture {path} is malformed: no packet readable before byte {position:,} of {size:,}")
        out.skipped[f"unreadable bytes at the end ({size - position:,})"] += 1
    return out.schedule(path, "pcapng" if ng else "pcap", trace_events)


def _add_scapy_batch(out: _Collector, heads: list[bytes], lengths: list[int], times: list[int],
                     resolutions: list[int], links: list[int], ng: bool, reader) -> None:
    head = np.frombuffer(b"".join(h.ljust(HEAD, b"\0") for h in heads), dtype=np.uint8).reshape(-1, HEAD)
    if ng:
        time_ns = _to_ns(times, resolutions)
        linktype: np.ndarray | int = np.asarray(links, dtype=np.int64)
    else:
        time_ns = np.asarray(times, dtype=np.int64)
        linktype = reader.linktype & 0x0FFFFFFF
    out.add(head, np.asarray(lengths, dtype=np.int64), linktype, time_ns)
    for column in (heads, lengths, times, resolutions, links):
        column.clear()


def _to_ns(ticks: list[int], resolutions: list[int]) -> np.ndarray:
    """pcapng time stamps (ticks of 1/resolution s, per interface) in ns, exactly for decimal and
    binary resolutions alike (whole seconds and the remainder apart, so nothing overflows)."""
    if max(resolutions) > 1 << 33:  # finer than 2^-33 s: the remainder times 1e9 could pass 2^64
        return np.asarray([t // r * 1_000_000_000 + t % r * 1_000_000_000 // r for t, r in zip(ticks, resolutions)],
                          dtype=np.int64)
    t = np.asarray(ticks, dtype=np.uint64)
    res = np.asarray(resolutions, dtype=np.uint64)
    whole, part = t // res, t % res
    return (whole * np.uint64(1_000_000_000) + part * np.uint64(1_000_000_000) // res).astype(np.int64)
