"""The `wfp` platform: Windows Filtering Platform net events through fwpuclnt.

open:  a non-dynamic session reads the net-event options (and turns event collection on only if it
       was off, restoring it on close); a dynamic session owns an own sublayer and the blocking
       filter; the census records who else subscribes.
trial: install the filter for the spec, subscribe (highest FwpmNetEventSubscribeN, template if
       any), send the traffic (one remote port per packet, which numbers it), release a held
       callback, drain until quiet, unsubscribe from this thread.
Traffic: UDP sendto on loopback (default), or a raw socket through scapy's L3 socket; with the
tests' fake library, its injection entry point stands in for the network.
"""
from __future__ import annotations

import ctypes as C
import ipaddress
import platform as pyplatform
import socket
import sys
import threading
import time
from typing import Any

import numpy as np

from harness.platforms.base import DELIVERED_COLUMNS, SENT_COLUMNS, Capabilities, TrialResult, frame
from harness.platforms.wfp.api import Library
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.constants import INBOUND_LAYERS, MS_FWP_DIRECTION
from harness.platforms.wfp.engine import EngineOptions, FilterSession, census
from harness.platforms.wfp.subscription import Subscription
from harness.spec import FilterSpec, TrafficSpec, TrialSpec
from harness.subscriber import Callback
from harness.traffic.pacing import deadlines_ns, generator_report, run_paced
from harness.traffic.plan import TrafficPlan, plan_traffic
from harness.traffic.safety import check_destinations

SOURCE_PORT = 40000


class UdpSender:
    """UDP sendto on loopback, one remote port per packet. A send that the filter blocks may fail
    with access denied (WSAEACCES); that is the expected outcome, not an error."""

    name = "udp"

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.refused = 0

    def prepare(self, plan: TrafficPlan) -> None:
        self.targets = [(str(ipaddress.IPv4Address(int(a))), int(p)) for a, p in zip(plan.remote_v4, plan.remote_port)]
        self.payloads = [int(s).to_bytes(8, "big") for s in plan.seq]

    def send(self, first: int, last: int) -> int:
        for k in range(first, last):
            try:
                self.sock.sendto(self.payloads[k], self.targets[k])
            except OSError:
                self.refused += 1
        return last - first

    def close(self) -> None:
        self.sock.close()


class ScapyRawSender(UdpSender):
    """The same packets built by scapy and sent through its layer-3 socket (raw, administrator)."""

    name = "raw"

    def __init__(self) -> None:
        from scapy.config import conf
        self.sock = conf.L3socket()
        self.refused = 0

    def prepare(self, plan: TrafficPlan) -> None:
        from scapy.layers.inet import IP
        from harness.traffic.packets import compile_packets
        self.packets = [IP(bytes(row)) for row in compile_packets(plan).data]

    def send(self, first: int, last: int) -> int:
        for k in range(first, last):
            try:
                self.sock.send(self.packets[k])
            except OSError:
                self.refused += 1
        return last - first


class FakeInjector:
    """For the tests' fake fwpuclnt: hand each packet to its classifier instead of the network."""

    name = "inject"

    def __init__(self, dll) -> None:
        self.inject = dll.FakeInjectUdp
        self.inject.argtypes = [C.c_uint32, C.c_uint16, C.c_uint16]
        self.inject.restype = C.c_int
        self.refused = 0

    def prepare(self, plan: TrafficPlan) -> None:
        self.targets = list(zip(plan.remote_v4.tolist(), plan.remote_port.tolist()))

    def send(self, first: int, last: int) -> int:
        for k in range(first, last):  # returns whether the fake's filters dropped it: not a send error
            self.inject(self.targets[k][0], self.targets[k][1], SOURCE_PORT)
        return last - first

    def close(self) -> None:
        pass


class WfpPlatform:
    name = "wfp"
    capabilities = Capabilities(allow_events=False, templates=True, census=True, hold=True,
                                kernel_timestamps=True, copy_mode=True, ground_truth=False, virtual_time=False)

    def __init__(self, library: str | None = None, sender: str = "udp") -> None:
        self.lib = Library(library)
        self._senders: dict[str, Any] = {}
        self.options: EngineOptions | None = None
        self.filters: FilterSession | None = None
        try:
            self.options = EngineOptions(self.lib)
            self.options.ensure(K["FWPM_ENGINE_COLLECT_NET_EVENTS"], 1)
            self.filters = FilterSession(self.lib)
            self.census = census(self.lib, self.options.session)
            self.sender = self._sender(sender)
            self._max_rate = self._calibrate()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "WfpPlatform":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sender(self, kind: str):
        if kind not in ("udp", "raw"):
            raise ValueError(f"wfp sender must be udp or raw, got {kind!r}")
        if hasattr(self.lib.dll, "FakeInjectUdp"):  # the tests' fake: its classifier stands in for the network
            kind = "inject"
        if kind not in self._senders:
            self._senders[kind] = {"inject": lambda: FakeInjector(self.lib.dll), "raw": ScapyRawSender,
                                   "udp": UdpSender}[kind]()
        return self._senders[kind]

    def probe(self, layer: str, sender: str, count: int = 50) -> dict[str, Any]:
        """Does a block at `layer` of traffic from `sender` produce events here? One small trial."""
        previous = self.sender
        try:
            self.sender = self._sender(sender)
            spec = TrialSpec(TrafficSpec(count=count), filter=FilterSpec(layer=layer), drain_quiet_s=0.5)
            r = self.run_trial(spec)
        except OSError as exc:  # e.g. a raw socket without administrator rights
            return {"layer": layer, "sender": sender, "events": 0, "error": str(exc)}
        finally:
            self.sender = previous
        return {"layer": layer, "sender": sender, "used": self._sender(sender).name, "sent": count,
                "events": r.delivered_count, "send_errors": r.generator.get("send_errors", 0),
                "layer_ids": r.telemetry["layer_ids"], "directions": r.telemetry["directions"]}

    def close(self) -> None:
        for s in self._senders.values():
            s.close()
        self._senders.clear()
        if self.filters is not None:
            self.filters.close()
            self.filters = None
        if self.options is not None:
            self.options.close()
            self.options = None

    # -- what it is --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, "windows": f"{pyplatform.system()} {pyplatform.version()}",
                "library": self.lib.path, "subscribe_version": self.lib.subscribe_version,
                "event_struct": f"FWPM_NET_EVENT{self.lib.subscribe_version + 1}",
                "net_event_options": self.options.describe() if self.options else {},
                "sender": self.sender.name}

    def measured(self) -> dict[str, Any]:
        return {"max_send_rate_per_s": round(self._max_rate, -2),
                "existing_subscriptions": self.census["subscriptions"],
                "existing_subscription_keys": self.census["session_keys"]}

    def max_send_rate_per_s(self) -> float:
        return self._max_rate

    def _calibrate(self) -> float:
        spec = TrialSpec(TrafficSpec(count=5000))
        self.filters.install(spec.filter)
        plan = plan_traffic(spec)
        self.sender.prepare(plan)
        sent_at, t0 = run_paced(self.sender, deadlines_ns(spec.traffic))
        return generator_report(spec.traffic, sent_at, deadlines_ns(spec.traffic), t0)["achieved_rate_per_s"]

    # -- trials ------------------------------------------------------------------------------
    def run_trial(self, spec: TrialSpec) -> TrialResult:
        check_destinations(spec.traffic.remote_addresses)
        self.filters.install(spec.filter)
        plan = plan_traffic(spec)
        self.sender.prepare(plan)
        inbound = spec.filter.layer in INBOUND_LAYERS
        release = threading.Event()
        callback = Callback(spec.subscriber, spec.traffic.count + 64, release, spec.traffic.seed,
                            extra=("layer_id", "filter_id", "loopback", "direction"))
        unix_to_perf = time.time_ns() - time.perf_counter_ns()
        decode = plan.decode

        def on_drop(port: int, unix_ns: int, layer_id: int, filter_id: int, loopback: int, direction: int,
                    remote_v4: int) -> None:
            callback(decode(remote_v4, port), unix_ns - unix_to_perf, layer_id=layer_id, filter_id=filter_id,
                     loopback=loopback, direction=direction)

        interval = sys.getswitchinterval()
        sys.setswitchinterval(5e-5)  # the callback thread must not wait 5 ms for the sender's turn
        subscription = Subscription(self.lib, self.filters.session, spec.template, inbound, on_drop)
        try:
            offsets = deadlines_ns(spec.traffic)
            refused_before = self.sender.refused
            sent_at, t0 = run_paced(self.sender, offsets)
            report = generator_report(spec.traffic, sent_at, offsets, t0)
            report["send_errors"] = self.sender.refused - refused_before
            if spec.subscriber.hold:
                time.sleep(spec.settle_s)
            t_release = time.perf_counter_ns()
            release.set()
            self._drain(callback, spec)
        finally:
            release.set()
            subscription.close()  # from this thread, never from the callback's
            sys.setswitchinterval(interval)
        c = callback.finish()
        sent = frame(SENT_COLUMNS, seq=plan.seq, t_send_ns=sent_at, remote_port=plan.remote_port)
        sent["expected"] = plan.expected
        delivered = frame(DELIVERED_COLUMNS, seq=c["seq"], t_event_ns=c["t_event"], t_callback_ns=c["t_callback"],
                          t_done_ns=c["t_done"], thread=c["thread"])
        ours = c["filter_id"] == self.filters.filter_id
        telemetry = {
            "subscribe_version": subscription.version, "other_events": subscription.other_events,
            "incomplete_events": subscription.incomplete_events,
            "callback_threads": len(subscription.callback_threads),
            "events_from_other_filters": int((~ours).sum()),
            "layer_ids": sorted({int(x) for x in np.unique(c["layer_id"])}),
            "loopback_events": int(c["loopback"].sum()),
            "directions": {MS_FWP_DIRECTION.get(int(d), str(int(d))): int(n)
                           for d, n in zip(*np.unique(c["direction"], return_counts=True))},
            "not_recorded": callback.overflow,
        }
        return TrialResult(spec=spec, sent=sent, delivered=delivered,
                           t_release_ns=t_release if spec.subscriber.hold else None,
                           telemetry=telemetry, generator=report)

    @staticmethod
    def _drain(callback: Callback, spec: TrialSpec) -> None:
        """Until no event arrived for drain_quiet_s (RFC 2544's residual wait), or the timeout."""
        deadline = time.monotonic() + spec.drain_timeout_s
        seen, quiet_since = callback.n, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(min(0.02, spec.drain_quiet_s / 4))
            if callback.n != seen:
                seen, quiet_since = callback.n, time.monotonic()
            elif time.monotonic() - quiet_since >= spec.drain_quiet_s:
                return
