"""Loading fwpuclnt and declaring the functions the backend calls (restype/argtypes).

On Windows the real fwpuclnt.dll; anywhere, the library named by the WFPCAP_FWPUCLNT environment
variable or the `library` argument (the tests' fake). Every call goes through `check`, which
turns a non-zero result into a WfpError that names the code (FWP_E_*).
"""
from __future__ import annotations

import atexit
import ctypes as C
import os
import sys

from harness.platforms.base import PlatformUnavailable
from harness.platforms.wfp import abi
from harness.platforms.wfp.errors import error_name

ENV_OVERRIDE = "WFPCAP_FWPUCLNT"
DWORD = C.c_uint32
HANDLE = C.c_void_p
P = C.POINTER


def system_library(name: str, library: str | None = None) -> C.CDLL:
    """A Windows system DLL (`name`: kernel32, shell32, advapi32; GetLastError kept for ctypes) on
    Windows; elsewhere the library named by `library` or WFPCAP_FWPUCLNT, since the tests' fake
    exports the same names: the very same ctypes code then runs in the Linux tests."""
    if sys.platform == "win32":
        return C.WinDLL(name, use_last_error=True)
    path = library or os.environ.get(ENV_OVERRIDE)
    if not path:
        raise PlatformUnavailable(f"Windows system calls need Windows (or {ENV_OVERRIDE})")
    return C.CDLL(path)


class WfpError(RuntimeError):
    def __init__(self, function: str, code: int) -> None:
        self.function, self.code = function, code & 0xFFFFFFFF
        self.name = error_name(code)
        super().__init__(f"{function} failed: {self.name} (0x{self.code:08X})")


_PROTOTYPES: dict[str, tuple] = {
    "FwpmEngineOpen0": (C.c_void_p, C.c_uint32, C.c_void_p, P(abi.FWPM_SESSION0), P(HANDLE)),
    "FwpmEngineClose0": (HANDLE,),
    "FwpmEngineGetOption0": (HANDLE, C.c_uint32, P(P(abi.FWP_VALUE0))),
    "FwpmEngineSetOption0": (HANDLE, C.c_uint32, P(abi.FWP_VALUE0)),
    "FwpmTransactionBegin0": (HANDLE, C.c_uint32),
    "FwpmTransactionCommit0": (HANDLE,),
    "FwpmTransactionAbort0": (HANDLE,),
    "FwpmSubLayerAdd0": (HANDLE, P(abi.FWPM_SUBLAYER0), C.c_void_p),
    "FwpmSubLayerDeleteByKey0": (HANDLE, P(abi.GUID)),
    "FwpmFilterAdd0": (HANDLE, P(abi.FWPM_FILTER0), C.c_void_p, P(C.c_uint64)),
    "FwpmFilterDeleteById0": (HANDLE, C.c_uint64),
    "FwpmLayerGetById0": (HANDLE, C.c_uint16, P(P(abi.FWPM_LAYER0))),
    "FwpmGetAppIdFromFileName0": (C.c_wchar_p, P(P(abi.FWP_BYTE_BLOB))),
    "FwpmNetEventUnsubscribe0": (HANDLE, HANDLE),
    "FwpmNetEventSubscriptionsGet0": (HANDLE, P(P(P(abi.FWPM_NET_EVENT_SUBSCRIPTION0))), P(C.c_uint32)),
    "FwpmNetEventCreateEnumHandle0": (HANDLE, P(abi.FWPM_NET_EVENT_ENUM_TEMPLATE0), P(HANDLE)),
    "FwpmNetEventDestroyEnumHandle0": (HANDLE, HANDLE),
    "FwpmSessionCreateEnumHandle0": (HANDLE, C.c_void_p, P(HANDLE)),
    "FwpmSessionEnum0": (HANDLE, HANDLE, C.c_uint32, P(P(P(abi.FWPM_SESSION0))), P(C.c_uint32)),
    "FwpmSessionDestroyEnumHandle0": (HANDLE, HANDLE),
}


# Subscriptions whose FwpmNetEventUnsubscribe0 has not yet succeeded: WFP may still call their
# ctypes callback, so it must stay alive whatever happens to the object that made it. They leave
# when unsubscribing succeeds. When their session closes instead, they move to ORPHANED for the
# rest of the process: Microsoft documents that Unsubscribe waits for a running callback, but not
# that FwpmEngineClose0 does, and keeping a few callbacks costs nothing.
UNTIL_UNSUBSCRIBED: set = set()
ORPHANED: list = []


def close_at_exit() -> None:
    """At interpreter exit, unsubscribe whatever is still subscribed (a platform never closed, an
    exception that skipped a close): the interpreter is about to free the compiled callback, its
    rows and its block, and WFP may still enter them until FwpmNetEventUnsubscribe0 has returned.
    A held callback is released first, or Unsubscribe would wait for it for good."""
    for subscription in list(UNTIL_UNSUBSCRIBED):
        try:
            subscription.release_held()
            subscription.close()
        except Exception:  # noqa: BLE001 - at exit: the others still get their turn
            pass


atexit.register(close_at_exit)


def release_callbacks(session) -> None:
    for subscription in [s for s in UNTIL_UNSUBSCRIBED if s.session is session]:
        UNTIL_UNSUBSCRIBED.discard(subscription)
        ORPHANED.append(subscription)


def callback_type(version: int):
    """FWPM_NET_EVENT_CALLBACK<version>: void (void* context, const FWPM_NET_EVENT<version+1>* event)."""
    return abi.FUNCTYPE(None, C.c_void_p, P(abi.EVENT_FOR_SUBSCRIBE[version]))


# The same callback with the event as a plain address: ctypes then makes no pointer object per call
# (the subscription copies the event's bytes itself, see event_rows.py).
RAW_CALLBACK = abi.FUNCTYPE(None, C.c_void_p, C.c_void_p)


class Library:
    """fwpuclnt with prototypes declared; `subscribe_version` is the highest FwpmNetEventSubscribeN."""

    def __init__(self, path: str | None = None) -> None:
        path = path or os.environ.get(ENV_OVERRIDE)
        try:
            if path:
                self.dll = C.CDLL(path) if sys.platform != "win32" else C.WinDLL(path)
            elif sys.platform == "win32":
                self.dll = C.WinDLL("fwpuclnt.dll")
            else:
                raise PlatformUnavailable(f"wfp needs Windows (or {ENV_OVERRIDE} naming a compatible library)")
        except OSError as exc:
            raise PlatformUnavailable(f"cannot load fwpuclnt ({path or 'fwpuclnt.dll'}): {exc}") from None
        self.path = path or "fwpuclnt.dll"
        self.override = path  # None: the system's fwpuclnt.dll
        for name, argtypes in _PROTOTYPES.items():
            fn = getattr(self.dll, name, None)
            if fn is None:
                if name == "FwpmGetAppIdFromFileName0":
                    continue
                raise PlatformUnavailable(f"{self.path} does not export {name}")
            fn.argtypes = list(argtypes)
            fn.restype = DWORD
        self.dll.FwpmFreeMemory0.argtypes = [P(C.c_void_p)]
        self.dll.FwpmFreeMemory0.restype = None
        self.subscribe_version = next((v for v in range(4, -1, -1)
                                       if hasattr(self.dll, f"FwpmNetEventSubscribe{v}")), None)
        if self.subscribe_version is None:
            raise PlatformUnavailable(f"{self.path} exports no FwpmNetEventSubscribeN")
        sub = getattr(self.dll, f"FwpmNetEventSubscribe{self.subscribe_version}")
        # the callback as a code address: a typed (callback_type) or a RAW_CALLBACK function both pass
        sub.argtypes = [HANDLE, P(abi.FWPM_NET_EVENT_SUBSCRIPTION0), C.c_void_p, C.c_void_p, P(HANDLE)]
        sub.restype = DWORD
        self.subscribe_fn = sub
        # the store's enumerator of the same event struct: SubscribeN delivers, EnumN+1 returns, FWPM_NET_EVENT(N+1)
        self.enum_version = self.subscribe_version + 1
        enum = getattr(self.dll, f"FwpmNetEventEnum{self.enum_version}", None)
        if enum is not None:
            enum.argtypes = [HANDLE, HANDLE, C.c_uint32, P(P(P(abi.EVENT_FOR_SUBSCRIBE[self.subscribe_version]))),
                             P(C.c_uint32)]
            enum.restype = DWORD
        self.enum_fn = enum  # None: the store cannot be read at this version (the count says so)

    def call(self, name: str, *args) -> None:
        rc = getattr(self.dll, name)(*args)
        if rc:
            raise WfpError(name, rc)

    def free(self, pointer) -> None:
        """FwpmFreeMemory0 takes the address of the pointer and clears it."""
        holder = C.c_void_p(C.cast(pointer, C.c_void_p).value)
        if holder.value:
            self.dll.FwpmFreeMemory0(C.byref(holder))
