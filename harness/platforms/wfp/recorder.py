"""A small subscription that records every event it gets (type, filter, tuple), and plain
loopback datagrams to make some: the doctor's canary, the allow-visibility experiment and the
template-condition matrix use them. Not the measuring path (that is subscription.py): a few
events, each decoded in full."""
from __future__ import annotations

import ctypes as C
import errno
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import HANDLE, UNTIL_UNSUBSCRIBED, Library, WfpError, callback_type
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Session
from harness.traffic.safety import check_destinations

WSAEADDRINUSE = 10048
PAYLOADS = {K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"]: "classifyDrop", K["FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW"]: "classifyAllow"}
TYPE_NAMES = {3: "CLASSIFY_DROP", 6: "CLASSIFY_ALLOW", 7: "CAPABILITY_DROP", 8: "CAPABILITY_ALLOW",
              9: "CLASSIFY_DROP_MAC", 0: "IKEEXT_MM_FAILURE", 1: "IKEEXT_QM_FAILURE", 2: "IKEEXT_EM_FAILURE",
              4: "IPSEC_KERNEL_DROP", 5: "IPSEC_DOSP_DROP", 10: "LPM_PACKET_ARRIVAL"}


@dataclass(frozen=True)
class Seen:
    type: int
    filter_id: int | None   # of the drop or allow payload; None for other types
    protocol: int
    local_v4: int           # host order, as WFP reports IPv4
    remote_v4: int
    local_port: int
    remote_port: int
    direction: int | None


def decode(e) -> Seen:
    h = e.header
    payload = getattr(e, PAYLOADS.get(e.type, ""), None)
    p = payload.contents if payload else None
    return Seen(e.type, int(p.filterId) if p is not None else None, h.ipProtocol, h.localAddrV4, h.remoteAddrV4,
                h.localPort, h.remotePort, int(getattr(p, "msFwpDirection", 0)) if p is not None else None)


class Recorder:
    """FwpmNetEventSubscribeN (the library's highest) with the template conditions given as a raw
    array (so that a duplicate or an unknown field reaches WFP as it is); `seen` fills as events
    arrive. A refused subscribe raises WfpError (its name says why)."""

    def __init__(self, lib: Library, session: Session, conditions=None, count: int = 0) -> None:
        self.lib, self.session = lib, session
        self.seen: list[Seen] = []
        self.threads: set[int] = set()
        sub = abi.FWPM_NET_EVENT_SUBSCRIPTION0()
        sub.sessionKey = session.key
        self._keep = [conditions]
        if conditions is not None:
            tmpl = abi.FWPM_NET_EVENT_ENUM_TEMPLATE0(numFilterConditions=count)
            tmpl.filterCondition = C.cast(conditions, C.POINTER(abi.FWPM_FILTER_CONDITION0))
            self._keep.append(tmpl)
            sub.enumTemplate = C.pointer(tmpl)
        self._callback = callback_type(lib.subscribe_version)(self._on_event)
        self.events = HANDLE()
        rc = lib.subscribe_fn(session.handle, C.byref(sub), self._callback, None, C.byref(self.events))
        if rc:
            raise WfpError(f"FwpmNetEventSubscribe{lib.subscribe_version}", rc)
        UNTIL_UNSUBSCRIBED.add(self)

    def _on_event(self, context, event) -> None:
        self.threads.add(threading.get_ident())
        self.seen.append(decode(event.contents))

    def wait_for(self, done: Callable[[list[Seen]], bool], timeout_s: float) -> float | None:
        """Seconds until `done(seen)` held, or None if it did not within the timeout."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if done(self.seen):
                return time.monotonic() - start
            time.sleep(0.005)
        return time.monotonic() - start if done(self.seen) else None

    def settle(self, quiet_s: float = 0.2, timeout_s: float = 3.0) -> None:
        """Until no event arrived for quiet_s."""
        deadline, n, since = time.monotonic() + timeout_s, -1, time.monotonic()
        while time.monotonic() < deadline:
            if len(self.seen) != n:
                n, since = len(self.seen), time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.01)

    def release_held(self) -> None:
        """Nothing is held here (api.close_at_exit asks every subscription)."""

    def close(self) -> None:
        if self.events:
            self.lib.call("FwpmNetEventUnsubscribe0", self.session.handle, self.events)
            self.events = HANDLE()
            UNTIL_UNSUBSCRIBED.discard(self)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_datagrams(packets: Iterable[tuple[str, str, int]], listen: bool = False) -> None:
    """One UDP datagram per (source address, destination address, destination port), each from a
    socket of its own (a fresh tuple: no classify cache decides). `listen`: a socket listens on
    each destination first, as the inbound layers need one to classify the datagram at all."""
    packets = list(packets)
    check_destinations([dst for _, dst, _ in packets] + [src for src, _, _ in packets])
    sockets: list[socket.socket] = []
    try:
        if listen:
            for dst, port in {(dst, port) for _, dst, port in packets}:
                r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(r)
                try:
                    r.bind((dst, port))
                except OSError as exc:  # a socket listens there already (the sender's receiver): enough
                    if exc.errno != errno.EADDRINUSE and getattr(exc, "winerror", None) != WSAEADDRINUSE:
                        raise
        for src, dst, port in packets:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(s)
            s.bind((src, 0))
            try:
                s.sendto(b"wfpcap", (dst, port))
            except OSError:
                pass  # a block at a lower layer may refuse the send itself; the event still tells
        if listen:  # the inbound copy is classified after the send returns: keep listening meanwhile
            time.sleep(0.3)
    finally:
        for s in sockets:
            s.close()
