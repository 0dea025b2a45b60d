"""ctypes layouts of the WFP structures the backend touches (Windows SDK 10.0.22000, x64).

Fixed-width types only, so the layout is the same on every OS that runs the tests; member names
are the SDK's, anonymous unions are anonymous here too. tests/test_wfp_abi.py compares every
size, alignment and field offset with ../shared/wfp-abi/x64-layouts.json.
"""
from __future__ import annotations

import ctypes as C
import sys
import uuid

u8, u16, u32, u64 = C.c_uint8, C.c_uint16, C.c_uint32, C.c_uint64
i8, i16, i32, i64 = C.c_int8, C.c_int16, C.c_int32, C.c_int64
BOOL = C.c_int32
PTR = C.c_void_p  # pointers the backend never follows (wchar_t*, SID*, ...)


class GUID(C.Structure):
    _fields_ = [("Data1", u32), ("Data2", u16), ("Data3", u16), ("Data4", u8 * 8)]

    @classmethod
    def from_text(cls, text: str) -> "GUID":
        return cls.from_buffer_copy(uuid.UUID(text).bytes_le)

    def __str__(self) -> str:
        return str(uuid.UUID(bytes_le=bytes(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GUID) and bytes(self) == bytes(other)

    def __hash__(self) -> int:
        return hash(bytes(self))


class FILETIME(C.Structure):
    _fields_ = [("dwLowDateTime", u32), ("dwHighDateTime", u32)]


class FWP_BYTE_BLOB(C.Structure):
    _fields_ = [("size", u32), ("data", C.POINTER(u8))]


class FWP_BYTE_ARRAY16(C.Structure):
    _fields_ = [("byteArray16", u8 * 16)]


class FWP_BYTE_ARRAY6(C.Structure):
    _fields_ = [("byteArray6", u8 * 6)]


class FWP_V4_ADDR_AND_MASK(C.Structure):
    _fields_ = [("addr", u32), ("mask", u32)]


class FWP_V6_ADDR_AND_MASK(C.Structure):
    _fields_ = [("addr", u8 * 16), ("prefixLength", u8)]


_VALUE_MEMBERS = [
    ("uint8", u8), ("uint16", u16), ("uint32", u32), ("uint64", C.POINTER(u64)), ("int8", i8), ("int16", i16),
    ("int32", i32), ("int64", C.POINTER(i64)), ("float32", C.c_float), ("double64", C.POINTER(C.c_double)),
    ("byteArray16", C.POINTER(FWP_BYTE_ARRAY16)), ("byteBlob", C.POINTER(FWP_BYTE_BLOB)), ("sid", PTR),
    ("sd", C.POINTER(FWP_BYTE_BLOB)), ("tokenInformation", PTR), ("tokenAccessInformation", C.POINTER(FWP_BYTE_BLOB)),
    ("unicodeString", PTR), ("byteArray6", C.POINTER(FWP_BYTE_ARRAY6)),
]


class _ValueUnion(C.Union):
    _fields_ = _VALUE_MEMBERS


class FWP_VALUE0(C.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("type", u32), ("u", _ValueUnion)]


class FWP_RANGE0(C.Structure):
    _fields_ = [("valueLow", FWP_VALUE0), ("valueHigh", FWP_VALUE0)]


class _ConditionValueUnion(C.Union):
    _fields_ = _VALUE_MEMBERS + [("v4AddrMask", C.POINTER(FWP_V4_ADDR_AND_MASK)),
                                 ("v6AddrMask", C.POINTER(FWP_V6_ADDR_AND_MASK)),
                                 ("rangeValue", C.POINTER(FWP_RANGE0))]


class FWP_CONDITION_VALUE0(C.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("type", u32), ("u", _ConditionValueUnion)]


class FWPM_DISPLAY_DATA0(C.Structure):
    _fields_ = [("name", PTR), ("description", PTR)]


class FWPM_SESSION0(C.Structure):
    _fields_ = [("sessionKey", GUID), ("displayData", FWPM_DISPLAY_DATA0), ("flags", u32),
                ("txnWaitTimeoutInMSec", u32), ("processId", u32), ("sid", PTR), ("username", PTR),
                ("kernelMode", BOOL)]


class FWPM_SUBLAYER0(C.Structure):
    _fields_ = [("subLayerKey", GUID), ("displayData", FWPM_DISPLAY_DATA0), ("flags", u32),
                ("providerKey", C.POINTER(GUID)), ("providerData", FWP_BYTE_BLOB), ("weight", u16)]


class _ActionUnion(C.Union):
    _fields_ = [("filterType", GUID), ("calloutKey", GUID)]


class FWPM_ACTION0(C.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("type", u32), ("u", _ActionUnion)]


class FWPM_FILTER_CONDITION0(C.Structure):
    _fields_ = [("fieldKey", GUID), ("matchType", u32), ("conditionValue", FWP_CONDITION_VALUE0)]


class _FilterContextUnion(C.Union):
    _fields_ = [("rawContext", u64), ("providerContextKey", GUID)]


class FWPM_FILTER0(C.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("filterKey", GUID), ("displayData", FWPM_DISPLAY_DATA0), ("flags", u32),
                ("providerKey", C.POINTER(GUID)), ("providerData", FWP_BYTE_BLOB), ("layerKey", GUID),
                ("subLayerKey", GUID), ("weight", FWP_VALUE0), ("numFilterConditions", u32),
                ("filterCondition", C.POINTER(FWPM_FILTER_CONDITION0)), ("action", FWPM_ACTION0),
                ("u", _FilterContextUnion), ("reserved", C.POINTER(GUID)), ("filterId", u64),
                ("effectiveWeight", FWP_VALUE0)]


class FWPM_LAYER0(C.Structure):
    _fields_ = [("layerKey", GUID), ("displayData", FWPM_DISPLAY_DATA0), ("flags", u32), ("numFields", u32),
                ("field", PTR), ("defaultSubLayerKey", GUID), ("layerId", u16)]


class FWPM_NET_EVENT_ENUM_TEMPLATE0(C.Structure):
    _fields_ = [("startTime", FILETIME), ("endTime", FILETIME), ("numFilterConditions", u32),
                ("filterCondition", C.POINTER(FWPM_FILTER_CONDITION0))]


class FWPM_NET_EVENT_SUBSCRIPTION0(C.Structure):
    _fields_ = [("enumTemplate", C.POINTER(FWPM_NET_EVENT_ENUM_TEMPLATE0)), ("flags", u32), ("sessionKey", GUID)]


_HEADER0_FIELDS = [("timeStamp", FILETIME), ("flags", u32), ("ipVersion", u32), ("ipProtocol", u8)]


class _LocalAddr(C.Union):
    _fields_ = [("localAddrV4", u32), ("localAddrV6", FWP_BYTE_ARRAY16)]


class _RemoteAddr(C.Union):
    _fields_ = [("remoteAddrV4", u32), ("remoteAddrV6", FWP_BYTE_ARRAY16)]


_HEADER_COMMON = _HEADER0_FIELDS + [("_local", _LocalAddr), ("_remote", _RemoteAddr), ("localPort", u16),
                                    ("remotePort", u16), ("scopeId", u32), ("appId", FWP_BYTE_BLOB), ("userId", PTR)]


class FWPM_NET_EVENT_HEADER0(C.Structure):
    _anonymous_ = ("_local", "_remote")
    _fields_ = _HEADER_COMMON


class _Header1Ethernet(C.Structure):
    """The reserved Ethernet fields of HEADER1 (an aborted design, say public subscribers)."""
    _fields_ = [("reserved2", FWP_BYTE_ARRAY6), ("reserved3", FWP_BYTE_ARRAY6), ("reserved4", u32),
                ("reserved5", u32), ("reserved6", u16), ("reserved7", u32), ("reserved8", u32), ("reserved9", u16),
                ("reserved10", u64)]


class _Header1Inner(C.Union):
    _anonymous_ = ("eth",)
    _fields_ = [("eth", _Header1Ethernet)]


class _Header1Reserved(C.Structure):
    _anonymous_ = ("inner",)
    _fields_ = [("reserved1", u32), ("inner", _Header1Inner)]


class _Header1Union(C.Union):
    _anonymous_ = ("res",)
    _fields_ = [("res", _Header1Reserved)]


class FWPM_NET_EVENT_HEADER1(C.Structure):
    _anonymous_ = ("_local", "_remote", "_reserved")
    _fields_ = _HEADER_COMMON + [("_reserved", _Header1Union)]


class FWPM_NET_EVENT_HEADER2(C.Structure):
    _anonymous_ = ("_local", "_remote")
    _fields_ = _HEADER_COMMON + [("addressFamily", u32), ("packageSid", PTR)]


class FWPM_NET_EVENT_HEADER3(C.Structure):
    _anonymous_ = ("_local", "_remote")
    _fields_ = _HEADER_COMMON + [("addressFamily", u32), ("packageSid", PTR), ("enterpriseId", PTR),
                                 ("policyFlags", u64), ("effectiveName", FWP_BYTE_BLOB)]


class FWPM_NET_EVENT_CLASSIFY_DROP0(C.Structure):
    _fields_ = [("filterId", u64), ("layerId", u16)]


_DROP1_FIELDS = [("filterId", u64), ("layerId", u16), ("reauthReason", u32), ("originalProfile", u32),
                 ("currentProfile", u32), ("msFwpDirection", u32), ("isLoopback", BOOL)]


class FWPM_NET_EVENT_CLASSIFY_DROP1(C.Structure):
    _fields_ = _DROP1_FIELDS


class FWPM_NET_EVENT_CLASSIFY_DROP2(C.Structure):
    _fields_ = _DROP1_FIELDS + [("vSwitchId", FWP_BYTE_BLOB), ("vSwitchSourcePort", u32),
                                ("vSwitchDestinationPort", u32)]


class FWPM_NET_EVENT_CLASSIFY_ALLOW0(C.Structure):
    _fields_ = _DROP1_FIELDS


class FWPM_NET_EVENT_CAPABILITY_DROP0(C.Structure):
    _fields_ = [("networkCapabilityId", u32), ("filterId", u64), ("isLoopback", BOOL)]


def _event(name: str, header: type, drop: type, extra: list[str]) -> type:
    """FWPM_NET_EVENTn: { header; type; union of pointers selected by type }."""
    members = [("ikeMmFailure", PTR), ("ikeQmFailure", PTR), ("ikeEmFailure", PTR),
               ("classifyDrop", C.POINTER(drop)), ("ipsecDrop", PTR), ("idpDrop", PTR)]
    for member in extra:
        members.append((member, C.POINTER(FWPM_NET_EVENT_CLASSIFY_ALLOW0) if member == "classifyAllow" else PTR))
    union = type(f"_{name}Union", (C.Union,), {"_fields_": members})
    return type(name, (C.Structure,), {"_anonymous_": ("u",), "_fields_": [("header", header), ("type", u32),
                                                                           ("u", union)]})


_WIN8 = ["classifyAllow", "capabilityDrop", "capabilityAllow", "classifyDropMac"]
FWPM_NET_EVENT0 = _event("FWPM_NET_EVENT0", FWPM_NET_EVENT_HEADER0, FWPM_NET_EVENT_CLASSIFY_DROP0, [])
FWPM_NET_EVENT1 = _event("FWPM_NET_EVENT1", FWPM_NET_EVENT_HEADER1, FWPM_NET_EVENT_CLASSIFY_DROP1, [])
FWPM_NET_EVENT2 = _event("FWPM_NET_EVENT2", FWPM_NET_EVENT_HEADER2, FWPM_NET_EVENT_CLASSIFY_DROP2, _WIN8)
FWPM_NET_EVENT3 = _event("FWPM_NET_EVENT3", FWPM_NET_EVENT_HEADER3, FWPM_NET_EVENT_CLASSIFY_DROP2, _WIN8)
FWPM_NET_EVENT4 = _event("FWPM_NET_EVENT4", FWPM_NET_EVENT_HEADER3, FWPM_NET_EVENT_CLASSIFY_DROP2, _WIN8)
FWPM_NET_EVENT5 = _event("FWPM_NET_EVENT5", FWPM_NET_EVENT_HEADER3, FWPM_NET_EVENT_CLASSIFY_DROP2,
                         _WIN8 + ["lpmPacketArrival"])

# FwpmNetEventSubscribeN delivers FWPM_NET_EVENT(N+1)
EVENT_FOR_SUBSCRIBE = {0: FWPM_NET_EVENT1, 1: FWPM_NET_EVENT2, 2: FWPM_NET_EVENT3, 3: FWPM_NET_EVENT4,
                       4: FWPM_NET_EVENT5}

# On x64 WINAPI and CALLBACK are the one calling convention; WINFUNCTYPE exists only on Windows.
FUNCTYPE = C.WINFUNCTYPE if sys.platform == "win32" else C.CFUNCTYPE

STRUCTS: dict[str, type] = {cls.__name__: cls for cls in (
    GUID, FILETIME, FWP_BYTE_BLOB, FWP_BYTE_ARRAY16, FWP_V4_ADDR_AND_MASK, FWP_V6_ADDR_AND_MASK, FWP_VALUE0,
    FWP_RANGE0, FWP_CONDITION_VALUE0, FWPM_DISPLAY_DATA0, FWPM_SESSION0, FWPM_SUBLAYER0, FWPM_ACTION0,
    FWPM_FILTER_CONDITION0, FWPM_FILTER0, FWPM_LAYER0, FWPM_NET_EVENT_ENUM_TEMPLATE0, FWPM_NET_EVENT_SUBSCRIPTION0,
    FWPM_NET_EVENT_HEADER0, FWPM_NET_EVENT_HEADER1, FWPM_NET_EVENT_HEADER2, FWPM_NET_EVENT_HEADER3,
    FWPM_NET_EVENT_CLASSIFY_DROP0, FWPM_NET_EVENT_CLASSIFY_DROP1, FWPM_NET_EVENT_CLASSIFY_DROP2,
    FWPM_NET_EVENT_CLASSIFY_ALLOW0, FWPM_NET_EVENT_CAPABILITY_DROP0, FWPM_NET_EVENT0, FWPM_NET_EVENT1,
    FWPM_NET_EVENT2, FWPM_NET_EVENT3, FWPM_NET_EVENT4, FWPM_NET_EVENT5)}

