"""A net-event subscription: FwpmNetEventSubscribeN at the highest version the library exports,
an optional template, and a ctypes callback that copies what the harness needs out of each
CLASSIFY_DROP event (the event memory is gone once the callback returns) into the subscriber's
Callback. Unsubscribe waits for a running callback, so it is refused from the callback's thread.
"""
from __future__ import annotations

import ctypes as C
import threading
from typing import Callable

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import HANDLE, Library, WfpError, callback_type
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Session, template_conditions
from harness.spec import TemplateSpec

FILETIME_UNIX_EPOCH = 116444736000000000  # 100 ns ticks from 1601-01-01 to 1970-01-01


def filetime_to_unix_ns(ft: abi.FILETIME) -> int:
    ticks = (ft.dwHighDateTime << 32) | ft.dwLowDateTime
    return (ticks - FILETIME_UNIX_EPOCH) * 100


class Subscription:
    """`on_drop(port, unix_ns, layer_id, filter_id, is_loopback, direction, remote_v4)` runs for each
    drop event; `port` is the harness's destination port as WFP reports it for the layer."""

    def __init__(self, lib: Library, session: Session, template: TemplateSpec | None, inbound: bool,
                 on_drop: Callable[..., None]) -> None:
        self.lib, self.session, self.inbound, self.on_drop = lib, session, inbound, on_drop
        self.version = lib.subscribe_version
        self.other_events = 0
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
        self._callback = callback_type(self.version)(self._on_event)  # must outlive the subscription
        self.events = HANDLE()
        rc = lib.subscribe_fn(session.handle, C.byref(sub), self._callback, None, C.byref(self.events))
        if rc:
            raise WfpError(f"FwpmNetEventSubscribe{self.version}", rc)

    def _on_event(self, context, event) -> None:
        self.callback_threads.add(threading.get_ident())
        e = event.contents
        if e.type != K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"] or not e.classifyDrop:
            self.other_events += 1
            return
        h, drop = e.header, e.classifyDrop.contents
        port = h.localPort if self.inbound else h.remotePort
        remote = h.localAddrV4 if self.inbound else h.remoteAddrV4  # host order, as WFP reports IPv4
        self.on_drop(port, filetime_to_unix_ns(h.timeStamp), drop.layerId, drop.filterId,
                     int(getattr(drop, "isLoopback", 0)), int(getattr(drop, "msFwpDirection", 0)), remote)

    def close(self) -> None:
        if not self.events:
            return
        if threading.get_ident() in self.callback_threads:
            raise RuntimeError("FwpmNetEventUnsubscribe0 waits for the running callback: never call it from there")
        events, self.events = self.events, HANDLE()
        self.lib.call("FwpmNetEventUnsubscribe0", self.session.handle, events)
