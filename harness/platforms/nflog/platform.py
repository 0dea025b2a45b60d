"""The `nflog` platform: the same questions asked of a real Linux kernel.

Per run: an own network namespace (loopback up), an nftables rule in its input hook that logs
the test traffic to an NFLOG group and drops it, an NFLOG subscriber bound to that group inside
the namespace, and a sender process (harness.traffic.sender_process) whose sockets live inside
it. Mapping to WFP terms: a kernel batch (one netlink datagram of up to `qthresh` events) plays
the dispatcher's batch, the netlink socket's receive buffer plays the system buffer, and a full
buffer loses events.

Events per flow (a trace replayed with `--trace-events flows`, the rule of WFP's ALE layers): NFLOG
logs every packet a rule matches, so the rule itself keeps a flow's first packet only. A dynamic
nftables set holds the tuples seen (source port, destination address and port: the trial's fresh
socket makes every trial's tuples new); a packet whose tuple is in it is dropped without a log, the
first one adds it and is logged and dropped. That is an ALE layer that does not classify a blocked
flow again (WFP's behaviour there is undocumented; the wfp platform counts what it does).
"""
from __future__ import annotations

import os
import platform as pyplatform
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.inputs import check_nflog, nflog_values
from harness.platforms.base import DELIVERED_COLUMNS, SENT_COLUMNS, Capabilities, PlatformUnavailable, TrialResult, frame
from harness.spec import FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec
from harness.traffic.plan import plan_traffic
from harness.traffic.safety import check_destinations

NFLOG_GROUP = 7
COPY_RANGE = 64  # IP + UDP headers + our 8-byte sequence number, with room to spare
NLBUFSIZ_MAX = 131072
FLOW_SET_SIZE = 1 << 20  # flows a trial with events per flow may have (the set of seen tuples)


@dataclass(frozen=True)
class NflogConfig:
    qthresh: int = 16             # events per kernel batch (NFULA_CFG_QTHRESH)
    timeout_cs: int = 10          # flush timer, 1/100 s (kernel default 100 = 1 s)
    nlbufsiz: int = NLBUFSIZ_MAX  # bytes per kernel batch; large so that qthresh decides
    rcvbuf: int | None = None     # SO_RCVBUFFORCE bytes (the kernel doubles it); None: system default
    sender: str = "udp"           # udp or raw

    def __post_init__(self) -> None:
        check_nflog(asdict(self))  # the ranges the kernel accepts: harness/inputs.py

    @classmethod
    def from_overrides(cls, overrides: dict[str, str]) -> "NflogConfig":
        return cls(**nflog_values(overrides))


def available() -> str | None:
    """None if the platform can run here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return "nflog needs Linux"
    if os.geteuid() != 0:
        return "nflog needs root (network namespaces, nftables, NFLOG)"
    for tool in ("ip", "nft"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]):
            return f"nflog needs the {tool} command (Debian: {'iproute2' if tool == 'ip' else 'nftables'})"
    return None


def ruleset(f: FilterSpec, per_flow: bool = False) -> str:
    """The rule that logs and drops the test traffic; `per_flow`: only a flow's first packet is logged."""
    if f.protocol != "udp":
        raise ValueError("the nflog platform drops UDP test traffic; use protocol udp")
    match = f"ip daddr {f.remote_prefix} udp dport {f.remote_port_low}-{f.remote_port_high}"
    flow = "udp sport . ip daddr . udp dport"
    if not per_flow:
        return (
            "table ip wfpcap {\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    {match} log group {NFLOG_GROUP} drop\n"
            "  }\n"
            "}\n"
        )
    return (
        "table ip wfpcap {\n"
        "  set flows { type inet_service . ipv4_addr . inet_service; "
        f"size {FLOW_SET_SIZE}; flags dynamic,timeout; timeout 120s; }}\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"    {match} {flow} @flows drop\n"
        f"    {match} add @flows {{ {flow} }} log group {NFLOG_GROUP} drop\n"
        "  }\n"
        "}\n"
    )


def per_flow(spec: TrialSpec) -> bool:
    """Does this trial make one event per flow (a trace replayed with events per flow)?"""
    schedule = spec.traffic.schedule
    return schedule is not None and schedule.trace_events == "flows"


class NflogPlatform:
    name = "nflog"
    capabilities = Capabilities(allow_events=False, templates=False, census=False, hold=True,
                                kernel_timestamps=True, copy_mode=True, ground_truth=False, virtual_time=False)

    def __init__(self, config: NflogConfig | None = None) -> None:
        reason = available()
        if reason:
            raise PlatformUnavailable(reason)
        from harness.platforms.nflog import netns  # pyroute2 is Linux-only
        from harness.platforms.nflog.netlink import NETLINK_NETFILTER, PacketParser, ack_error, bind_messages
        from harness.platforms.nflog.sockets import NamespaceSockets
        from harness.platforms.nflog.subscriber import Subscriber
        from harness.traffic.sender_process import SenderProcess

        self.config = config or NflogConfig()
        self._netns = netns
        self.removed_stale = netns.remove_stale()
        self.namespace = netns.create()
        self._filter: tuple[FilterSpec, bool] | None = None
        self._trial = 0
        self._closed = False
        try:
            self._install(FilterSpec())
            self.sock = netns.socket_in(self.namespace, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            self.sock.bind((0, 0))
            if self.config.rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, 33, self.config.rcvbuf)  # SO_RCVBUFFORCE
            self.sock.settimeout(2.0)
            for msg in bind_messages(NFLOG_GROUP, COPY_RANGE, self.config.qthresh, self.config.timeout_cs,
                                     self.config.nlbufsiz):
                self.sock.send(msg)
                err = ack_error(self.sock.recv(65536))
                if err > 0:
                    raise OSError(err, f"NFLOG configuration refused: {os.strerror(err)}")
            self.rcvbuf_effective = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self.subscriber = Subscriber(self.sock, PacketParser())
            self.sender = SenderProcess(NamespaceSockets(self.namespace))
            self._max_rate: float | None = None  # calibrated on first use (the run is on disk by then)
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "NflogPlatform":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for part in ("sender", "sock"):
            obj = getattr(self, part, None)
            if obj is not None:
                try:
                    obj.close()
                except OSError:
                    pass
        self._netns.remove(self.namespace)

    def _install(self, f: FilterSpec, flows: bool = False) -> None:
        if (f, flows) == self._filter:
            return
        script = ("flush ruleset\n" if self._filter is not None else "") + ruleset(f, flows)
        self._netns.nft(self.namespace, script)
        self._filter = (f, flows)

    # -- what it is --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, "kernel": pyplatform.release(), "nflog": asdict(self.config),
                "rcvbuf_effective": self.rcvbuf_effective, "copy_range": COPY_RANGE, "group": NFLOG_GROUP}

    def measured(self) -> dict[str, Any]:
        return {"max_send_rate_per_s": round(self.max_send_rate_per_s(), -3)}

    def max_send_rate_per_s(self) -> float:
        if self._max_rate is None:
            self._max_rate = self._calibrate()
        return self._max_rate

    def send_only(self, traffic: TrafficSpec, kind: str | None = None) -> dict[str, Any]:
        """Drive the generator into the rule without a trial (nobody reads the events); return its
        report. For calibration and benchmarks."""
        self._trial += 1
        spec = TrialSpec(traffic, SubscriberSpec())
        try:
            _, report = self.sender.send(spec, kind or self.config.sender, self._trial & 0xFFFF,
                                         timeout_s=60 + 3 * _send_time(spec))
        except BaseException:  # Ctrl-C or a failure: stop the send now, not after it
            self.sender.kill()
            raise
        return report

    def _calibrate(self) -> float:
        """The generator's own burst rate into the rule (subscriber not reading), median of three."""
        rates = [self.send_only(TrafficSpec(count=50_000))["achieved_rate_per_s"] for _ in range(3)]
        self.subscriber.discard_pending(0.05 + self.config.timeout_cs / 100)
        return float(np.median(rates))

    # -- trials ------------------------------------------------------------------------------
    def run_trial(self, spec: TrialSpec) -> TrialResult:
        if spec.template is not None:
            raise ValueError("the nflog platform has no subscription templates")
        check_destinations(spec.traffic.remote_addresses)
        flows = per_flow(spec)
        if flows and spec.traffic.schedule.flow_count > FLOW_SET_SIZE:
            raise ValueError(f"the nflog platform replays at most {FLOW_SET_SIZE:,} flows with events per flow; "
                             f"this trace has {spec.traffic.schedule.flow_count:,} (use --trace-window)")
        self._install(spec.filter, flows)
        self.subscriber.discard_pending(0.02)
        self._trial += 1
        tag = self._trial & 0xFFFF
        plan = plan_traffic(spec)
        sending_done, release, abort = threading.Event(), threading.Event(), threading.Event()
        box: dict[str, Any] = {}
        # a drain is over only after the kernel's flush timer has pushed out its last partial batch
        quiet_s = max(spec.drain_quiet_s, self.config.timeout_cs / 100 + 0.1)

        def subscribe() -> None:
            try:
                box["records"] = self.subscriber.run(tag, spec.traffic.count, spec.subscriber, sending_done, release,
                                                     quiet_s, spec.drain_timeout_s + _send_time(spec),
                                                     spec.traffic.seed + self._trial, abort)
            except BaseException as exc:  # surfaced in the main thread
                box["error"] = exc

        reader = threading.Thread(target=subscribe, daemon=True, name="wfpcap-nflog-subscriber")
        reader.start()
        t_release = None
        try:
            sent_at, report = self.sender.send(spec, self.config.sender, tag, timeout_s=60 + 3 * _send_time(spec))
        except BaseException:  # Ctrl-C or a failure: stop sending and reading now, not at the trial's end
            abort.set()
            self.sender.kill()
            raise
        finally:
            sending_done.set()
            if spec.subscriber.hold and not abort.is_set():
                time.sleep(spec.settle_s)
            t_release = time.perf_counter_ns()
            release.set()
            while reader.is_alive():  # in slices: a signal the kernel gave the reader thread acts at once
                reader.join(0.1)
        if "error" in box:
            raise box["error"]
        rec = box["records"]
        c = rec.columns
        n = len(c["seq"])
        sent = frame(SENT_COLUMNS, seq=plan.seq, t_send_ns=sent_at, remote_port=plan.remote_port)
        sent["expected"] = plan.expected
        # the packet each event is: with events per flow its flow's first (a second packet of a flow
        # logged in a race with the first's set entry is a repeat of that event, as on wfp)
        delivered = frame(DELIVERED_COLUMNS, seq=plan.event_of(c["seq"]), t_event_ns=c["t_event"], t_callback_ns=c["t_callback"],
                          t_done_ns=c["t_done"], thread=c["thread"])
        nf = np.sort(c["nflog_seq"])
        telemetry = {
            "datagrams": rec.datagrams, "enobufs_episodes": rec.enobufs, "stale_events": rec.stale,
            "kernel_seq_gaps": int((nf[-1] - nf[0] + 1) - len(nf)) if n else None,
            "untimestamped": rec.untimestamped, "parse_ns": rec.parse_ns, "notes": rec.notes,
            "rcvbuf_effective": self.rcvbuf_effective, "qthresh": self.config.qthresh,
        }
        return TrialResult(spec=spec, sent=sent, delivered=delivered,
                           t_release_ns=t_release if spec.subscriber.hold else None,
                           telemetry=telemetry, generator=report)


def _send_time(spec: TrialSpec) -> float:
    return spec.traffic.duration_s or 1.0

