"""The native per-event path: the wfp callback compiled to machine code (numba's cfunc), so that
WFP's delivery thread never enters Python.

A Python callback costs ~2.5-3.4 us per event before any work (the ctypes entry on a kept thread
state, two copies, the row bookkeeping: benchmarks/bench_callback.py), which is more than the
harness may add to a subscriber it measures; the agents this harness stands in for are native.
This function does what lean_callback (subscription.py) and an inline Callback's serve() do, with
the same rows and columns, so the bulk decoder and every estimator read them unchanged:
- copy the event (and, for a classify drop, its drop data) into the next row, stamp the row with
  the delivery thread's id;
- for a drop of the harness's filter: stamp the callback time, the row, hold the first callback
  until the trial releases it, call the user's native subscriber if there is one
  (`--subscriber-lib`: `void f(const void *event, void *context)`, given the event pointer Windows
  handed over), spin the event's work (after the user's code), stamp when it was done.
Rows come from atomic counters (callbacks for one subscription may run on several threads at once).

Everything it touches is in a block of int64 words (`Block`), whose address is the context WFP
passes back to the callback: one compiled function serves every subscription. The clock is
QueryPerformanceCounter converted to ns as CPython's perf_counter_ns does on Windows (so its stamps
compare with the sender's); the thread id is GetCurrentThreadId; the held callback waits on a
manual-reset kernel event (WaitForSingleObject) that the trial's release sets, so it wakes when
released, as release.wait() does (a Sleep(1) poll would wake at the next timer tick: 15.6 ms by
default on Windows). They come from kernel32 on Windows and from the tests' fake elsewhere
(system_library), so the same compiled code runs in the Linux tests.

The compiled function must never fail: numba's cfunc wrapper takes the GIL to report an error,
which an RPC thread must not do in the middle of a callback. So no bounds checks, no division by
a value that can be 0 (the frequency is checked when a block is made), no allocation.
"""
from __future__ import annotations

import ctypes as C
import os
from collections.abc import Callable

import numpy as np

from harness.platforms.base import PlatformUnavailable
from harness.platforms.wfp import abi
from harness.platforms.wfp.api import ENV_OVERRIDE, RAW_CALLBACK, system_library
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.event_rows import CLASSIFY_DROP, RawEvents
from harness.spec import SubscriberSpec
from harness.subscriber import Callback, NativeParts, Release
from harness.traffic.native_loop import intrinsics

__all__ = ["CALLBACK_ENV", "Block", "NativeSystem", "choose_callback", "native_system", "self_test"]

CALLBACK_ENV = "WFPCAP_CALLBACK"  # "native" (the default: falls back to python if it cannot compile) or "python"

# the block's words
(ROWS, CAPACITY, EVENTS, EVENT_SIZE, DROPS, DROP_SIZE, THREADS, TYPE_AT, POINTER_AT, FILTER_AT, FILTER_ID,
 SERVED, SERVED_CAPACITY, T_CALLBACK, KEYS, T_DONE, WORK, PROGRESS, HOLD, RELEASED, RELEASE_EVENT, FREQUENCY,
 USER_FUNCTION, USER_CONTEXT, WORDS) = range(25)
WAIT_MS = 1000  # a safety net: the held callback re-reads the release flag at least this often


class NativeSystem:
    """The compiled callback and the kernel32 calls around it (from `library` off Windows). The
    compiled code lives as long as the process (WFP may call it until unsubscribed)."""

    def __init__(self, library: str | None) -> None:
        self.dll = dll = system_library("kernel32", library)
        dll.QueryPerformanceFrequency.argtypes, dll.QueryPerformanceFrequency.restype = [C.POINTER(C.c_int64)], C.c_int32
        dll.CreateEventW.argtypes, dll.CreateEventW.restype = [C.c_void_p, C.c_int32, C.c_int32, C.c_wchar_p], C.c_void_p
        dll.SetEvent.argtypes, dll.SetEvent.restype = [C.c_void_p], C.c_int32
        dll.CloseHandle.argtypes, dll.CloseHandle.restype = [C.c_void_p], C.c_int32
        dll.CreateThread.argtypes = [C.c_void_p, C.c_size_t, C.c_void_p, C.c_void_p, C.c_uint32, C.POINTER(C.c_uint32)]
        dll.CreateThread.restype = C.c_void_p
        dll.WaitForSingleObject.argtypes, dll.WaitForSingleObject.restype = [C.c_void_p, C.c_uint32], C.c_uint32
        try:
            self.callback, self._code = _compile(dll)
        except (PlatformUnavailable, ImportError):  # ImportError: numba missing, said so by choose_callback
            raise
        except Exception as exc:  # numba's and llvmlite's errors have no common base: one line
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise PlatformUnavailable(f"the native callback did not compile ({type(exc).__name__}: {first})") from None

    def frequency(self) -> int:
        out = C.c_int64()
        if not self.dll.QueryPerformanceFrequency(C.byref(out)) or out.value <= 0:
            raise PlatformUnavailable("QueryPerformanceFrequency failed: no clock for the native callback")
        return out.value

    def on_os_thread(self, context: int, event: int, timeout_ms: int = 5000) -> int:
        """Call the compiled callback once, as WFP would, from a thread the operating system starts
        (CreateThread; Python never saw it, so it has no thread state); the thread's id. Raises when
        the thread cannot be started or does not return within the timeout."""
        param = np.array([context, event], dtype=np.int64)
        tid = C.c_uint32()
        handle = self.dll.CreateThread(None, 0, self._code[1].address, param.ctypes.data, 0, C.byref(tid))
        if not handle:
            raise OSError("CreateThread failed: no thread for the native callback's self-test")
        try:
            if self.dll.WaitForSingleObject(handle, timeout_ms) != 0:  # WAIT_OBJECT_0: the thread returned
                raise OSError(f"the native callback did not return within {timeout_ms} ms on a new thread")
        finally:
            self.dll.CloseHandle(handle)
        return tid.value

    def release_event(self) -> tuple[int, Callable[[], None], Callable[[], None]]:
        """A manual-reset, unsignalled kernel event: (handle, set it, close it)."""
        handle = self.dll.CreateEventW(None, 1, 0, None)
        if not handle:
            raise OSError("CreateEventW failed: no event for the held native callback")
        return handle, lambda: self.dll.SetEvent(handle), lambda: self.dll.CloseHandle(handle)


_systems: dict[str, NativeSystem] = {}


def native_system(library: str | None = None) -> NativeSystem:
    """Compiled once per process and system library (~1 s)."""
    key = library or os.environ.get(ENV_OVERRIDE, "")
    if key not in _systems:
        _systems[key] = NativeSystem(library)
    return _systems[key]


def choose_callback(library: str | None = None) -> tuple[bool, str]:
    """(native, why not): WFPCAP_CALLBACK=python, or native where it compiles. Unset, a native path
    that cannot be had (numba missing or broken) falls back to the Python callback, saying why;
    asked for by name, it is an error (one line)."""
    choice = os.environ.get(CALLBACK_ENV, "").strip().lower()
    if choice not in ("", "native", "python"):
        raise PlatformUnavailable(f"{CALLBACK_ENV}={choice!r}: expected 'native' or 'python'")
    if choice == "python":
        return False, f"{CALLBACK_ENV}=python"
    try:
        native_system(library)
    except ImportError as exc:
        why = _import_failure(exc)
    except (PlatformUnavailable, OSError) as exc:
        why = str(exc)
    else:
        return True, ""
    if choice == "native":
        raise PlatformUnavailable(f"{CALLBACK_ENV}=native: {why}")
    return False, why


def _import_failure(exc: ImportError) -> str:
    """Missing is not broken: numba (or llvmlite) absent reads as not installed; anything else that
    failed to load (a DLL: numba's extensions need the MSVC runtime) is named as what it is."""
    missing = isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ("numba", "llvmlite")
    if missing:
        return f"numba is not installed ({exc})"
    return f"numba is installed but did not load: {exc.name or 'a module'} ({exc})"


def self_test(library: str | None = None, version: int = 4) -> str:
    """The compiled callback entered once from a thread the operating system starts, with a
    synthetic FWPM_NET_EVENT(version+1) classify drop of a filter of its own, and the row it wrote
    checked: the event's and the drop data's bytes, that thread's id, one callback served. What a
    runner's delivery threads will do, before any trial relies on it. Raises PlatformUnavailable
    saying what was wrong; returns the evidence."""
    system = native_system(library)
    filter_id = 0x5E1F7E57
    raw = RawEvents(version, 2)
    drop = abi.FWPM_NET_EVENT_CLASSIFY_DROP2(filterId=filter_id, layerId=48, msFwpDirection=0x3901, isLoopback=1)
    event = abi.EVENT_FOR_SUBSCRIBE[version]()
    h = event.header
    h.flags, h.ipVersion, h.ipProtocol = 0x11F, K["FWP_IP_VERSION_V4"], 17  # protocol, addresses, ports, version
    h.localAddrV4 = h.remoteAddrV4 = 0x7F000001
    h.localPort, h.remotePort = 50000, 20000
    event.type = CLASSIFY_DROP
    event.classifyDrop = C.cast(C.pointer(drop), type(event.classifyDrop))
    with Callback(SubscriberSpec(cost_us=0.0), 2, Release(), 0) as callback:
        block = Block(system, raw, filter_id, callback.native_parts())
        try:
            tid = system.on_os_thread(block.context, C.addressof(event))
        finally:
            block.close()
        served = callback.finish()
    wrote = raw.events[:1].tobytes() == bytes(event)[:raw.event_size]
    copied = raw.drops[:1].tobytes() == bytes(drop)[:raw.drop_size]
    if not (block.handed == 1 and wrote and copied and int(raw.thread[0]) == tid and list(served["key"]) == [0]):
        raise PlatformUnavailable(f"the native callback's self-test failed: rows {block.handed}, event copied {wrote}, "
                                  f"drop copied {copied}, thread {int(raw.thread[0])} (started {tid}), "
                                  f"served {list(served['key'])}")
    return f"entered once from an OS thread ({tid}) with a synthetic FWPM_NET_EVENT{version + 1}: its row is right"


class Block:
    """The context of one subscription's native callback: its rows, its subscriber's columns, the
    release its held callback waits for. It holds the rows; the Callback that gave `parts` must
    outlive it too (the Subscription holds it). close() once no callback can run."""

    def __init__(self, system: NativeSystem, raw: RawEvents, filter_id: int, parts: NativeParts,
                 user: tuple[int, int] | None = None) -> None:
        """`user`: (address of the user's native subscriber, its context pointer), or None."""
        self.raw = raw  # native code writes into these rows: they live as long as the block
        self.words = np.zeros(WORDS, dtype=np.int64)
        w = self.words
        w[CAPACITY], w[EVENTS], w[EVENT_SIZE] = raw.capacity, raw.events.ctypes.data, raw.event_size
        w[DROPS], w[DROP_SIZE], w[THREADS] = raw.drops.ctypes.data, raw.drop_size, raw.thread.ctypes.data
        w[TYPE_AT] = raw.events.dtype.fields["type"][1]
        w[POINTER_AT] = raw.events.dtype.fields["classifyDrop"][1]
        w[FILTER_AT] = raw.drops.dtype.fields["filterId"][1]
        w[FILTER_ID] = filter_id - (1 << 64) if filter_id >= 1 << 63 else filter_id  # a UINT64, as its bits
        w[SERVED], w[SERVED_CAPACITY] = parts.served, parts.capacity
        w[T_CALLBACK], w[KEYS], w[T_DONE], w[WORK] = parts.t_callback, parts.keys, parts.t_done, parts.work
        w[PROGRESS], w[HOLD], w[RELEASED] = parts.progress, int(parts.hold), parts.release.flag.ctypes.data
        w[FREQUENCY] = system.frequency()
        w[USER_FUNCTION], w[USER_CONTEXT] = user or (0, 0)
        self._release = parts.release
        self._set_event: Callable[[], None] | None = None
        self._close_event: Callable[[], None] | None = None
        if parts.hold:
            w[RELEASE_EVENT], self._set_event, self._close_event = system.release_event()
            parts.release.also(self._set_event)  # set now if the release already came
        self.context = w.ctypes.data

    @property
    def handed(self) -> int:
        """Rows the callback asked for (beyond the capacity too); exact once no callback can run."""
        return int(self.words[ROWS])

    def close(self) -> None:
        """Once no callback can run (unsubscribed): the event goes (its handle could be reused)."""
        if self._close_event is not None:
            self._release.forget(self._set_event)
            self._close_event()
            self._close_event = None
            self.words[RELEASE_EVENT] = 0


def _compile(dll: C.CDLL) -> tuple[RAW_CALLBACK, tuple]:
    """The callback as a FWPM_NET_EVENT_CALLBACK, and the numba objects that own the code: the
    callback's and a thread start routine's that calls it (the self-test's thread enters there)."""
    from numba import carray, cfunc, njit, types
    from numba.core import cgutils
    from numba.core.extending import intrinsic
    from llvmlite import ir

    qpc = dll.QueryPerformanceCounter
    qpc.argtypes, qpc.restype = [C.c_void_p], C.c_int32
    thread_id = dll.GetCurrentThreadId
    thread_id.argtypes, thread_id.restype = [], C.c_uint32
    wait = dll.WaitForSingleObject
    wait.argtypes, wait.restype = [C.c_void_p, C.c_uint32], C.c_uint32

    pointer = intrinsics().pointer  # an address (int64) as a void*, as the native send loop has it

    @intrinsic
    def address(typingctx, p):  # a void* as an address
        def codegen(context, builder, sig, args):
            return builder.ptrtoint(args[0], ir.IntType(64))
        return types.int64(types.voidptr), codegen

    @intrinsic
    def fetch_add(typingctx, at, value):  # *at += value atomically; the old *at
        def codegen(context, builder, sig, args):
            p = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
            return builder.atomic_rmw("add", p, args[1], "seq_cst")
        return types.int64(types.int64, types.int64), codegen

    @intrinsic
    def fetch_max(typingctx, at, value):  # *at = max(*at, value) atomically: a counter that never goes back
        def codegen(context, builder, sig, args):
            p = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
            return builder.atomic_rmw("max", p, args[1], "seq_cst")
        return types.int64(types.int64, types.int64), codegen

    @intrinsic
    def stack_word(typingctx):  # the address of an int64 in the calling function's frame
        def codegen(context, builder, sig, args):
            return builder.ptrtoint(cgutils.alloca_once(builder, ir.IntType(64)), ir.IntType(64))
        return types.int64(), codegen

    @intrinsic
    def load_acquire(typingctx, at):  # *at, read from memory each time (another thread writes it)
        def codegen(context, builder, sig, args):
            p = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
            return builder.load_atomic(p, "acquire", 8)
        return types.int64(types.int64), codegen

    @intrinsic
    def call_user(typingctx, function, event, context):  # void function(const void *event, void *context)
        def codegen(context_, builder, sig, args):
            kind = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, cgutils.voidptr_t])
            builder.call(builder.inttoptr(args[0], kind.as_pointer()),
                         [args[1], builder.inttoptr(args[2], cgutils.voidptr_t)])
            return context_.get_dummy_value()
        return types.void(types.int64, types.voidptr, types.int64), codegen

    def i64(at):  # the int64 at an address
        return carray(pointer(at), 1, np.int64)[0]

    def clock_ns(slot, freq):  # perf_counter_ns as CPython computes it on Windows
        qpc(pointer(slot))
        ticks = carray(pointer(slot), 1, np.int64)[0]
        return (ticks // freq) * 1_000_000_000 + (ticks % freq) * 1_000_000_000 // freq

    def copy_words(source, to, n):  # n int64 from a pointer to an address; a loop, not a slice
        # assignment: numba compiles a slice's shape-mismatch error path, most of this function's
        # compile time (seconds, in every process that opens the platform), for sizes that always match
        src, dst = carray(source, n, np.int64), carray(pointer(to), n, np.int64)
        for k in range(n):
            dst[k] = src[k]

    i64, clock_ns, copy_words = (njit(f, inline="always") for f in (i64, clock_ns, copy_words))
    drop_type = np.uint32(CLASSIFY_DROP)

    @cfunc(types.void(types.voidptr, types.voidptr), error_model="numpy")
    def on_event(context, event):
        b = carray(context, WORDS, np.int64)
        if address(event) == 0:
            return
        i = fetch_add(address(context) + ROWS * 8, 1)
        if i >= b[CAPACITY]:  # counted at unsubscribe (not_copied)
            return
        size = b[EVENT_SIZE]  # a multiple of 8 (RawEvents): copied in words
        copy_words(event, b[EVENTS] + i * size, size // 8)
        carray(pointer(b[THREADS]), b[CAPACITY], np.int64)[i] = thread_id()
        if carray(pointer(b[EVENTS] + i * size + b[TYPE_AT]), 1, np.uint32)[0] != drop_type:
            return
        drop = i64(b[EVENTS] + i * size + b[POINTER_AT])
        if drop == 0:
            return
        size = b[DROP_SIZE]
        copy_words(pointer(drop), b[DROPS] + i * size, size // 8)
        if i64(b[DROPS] + i * size + b[FILTER_AT]) != b[FILTER_ID]:
            return
        # an inline Callback's serve(i), as subscriber.py does it
        slot, freq = stack_word(), b[FREQUENCY]
        t_cb = t = clock_ns(slot, freq)
        j = fetch_add(b[SERVED], 1)
        if j >= b[SERVED_CAPACITY]:  # counted by Callback.finish()
            return
        fetch_max(b[PROGRESS], j + 1)  # a plain store from a callback that took an earlier row could lower it
        carray(pointer(b[T_CALLBACK]), j + 1, np.int64)[j] = t_cb
        carray(pointer(b[KEYS]), j + 1, np.int64)[j] = i
        if j == 0 and b[HOLD] != 0:
            while load_acquire(b[RELEASED]) == 0:  # woken by the release's event; the flag decides
                wait(pointer(b[RELEASE_EVENT]), WAIT_MS)
            t = clock_ns(slot, freq)
        start = t_cb
        if b[USER_FUNCTION] != 0:  # the user's code on WFP's thread; the drawn work, if any, after it
            call_user(b[USER_FUNCTION], event, b[USER_CONTEXT])
            t = start = clock_ns(slot, freq)
        work = i64(b[WORK] + j * 8)
        if work != 0:
            deadline = start + work
            while t < deadline:
                t = clock_ns(slot, freq)
        carray(pointer(b[T_DONE]), j + 1, np.int64)[j] = t

    callback = RAW_CALLBACK(on_event.address)

    @cfunc(types.uint32(types.voidptr), error_model="numpy")
    def thread_start(param):  # LPTHREAD_START_ROUTINE: param -> [context, event]; enters WFP's entry point
        p = carray(param, 2, np.int64)
        callback(p[0], p[1])
        return 0

    return callback, (on_event, thread_start)
