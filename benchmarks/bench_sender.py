"""Benchmark (Linux, root): the harness's traffic generator, native send loop beside the Python loop
and a small C sendmmsg sender, all into the same namespace and NFLOG rule, taking turns in one run
so that the machine's neighbours hit them alike; the subscriber's parse rate.

    sudo python benchmarks/bench_sender.py [--count 200000] [--repeat 5] [--seconds 2]

Each figure is the median of `--repeat` runs, printed with the machine's load while it was taken
(1-minute load average; cores used by other processes, from /proc/stat; hypervisor steal).
Lateness is of the time each packet was handed to the system; "call p99" is how long the system
kept the send calls (on loopback it does the receiving side's work, NFLOG's batch flushes, in them).
Goals (issue 24): burst >= 0.95x the C sender, UDP and raw; lateness p99 < 20 us and max < 1 ms at
10,000/s and 50,000/s; a trace's shape (packets 70 us apart in bursts) p99 < 20 us. Both loops and
the C sender run pinned to the same core at the same priority (harness/traffic/cores.py).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.interference import Probe  # noqa: E402
from harness.platforms.base import PlatformUnavailable  # noqa: E402
from harness.platforms.nflog.netlink import PacketParser  # noqa: E402
from harness.platforms.nflog.platform import NflogConfig, NflogPlatform, available  # noqa: E402
from harness.platforms.nflog.sockets import NamespaceSockets  # noqa: E402
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec  # noqa: E402
from harness.traffic.schedule import Provenance, Schedule  # noqa: E402
from harness.traffic.sender_process import SenderProcess  # noqa: E402

HERE = Path(__file__).resolve().parent
LOOPS = ("native", "python")
TRACE_GAP_NS = 70_000


def build_c_sender(out: Path) -> Path:
    exe = out / "c_sender"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "c_sender.c")], check=True)
    return exe


def c_rate(exe: Path, namespace: str, count: int, kind: str, cpu: str) -> float:
    out = subprocess.run(["ip", "netns", "exec", namespace, str(exe), str(count), "20000", "256", kind, cpu],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def trace_schedule(seconds: float, seed: int = 24) -> np.ndarray:
    """A replayed capture's shape: bursts of 8 packets 70 us apart, bursts 0.2-2 ms apart."""
    rng = np.random.default_rng(seed)
    bursts = int(seconds / 1.6e-3)
    starts = np.cumsum(rng.uniform(0.2e6, 2e6, bursts) + 7 * TRACE_GAP_NS).astype(np.int64)
    return (starts[:, None] + np.arange(8) * TRACE_GAP_NS).ravel() - starts[0]


class Measured:
    """Figures of one kind of measurement and the load beside each."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.load: list[dict] = []

    def take(self, name: str, measure: Callable[[], float | dict]) -> None:
        probe = Probe()
        probe.begin()
        value = measure()
        self.load.append(probe.end())
        for key, v in (value.items() if isinstance(value, dict) else [(name, value)]):
            self.values.setdefault(key, []).append(v)

    def median(self, key: str) -> float:
        return statistics.median(self.values[key])

    def ratio(self, key: str, base: str) -> float:
        """The median of the rounds' ratios: each pair ran back to back, beside the same neighbours."""
        return statistics.median(a / b for a, b in zip(self.values[key], self.values[base]))

    def load_text(self) -> str:
        load1 = [r["intf_load1"] for r in self.load if r.get("intf_load1") is not None]
        others = [r["intf_others_cores"] for r in self.load if r.get("intf_others_cores") is not None]
        steal = [r["intf_steal_share"] for r in self.load if r.get("intf_steal_share") is not None]
        parts = []
        if load1:
            parts.append(f"load1 {statistics.median(load1):.2f} ({min(load1):.2f}-{max(load1):.2f})")
        if others:
            parts.append(f"others' cores {statistics.median(others):.2f} ({min(others):.2f}-{max(others):.2f})")
        if steal:
            parts.append(f"steal {max(steal):.1%} at most")
        return ", ".join(parts)


def lateness(sender: SenderProcess, traffic: TrafficSpec) -> dict:
    _, r = sender.send(TrialSpec(traffic, SubscriberSpec()), "udp", 1, timeout_s=120)
    return {k: r[k] for k in ("late_p50_us", "late_p99_us", "late_max_us", "send_call_p99_us", "achieved_rate_per_s")}


def burst(sender: SenderProcess, count: int, kind: str) -> float:
    _, r = sender.send(TrialSpec(TrafficSpec(count=count), SubscriberSpec()), kind, 1, timeout_s=120)
    return r["achieved_rate_per_s"]


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


def rotated(items: tuple[str, ...], by: int) -> tuple[str, ...]:
    k = by % len(items)
    return items[k:] + items[:k]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200_000, help="packets per burst")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each paced run")
    args = ap.parse_args()
    reason = available()
    if reason:
        sys.exit(f"bench_sender: {reason}")
    with tempfile.TemporaryDirectory() as tmp, NflogPlatform(NflogConfig(qthresh=64, rcvbuf=64 << 20)) as p:
        exe = build_c_sender(Path(tmp))
        try:
            senders = {path: SenderProcess(NamespaceSockets(p.namespace), path=path) for path in LOOPS}
        except PlatformUnavailable as exc:
            sys.exit(f"bench_sender: {exc}")
        try:
            first = senders["native"].send(TrialSpec(TrafficSpec(count=10), SubscriberSpec()), "udp", 1, 60)[1]
            if first["sender_path"] != "native":
                sys.exit(f"bench_sender: the native loop cannot run here: {first.get('sender_path_reason')}")
            cpu = first["sender_cpus"] if first["sender_cpus"].isdigit() else "0"
            print(f"machine: {os.cpu_count()} cores; senders on core {first['sender_cpus']} at "
                  f"{first['sender_priority']}, this process on {first['subscriber_cpus']}; "
                  f"native loop: {first['sender_binding']}", flush=True)
            bursts = {kind: Measured() for kind in ("udp", "raw")}
            paced = {name: Measured() for name in ("10000", "50000", "trace")}
            offsets = trace_schedule(args.seconds)
            trace = TrafficSpec.replay(Schedule(offsets, provenance=Provenance("bursts 70 us apart", "shape")))
            trace_rate = len(offsets) / (offsets[-1] / 1e9)
            for i in range(args.repeat):  # taking turns, so that machine noise hits all alike
                turn = rotated(("C",) + LOOPS, i)  # who goes first changes every round: no order effect
                for kind, m in bursts.items():
                    for who in turn:
                        if who == "C":
                            m.take("C", lambda: c_rate(exe, p.namespace, args.count, kind, cpu))
                        else:
                            m.take(who, lambda: burst(senders[who], args.count, kind))
                        p.subscriber.discard_pending(0.05)
                for path in rotated(LOOPS, i):
                    for rate in (10_000, 50_000):
                        traffic = TrafficSpec(count=int(rate * args.seconds), pacing="constant", rate_per_s=rate)
                        paced[str(rate)].take(path, lambda: {f"{path} {k}": v for k, v in lateness(senders[path], traffic).items()})
                    paced["trace"].take(path, lambda: {f"{path} {k}": v for k, v in lateness(senders[path], trace).items()})
                    p.subscriber.discard_pending(0.05)
                print(f"  round {i + 1} of {args.repeat} done, load1 {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            for s in senders.values():
                s.close()
        print(f"\nburst into the NFLOG rule, {args.count:,} packets, median of {args.repeat} (ratios: median of the rounds' ratios):")
        goals = []
        for kind, m in bursts.items():
            c = m.median("C")
            native, python = m.ratio("native", "C"), m.ratio("python", "C")
            print(f"  {kind:>3}  C sendmmsg {c:11,.0f}/s | native loop {m.median('native'):11,.0f}/s x{native:.2f} | "
                  f"Python loop {m.median('python'):11,.0f}/s x{python:.2f}   [{m.load_text()}]")
            goals.append((f"burst {kind} >= 0.95x C", native >= 0.95))
        print(f"lateness, {args.seconds:g} s runs, median of {args.repeat} (us):")
        for name, m in paced.items():
            label = f"constant {int(name):,}/s" if name.isdigit() else f"trace shape {trace_rate:,.0f}/s (70 us in bursts)"
            cells = []
            for path in LOOPS:
                p50, p99, mx = (m.median(f"{path} late_{k}_us") for k in ("p50", "p99", "max"))
                call = m.median(f"{path} send_call_p99_us")
                cells.append(f"{path} p50 {p50:6.1f} p99 {p99:7.1f} max {mx:8.1f} (call p99 {call:5.1f})")
            print(f"  {label:<38} {' | '.join(cells)}   [{m.load_text()}]")
            p99 = m.median("native late_p99_us")
            goals.append((f"{label}: native p99 < 20 us", p99 < 20))
            if name.isdigit():
                goals.append((f"{label}: native max < 1 ms", m.median("native late_max_us") < 1000))
        rate, events = parse_rate(p, 200_000, args.repeat)
        print(f"subscriber parse rate: {rate:,.0f} events/s (median of {args.repeat} passes over {events:,} real events)")
        print("goals: " + "; ".join(f"{name} {verdict(ok)}" for name, ok in goals))


if __name__ == "__main__":
    main()
