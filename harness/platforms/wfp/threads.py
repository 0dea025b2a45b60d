"""Process affinity and the sending thread's priority on Windows (ThreadControl of
harness/traffic/cores.py): SetProcessAffinityMask and SetThreadPriority from kernel32; elsewhere from the library that stands in for it (the tests' fake), so the Linux
tests run these very calls.

The subscriber's callbacks run on WFP's delivery threads, which the harness does not start and
cannot name: only the process's mask keeps them off the sender's core. THREAD_PRIORITY_HIGHEST,
not TIME_CRITICAL: a spinning thread at the top of its class could keep system threads off its core.
"""
from __future__ import annotations

import ctypes as C

from harness.platforms.wfp.api import system_library

THREAD_PRIORITY_HIGHEST = 2
MASK_BITS = 64  # one processor group


def _mask(cpus: set[int]) -> int:
    if not cpus or max(cpus) >= MASK_BITS:
        raise OSError(f"cores {sorted(cpus)} do not fit one processor group's mask")
    return sum(1 << c for c in cpus)


class WindowsThreads:
    def __init__(self, library: str | None = None) -> None:
        self.k = k = system_library("kernel32", library)
        k.GetCurrentThread.argtypes, k.GetCurrentThread.restype = [], C.c_void_p
        k.GetCurrentProcess.argtypes, k.GetCurrentProcess.restype = [], C.c_void_p
        k.GetProcessAffinityMask.argtypes = [C.c_void_p, C.POINTER(C.c_uint64), C.POINTER(C.c_uint64)]
        k.GetProcessAffinityMask.restype = C.c_int32
        k.SetProcessAffinityMask.argtypes, k.SetProcessAffinityMask.restype = [C.c_void_p, C.c_uint64], C.c_int32
        k.SetThreadPriority.argtypes, k.SetThreadPriority.restype = [C.c_void_p, C.c_int32], C.c_int32
        k.GetThreadPriority.argtypes, k.GetThreadPriority.restype = [C.c_void_p], C.c_int32

    def allowed(self) -> set[int]:
        process, system = C.c_uint64(), C.c_uint64()
        if not self.k.GetProcessAffinityMask(self.k.GetCurrentProcess(), C.byref(process), C.byref(system)):
            raise OSError("GetProcessAffinityMask failed")
        return {c for c in range(MASK_BITS) if process.value >> c & 1}

    def pin_process(self, cpus: set[int]) -> None:
        if not self.k.SetProcessAffinityMask(self.k.GetCurrentProcess(), _mask(cpus)):
            raise OSError(f"SetProcessAffinityMask refused cores {sorted(cpus)}")

    def raise_priority(self) -> str:
        if not self.k.SetThreadPriority(self.k.GetCurrentThread(), THREAD_PRIORITY_HIGHEST):
            raise OSError("SetThreadPriority(THREAD_PRIORITY_HIGHEST) refused")
        return f"thread priority {self.k.GetThreadPriority(self.k.GetCurrentThread())} (THREAD_PRIORITY_HIGHEST)"
