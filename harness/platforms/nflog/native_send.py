"""The native send loop's Linux side (harness/traffic/native_loop.py): libc's clock_gettime,
clock_nanosleep, sched_yield and sendmmsg, over the same mmsghdr arrays the Python loop's
MmsgSender lays out.

Timer slack: a normal thread's sleeps end up to 50 us late on purpose (the default slack); the
sending thread sets its own to 1 ns, so the coarse sleep ends as asked and only the wake-up
latency remains (35-70 us p50-p99 on the project's VM), which `SPIN_NS` covers with room to spare.
The spin calls sched_yield on every turn (native_loop.py says why): a thread ready on this core
may run then; with none ready the call returns at once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.platforms.nflog.mmsg import MMSGHDR, MmsgSender
from harness.traffic.native_loop import ERRORS, N, OS_WORDS, intrinsics
from harness.traffic.packets import PacketBatch

CLOCK_MONOTONIC, TIMER_ABSTIME, PR_SET_TIMERSLACK = 1, 1, 29
FD, MSGS = OS_WORDS, OS_WORDS + 1  # the binding's words
SPIN_NS = 200_000


@dataclass
class MmsgTarget:
    sender: MmsgSender                 # owns the mmsghdr, iovec and address arrays the words point into
    words: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.words = np.array([self.sender.fd, self.sender._base], dtype=np.int64)


class LibcBinding:
    name = "libc sendmmsg"
    max_batch = None  # the sender's (256): sendmmsg takes a batch to as many destinations
    spin_ns = SPIN_NS

    def __init__(self, library: str | None = None) -> None:
        """`library`: where the calls come from (default the C library; a test's stand-in that wraps
        one of them finds the others in libc, its dependency)."""
        self.libc = ctypes.CDLL(library or ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.libc.prctl.argtypes, self.libc.prctl.restype = [ctypes.c_int, ctypes.c_ulong], ctypes.c_int
        # this thread's sleeps, which is the one that will run the loop
        self.timer_slack_ns = 1 if self.libc.prctl(PR_SET_TIMERSLACK, 1) == 0 else None

    def primitives(self) -> tuple:
        from numba import carray, njit

        pointer, stack_pair = intrinsics().pointer, intrinsics().stack_pair
        c = self.libc
        gettime, nanosleep, sched_yield, sendmmsg = c.clock_gettime, c.clock_nanosleep, c.sched_yield, c.sendmmsg
        errno_at = c["__errno_location"]  # (an attribute of that name would be mangled inside a class)
        gettime.argtypes, gettime.restype = [ctypes.c_int, ctypes.c_void_p], ctypes.c_int
        nanosleep.argtypes, nanosleep.restype = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p], ctypes.c_int
        sched_yield.argtypes, sched_yield.restype = [], ctypes.c_int
        sendmmsg.argtypes, sendmmsg.restype = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int], ctypes.c_int
        errno_at.argtypes, errno_at.restype = [], ctypes.c_void_p
        busy = (errno.EAGAIN, errno.ENOBUFS, errno.EINTR)
        msg_size = MMSGHDR.itemsize

        @njit
        def clock(b):  # CLOCK_MONOTONIC, which perf_counter_ns reads
            ts = stack_pair()
            gettime(CLOCK_MONOTONIC, pointer(ts))
            pair = carray(pointer(ts), 2, np.int64)
            return pair[0] * 1_000_000_000 + pair[1]

        @njit
        def sleep_until(b, t):
            ts = stack_pair()
            pair = carray(pointer(ts), 2, np.int64)
            pair[0], pair[1] = t // 1_000_000_000, t % 1_000_000_000
            nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, pointer(ts), pointer(0))  # EINTR: the loop looks again

        @njit
        def yield_core(b):
            sched_yield()

        @njit
        def send(b, first, last):
            went = sendmmsg(b[FD], pointer(b[MSGS] + first * msg_size), last - first, 0)
            if went > 0:
                return went
            code = carray(pointer(errno_at()), 1, np.int32)[0]
            if code == busy[0] or code == busy[1] or code == busy[2]:
                return 0
            carray(pointer(b[ERRORS]), b[N], np.int32)[first] = code  # refused: counted, never sent again
            return 1

        return clock, sleep_until, yield_core, send

    def target(self, sock: socket.socket, kind: str, packets: PacketBatch) -> MmsgTarget:
        return MmsgTarget(MmsgSender(sock, kind, packets))

    def error_name(self, code: int) -> str:
        return errno.errorcode.get(code, str(code))

    def describe(self) -> dict[str, Any]:
        return {"timer_slack_ns": self.timer_slack_ns, "spin_us": self.spin_ns // 1000}
