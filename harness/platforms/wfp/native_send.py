"""The native send loop's Windows side (harness/traffic/native_loop.py): ws2_32's sendto, and
kernel32's QueryPerformanceCounter and a high-resolution waitable timer. Elsewhere the same calls
come from the library that stands in for the system DLLs (the tests' fake, WFPCAP_FWPUCLNT), so the
Linux tests run this very branch.

One sendto per packet, each stamped when its call returns. No Winsock call takes datagrams to
several destinations (WSASendTo gathers buffers into one datagram), so a batch would only loop over
sendto inside the call and stamp its packets less exactly. Registered I/O (RIOSendEx, deferred and
committed in batches) would save kernel transitions, but it is not used: it serves only sockets made
with WSA_FLAG_REGISTERED_IO (UDP and TCP: not the raw IP_HDRINCL sender), its sends complete
asynchronously (the stamp would be when a request was queued, not when the packet went, and a send a
filter refuses would show up as a completion status), and no Windows machine here can measure whether
it pays on loopback, where WFP's classification is most of each packet's cost.

The coarse sleep is a waitable timer made with CREATE_WAITABLE_TIMER_HIGH_RESOLUTION (Windows 10
1803 and later, what CPython's time.sleep uses since 3.11); without it a timer fires at the next
tick of the 15.6 ms system timer, and the spin before each deadline grows to cover that.
The spin calls SwitchToThread on every turn (native_loop.py says why): a thread ready on the same
processor runs then (only there, as Linux's sched_yield offers only its own core); with none ready
it returns at once. Windows' documentation lets the thread given the processor keep it for up to
one time slice: what that costs beside a busy neighbour has not been measured on Windows (on
Linux, docs/benchmarks.md: the spin's yield).
"""
from __future__ import annotations

import ctypes as C
import errno
import socket
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.platforms.wfp.api import system_library
from harness.traffic.native_loop import ERRORS, N, OS_WORDS, intrinsics
from harness.traffic.packets import SEQ_OFFSET, PacketBatch

SOCKET, DATA, STRIDE, LENGTH, NAMES, FREQUENCY, TIMER = range(OS_WORDS, OS_WORDS + 7)  # the binding's words
CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS, INFINITE = 0x2, 0x1F0003, 0xFFFFFFFF
SPIN_HIGH_RESOLUTION_NS = 1_000_000  # a high-resolution timer wakes within about half a millisecond
SPIN_DEFAULT_TIMER_NS = 16_000_000   # one tick of the default system timer, and a little
WSAEWOULDBLOCK, WSAENOBUFS = 10035, 10055
# the codes a send can fail with, by name (Python's errno knows them on Windows only)
WSA_NAMES = {10004: "WSAEINTR", 10013: "WSAEACCES", 10014: "WSAEFAULT", 10022: "WSAEINVAL", 10035: "WSAEWOULDBLOCK",
             10038: "WSAENOTSOCK", 10040: "WSAEMSGSIZE", 10049: "WSAEADDRNOTAVAIL", 10051: "WSAENETUNREACH",
             10054: "WSAECONNRESET", 10055: "WSAENOBUFS", 10065: "WSAEHOSTUNREACH"}
# struct sockaddr_in: the same 16 bytes on Windows as on Linux
SOCKADDR_IN = np.dtype([("family", "<u2"), ("port", ">u2"), ("addr", ">u4"), ("zero", "V8")])


@dataclass
class SendtoTarget:
    """The packets' bytes (whole IP packets for the raw sender, payloads for UDP) and a sockaddr_in
    per packet, from the compiled batch: the destinations are the plan's."""

    sock: socket.socket
    kind: str
    packets: PacketBatch
    words: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("udp", "raw"):
            raise ValueError(f"sender kind must be udp or raw, got {self.kind!r}")
        self.data = np.ascontiguousarray(self.packets.data)
        n = len(self.packets.dst)
        self.names = np.zeros(n, SOCKADDR_IN)
        self.names["family"] = socket.AF_INET
        self.names["addr"] = self.packets.dst
        self.names["port"] = self.packets.dport if self.kind == "udp" else 0
        skip = SEQ_OFFSET if self.kind == "udp" else 0
        self.words = np.array([self.sock.fileno(), self.data.ctypes.data + skip, self.data.shape[1],
                               self.data.shape[1] - skip, self.names.ctypes.data], dtype=np.int64)


class Ws2Binding:
    name = "ws2_32 sendto"
    max_batch = 1  # one call per packet (see the module's docstring)

    def __init__(self, library: str | None = None) -> None:
        self.ws2 = system_library("ws2_32", library)
        self.kernel32 = k = system_library("kernel32", library)
        k.QueryPerformanceFrequency.argtypes, k.QueryPerformanceFrequency.restype = [C.POINTER(C.c_int64)], C.c_int32
        k.CreateWaitableTimerExW.argtypes = [C.c_void_p, C.c_wchar_p, C.c_uint32, C.c_uint32]
        k.CreateWaitableTimerExW.restype = C.c_void_p
        frequency = C.c_int64()
        if not k.QueryPerformanceFrequency(C.byref(frequency)) or frequency.value <= 0:
            raise OSError("QueryPerformanceFrequency failed: no clock for the native send loop")
        self.frequency = frequency.value
        # one timer for the process's life (the sender process makes one binding)
        self.timer = k.CreateWaitableTimerExW(None, None, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS)
        self.high_resolution = bool(self.timer)
        if not self.timer:
            self.timer = k.CreateWaitableTimerExW(None, None, 0, TIMER_ALL_ACCESS)
        if not self.timer:
            raise OSError("CreateWaitableTimerExW failed: no timer for the native send loop")
        self.spin_ns = SPIN_HIGH_RESOLUTION_NS if self.high_resolution else SPIN_DEFAULT_TIMER_NS

    def primitives(self) -> tuple:
        from numba import carray, njit

        pointer, stack_pair = intrinsics().pointer, intrinsics().stack_pair
        k, ws2 = self.kernel32, self.ws2
        qpc, set_timer, wait, switch = k.QueryPerformanceCounter, k.SetWaitableTimer, k.WaitForSingleObjectEx, k.SwitchToThread
        qpc.argtypes, qpc.restype = [C.c_void_p], C.c_int32
        set_timer.argtypes = [C.c_void_p, C.c_void_p, C.c_int32, C.c_void_p, C.c_void_p, C.c_int32]
        set_timer.restype = C.c_int32
        wait.argtypes, wait.restype = [C.c_void_p, C.c_uint32, C.c_int32], C.c_uint32
        switch.argtypes, switch.restype = [], C.c_int32
        sendto, last_error = ws2.sendto, ws2.WSAGetLastError
        sendto.argtypes = [C.c_size_t, C.c_void_p, C.c_int32, C.c_int32, C.c_void_p, C.c_int32]
        sendto.restype = C.c_int32
        last_error.argtypes, last_error.restype = [], C.c_int32
        name_size = SOCKADDR_IN.itemsize

        @njit
        def clock(b):  # perf_counter_ns as CPython computes it on Windows
            slot = stack_pair()
            qpc(pointer(slot))
            ticks, f = carray(pointer(slot), 1, np.int64)[0], b[FREQUENCY]
            return (ticks // f) * 1_000_000_000 + (ticks % f) * 1_000_000_000 // f

        @njit
        def sleep_until(b, t):
            wait_ns = t - clock(b)
            if wait_ns < 100:
                return
            slot = stack_pair()
            carray(pointer(slot), 1, np.int64)[0] = -(wait_ns // 100)  # relative, in 100 ns units
            if set_timer(pointer(b[TIMER]), pointer(slot), 0, pointer(0), pointer(0), 0):
                wait(pointer(b[TIMER]), INFINITE, 0)  # a timer that cannot be set: the loop spins instead

        @njit
        def yield_core(b):
            switch()

        @njit
        def send(b, first, last):
            for k in range(first, last):
                went = sendto(b[SOCKET], pointer(b[DATA] + k * b[STRIDE]), b[LENGTH], 0,
                              pointer(b[NAMES] + k * name_size), name_size)
                if went < 0:
                    code = last_error()
                    if code == WSAEWOULDBLOCK or code == WSAENOBUFS:
                        return k - first
                    carray(pointer(b[ERRORS]), b[N], np.int32)[k] = code  # refused: counted, never sent again
            return last - first

        return clock, sleep_until, yield_core, send

    def target(self, sock: socket.socket, kind: str, packets: PacketBatch) -> SendtoTarget:
        target = SendtoTarget(sock, kind, packets)
        target.words = np.concatenate([target.words, [self.frequency, self.timer]]).astype(np.int64)
        return target

    def error_name(self, code: int) -> str:
        return WSA_NAMES.get(code) or errno.errorcode.get(code, str(code))

    def describe(self) -> dict[str, Any]:
        return {"timer": "high resolution" if self.high_resolution else "default (15.6 ms ticks)",
                "spin_us": self.spin_ns // 1000}


def native_sender_check(library: str | None = None) -> tuple[bool, str]:
    """The doctor's check: the send loop compiled against this machine's ws2_32 and kernel32, or
    the Python loop and why (a fallback passes, as the callback's does; asked for by name and not
    to be had, or a bad WFPCAP_SENDER, fails)."""
    from harness.traffic.sender_path import open_native, sender_choice

    class Factory:
        def native(self) -> Ws2Binding:
            return Ws2Binding(library)

    loop, why = open_native(Factory(), sender_choice())
    if loop is None:
        return True, f"the Python send loop runs ({why}): one sendto per packet from the interpreter"
    timer = loop.binding.describe()["timer"]
    return True, f"compiled: {loop.binding.name}, one call per packet, a {timer} timer for the coarse sleep"
