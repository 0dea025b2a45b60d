"""Benchmark: reading a 1 M-packet capture into a schedule, against scapy's rdpcap in the same run.

    python benchmarks/bench_trace_read.py [--packets 1000000] [--rdpcap-packets 20000] [--repeat 5]

Writes the captures itself (scapy's RawPcapWriter and RawPcapNgWriter, into a temporary folder:
nothing is checked in): Ethernet/IPv4 UDP and TCP of 1,000 flows with Poisson times. Prints
medians over repeats, the load before and after each row, and packets/s. Goal: >= 1,000,000
packets/s for the classic pcap reader. rdpcap builds a scapy Packet per packet (hundreds of
microseconds each on a 2-core VM, ~1 KiB held per packet), so it reads a smaller file of the same
traffic (its rate does not depend on the file's length); the row says how many.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.traffic import capture  # noqa: E402


def frames(n: int, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    """n Ethernet frames (UDP and TCP, 1,000 flows) and their capture times in ns."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    rng = np.random.default_rng(seed)
    udp = bytearray(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=53) / bytes(40)))
    tcp = bytearray(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.3") / TCP(sport=1, dport=443) / bytes(60)))
    flow = rng.integers(0, 1000, n)
    out = []
    for f in flow.tolist():
        frame = udp if f % 4 else tcp
        frame[34:36] = (20000 + f).to_bytes(2, "big")  # the source port names the flow
        out.append(bytes(frame))
    times = 1_700_000_000_000_000_000 + np.cumsum(rng.exponential(5_000, n)).astype(np.int64)
    return out, times


def write(path: Path, data: list[bytes], times: np.ndarray, ng: bool) -> Path:
    from scapy.utils import RawPcapNgWriter, RawPcapWriter
    w = RawPcapNgWriter(str(path)) if ng else RawPcapWriter(str(path), linktype=1, nano=True)
    from scapy.layers.l2 import Ether
    w.write_header(Ether(dst="02:00:00:00:00:02"))  # the writer takes its link type from a first packet (a dst given: scapy would ARP for one)
    for frame, t in zip(data, times.tolist()):
        sec, ns = divmod(t, 1_000_000_000)
        if ng:  # pcapng's writer takes a float time: whole microseconds stay exact
            w._write_packet(frame, linktype=1, sec=sec + ns // 1000 / 1e6)
        else:
            w._write_packet(frame, linktype=1, sec=sec, usec=ns)
    w.close()
    return path


def timed(fn, repeat: int) -> tuple[float, float, float]:
    """(median seconds, load before, load after)."""
    load = os.getloadavg()[0]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), load, os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--rdpcap-packets", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from scapy.utils import rdpcap
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        data, times = frames(args.packets)
        pcap = write(Path(tmp) / "big.pcap", data, times, ng=False)
        pcapng = write(Path(tmp) / "big.pcapng", data, times, ng=True)
        small = write(Path(tmp) / "small.pcap", data[: args.rdpcap_packets], times[: args.rdpcap_packets], ng=False)
        del data
        print(f"wrote {args.packets:,} packets as pcap ({pcap.stat().st_size / 2**20:.0f} MiB) and pcapng, "
              f"{args.rdpcap_packets:,} for rdpcap, in {time.perf_counter() - t:.1f} s")

        t = time.perf_counter()
        capture.read_pcap_chunked(small)
        print(f"first call in a process (loads the compiled record walk): {time.perf_counter() - t:.2f} s "
              f"for {args.rdpcap_packets:,} packets; numba {'in use' if capture._WALK else 'missing: Python walk'}")

        def python_walk():
            native, capture._WALK = capture._WALK, None
            try:
                capture.read_pcap_chunked(pcap)
            finally:
                capture._WALK = native

        rows = [
            ("chunked pcap reader (numba walk + numpy)", args.packets, lambda: capture.read_pcap_chunked(pcap)),
            ("chunked pcap reader, Python walk", args.packets, python_walk),
            ("scapy RawPcapReader, streaming, pcap", args.packets, lambda: capture.read_capture_scapy(pcap)),
            ("scapy RawPcapNgReader, streaming, pcapng", args.packets, lambda: capture.read_capture(pcapng)),
            (f"scapy rdpcap (baseline; {args.rdpcap_packets:,} packets)", args.rdpcap_packets, lambda: rdpcap(str(small))),
        ]
        print(f"{'reader':48} {'packets':>10} {'median s':>9} {'packets/s':>12} {'load before/after':>18}")
        for name, n, fn in rows:
            seconds, before, after = timed(fn, args.repeat)
            print(f"{name:48} {n:10,} {seconds:9.3f} {n / seconds:12,.0f} {before:8.1f} / {after:<6.1f}", flush=True)
        print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
        print(f"medians of {args.repeat}; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
