"""A net-event subscription: FwpmNetEventSubscribeN at the highest version the library exports,
an optional template, and a ctypes callback that copies what the harness needs out of each
CLASSIFY_DROP event (the event memory is gone once the callback returns).

Only the harness's own filter counts: every other CLASSIFY_DROP on the machine (a runner has
drops of its own) is counted apart, per filter, and never reaches the subscriber's Callback.
Unsubscribe waits for a running callback, so it is refused from the callback's threads; until
it has succeeded the ctypes callback is kept alive (api.UNTIL_UNSUBSCRIBED), because WFP may still
call it.
"""
from __future__ import annotations

import ctypes as C
import threading
from dataclasses import dataclass
from typing import Callable

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import HANDLE, UNTIL_UNSUBSCRIBED, Library, WfpError, callback_type
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Session, template_conditions
from harness.platforms.wfp.winsys import filetime_to_unix_ns
from harness.spec import TemplateSpec

__all__ = ["Drop", "IncompleteEvent", "Subscription", "decode_drop", "filetime_to_unix_ns"]


@dataclass(frozen=True)
class Drop:
    """What the harness keeps of one CLASSIFY_DROP event."""

    port: int        # the harness's destination port as WFP reports it for the layer
    unix_ns: int
    layer_id: int
    filter_id: int
    is_loopback: int
    direction: int
    remote_v4: int   # host order, as WFP reports IPv4


class IncompleteEvent(ValueError):
    """A classify-drop event without the fields a harness drop has (the header's flags say which
    are set; an unset field holds whatever was in memory)."""


def decode_drop(e, inbound: bool) -> Drop | None:
    """The drop in one FWPM_NET_EVENTn; None for other event types. Raises IncompleteEvent when the
    header does not say the port and address are set or the event is not IPv4: reading them anyway
    would give a record of the wrong port or address. The one place that reads an event (swap it
    for a bulk decoder, not the callers)."""
    if e.type != K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"]:
        return None
    if not e.classifyDrop:
        raise IncompleteEvent("classify-drop event without its drop data")
    h, drop = e.header, e.classifyDrop.contents
    port_flag = K["FWPM_NET_EVENT_FLAG_LOCAL_PORT_SET" if inbound else "FWPM_NET_EVENT_FLAG_REMOTE_PORT_SET"]
    addr_flag = K["FWPM_NET_EVENT_FLAG_LOCAL_ADDR_SET" if inbound else "FWPM_NET_EVENT_FLAG_REMOTE_ADDR_SET"]
    needed = port_flag | addr_flag | K["FWPM_NET_EVENT_FLAG_IP_VERSION_SET"]
    if h.flags & needed != needed:
        raise IncompleteEvent(f"classify-drop event with header flags {h.flags:#x}, needs {needed:#x}")
    if h.ipVersion != K["FWP_IP_VERSION_V4"]:
        raise IncompleteEvent(f"classify-drop event of IP version {h.ipVersion}, not IPv4")
    return Drop(port=h.localPort if inbound else h.remotePort,
                unix_ns=filetime_to_unix_ns(h.timeStamp), layer_id=drop.layerId, filter_id=drop.filterId,
                is_loopback=int(getattr(drop, "isLoopback", 0)), direction=int(getattr(drop, "msFwpDirection", 0)),
                remote_v4=h.localAddrV4 if inbound else h.remoteAddrV4)


class Subscription:
    """`on_drop(drop: Drop)` runs for each drop event of `filter_id`."""

    def __init__(self, lib: Library, session: Session, template: TemplateSpec | None, inbound: bool,
                 filter_id: int, on_drop: Callable[[Drop], None]) -> None:
        self.lib, self.session, self.inbound, self.on_drop = lib, session, inbound, on_drop
        self.filter_id = filter_id
        self.version = lib.subscribe_version
        self.other_events = 0                 # not CLASSIFY_DROP
        self.incomplete_events = 0            # classify drops that lack the port, address or IPv4 (decode_drop)
        self.foreign: dict[int, int] = {}     # drops of other filters, per filter id
        self.callback_threads: set[int] = set()
        self._keep = []
        sub = abi.FWPM_NET_EVENT_SUBSCRIPTION0()
        sub.sessionKey = session.key
        if template is not None and template.conditions:
            arr, n = template_conditions(template, inbound).array()  # refuses duplicates before the call
            tmpl = abi.FWPM_NET_EVENT_ENUM_TEMPLATE0(numFilterConditions=n)
            tmpl.filterCondition = C.cast(arr, C.POINTER(abi.FWPM_FILTER_CONDITION0))
            self._keep += [arr, tmpl]
            sub.enumTemplate = C.pointer(tmpl)
        self._callback = callback_type(self.version)(self._on_event)
        self.events = HANDLE()
        rc = lib.subscribe_fn(session.handle, C.byref(sub), self._callback, None, C.byref(self.events))
        if rc:
            raise WfpError(f"FwpmNetEventSubscribe{self.version}", rc)
        UNTIL_UNSUBSCRIBED.add(self)

    @property
    def foreign_events(self) -> int:
        return sum(self.foreign.values())

    def _on_event(self, context, event) -> None:
        self.callback_threads.add(threading.get_ident())
        try:
            drop = decode_drop(event.contents, self.inbound)
        except IncompleteEvent:  # another filter's drop (IPv6, no ports): counted, never misread
            self.incomplete_events += 1
            return
        if drop is None:
            self.other_events += 1
        elif drop.filter_id != self.filter_id:
            self.foreign[drop.filter_id] = self.foreign.get(drop.filter_id, 0) + 1
        else:
            self.on_drop(drop)

    def close(self) -> None:
        if not self.events:
            return
        if threading.get_ident() in self.callback_threads:
            raise RuntimeError("FwpmNetEventUnsubscribe0 waits for the running callback: never call it from there")
        self.lib.call("FwpmNetEventUnsubscribe0", self.session.handle, self.events)  # raises: still subscribed
        self.events = HANDLE()
        UNTIL_UNSUBSCRIBED.discard(self)
