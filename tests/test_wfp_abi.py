"""The ctypes bindings, and the fake library's own C layout, against the SDK facts in
../shared/wfp-abi (read off the Windows SDK 10.0.22000 headers by a compiler). The checks of the
bindings are marked `windows`: the Windows workflow runs them under Windows' own ctypes and packing."""
import ctypes
import json
from pathlib import Path

import pytest

from harness.platforms.wfp import abi
from harness.platforms.wfp.constants import CONSTANTS, GUIDS
from harness.platforms.wfp.errors import FWP_E, error_name

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "wfp-abi"          # beside the checkout (CI, developer machines)
COPY = Path(__file__).resolve().parent / "sdk_facts" / "wfp-abi"  # the same files, for anywhere else
ABI_DIR = SHARED if SHARED.exists() else COPY


def facts(name):
    return json.loads((ABI_DIR / name).read_text())


def layout_mismatches(cls, fact) -> list[str]:
    out = []
    if ctypes.sizeof(cls) != fact["size"]:
        out.append(f"{cls.__name__}: size {ctypes.sizeof(cls)} != {fact['size']}")
    if ctypes.alignment(cls) != fact["align"]:
        out.append(f"{cls.__name__}: align {ctypes.alignment(cls)} != {fact['align']}")
    for field, offset in fact["fields"].items():
        member = getattr(cls, field, None)
        if member is None:
            out.append(f"{cls.__name__}.{field}: missing")
        elif member.offset != offset:
            out.append(f"{cls.__name__}.{field}: offset {member.offset} != {offset}")
    return out


@pytest.mark.windows
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/wfp-abi is not beside the checkout")
def test_the_copy_in_the_project_is_the_shared_one():
    for name in ("x64-layouts.json", "guids.json", "constants.json"):
        assert json.loads((COPY / name).read_text()) == json.loads((SHARED / name).read_text()), name


@pytest.mark.windows
def test_every_structure_matches_the_sdk():
    structs = facts("x64-layouts.json")["structs"]
    assert set(abi.STRUCTS) == set(structs)  # every structure the SDK facts list, and no other
    problems = [m for name, fact in structs.items() for m in layout_mismatches(abi.STRUCTS[name], fact)]
    assert problems == []


@pytest.mark.windows
@pytest.mark.parametrize("struct,field,wrong", [
    ("FWPM_NET_EVENT_HEADER0", "localPort", ctypes.c_uint32),      # ports are UINT16
    ("FWPM_NET_EVENT_CLASSIFY_DROP1", "layerId", ctypes.c_uint64),  # layerId is UINT16
    ("FWPM_NET_EVENT_SUBSCRIPTION0", "flags", ctypes.c_uint64),    # UINT32: sessionKey sits at 12
])
def test_one_changed_field_type_is_caught(struct, field, wrong):
    cls = abi.STRUCTS[struct]
    fields = [(n, wrong if n == field else t) for n, t in cls._fields_]
    slipped = type(struct, (ctypes.Structure,), {"_anonymous_": getattr(cls, "_anonymous_", ()), "_fields_": fields})
    assert layout_mismatches(slipped, facts("x64-layouts.json")["structs"][struct])


@pytest.mark.windows
def test_guids_and_constants_match_the_sdk():
    guids = facts("guids.json")["guids"]
    for name, text in GUIDS.items():
        assert guids[name] == text, name
        assert str(abi.GUID.from_text(text)) == text
        assert bytes(abi.GUID.from_text(text)) == __import__("uuid").UUID(text).bytes_le
    groups = facts("constants.json")["groups"]
    flat = {k: v for g in groups.values() for k, v in g.items()}
    for name, value in CONSTANTS.items():
        assert flat[name] == value, name
    assert FWP_E == groups["FWP_E"]
    assert error_name(0x8032002A) == "FWP_E_DUPLICATE_CONDITION"
    assert error_name(0x8032002A - 2**32) == "FWP_E_DUPLICATE_CONDITION"  # a signed HRESULT too


@pytest.mark.windows
def test_subscribe_n_delivers_event_n_plus_one():
    for version, event in abi.EVENT_FOR_SUBSCRIBE.items():
        assert event.__name__ == f"FWPM_NET_EVENT{version + 1}"


def test_fake_library_layout_matches_the_sdk():
    from platforms import fake_wfp_library
    lib = ctypes.CDLL(fake_wfp_library())
    lib.FakeLayout.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
                               ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
    structs = facts("x64-layouts.json")["structs"]
    s, f, v, a = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_size_t(), ctypes.c_size_t()
    checked, i = 0, 0
    while lib.FakeLayout(i, ctypes.byref(s), ctypes.byref(f), ctypes.byref(v), ctypes.byref(a)):
        name, field = s.value.decode(), f.value.decode()
        if field:
            assert structs[name]["fields"][field] == v.value, f"{name}.{field}"
        else:
            assert (structs[name]["size"], structs[name]["align"]) == (v.value, a.value), name
        checked, i = checked + 1, i + 1
    assert checked > 100


@pytest.mark.windows
def test_service_status_layout_computed_from_the_sdk_definition():
    """SERVICE_STATUS (winsvc.h: seven DWORDs, dwServiceType .. dwWaitHint) is not among the WFP facts
    in ../shared/wfp-abi; its x64 layout follows from that definition: 28 bytes, 4-byte aligned."""
    import ctypes
    from harness.platforms.wfp.admin_services import SERVICE_STATUS
    names = ["dwServiceType", "dwCurrentState", "dwControlsAccepted", "dwWin32ExitCode", "dwServiceSpecificExitCode",
             "dwCheckPoint", "dwWaitHint"]
    assert [f[0] for f in SERVICE_STATUS._fields_] == names
    assert ctypes.sizeof(SERVICE_STATUS) == 28 and ctypes.alignment(SERVICE_STATUS) == 4
    assert [getattr(SERVICE_STATUS, n).offset for n in names] == [4 * i for i in range(7)]
