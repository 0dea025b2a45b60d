"""Engine sessions, the sublayer and the blocking filter.

Two sessions, as WFP requires: engine options are global, persist across reboots and cannot be
set from a dynamic session or inside a transaction, so a non-dynamic session handles them
(options.py); a dynamic session owns the sublayer and the filters, so they vanish with the
process even if it crashes.
"""
from __future__ import annotations

import ctypes as C
import ipaddress
import uuid
from typing import Any

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import HANDLE, Library, release_callbacks
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.constants import GUIDS, INBOUND_LAYERS
from harness.spec import PROTOCOLS, FilterSpec, TemplateSpec


class Session:
    """An engine session. `key`: open the session of that key (refused with FWP_E_ALREADY_EXISTS
    while another process holds it: how a later run tells a live run from a killed one)."""

    def __init__(self, lib: Library, dynamic: bool, name: str, key: str | None = None) -> None:
        self.lib = lib
        self.key = abi.GUID.from_text(key or str(uuid.uuid4()))
        self._name = C.create_unicode_buffer(name)
        s = abi.FWPM_SESSION0()
        s.sessionKey = self.key
        s.displayData.name = C.cast(self._name, C.c_void_p)
        s.flags = K["FWPM_SESSION_FLAG_DYNAMIC"] if dynamic else 0
        self.handle = HANDLE()
        lib.call("FwpmEngineOpen0", None, K["RPC_C_AUTHN_WINNT"], None, C.byref(s), C.byref(self.handle))
        self.dynamic = dynamic

    def close(self) -> None:
        if self.handle:
            self.lib.call("FwpmEngineClose0", self.handle)
            self.handle = HANDLE()
            release_callbacks(self)  # the session's subscriptions ended with it

    def get_option(self, option: int) -> int:
        value = C.POINTER(abi.FWP_VALUE0)()
        self.lib.call("FwpmEngineGetOption0", self.handle, option, C.byref(value))
        try:
            return int(value.contents.uint32)
        finally:
            self.lib.free(value)

    def set_option(self, option: int, number: int) -> None:
        value = abi.FWP_VALUE0(type=K["FWP_UINT32"])
        value.uint32 = number
        self.lib.call("FwpmEngineSetOption0", self.handle, option, C.byref(value))


class Conditions:
    """An array of FWPM_FILTER_CONDITION0 and every buffer it points to, kept alive together."""

    def __init__(self) -> None:
        self.items: list[tuple[abi.GUID, int, abi.FWP_CONDITION_VALUE0]] = []
        self._keep: list[Any] = []

    def _add(self, field: str, match: str, value: abi.FWP_CONDITION_VALUE0) -> None:
        self.items.append((abi.GUID.from_text(GUIDS[field]), K[match], value))

    def uint(self, field: str, kind: str, number: int) -> None:
        v = abi.FWP_CONDITION_VALUE0(type=K[kind])
        setattr(v, {"FWP_UINT8": "uint8", "FWP_UINT16": "uint16", "FWP_UINT32": "uint32"}[kind], number)
        self._add(field, "FWP_MATCH_EQUAL", v)

    def port_range(self, field: str, low: int, high: int) -> None:
        if low == high:
            self.uint(field, "FWP_UINT16", low)
            return
        r = abi.FWP_RANGE0()
        r.valueLow.type = r.valueHigh.type = K["FWP_UINT16"]
        r.valueLow.uint16, r.valueHigh.uint16 = low, high
        self._keep.append(r)
        v = abi.FWP_CONDITION_VALUE0(type=K["FWP_RANGE_TYPE"])
        v.rangeValue = C.pointer(r)
        self._add(field, "FWP_MATCH_RANGE", v)

    def v4_prefix(self, field: str, network: ipaddress.IPv4Network) -> None:
        m = abi.FWP_V4_ADDR_AND_MASK(int(network.network_address), int(network.netmask))  # host order
        self._keep.append(m)
        v = abi.FWP_CONDITION_VALUE0(type=K["FWP_V4_ADDR_MASK"])
        v.v4AddrMask = C.pointer(m)
        self._add(field, "FWP_MATCH_EQUAL", v)

    def blob(self, field: str, blob_pointer) -> None:
        v = abi.FWP_CONDITION_VALUE0(type=K["FWP_BYTE_BLOB_TYPE"])
        v.byteBlob = blob_pointer
        self._add(field, "FWP_MATCH_EQUAL", v)

    def array(self):
        keys = [str(k) for k, _, _ in self.items]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:  # WFP answers FWP_E_DUPLICATE_CONDITION; say which before calling
            names = [name for name, text in GUIDS.items() if text in dupes]
            raise ValueError(f"duplicate condition {', '.join(names)}: WFP rejects a template or filter "
                             "that names a field twice")
        arr = (abi.FWPM_FILTER_CONDITION0 * max(1, len(self.items)))()
        for i, (key, match, value) in enumerate(self.items):
            arr[i].fieldKey, arr[i].matchType, arr[i].conditionValue = key, match, value
        self._keep.append(arr)
        return arr, len(self.items)


def template_conditions(template: TemplateSpec, inbound: bool) -> Conditions:
    """TemplateSpec -> WFP conditions (AND'ed). Ports and addresses are as WFP reports them for the
    layer: inbound layers see the harness's destination port as the *local* port."""
    c = Conditions()
    for cond in template.conditions:
        if cond.field == "net_event_type":
            c.uint("FWPM_CONDITION_NET_EVENT_TYPE", "FWP_UINT32", int(cond.value))
        elif cond.field == "protocol":
            c.uint("FWPM_CONDITION_IP_PROTOCOL", "FWP_UINT8", PROTOCOLS.get(str(cond.value), cond.value))
        elif cond.field == "remote_address":
            field = "FWPM_CONDITION_IP_LOCAL_ADDRESS" if inbound else "FWPM_CONDITION_IP_REMOTE_ADDRESS"
            if "/" in str(cond.value):  # a prefix: FWP_V4_ADDR_MASK
                c.v4_prefix(field, ipaddress.IPv4Network(str(cond.value)))
            else:
                c.uint(field, "FWP_UINT32", int(ipaddress.IPv4Address(str(cond.value))))
        elif cond.field == "remote_port":
            field = "FWPM_CONDITION_IP_LOCAL_PORT" if inbound else "FWPM_CONDITION_IP_REMOTE_PORT"
            c.port_range(field, int(cond.value), int(cond.high if cond.high is not None else cond.value))
    return c


class FilterSession:
    """The dynamic session: an own sublayer and one blocking filter at a time."""

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self.session = Session(lib, dynamic=True, name="wfpcap filters")
        self.sublayer_key = abi.GUID.from_text(str(uuid.uuid4()))
        self._names = [C.create_unicode_buffer("wfpcap sublayer"), C.create_unicode_buffer("wfpcap block")]
        sl = abi.FWPM_SUBLAYER0()
        sl.subLayerKey = self.sublayer_key
        sl.displayData.name = C.cast(self._names[0], C.c_void_p)
        sl.weight = 0x7FFF
        try:
            lib.call("FwpmSubLayerAdd0", self.session.handle, C.byref(sl), None)
        except BaseException:
            self.session.close()
            raise
        self.filter_id: int | None = None
        self.spec: FilterSpec | None = None
        self.action = "block"

    def install(self, spec: FilterSpec, image: str | None = None, action: str = "block") -> int:
        """The blocking filter for `spec` (or a permit: the allow-visibility experiment); `image`:
        the file of the process that sends (its app id is the ALE layers' app-id condition when the
        spec asks to match its own process)."""
        if spec == self.spec and action == self.action and self.filter_id is not None:
            return self.filter_id
        self.remove()
        inbound = spec.layer in INBOUND_LAYERS
        c = Conditions()
        c.uint("FWPM_CONDITION_IP_PROTOCOL", "FWP_UINT8", PROTOCOLS[spec.protocol])
        # the harness's destination: the remote side of an outbound packet, the local side of an inbound one
        c.v4_prefix("FWPM_CONDITION_IP_LOCAL_ADDRESS" if inbound else "FWPM_CONDITION_IP_REMOTE_ADDRESS",
                    ipaddress.IPv4Network(spec.remote_prefix))
        c.port_range("FWPM_CONDITION_IP_LOCAL_PORT" if inbound else "FWPM_CONDITION_IP_REMOTE_PORT",
                     spec.remote_port_low, spec.remote_port_high)
        app_id = None
        if spec.match_own_process and spec.layer.startswith("ALE_"):
            if not image:
                raise ValueError("a filter that matches its own process needs the sending process's image")
            app_id = C.POINTER(abi.FWP_BYTE_BLOB)()
            self.lib.call("FwpmGetAppIdFromFileName0", image, C.byref(app_id))
            c.blob("FWPM_CONDITION_ALE_APP_ID", app_id)
        try:
            arr, n = c.array()
            f = abi.FWPM_FILTER0()
            f.displayData.name = C.cast(self._names[1], C.c_void_p)
            f.layerKey = abi.GUID.from_text(GUIDS[f"FWPM_LAYER_{spec.layer}"])
            f.subLayerKey = self.sublayer_key
            f.weight.type = K["FWP_EMPTY"]
            f.numFilterConditions = n
            f.filterCondition = C.cast(arr, C.POINTER(abi.FWPM_FILTER_CONDITION0))
            f.action.type = K["FWP_ACTION_PERMIT" if action == "permit" else "FWP_ACTION_BLOCK"]
            filter_id = C.c_uint64()
            self.lib.call("FwpmFilterAdd0", self.session.handle, C.byref(f), None, C.byref(filter_id))
        finally:
            if app_id:
                self.lib.free(app_id)
        self.filter_id, self.spec, self.action = int(filter_id.value), spec, action
        return self.filter_id

    def remove(self) -> None:
        if self.filter_id is not None:
            self.lib.call("FwpmFilterDeleteById0", self.session.handle, self.filter_id)
            self.filter_id, self.spec = None, None

    def close(self) -> None:
        self.session.close()  # dynamic: the filter and the sublayer go with it


def census(lib: Library, session: Session) -> dict[str, Any]:
    """Who else subscribes to net events (session keys only: WFP does not say who they are)."""
    entries = C.POINTER(C.POINTER(abi.FWPM_NET_EVENT_SUBSCRIPTION0))()
    count = C.c_uint32()
    lib.call("FwpmNetEventSubscriptionsGet0", session.handle, C.byref(entries), C.byref(count))
    try:
        keys = [str(entries[i].contents.sessionKey) for i in range(count.value)]
    finally:
        lib.free(entries)
    return {"subscriptions": len(keys), "session_keys": keys}


def open_sessions(lib: Library, session: Session) -> list[tuple[str, int]]:
    """Every session the engine has open, as (session key, process id): FwpmSessionEnum0 over a
    snapshot taken by FwpmSessionCreateEnumHandle0, in pages of 100, each freed with FwpmFreeMemory0."""
    handle = HANDLE()
    lib.call("FwpmSessionCreateEnumHandle0", session.handle, None, C.byref(handle))
    out: list[tuple[str, int]] = []
    try:
        while True:
            entries = C.POINTER(C.POINTER(abi.FWPM_SESSION0))()
            got = C.c_uint32()
            lib.call("FwpmSessionEnum0", session.handle, handle, 100, C.byref(entries), C.byref(got))
            try:
                out += [(str(entries[i].contents.sessionKey), int(entries[i].contents.processId)) for i in range(got.value)]
            finally:
                lib.free(entries)
            if got.value < 100:
                return out
    finally:
        lib.call("FwpmSessionDestroyEnumHandle0", session.handle, handle)
