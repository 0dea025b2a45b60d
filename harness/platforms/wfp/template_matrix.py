"""Which template conditions does a net-event subscription really honour?

The candidates are the condition fields that a net event can carry, read off FWPM_NET_EVENT_HEADER3
and CLASSIFY_DROP2 / CLASSIFY_ALLOW0 (SDK 10.0.22000, ../shared/wfp-abi). Microsoft documents eight
template conditions (protocol, local/remote address and port, scope id, app id, user id); the seed
says more work, NET_EVENT_TYPE among them. FWPM_CONDITION_SCOPE_ID has no GUID in the SDK (fwpmu.h
defines none), so it cannot be asked. Header and payload members without any condition field
(addressFamily, enterpriseId, policyFlags, filterId, layerId, the vSwitch ports) are listed too.

For each field: subscribe with a one-condition template (accepted, or the error's name); of mixed
traffic (two source and two destination addresses and ports, all blocked by one filter) do only
the matching events arrive, compared with a subscription without a template at the same time;
is a template naming the field twice refused.
"""
from __future__ import annotations

import ctypes as C
import os
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.constants import GUIDS
from harness.platforms.wfp.recorder import Recorder, Seen
from harness.spec import FilterSpec
from harness.traffic.safety import check_destinations

DOCUMENTED = {"FWPM_CONDITION_IP_PROTOCOL", "FWPM_CONDITION_IP_LOCAL_ADDRESS", "FWPM_CONDITION_IP_REMOTE_ADDRESS",
              "FWPM_CONDITION_IP_LOCAL_PORT", "FWPM_CONDITION_IP_REMOTE_PORT", "FWPM_CONDITION_ALE_APP_ID",
              "FWPM_CONDITION_ALE_USER_ID"}  # and FWPM_CONDITION_SCOPE_ID, which has no GUID
NO_CONDITION = {"scopeId": "FWPM_CONDITION_SCOPE_ID has no GUID in the SDK (fwpmu.h defines none)",
                **{m: "no condition field" for m in ("addressFamily", "enterpriseId", "policyFlags", "filterId",
                                                     "layerId", "vSwitchSourcePort", "vSwitchDestinationPort")}}
PORT = 62000
SOURCES = ("127.0.0.1", "127.0.0.3")
DESTINATIONS = ("127.0.0.1", "127.0.0.2")
WELL_KNOWN_ADMINISTRATORS_SID = bytes([1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 32, 2, 0, 0])  # S-1-5-32-544


@dataclass(frozen=True)
class Candidate:
    field: str                               # FWPM_CONDITION_*
    member: str                              # the event member it reads
    value: Callable[[Any], Any]              # keep -> FWP_CONDITION_VALUE0 (buffers kept alive in keep)
    matches: Callable[[Seen], bool] | None   # which of the mixed traffic's events it lets through
    match_type: str = "FWP_MATCH_EQUAL"


def _uint(kind: str, number: int):
    def make(keep) -> abi.FWP_CONDITION_VALUE0:
        v = abi.FWP_CONDITION_VALUE0(type=K[kind])
        setattr(v, {"FWP_UINT8": "uint8", "FWP_UINT16": "uint16", "FWP_UINT32": "uint32"}[kind], number)
        return v
    return make


def _blob(data: bytes, kind: str = "FWP_BYTE_BLOB_TYPE", member: str = "byteBlob"):
    def make(keep) -> abi.FWP_CONDITION_VALUE0:
        buf = (C.c_uint8 * len(data)).from_buffer_copy(data)
        blob = abi.FWP_BYTE_BLOB(len(data), C.cast(buf, C.POINTER(C.c_uint8)))
        keep += [buf, blob]
        v = abi.FWP_CONDITION_VALUE0(type=K[kind])
        if member == "byteBlob":
            v.byteBlob = C.pointer(blob)
        else:  # FWP_SID: a pointer to the SID itself
            v.sid = C.cast(buf, C.c_void_p)
        return v
    return make


def _v4(text: str) -> int:
    return int(IPv4Address(text))


def candidates(other_app_id: bytes) -> list[Candidate]:
    """The fields a net event carries that have a condition GUID, each with a value that lets only
    part of the mixed traffic through (or none of it, where the traffic cannot differ in it)."""
    allow = K["FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW"]  # the block filter makes drops: ask for the other type
    return [
        Candidate("FWPM_CONDITION_IP_PROTOCOL", "ipProtocol", _uint("FWP_UINT8", 6), lambda s: s.protocol == 6),
        Candidate("FWPM_CONDITION_IP_LOCAL_ADDRESS", "localAddrV4", _uint("FWP_UINT32", _v4(SOURCES[1])),
                  lambda s: s.local_v4 == _v4(SOURCES[1])),
        Candidate("FWPM_CONDITION_IP_REMOTE_ADDRESS", "remoteAddrV4", _uint("FWP_UINT32", _v4(DESTINATIONS[1])),
                  lambda s: s.remote_v4 == _v4(DESTINATIONS[1])),
        Candidate("FWPM_CONDITION_IP_LOCAL_ADDRESS_V4", "localAddrV4", _uint("FWP_UINT32", _v4(SOURCES[1])),
                  lambda s: s.local_v4 == _v4(SOURCES[1])),
        Candidate("FWPM_CONDITION_IP_REMOTE_ADDRESS_V4", "remoteAddrV4", _uint("FWP_UINT32", _v4(DESTINATIONS[1])),
                  lambda s: s.remote_v4 == _v4(DESTINATIONS[1])),
        Candidate("FWPM_CONDITION_IP_LOCAL_PORT", "localPort", None, None),  # value: the round's own source port
        Candidate("FWPM_CONDITION_IP_REMOTE_PORT", "remotePort", _uint("FWP_UINT16", PORT + 1),
                  lambda s: s.remote_port == PORT + 1),
        Candidate("FWPM_CONDITION_ALE_APP_ID", "appId", _blob(other_app_id), lambda s: False),
        Candidate("FWPM_CONDITION_ALE_USER_ID", "userId", _blob(WELL_KNOWN_ADMINISTRATORS_SID, "FWP_SID", "sid"),
                  lambda s: False),  # a group's SID is no process's user id
        Candidate("FWPM_CONDITION_NET_EVENT_TYPE", "type", _uint("FWP_UINT32", allow), lambda s: s.type == allow),
        Candidate("FWPM_CONDITION_ALE_PACKAGE_ID", "packageSid", _blob(WELL_KNOWN_ADMINISTRATORS_SID, "FWP_SID", "sid"),
                  lambda s: False),
        Candidate("FWPM_CONDITION_ALE_EFFECTIVE_NAME", "effectiveName", _blob(b"w\0f\0p\0c\0a\0p\0\0\0"), None),
        Candidate("FWPM_CONDITION_DIRECTION", "msFwpDirection", _uint("FWP_UINT32", K["FWP_DIRECTION_INBOUND"]),
                  lambda s: s.direction in (K["FWP_DIRECTION_INBOUND"], 0x3900)),
        Candidate("FWPM_CONDITION_REAUTHORIZE_REASON", "reauthReason", _uint("FWP_UINT32", 1), None),
        Candidate("FWPM_CONDITION_ORIGINAL_PROFILE_ID", "originalProfile", _uint("FWP_UINT32", 1), None),
        Candidate("FWPM_CONDITION_CURRENT_PROFILE_ID", "currentProfile", _uint("FWP_UINT32", 1), None),
        Candidate("FWPM_CONDITION_FLAGS", "isLoopback", _uint("FWP_UINT32", 1), None, "FWP_MATCH_FLAGS_ALL_SET"),
    ]


def _conditions(field: str, value, match_type: str, copies: int):
    keep: list[Any] = []
    arr = (abi.FWPM_FILTER_CONDITION0 * copies)()
    for i in range(copies):
        arr[i].fieldKey = abi.GUID.from_text(GUIDS[field])
        arr[i].matchType = K[match_type]
        arr[i].conditionValue = value(keep)
    keep.append(arr)
    return arr, keep


def template_matrix(platform) -> dict[str, Any]:
    """The matrix for this machine: per field, accepted / filters / duplicate refused."""
    lib, session = platform.lib, platform.filters.session
    image_app = C.POINTER(abi.FWP_BYTE_BLOB)()
    lib.call("FwpmGetAppIdFromFileName0", os.__file__, C.byref(image_app))  # a file that sends nothing
    try:
        other_app = bytes(image_app.contents.data[:image_app.contents.size])
    finally:
        lib.free(image_app)
    spec = FilterSpec(remote_port_low=PORT, remote_port_high=PORT + 1)
    filter_id = platform.filters.install(spec, platform.image)
    rows: list[dict[str, Any]] = []
    try:
        for i, cand in enumerate(candidates(other_app)):
            rows.append(_row(platform, lib, session, filter_id, cand, source_port=40000 + 2 * i))
    finally:
        platform.filters.remove()
    rows += [{"field": f"({member})", "member": member, "accepted": None, "filters": None, "duplicate_refused": None,
              "note": why} for member, why in NO_CONDITION.items()]
    return {"subscribe_version": lib.subscribe_version, "rows": rows, "summary": summary(rows)}


def _row(platform, lib, session, filter_id: int, cand: Candidate, source_port: int) -> dict[str, Any]:
    row: dict[str, Any] = {"field": cand.field, "member": cand.member, "documented": cand.field in DOCUMENTED}
    value, matches = cand.value, cand.matches
    if cand.field == "FWPM_CONDITION_IP_LOCAL_PORT":  # this round's second source port
        value, matches = _uint("FWP_UINT16", source_port + 1), (lambda s: s.local_port == source_port + 1)
    arr, keep = _conditions(cand.field, value, cand.match_type, 1)
    try:
        tested = Recorder(lib, session, arr, 1)
    except WfpError as exc:
        return {**row, "accepted": False, "error": exc.name, "filters": None, "duplicate_refused": None}
    row["accepted"] = True
    with Recorder(lib, session) as control, tested:
        packets = [(src, dst, PORT + j) for k, src in enumerate(SOURCES) for j, dst in enumerate(DESTINATIONS)]
        _send_from_ports(packets, source_port)
        control.wait_for(lambda seen: sum(s.filter_id == filter_id for s in seen) >= len(packets), 2.0)
        control.settle(0.15)
        tested.settle(0.15)
        own = [s for s in control.seen if s.filter_id == filter_id]
        got = Counter(s for s in tested.seen if s.filter_id == filter_id)
    if matches is None or not own:
        row["filters"] = None
        row["note"] = "not tested here: the test traffic cannot differ in this field" if own else "no events arrived"
    else:
        expected = Counter(s for s in own if matches(s))
        row["filters"] = got == expected
        row["arrived"], row["expected"], row["offered"] = sum(got.values()), sum(expected.values()), len(own)
    dup, _keep = _conditions(cand.field, value, cand.match_type, 2)
    try:
        Recorder(lib, session, dup, 2).close()
        row["duplicate_refused"] = False
    except WfpError as exc:
        row["duplicate_refused"], row["duplicate_error"] = True, exc.name
    return row


def _send_from_ports(packets: list[tuple[str, str, int]], first_port: int) -> None:
    """Source k of SOURCES sends from first_port + k: the local port is part of the mixed traffic."""
    check_destinations([p[1] for p in packets] + [p[0] for p in packets])
    socks: dict[str, socket.socket] = {}
    try:
        for k, src in enumerate(SOURCES):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks[src] = s
            s.bind((src, first_port + k))
        for src, dst, port in packets:
            try:
                socks[src].sendto(b"wfpcap", (dst, port))
            except OSError:
                pass
    finally:
        for s in socks.values():
            s.close()


def summary(rows: list[dict[str, Any]]) -> str:
    works = [r["field"].removeprefix("FWPM_CONDITION_") for r in rows if r.get("accepted") and r.get("filters")]
    refused = [f"{r['field'].removeprefix('FWPM_CONDITION_')} ({r['error']})" for r in rows if r.get("accepted") is False]
    loose = [r["field"].removeprefix("FWPM_CONDITION_") for r in rows if r.get("accepted") and r.get("filters") is False]
    return (f"template conditions that filter: {', '.join(works) or 'none'}; refused: {', '.join(refused) or 'none'}"
            + (f"; accepted but not filtering: {', '.join(loose)}" if loose else ""))
