"""Capture files for the reader tests, written to the formats' specifications (pcap: the libpcap
file format; pcapng: SHB, IDB with if_tsresol, EPB), so the tests can make what scapy's writers
do not: big-endian and nanosecond pcap, pcapng with several interfaces and resolutions, and
broken files. What they wrote is checked against scapy's own readers in the tests."""
from __future__ import annotations

import struct
from pathlib import Path

PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D


def ether():
    """An Ethernet header with both addresses given (locally administered): scapy fills a missing
    destination by asking the machine's network with ARP (2 s per unanswered address), which a
    test must never do (tests/conftest.py fails a test that tries)."""
    from scapy.layers.l2 import Ether
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def write_pcap(path: str | Path, frames: list[bytes], times_ns: list[int], linktype: int = 1,
               nano: bool = False, big_endian: bool = False, snaplen: int = 65535) -> Path:
    """A classic pcap of `frames` at `times_ns` (truncated to snaplen, as a capture is)."""
    e = ">" if big_endian else "<"
    with open(path, "wb") as f:
        f.write(struct.pack(e + "IHHiIII", PCAP_MAGIC_NS if nano else PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype))
        for frame, t in zip(frames, times_ns):
            sec, ns = divmod(int(t), 1_000_000_000)
            data = frame[:snaplen]
            f.write(struct.pack(e + "IIII", sec, ns if nano else ns // 1000, len(data), len(frame)) + data)
    return Path(path)


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def write_pcapng(path: str | Path, packets: list[tuple[int, int, bytes]],
                 interfaces: list[tuple[int, int]]) -> Path:
    """A pcapng with one IDB per (linktype, if_tsresol byte) and an EPB per (interface, ticks, frame)."""
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    idbs = []
    for linktype, tsresol in interfaces:
        options = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
        idbs.append(_block(1, struct.pack("<HHI", linktype, 0, 0) + options))
    with open(path, "wb") as f:
        f.write(_block(0x0A0D0D0A, shb) + b"".join(idbs))
        for iface, ticks, frame in packets:
            f.write(_block(6, struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame))
    return Path(path)


def ticks_per_second(tsresol: int) -> int:
    """if_tsresol: 10^-n s, or 2^-n s with the top bit set."""
    return 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol
