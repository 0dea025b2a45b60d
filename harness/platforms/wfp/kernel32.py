"""The few Windows system calls the wfp backend needs beside fwpuclnt.

On Windows they come from kernel32; elsewhere from the library named by WFPCAP_FWPUCLNT (the tests'
fake exports the same names), so the very same ctypes code runs in the Linux tests.
- GetSystemTimePreciseAsFileTime: event timestamps are FILETIMEs; Python 3.11/3.12 on Windows
  give time.time_ns() a resolution of about 15.6 ms, too coarse to relate them to perf_counter.
- GetModuleFileNameW(NULL): the image of the running process. In a venv, sys.executable is a
  launcher (Windows) or a symbolic link (elsewhere), not the image WFP sees as the app id.
- OpenProcess, GetExitCodeProcess, GetProcessTimes, CloseHandle: whether another harness run is
  still alive (harness/live_runs.py); os.kill(pid, 0) would terminate it on Windows, and pids are
  reused quickly there, so a run is known by its pid and its creation time.
"""
from __future__ import annotations

import ctypes as C
import sys
import time

from harness.platforms.wfp.abi import FILETIME
from harness.platforms.wfp.api import system_library

FILETIME_UNIX_EPOCH = 116444736000000000  # 100 ns ticks from 1601-01-01 to 1970-01-01
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259
ERROR_ACCESS_DENIED = 5


def filetime_to_unix_ns(ft: FILETIME) -> int:
    ticks = (ft.dwHighDateTime << 32) | ft.dwLowDateTime
    return (ticks - FILETIME_UNIX_EPOCH) * 100


class Kernel32:
    def __init__(self, library: str | None = None) -> None:
        self.windows = sys.platform == "win32"
        self.dll = system_library("kernel32", library)
        self.dll.GetSystemTimePreciseAsFileTime.argtypes = [C.POINTER(FILETIME)]
        self.dll.GetSystemTimePreciseAsFileTime.restype = None
        self.dll.GetModuleFileNameW.argtypes = [C.c_void_p, C.c_wchar_p, C.c_uint32]
        self.dll.GetModuleFileNameW.restype = C.c_uint32
        self.dll.GetLastError.argtypes = []
        self.dll.GetLastError.restype = C.c_uint32
        self.dll.OpenProcess.argtypes = [C.c_uint32, C.c_int32, C.c_uint32]
        self.dll.OpenProcess.restype = C.c_void_p
        self.dll.GetExitCodeProcess.argtypes = [C.c_void_p, C.POINTER(C.c_uint32)]
        self.dll.GetExitCodeProcess.restype = C.c_int32
        self.dll.GetProcessTimes.argtypes = [C.c_void_p] + [C.POINTER(FILETIME)] * 4
        self.dll.GetProcessTimes.restype = C.c_int32
        self.dll.CloseHandle.argtypes = [C.c_void_p]
        self.dll.CloseHandle.restype = C.c_int32

    def precise_unix_ns(self) -> int:
        ft = FILETIME()
        self.dll.GetSystemTimePreciseAsFileTime(C.byref(ft))
        return filetime_to_unix_ns(ft)

    def unix_minus_perf_ns(self, samples: int = 7) -> int:
        """unix time - perf_counter time, from the tightest of a few bracketed readings."""
        best: tuple[int, int] | None = None
        for _ in range(samples):
            before = time.perf_counter_ns()
            unix = self.precise_unix_ns()
            after = time.perf_counter_ns()
            if best is None or after - before < best[0]:
                best = (after - before, unix - (before + after) // 2)
        return best[1]

    def module_file_name(self, size: int = 32) -> str:
        """GetModuleFileNameW(NULL): grows the buffer while the path does not fit (it truncates)."""
        while True:
            buf = C.create_unicode_buffer(size)
            n = self.dll.GetModuleFileNameW(None, buf, size)
            if n == 0:
                raise OSError("GetModuleFileNameW(NULL) failed")
            if n < size:
                return buf.value
            size *= 2

    def _last_error(self) -> int:
        return C.get_last_error() if self.windows else self.dll.GetLastError()

    def process(self, pid: int) -> tuple[bool, str | None]:
        """(alive, creation time) of process `pid`: (False, None) when no such process exists or it
        has exited; (True, None) when it exists but may not be queried (another user's, protected)."""
        handle = self.dll.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid)
        if not handle:
            return (self._last_error() == ERROR_ACCESS_DENIED, None)
        try:
            code = C.c_uint32()
            if not self.dll.GetExitCodeProcess(handle, C.byref(code)):
                return (True, None)
            if code.value != STILL_ACTIVE:  # exited; its object lives on while someone holds a handle
                return (False, None)
            created, exited, kernel, user = FILETIME(), FILETIME(), FILETIME(), FILETIME()
            if not self.dll.GetProcessTimes(handle, C.byref(created), C.byref(exited), C.byref(kernel),
                                            C.byref(user)):
                return (True, None)
            return (True, str((created.dwHighDateTime << 32) | created.dwLowDateTime))
        finally:
            self.dll.CloseHandle(handle)
