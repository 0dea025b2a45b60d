"""Benchmark (Linux, root): the harness's traffic generator against a small C sendmmsg sender,
both into the same namespace and NFLOG rule, in one run; constant-rate lateness; parse rate.

    sudo python benchmarks/bench_sender.py [--count 200000] [--repeat 5]

Goals: burst rate >= 90 % of the C sender; p99 lateness < 50 us at 10k and 50k packets/s;
the subscriber's parser >= 300,000 events/s.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.platforms.nflog.netlink import PacketParser
from harness.platforms.nflog.platform import NflogConfig, NflogPlatform, available
from harness.spec import TrafficSpec

HERE = Path(__file__).resolve().parent


def build_c_sender(out: Path) -> Path:
    exe = out / "c_sender"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "c_sender.c")], check=True)
    return exe


def c_rate(exe: Path, namespace: str, count: int) -> float:
    out = subprocess.run(["ip", "netns", "exec", namespace, str(exe), str(count), "20000", "256"],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def harness_rate(p: NflogPlatform, count: int, kind: str) -> float:
    return p.send_only(TrafficSpec(count=count), kind)["achieved_rate_per_s"]


def lateness(p: NflogPlatform, rate: float, seconds: float) -> dict:
    return p.send_only(TrafficSpec(count=int(rate * seconds), pacing="constant", rate_per_s=rate), "udp")


def parse_rate(p: NflogPlatform, count: int, repeat: int) -> tuple[float, int]:
    """Capture real kernel datagrams (subscriber not running callbacks), then time the parser on them."""
    p.subscriber.discard_pending(0.2)
    p.send_only(TrafficSpec(count=count), "udp")
    datagrams = []
    p.sock.settimeout(0.3)
    while True:
        try:
            datagrams.append(p.sock.recv(1 << 20))
        except socket.timeout:
            break
        except OSError:
            continue
    parser = PacketParser()
    events = sum(len(parser.parse(d).payload_seq) for d in datagrams)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for d in datagrams:
            parser.parse(d)
        times.append(time.perf_counter() - t)
    return events / statistics.median(times), events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    reason = available()
    if reason:
        sys.exit(f"bench_sender: {reason}")
    with tempfile.TemporaryDirectory() as tmp, NflogPlatform(NflogConfig(qthresh=64, rcvbuf=64 << 20)) as p:
        exe = build_c_sender(Path(tmp))
        c, py_udp, py_raw = [], [], []
        for _ in range(args.repeat):  # interleaved, so that machine noise hits all three alike
            c.append(c_rate(exe, p.namespace, args.count))
            py_udp.append(harness_rate(p, args.count, "udp"))
            py_raw.append(harness_rate(p, args.count, "raw"))
            p.subscriber.discard_pending(0.05)
        mc, mu, mr = (statistics.median(x) for x in (c, py_udp, py_raw))
        print(f"burst into the NFLOG rule, {args.count:,} packets, median of {args.repeat}:")
        print(f"  C sendmmsg sender          {mc:12,.0f} packets/s")
        print(f"  harness, UDP socket        {mu:12,.0f} packets/s   ratio {mu / mc:5.2f}")
        print(f"  harness, raw socket        {mr:12,.0f} packets/s   ratio {mr / mc:5.2f}")
        for rate in (10_000, 50_000):
            r = lateness(p, rate, 2.0)
            print(f"constant {rate:>6,}/s: achieved {r['achieved_rate_per_s']:,.0f}/s, lateness p50 {r['late_p50_us']} us, "
                  f"p99 {r['late_p99_us']} us, max {r['late_max_us']} us")
        rate, events = parse_rate(p, 200_000, args.repeat)
        print(f"subscriber parse rate: {rate:,.0f} events/s (median of {args.repeat} passes over {events:,} real events)")


if __name__ == "__main__":
    main()
