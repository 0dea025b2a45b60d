"""Windows' own record of net events (`netsh wfp show netevents file=netevents.xml`) read as a trace.

The export lists each stored event (`<netEvents><item>` in the export, `<netEvent>` in the
documented examples and in `netsh wfp capture`'s wfpdiag.xml) with a `<header>` holding
`<timeStamp>` (ISO 8601 UTC, e.g. 2020-05-22T21:29:28.601Z), `<ipProtocol>`, `<localAddrV4>` /
`<remoteAddrV4>` (or their V6 forms), `<localPort>` and `<remotePort>`. Every event becomes one
packet at its time's offset from the earliest; its flow is its protocol, addresses and ports.
The file is streamed with iterparse and each event dropped once read, so a large export reads in
the memory of its schedule. Windows stores times in 100 ns units but the export shows them to the
millisecond: events of one millisecond replay back to back, and the provenance says so.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from harness.inputs import BadInput
from harness.traffic.capture import sha256_of
from harness.traffic.schedule import Provenance, Schedule

_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FLOW_FIELDS = ("ipProtocol", "localAddrV4", "localAddrV6", "localPort", "remoteAddrV4", "remoteAddrV6", "remotePort")


def parse_timestamp(text: str) -> tuple[int, int]:
    """(ns since 1970 UTC, digits of the fraction) of an export's timeStamp; ValueError if it is not one."""
    m = _STAMP.match(text.strip())
    if not m:
        raise ValueError(text)
    whole, fraction, zone = m.groups()
    t = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        t -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    seconds = (t - _EPOCH) // timedelta(seconds=1)
    digits = fraction or ""
    return seconds * 1_000_000_000 + int(digits.ljust(9, "0") or 0), len(digits)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _field(header: ET.Element, name: str) -> str:
    # the V6 addresses appear as <remoteAddrV6.byteArray16> in some exports
    for child in header:
        tag = _local(child.tag)
        if tag == name or tag.startswith(name + "."):
            return (child.text or "").strip()
    return ""


def read_netevents(path: str | Path, trace_events: str = "packets") -> Schedule:
    """The events of a netsh net-event export as a schedule (one packet per event)."""
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise BadInput(f"cannot read net-event file {path}: {exc.strerror or exc}") from None
    times: list[int] = []
    flows: list[int] = []
    flow_ids: dict[tuple[str, ...], int] = {}
    finest = 0
    stack: list[ET.Element] = []
    with stream:
        try:
            for kind, elem in ET.iterparse(stream, events=("start", "end")):
                if kind == "start":
                    stack.append(elem)
                    continue
                stack.pop()
                tag = _local(elem.tag)
                parent = _local(stack[-1].tag) if stack else ""
                if tag == "netEvent" or (tag == "item" and parent == "netEvents"):
                    number = len(times) + 1
                    header = next((c for c in elem if _local(c.tag) == "header"), None)
                    stamp = _field(header, "timeStamp") if header is not None else ""
                    if not stamp:
                        raise BadInput(f"net-event file {path} is malformed: event {number} has no header/timeStamp")
                    try:
                        t, digits = parse_timestamp(stamp)
                    except ValueError:
                        raise BadInput(f"net-event file {path} is malformed: event {number} has timeStamp "
                                       f"{stamp!r}, not an ISO 8601 time such as 2020-05-22T21:29:28.601Z") from None
                    finest = max(finest, digits)
                    key = tuple(_field(header, name) for name in FLOW_FIELDS)
                    times.append(t)
                    flows.append(flow_ids.setdefault(key, len(flow_ids)))
                    if stack:
                        stack[-1].remove(elem)  # read: let it go, so memory holds the schedule only
        except ET.ParseError as exc:
            raise BadInput(f"net-event file {path} is not well-formed XML: {exc}") from None
    if not times:
        raise BadInput(f"net-event file {path} holds no net events (an empty trace)")
    resolution = f"time stamps to 1e-{finest} s" if finest else "time stamps to the second"
    provenance = Provenance(source=str(path), kind="netsh", sha256=sha256_of(path),
                            note=f"{resolution}: events of one tick replay back to back")
    return Schedule(np.asarray(times, dtype=np.int64), np.asarray(flows, dtype=np.int64), trace_events, provenance)
