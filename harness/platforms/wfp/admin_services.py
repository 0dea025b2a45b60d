"""The Windows system calls the doctor needs beside fwpuclnt: is this process elevated, and is the
Base Filtering Engine service running.

On Windows they come from shell32 (IsUserAnAdmin) and advapi32 (the service control manager);
elsewhere from the library named by WFPCAP_FWPUCLNT (the tests' fake exports the same names), so
the doctor's checks run the very same ctypes code in the Linux tests (as kernel32.py does).
"""
from __future__ import annotations

import ctypes as C

from harness.platforms.wfp.api import system_library

SC_MANAGER_CONNECT = 0x0001
SERVICE_QUERY_STATUS = 0x0004
SERVICE_STATES = {1: "stopped", 2: "start pending", 3: "stop pending", 4: "running", 5: "continue pending",
                  6: "pause pending", 7: "paused"}
SERVICE_RUNNING = 4


class SERVICE_STATUS(C.Structure):
    _fields_ = [("dwServiceType", C.c_uint32), ("dwCurrentState", C.c_uint32), ("dwControlsAccepted", C.c_uint32),
                ("dwWin32ExitCode", C.c_uint32), ("dwServiceSpecificExitCode", C.c_uint32),
                ("dwCheckPoint", C.c_uint32), ("dwWaitHint", C.c_uint32)]


class AdminServices:
    def __init__(self, library: str | None = None) -> None:
        self.shell32 = system_library("shell32", library)
        self.advapi32 = system_library("advapi32", library)
        self.shell32.IsUserAnAdmin.argtypes = []
        self.shell32.IsUserAnAdmin.restype = C.c_int32
        a = self.advapi32
        a.OpenSCManagerW.argtypes = [C.c_wchar_p, C.c_wchar_p, C.c_uint32]
        a.OpenSCManagerW.restype = C.c_void_p
        a.OpenServiceW.argtypes = [C.c_void_p, C.c_wchar_p, C.c_uint32]
        a.OpenServiceW.restype = C.c_void_p
        a.QueryServiceStatus.argtypes = [C.c_void_p, C.POINTER(SERVICE_STATUS)]
        a.QueryServiceStatus.restype = C.c_int32
        a.CloseServiceHandle.argtypes = [C.c_void_p]
        a.CloseServiceHandle.restype = C.c_int32

    def elevated(self) -> bool:
        return bool(self.shell32.IsUserAnAdmin())

    def service_state(self, name: str = "BFE") -> str:
        """'running', 'stopped', ... or why it could not be asked."""
        a = self.advapi32
        manager = a.OpenSCManagerW(None, None, SC_MANAGER_CONNECT)
        if not manager:
            return "unknown (OpenSCManagerW failed)"
        try:
            service = a.OpenServiceW(manager, name, SERVICE_QUERY_STATUS)
            if not service:
                return f"unknown (no service {name})"
            try:
                status = SERVICE_STATUS()
                if not a.QueryServiceStatus(service, C.byref(status)):
                    return "unknown (QueryServiceStatus failed)"
                return SERVICE_STATES.get(status.dwCurrentState, f"state {status.dwCurrentState}")
            finally:
                a.CloseServiceHandle(service)
        finally:
            a.CloseServiceHandle(manager)
