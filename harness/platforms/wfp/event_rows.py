"""Raw net events: the rows the callback copies and the bulk decoder that reads them after the trial.

The callback copies each FWPM_NET_EVENTn as it is (one copy of the struct: header, type
and the union's pointer) into a row of a preallocated numpy array and, for a classify drop, the
first fields of its FWPM_NET_EVENT_CLASSIFY_DROPn (a second copy) into a row of another. No
ctypes structure is traversed and nothing is decoded per event; the numpy dtypes are built
from the ctypes layouts of abi.py (checked against the SDK by tests/test_wfp_abi.py), so the
decoder reads exactly the bytes Windows wrote.
"""
from __future__ import annotations

import ctypes as C
import itertools
from dataclasses import dataclass

import numpy as np

from harness.platforms.wfp import abi
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.kernel32 import FILETIME_UNIX_EPOCH
from harness.subscriber import preallocated

CLASSIFY_DROP = K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"]
DROP_PREFIX = abi.FWPM_NET_EVENT_CLASSIFY_DROP1  # every drop version that a subscription delivers starts so

# what each event kind is after decoding
MINE, FOREIGN, OTHER_TYPE, INCOMPLETE = 0, 1, 2, 3


def _offset(struct: type, name: str) -> int:
    return getattr(struct, name).offset


def event_dtype(version: int) -> np.dtype:
    """The fields of FWPM_NET_EVENT(version+1) the harness reads, at their SDK offsets."""
    event = abi.EVENT_FOR_SUBSCRIBE[version]
    header = abi.FWPM_NET_EVENT_HEADER0  # the common prefix of every header version
    fields = {"timeStamp": "<u8", "flags": "<u4", "ipVersion": "<u4", "localAddrV4": "<u4",
              "remoteAddrV4": "<u4", "localPort": "<u2", "remotePort": "<u2"}
    names, formats, offsets = list(fields), list(fields.values()), [_offset(header, n) for n in fields]
    names += ["type", "classifyDrop"]
    formats += ["<u4", "<u8"]
    offsets += [_offset(event, "type"), _offset(event, "u")]  # the union's members are all pointers
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": C.sizeof(event)})


DROP_DTYPE = np.dtype({"names": ["filterId", "layerId", "msFwpDirection", "isLoopback"],
                       "formats": ["<u8", "<u2", "<u4", "<i4"],
                       "offsets": [_offset(DROP_PREFIX, n) for n in ("filterId", "layerId", "msFwpDirection",
                                                                     "isLoopback")],
                       "itemsize": C.sizeof(DROP_PREFIX)})


class RawEvents:
    """Preallocated rows for `capacity` events of a FwpmNetEventSubscribe`version` subscription,
    with word views the callback indexes (memoryview indexing gives a plain int, cheaply)."""

    def __init__(self, version: int, capacity: int) -> None:
        self.capacity = capacity
        self.rows = itertools.count()  # the next row to copy into: next() is atomic under the GIL
        self.events = preallocated(capacity, event_dtype(version))
        self.drops = preallocated(capacity, DROP_DTYPE)
        self.thread = preallocated(capacity, np.int64)
        self.event_size, self.drop_size = self.events.itemsize, self.drops.itemsize
        assert self.event_size % 8 == 0 and self.drop_size % 8 == 0  # both hold 8-byte members
        self.words32 = memoryview(self.events.view(np.uint8)).cast("I")
        self.words64 = memoryview(self.events.view(np.uint8)).cast("Q")
        self.drop_words64 = memoryview(self.drops.view(np.uint8)).cast("Q")
        self.type_word = self.events.dtype.fields["type"][1] // 4
        self.pointer_word = self.events.dtype.fields["classifyDrop"][1] // 8
        self.filter_word = DROP_DTYPE.fields["filterId"][1] // 8

    def event_bytes(self, row: int) -> bytes:
        """The FWPM_NET_EVENTn structure copied into `row`, as Windows handed it (its pointers point
        into memory that was Windows' during the callback only): what a user's Python subscriber gets."""
        return self.events[row:row + 1].tobytes()


@dataclass(frozen=True)
class Decoded:
    """One entry per raw row: `kind` (MINE, FOREIGN, OTHER_TYPE, INCOMPLETE) and the
    fields of the harness's drops (meaningful where kind is MINE or FOREIGN)."""

    kind: np.ndarray
    port: np.ndarray       # the harness's destination port (numbers the packet)
    peer_port: np.ndarray  # the sending socket's port (the trial's own, for the harness's packets)
    remote_v4: np.ndarray
    unix_ns: np.ndarray
    filter_id: np.ndarray
    layer_id: np.ndarray
    direction: np.ndarray
    loopback: np.ndarray


def decode(raw: RawEvents, n: int, inbound: bool, filter_id: int) -> Decoded:
    """The first n rows, in bulk. A classify drop whose header does not say that the port, the
    address and the IP version are set, or that is not IPv4, is INCOMPLETE: reading its port or
    address anyway would give the record of another packet."""
    e, d = raw.events[:n], raw.drops[:n]
    copied = e["classifyDrop"] != 0  # the callback copied the drop data of every drop that has it
    port_flag = K["FWPM_NET_EVENT_FLAG_LOCAL_PORT_SET" if inbound else "FWPM_NET_EVENT_FLAG_REMOTE_PORT_SET"]
    addr_flag = K["FWPM_NET_EVENT_FLAG_LOCAL_ADDR_SET" if inbound else "FWPM_NET_EVENT_FLAG_REMOTE_ADDR_SET"]
    needed = port_flag | addr_flag | K["FWPM_NET_EVENT_FLAG_IP_VERSION_SET"]
    is_drop = e["type"] == CLASSIFY_DROP
    complete = ((e["flags"] & needed) == needed) & (e["ipVersion"] == K["FWP_IP_VERSION_V4"])
    kind = np.full(n, OTHER_TYPE, dtype=np.int8)
    kind[is_drop & ~copied] = INCOMPLETE  # a drop without its drop data: whose it is cannot be told
    # the filter id is in the drop data, not in the header: another filter's drop is FOREIGN even
    # when it has no ports or is IPv6 (a runner's own drops); only the harness's filter's can be incomplete
    mine = d["filterId"] == filter_id
    kind[is_drop & copied & ~mine] = FOREIGN
    kind[is_drop & copied & mine] = np.where(complete[is_drop & copied & mine], MINE, INCOMPLETE)
    ticks = e["timeStamp"].astype(np.int64)
    return Decoded(kind=kind,
                   port=(e["localPort"] if inbound else e["remotePort"]).astype(np.int64),
                   peer_port=(e["remotePort"] if inbound else e["localPort"]).astype(np.int64),
                   remote_v4=(e["localAddrV4"] if inbound else e["remoteAddrV4"]).astype(np.int64),
                   unix_ns=(ticks - FILETIME_UNIX_EPOCH) * 100,
                   filter_id=d["filterId"].astype(np.int64), layer_id=d["layerId"].astype(np.int64),
                   direction=d["msFwpDirection"].astype(np.int64), loopback=d["isLoopback"].astype(np.int64))
