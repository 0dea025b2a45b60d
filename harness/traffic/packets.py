"""Test packets described with scapy, compiled once, then patched per packet with numpy.

The template `IP(dst=...)/UDP(dport=...)/Raw(8-byte sequence + padding)` is built by scapy a
single time; every packet of a trial is a row of one uint8 array in which the destination
address, destination port and sequence number are written and the IP and UDP checksums are
recomputed column-wise. No scapy object is built per packet.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from harness.traffic.plan import TrafficPlan

IP_HEADER = 20
UDP_HEADER = 8
SEQ_OFFSET = IP_HEADER + UDP_HEADER  # where the 8-byte big-endian sequence number sits
SOURCE = "127.0.0.1"


@dataclass(frozen=True)
class PacketBatch:
    data: np.ndarray      # (n, length) uint8: complete IPv4 packets
    dst: np.ndarray       # (n,) uint32 destination addresses (host order)
    dport: np.ndarray     # (n,) uint16

    @property
    def length(self) -> int:
        return int(self.data.shape[1])

    def payloads(self) -> np.ndarray:
        """What a plain UDP socket sends (the kernel adds the headers)."""
        return self.data[:, SEQ_OFFSET:]


def template(payload_len: int = 16, sport: int = 40000) -> bytes:
    if payload_len < 8:
        raise ValueError("payload must hold the 8-byte sequence number")
    return bytes(IP(src=SOURCE, dst="127.0.0.1", ttl=64, id=0, flags="DF") / UDP(sport=sport, dport=9)
                 / Raw(b"\0" * payload_len))


def _fold(total: np.ndarray) -> np.ndarray:
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).astype(np.uint16)


def _words(block: np.ndarray) -> np.ndarray:
    """Sum of big-endian 16-bit words of each row (rows padded to even length)."""
    if block.shape[1] % 2:
        block = np.concatenate((block, np.zeros((block.shape[0], 1), np.uint8)), axis=1)
    return np.ascontiguousarray(block).view(">u2").astype(np.uint64).sum(axis=1)


def compile_packets(plan: TrafficPlan, payload_len: int = 16, sport: int = 40000) -> PacketBatch:
    """`sport`: the source port, that of the sender's own UDP socket (raw packets from its port)."""
    base = np.frombuffer(template(payload_len, sport), dtype=np.uint8)
    n = len(plan.seq)
    data = np.repeat(base[None, :], n, axis=0)
    dst = plan.remote_v4.astype(np.uint32)
    data[:, 16:20] = dst.astype(">u4").view(np.uint8).reshape(n, 4)
    dport = plan.remote_port.astype(np.uint16)
    data[:, 22:24] = dport.astype(">u2").view(np.uint8).reshape(n, 2)
    data[:, SEQ_OFFSET:SEQ_OFFSET + 8] = plan.seq.astype(">u8").view(np.uint8).reshape(n, 8)
    # IPv4 header checksum
    data[:, 10:12] = 0
    data[:, 10:12] = _fold(_words(data[:, :IP_HEADER])).astype(">u2").view(np.uint8).reshape(n, 2)
    # UDP checksum over the pseudo-header (src, dst, protocol, UDP length) and the datagram
    udp_len = data.shape[1] - IP_HEADER
    data[:, 26:28] = 0
    pseudo = _words(data[:, 12:20]) + 17 + udp_len
    csum = _fold(pseudo + _words(data[:, IP_HEADER:]))
    csum[csum == 0] = 0xFFFF  # RFC 768: a computed zero is sent as all ones
    data[:, 26:28] = csum.astype(">u2").view(np.uint8).reshape(n, 2)
    return PacketBatch(data, dst, dport)
