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
is a template naming the field twice refused. Where the correct answer is no event at all (a
protocol, an app or an event type the traffic does not have), the field is honoured only if a
positive control of the same field (UDP, this process's own app id, CLASSIFY_DROP, outbound) lets
the traffic through at the same time; without one (ALE_USER_ID, ALE_PACKAGE_ID) it is not judged.
"""
from __future__ import annotations

import ctypes as C
import os
import socket
from collections import Counter
from contextlib import nullcontext
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.constants import GUIDS
from harness.platforms.wfp.kernel32 import Kernel32
from harness.platforms.wfp.recorder import Recorder, Seen
from harness.results.records import ConditionRow, PositiveControl, TemplateMatrix
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
    # a value of the same field that lets the traffic through, and which of it: where the candidate's
    # correct answer is silence, a template that suppresses everything would read the same without it
    positive: tuple[Callable[[Any], Any], Callable[[Seen], bool]] | None = None


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


def candidates(other_app_id: bytes, own_app_id: bytes) -> list[Candidate]:
    """The fields a net event carries that have a condition GUID, each with a value that lets only
    part of the mixed traffic through (or none of it, where the traffic cannot differ in it: then,
    where one can be had, with a positive control that lets all of it through)."""
    allow = K["FWPM_NET_EVENT_TYPE_CLASSIFY_ALLOW"]  # the block filter makes drops: ask for the other type
    drop = K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"]
    outbound = K["FWP_DIRECTION_OUTBOUND"]
    return [
        Candidate("FWPM_CONDITION_IP_PROTOCOL", "ipProtocol", _uint("FWP_UINT8", 6), lambda s: s.protocol == 6,
                  positive=(_uint("FWP_UINT8", 17), lambda s: s.protocol == 17)),
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
        Candidate("FWPM_CONDITION_ALE_APP_ID", "appId", _blob(other_app_id), lambda s: False,
                  positive=(_blob(own_app_id), lambda s: True)),  # this process sends the mixed traffic
        Candidate("FWPM_CONDITION_ALE_USER_ID", "userId", _blob(WELL_KNOWN_ADMINISTRATORS_SID, "FWP_SID", "sid"),
                  lambda s: False),  # a group's SID is no process's user id
        Candidate("FWPM_CONDITION_NET_EVENT_TYPE", "type", _uint("FWP_UINT32", allow), lambda s: s.type == allow,
                  positive=(_uint("FWP_UINT32", drop), lambda s: s.type == drop)),
        Candidate("FWPM_CONDITION_ALE_PACKAGE_ID", "packageSid", _blob(WELL_KNOWN_ADMINISTRATORS_SID, "FWP_SID", "sid"),
                  lambda s: False),
        Candidate("FWPM_CONDITION_ALE_EFFECTIVE_NAME", "effectiveName", _blob(b"w\0f\0p\0c\0a\0p\0\0\0"), None),
        Candidate("FWPM_CONDITION_DIRECTION", "msFwpDirection", _uint("FWP_UINT32", K["FWP_DIRECTION_INBOUND"]),
                  lambda s: s.direction in (K["FWP_DIRECTION_INBOUND"], 0x3900),
                  positive=(_uint("FWP_UINT32", outbound), lambda s: s.direction in (outbound, 0x3901))),
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


def template_matrix(platform) -> TemplateMatrix:
    """The matrix for this machine: per field, accepted / filters / duplicate refused."""
    lib, session = platform.lib, platform.filters.session
    other_app = _app_id(lib, os.__file__)  # a file that sends nothing
    own_app = _app_id(lib, Kernel32(lib.override).module_file_name())  # this process: it sends the mixed traffic
    spec = FilterSpec(remote_port_low=PORT, remote_port_high=PORT + 1)
    filter_id = platform.filters.install(spec, platform.image)
    rows: list[ConditionRow] = []
    try:
        for i, cand in enumerate(candidates(other_app, own_app)):
            rows.append(_row(platform, lib, session, filter_id, cand, source_port=40000 + 2 * i))
    finally:
        platform.filters.remove()
    rows += [ConditionRow(f"({member})", member, note=why) for member, why in NO_CONDITION.items()]
    return TemplateMatrix(lib.subscribe_version, rows, summary(rows))


def _app_id(lib, path: str) -> bytes:
    blob = C.POINTER(abi.FWP_BYTE_BLOB)()
    lib.call("FwpmGetAppIdFromFileName0", path, C.byref(blob))
    try:
        return bytes(blob.contents.data[:blob.contents.size])
    finally:
        lib.free(blob)


def _row(platform, lib, session, filter_id: int, cand: Candidate, source_port: int) -> ConditionRow:
    row = ConditionRow(cand.field, cand.member, documented=cand.field in DOCUMENTED)
    value, matches = cand.value, cand.matches
    if cand.field == "FWPM_CONDITION_IP_LOCAL_PORT":  # this round's second source port
        value, matches = _uint("FWP_UINT16", source_port + 1), (lambda s: s.local_port == source_port + 1)
    arr, keep = _conditions(cand.field, value, cand.match_type, 1)
    try:
        tested = Recorder(lib, session, arr, 1)
    except WfpError as exc:
        row.accepted, row.error = False, exc.name
        return row
    row.accepted = True
    positive = None
    if cand.positive is not None:
        parr, pkeep = _conditions(cand.field, cand.positive[0], cand.match_type, 1)
        try:
            positive = Recorder(lib, session, parr, 1)
        except WfpError as exc:
            row.positive_error = exc.name
    with Recorder(lib, session) as everything, tested, positive or nullcontext():
        packets = [(src, dst, PORT + j) for k, src in enumerate(SOURCES) for j, dst in enumerate(DESTINATIONS)]
        sockets = _send_from_ports(packets, source_port)
        try:
            everything.wait_for(lambda seen: sum(s.filter_id == filter_id for s in seen) >= len(packets), 2.0)
            for rec in (everything, tested, positive):
                if rec is not None:
                    rec.settle(0.15)
        finally:
            for sock in sockets:  # open until now: whoever classifies may look up the app that owns them
                sock.close()
        own = [s for s in everything.seen if s.filter_id == filter_id]
        got = Counter(s for s in tested.seen if s.filter_id == filter_id)
        positive_got = Counter(s for s in positive.seen if s.filter_id == filter_id) if positive else None
    if matches is None or not own:
        row.filters = None
        row.note = "not tested here: the test traffic cannot differ in this field" if own else "no events arrived"
    else:
        expected = Counter(s for s in own if matches(s))
        row.arrived, row.expected, row.offered = sum(got.values()), sum(expected.values()), len(own)
        _judge(row, got == expected, bool(expected), cand, own, positive_got)
    dup, _keep = _conditions(cand.field, value, cand.match_type, 2)
    try:
        Recorder(lib, session, dup, 2).close()
        row.duplicate_refused = False
    except WfpError as exc:
        row.duplicate_refused, row.duplicate_error = True, exc.name
    return row


def _judge(row: ConditionRow, as_expected: bool, some_expected: bool, cand: Candidate, own: list[Seen],
           positive_got: Counter | None) -> None:
    """Honoured (`filters`) only with evidence: the expected part of the traffic arrived, or, where
    the correct answer is silence, the silence came beside a positive control that let the traffic
    through; silence without one says nothing (a template that suppresses everything is silent too)."""
    if some_expected:
        row.filters = as_expected
        return
    if positive_got is None:
        row.filters, row.note = None, (f"silent ({len(own)} offered, none expected), but no positive control "
                                       "here: a template that suppresses everything would be silent too")
        return
    want = Counter(s for s in own if cand.positive[1](s))
    passed = sum(want.values()) > 0 and positive_got == want
    row.filters = as_expected and passed
    row.positive_control = PositiveControl(sum(positive_got.values()), sum(want.values()))
    if not passed:
        row.note = (f"its positive control got {sum(positive_got.values())} of {sum(want.values())}: this template "
                    "suppresses everything")


def _send_from_ports(packets: list[tuple[str, str, int]], first_port: int) -> list[socket.socket]:
    """Source k of SOURCES sends from first_port + k: the local port is part of the mixed traffic.
    The sockets are returned open, to be closed once their events are counted: the app id of a
    packet is the app that owns its socket (ALE_APP_ID and its positive control ask for it)."""
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
    except BaseException:
        for s in socks.values():
            s.close()
        raise
    return list(socks.values())


def summary(rows: list[ConditionRow]) -> str:
    """The matrix in one sentence: honoured, refused, accepted but not filtering, not judged."""
    def names(keep: Callable[[ConditionRow], bool]) -> list[str]:
        return [r.field.removeprefix("FWPM_CONDITION_") for r in rows if keep(r)]

    works = names(lambda r: bool(r.accepted and r.filters))
    refused = [f"{r.field.removeprefix('FWPM_CONDITION_')} ({r.error})" for r in rows if r.accepted is False]
    loose = names(lambda r: bool(r.accepted) and r.filters is False)
    unjudged = names(lambda r: bool(r.accepted) and r.filters is None and (r.note or "").startswith("silent"))
    return (f"template conditions honoured: {', '.join(works) or 'none'}; refused: {', '.join(refused) or 'none'}"
            + (f"; accepted but not filtering: {', '.join(loose)}" if loose else "")
            + (f"; accepted, silent, no positive control to tell: {', '.join(unjudged)}" if unjudged else ""))
