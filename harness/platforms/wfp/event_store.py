"""An independent count: the Base Filtering Engine's own net-event store, read after a trial.

FwpmNetEventCreateEnumHandle0 takes a snapshot of the store with a template (the trial's time
window and address range), FwpmNetEventEnumN pages through it at the version whose structure the
subscription gets (SubscribeN delivers FWPM_NET_EVENT(N+1), so EnumN+1), each page freed with
FwpmFreeMemory0, FwpmNetEventDestroyEnumHandle0 ends it. Only events of the harness's own filter
are counted (checked per event). Enumeration is reported to leak memory on some Windows releases
(Windows-classic-samples #202/#322), so it runs once per trial, never in a loop.

The store is a circular log of undocumented size. When a burst is larger than the store, its
oldest events are gone by the time it is read: then nothing older than the trial's first send is
left in the store, and the count says "store too small" instead of blaming event generation.
"""
from __future__ import annotations

import ctypes as C
import ipaddress
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import HANDLE, Library, WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Conditions, Session
from harness.platforms.wfp.kernel32 import FILETIME_UNIX_EPOCH

PAGE = 1000  # entries per FwpmNetEventEnumN call (tailscale/wf asks for 100, WFPExplorer for 1024)


def filetime(unix_ns: int) -> abi.FILETIME:
    ticks = max(0, unix_ns // 100 + FILETIME_UNIX_EPOCH)
    return abi.FILETIME(ticks & 0xFFFFFFFF, ticks >> 32)


def _template(start_ns: int, end_ns: int, conditions: Conditions | None):
    t = abi.FWPM_NET_EVENT_ENUM_TEMPLATE0(startTime=filetime(start_ns), endTime=filetime(end_ns))
    keep = [t]
    if conditions is not None and conditions.items:
        arr, n = conditions.array()
        t.numFilterConditions = n
        t.filterCondition = C.cast(arr, C.POINTER(abi.FWPM_FILTER_CONDITION0))
        keep += [arr, conditions]
    return t, keep


def enumerate_store(lib: Library, session: Session, start_ns: int, end_ns: int, conditions: Conditions | None,
                    visit: Callable[[Any], None], limit: int | None = None) -> None:
    """visit(FWPM_NET_EVENTn) for each stored event in the window that the template matches (up to
    `limit`); the event memory is valid only during the call."""
    if lib.enum_fn is None:
        raise RuntimeError(f"{lib.path} exports no FwpmNetEventEnum{lib.enum_version}")
    template, _keep = _template(start_ns, end_ns, conditions)
    handle = HANDLE()
    lib.call("FwpmNetEventCreateEnumHandle0", session.handle, C.byref(template), C.byref(handle))
    try:
        seen = 0
        while limit is None or seen < limit:
            want = PAGE if limit is None else min(PAGE, limit - seen)
            entries = C.POINTER(C.POINTER(abi.EVENT_FOR_SUBSCRIBE[lib.subscribe_version]))()
            got = C.c_uint32()
            rc = lib.enum_fn(session.handle, handle, want, C.byref(entries), C.byref(got))
            if rc:
                raise WfpError(f"FwpmNetEventEnum{lib.enum_version}", rc)
            try:
                for i in range(got.value):
                    visit(entries[i].contents)
            finally:
                lib.free(entries)
            seen += got.value
            if got.value == 0:
                break
    finally:
        lib.call("FwpmNetEventDestroyEnumHandle0", session.handle, handle)


def count_trial(lib: Library, session: Session, filter_id: int, start_ns: int, end_ns: int, prefix: str,
                inbound: bool, decode: Callable[[int, int], int], listened: np.ndarray) -> dict[str, Any]:
    """What the store recorded of one trial: `recorded` (events of the harness's filter), the
    distinct packets they name, and whether the store was too small to hold the trial. `listened`
    (one flag per packet sent) says which packets a filter could see at all."""
    conditions = Conditions()
    conditions.v4_prefix("FWPM_CONDITION_IP_LOCAL_ADDRESS" if inbound else "FWPM_CONDITION_IP_REMOTE_ADDRESS",
                         ipaddress.IPv4Network(prefix))
    tuples: list[tuple[int, int]] = []
    drop = K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"]

    def visit(e) -> None:
        if e.type == drop and e.classifyDrop and e.classifyDrop.contents.filterId == filter_id:
            h = e.header
            tuples.append((h.localAddrV4, h.localPort) if inbound else (h.remoteAddrV4, h.remotePort))

    enumerate_store(lib, session, start_ns, end_ns, conditions, visit)
    seqs = np.unique(np.fromiter((decode(a, p) for a, p in tuples), dtype=np.int64, count=len(tuples)))
    seqs = seqs[(seqs >= 0) & (seqs < len(listened))]
    seqs = seqs[listened[seqs]]
    seen = np.flatnonzero(listened)
    out: dict[str, Any] = {"recorded": len(tuples), "recorded_packets": int(len(seqs)), "store_too_small": False}
    # a wrapped store lost the trial's head: what is left is its tail, and nothing older than it
    if 0 < len(seqs) < len(seen) and seqs[0] == seen[len(seen) - len(seqs)]:
        older: list[int] = []
        enumerate_store(lib, session, 0, start_ns - 1, None, lambda e: older.append(1), limit=1)
        out["store_too_small"] = not older
    return out


def loss_stage(sent: int, recorded_packets: int | None, delivered_packets: int, store_too_small: bool) -> str:
    """Where the trial lost events: before generation (sent > recorded) or in delivery (recorded >
    delivered), by the store's count; or why that cannot be told."""
    if recorded_packets is None:
        return "unknown (the store could not be read)"
    if store_too_small:
        return "unknown (store too small for this trial: its oldest events were overwritten)"
    where = []
    if recorded_packets < sent:
        where.append(f"generation ({sent - recorded_packets} never recorded)")
    if delivered_packets < recorded_packets:
        where.append(f"delivery ({recorded_packets - delivered_packets} recorded, not delivered)")
    return " and ".join(where) or "none"
