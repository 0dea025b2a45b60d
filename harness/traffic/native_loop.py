"""The sender's hot loop as machine code: a numba cfunc that walks a trial's schedule and sends.

The Python loop (pacing.run_paced) pays the interpreter on every turn: p99 lateness ~100 us and a
burst ~0.86x of a C sendmmsg sender on the project's VM (issue 24). This loop does the same walk
in compiled code, with the interpreter lock released for the whole trial and nothing allocated:
- the schedule is absolute deadlines (int64 ns on the clock perf_counter_ns reads), any shape:
  constant, Poisson, a burst (all zero) or a replayed trace;
- a packet not yet due is waited for with a coarse sleep to `spin_ns` before its deadline, then a
  spin on the clock (a sleep alone wakes tens of microseconds late) that offers the core to any
  other thread ready to run on it at every turn, as the Python loop's spin does (os.sched_yield);
  with nothing else ready the offer returns at once (about a microsecond). A spin that never
  offers it keeps such a thread (a kernel thread of that core, another sender) waiting until the
  scheduler preempts the spinner, at a tick. The offer shortens no thread's turn: a kernel
  thread that works for milliseconds in one piece, or a neighbour given a whole tick, makes the
  packet due meanwhile that late either way (docs/benchmarks.md: what the sender's core ran);
- whatever is due (up to `max_batch`) goes in one send call, so a late start catches up instead of
  falling further behind; each packet is stamped when it was handed to the system: a call's
  packets spread across it from its start, as the Python loop stamps them (pacing.py says why),
  and every call's duration is kept beside them.

What the loop calls is an OS binding (harness/platforms/*/native_send.py): four njit functions
over the block of words below, `clock(b) -> ns`, `sleep_until(b, ns)`, `yield_core(b)` (give the
core to another thread ready to run on it, if any) and
`send(b, first, last) -> how many were handled` (sent, or refused and noted in the errors column;
0: the system is busy, try again). Linux binds them to libc (clock_gettime, clock_nanosleep,
sched_yield, sendmmsg), Windows to kernel32 and ws2_32 (QueryPerformanceCounter, a high-resolution
waitable timer, SwitchToThread, sendto), and the Linux tests bind the Windows ones to a stand-in
library with the same signatures: the loop itself is the same code everywhere.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

# the block's words: the loop's own, then the binding's from OS_WORDS on
N, DEADLINES, SENT_AT, ERRORS, MAX_BATCH, SPIN_NS, CALLS, BUSY, DONE, CALL_NS, SENDING = range(11)
OS_WORDS = 16
WORDS = 32


class Target(Protocol):
    """One trial's packets as a binding sends them: its words (socket, arrays' addresses) and the
    arrays they point into, kept alive as long as the target."""

    words: np.ndarray  # int64, at most WORDS - OS_WORDS


class Binding(Protocol):
    """An operating system's side of the loop (see the module's docstring)."""

    name: str                # what sends, e.g. "libc sendmmsg"
    max_batch: int | None    # packets per send call at most (None: the sender's batch)
    spin_ns: int             # how long before a deadline the coarse sleep ends

    def primitives(self) -> tuple[Callable, Callable, Callable, Callable]:
        """(clock, sleep_until, yield_core, send), njit functions over the block's words."""
        ...

    def target(self, sock: Any, kind: str, packets: Any) -> Target:
        ...

    def error_name(self, code: int) -> str:
        ...

    def describe(self) -> dict[str, Any]:
        """Settings a trial's report should name (its timer, its sleeps' slack)."""
        ...


@functools.cache
def intrinsics() -> SimpleNamespace:
    """What a binding needs beyond numba's own: an address as a pointer, and two int64 words in
    the calling function's frame (a timespec, a LARGE_INTEGER) whose address it can hand to C."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.extending import intrinsic

    @intrinsic
    def pointer(typingctx, address):  # an address (int64) as a void*
        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)
        return types.voidptr(types.int64), codegen

    @intrinsic
    def stack_pair(typingctx):  # the address of two int64 in the frame (alloca in the entry block)
        def codegen(context, builder, sig, args):
            slot = cgutils.alloca_once(builder, ir.ArrayType(ir.IntType(64), 2))
            return builder.ptrtoint(slot, ir.IntType(64))
        return types.int64(), codegen

    return SimpleNamespace(pointer=pointer, stack_pair=stack_pair)


def compile_loop(clock: Callable, sleep_until: Callable, yield_core: Callable, send: Callable) -> Any:
    """The loop over a block of words, as a cfunc `int64 loop(int64 *words)`: packets handled."""
    from numba import carray, cfunc, types

    pointer = intrinsics().pointer

    @cfunc(types.int64(types.voidptr), error_model="numpy")
    def loop(block):
        b = carray(block, WORDS, np.int64)
        n = b[N]
        deadlines = carray(pointer(b[DEADLINES]), n, np.int64)
        sent_at = carray(pointer(b[SENT_AT]), n, np.int64)
        call_ns = carray(pointer(b[CALL_NS]), n, np.int64)
        batch, spin = b[MAX_BATCH], b[SPIN_NS]
        i = 0
        now = clock(b)
        while i < n:
            due = deadlines[i]
            if due > now:
                if due - now > spin:
                    sleep_until(b, due - spin)
                else:  # spinning: the core's other work (its kernel threads) runs now, a little at a time
                    yield_core(b)
                now = clock(b)
                continue
            last = min(n, i + batch)
            j = i + 1
            while j < last and deadlines[j] <= now:
                j += 1
            went = send(b, i, j)
            after = clock(b)
            b[CALLS] += 1
            if went <= 0:
                b[BUSY] += 1
            else:  # one call handed `went` packets over between now and after: spread across it from its start
                span = after - now
                for k in range(went):
                    sent_at[i + k] = now + span * k // went
                call_ns[b[SENDING]] = span
                b[SENDING] += 1
                i += went
            now = after
        b[DONE] = i
        return i

    return loop


@dataclass
class LoopRun:
    """What one walk of a schedule did: each packet's send time and error code (0: sent)."""

    sent_at: np.ndarray  # int64 ns
    errors: np.ndarray   # int32: the binding's error code of a refused send, 0 for a sent one
    calls: int           # send calls made
    busy: int            # of them, those the system answered "busy" (nothing went; tried again)
    call_ns: np.ndarray  # int64: how long each of the others took


class NativeLoop:
    """The compiled loop for one binding; compiled once (about a second), run once per trial."""

    def __init__(self, binding: Binding) -> None:
        self.binding = binding
        self._code = compile_loop(*binding.primitives())
        self._call = self._code.ctypes  # a ctypes call: the interpreter lock is released for the walk

    def run(self, target: Target, deadlines: np.ndarray, max_batch: int, spin_ns: int | None = None) -> LoopRun:
        """Send the target's packets at `deadlines` (absolute, perf_counter_ns clock, ascending)."""
        deadlines = np.ascontiguousarray(deadlines, dtype=np.int64)
        n = len(deadlines)
        if len(target.words) > WORDS - OS_WORDS:
            raise ValueError("a binding's target has more words than the block holds")
        sent_at = np.zeros(n, dtype=np.int64)
        errors = np.zeros(n, dtype=np.int32)
        call_ns = np.zeros(n, dtype=np.int64)
        words = np.zeros(WORDS, dtype=np.int64)
        words[N], words[DEADLINES], words[SENT_AT], words[ERRORS] = n, deadlines.ctypes.data, sent_at.ctypes.data, errors.ctypes.data
        words[CALL_NS] = call_ns.ctypes.data
        batch = max_batch if self.binding.max_batch is None else min(max_batch, self.binding.max_batch)
        words[MAX_BATCH] = max(1, batch)
        words[SPIN_NS] = self.binding.spin_ns if spin_ns is None else spin_ns
        words[OS_WORDS:OS_WORDS + len(target.words)] = target.words
        done = self._call(words.ctypes.data)
        if done != n:  # the loop ends only when every packet is handled
            raise RuntimeError(f"the native send loop stopped after {done} of {n} packets")
        return LoopRun(sent_at, errors, int(words[CALLS]), int(words[BUSY]), call_ns[:words[SENDING]])

    def paced(self, target: Target, offsets: np.ndarray, max_batch: int, lead_ns: int = 1_000_000
              ) -> tuple[LoopRun, int]:
        """Send on the schedule `offsets` (ns from the start, which is `lead_ns` from now, on the
        perf_counter_ns clock); (the run, start time t0), as pacing.run_paced answers."""
        t0 = time.perf_counter_ns() + lead_ns
        return self.run(target, np.asarray(offsets, dtype=np.int64) + t0, max_batch), t0
