"""Benchmark: where the wfp callback's per-event time goes, down to what ctypes itself costs.

    python benchmarks/bench_callback_floor.py [--calls 100000] [--reps 7]

bench_callback.py measures the whole path on the fake (its dispatcher, ctypes, the harness). This
one takes the fake out: a small C function (callback_caller.c, built here with cc) calls the
callback `--calls` times in a loop from a thread that Python did not start, as WFP's delivery
thread does, with one prepared FWPM_NET_EVENT5 classify drop of the harness's filter. Each line
adds one layer, so the differences say what each costs:
- ctypes entry, empty body: the floor of any ctypes subscriber (ctypes makes and deletes a thread
  state per call on such a thread);
- the same with the thread state kept (what the harness does on its first event per thread);
- lean_callback with a no-op subscriber: the harness's two copies and row bookkeeping;
- lean_callback with a zero-work Callback, run inside it (the harness's path): the subscriber's
  timestamps and rows;
- the same with the Callback's serve() as a second Python call per event (the path until
  2026-11-28), for comparison;
and a pure-Python call of the same lean function, no ctypes, for scale; then the native callback
(harness/platforms/wfp/native.py, the default path) with a zero-work Callback, called the same way
(its clock and thread id from the tests' fake kernel32 exports here, built with cc). Medians of
`--reps` runs (ns per call) in one process, one run after another. No root needed.
"""
from __future__ import annotations

import argparse
import ctypes as C
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.platforms.wfp import abi  # noqa: E402
from harness.platforms.wfp.api import ENV_OVERRIDE, RAW_CALLBACK  # noqa: E402
from harness.platforms.wfp.event_rows import CLASSIFY_DROP, RawEvents  # noqa: E402
from harness.platforms.wfp.native import Block, native_system  # noqa: E402
from harness.platforms.wfp.subscription import DeliveryThreads, lean_callback  # noqa: E402
from harness.spec import SubscriberSpec  # noqa: E402
from harness.subscriber import Callback, Release  # noqa: E402

FILTER_ID = 0x5EED
VERSION = 4  # FwpmNetEventSubscribe4 delivers FWPM_NET_EVENT5


def interpreter() -> str:
    """Which Python: builds of one version differ (this VM's pyenv 3.11.7, built without PGO/LTO,
    runs this path ~1.4x slower than Debian's 3.11.2; docs/benchmarks.md has the figures)."""
    return f"Python {sys.version.split()[0]} at {sys.executable}"


def build_caller() -> C.CDLL:
    out = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "caller.so"
    cmd = ["cc", "-O2", "-shared", "-fPIC", "-pthread", "-o", str(out), str(ROOT / "benchmarks" / "callback_caller.c")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench_callback_floor: cc failed: {done.stderr.strip().splitlines()[-1:]}")
    lib = C.CDLL(str(out))
    lib.call_from_new_thread.argtypes = [C.c_void_p, C.c_void_p, C.c_void_p, C.c_long]
    lib.call_from_new_thread.restype = C.c_int64
    return lib


def drop_event() -> tuple[C.Structure, list]:
    """One FWPM_NET_EVENT5 classify drop of the harness's filter, and what must stay alive with it."""
    drop = abi.FWPM_NET_EVENT_CLASSIFY_DROP2(filterId=FILTER_ID, layerId=44)
    event = abi.EVENT_FOR_SUBSCRIBE[VERSION]()
    event.type = CLASSIFY_DROP
    event.classifyDrop = C.pointer(drop)
    return event, [drop]


def variants(calls: int) -> list[tuple[str, Callable[[], Callable]]]:
    """(label, make) where make() gives a fresh Python function (context, event) -> None."""
    def empty() -> Callable:
        return lambda context, event: None

    def kept() -> Callable:  # as lean_callback keeps it
        delivery = DeliveryThreads()
        local, keep = delivery.kept, delivery.keep

        def on_event(context, event):
            try:
                local.thread
            except AttributeError:
                keep()
        return on_event

    def lean_noop() -> Callable:
        return lean_callback(RawEvents(VERSION, calls), FILTER_ID, lambda row: None, DeliveryThreads())

    def lean_inline() -> Callable:
        callback = Callback(SubscriberSpec(cost_us=0.0), calls, threading.Event(), 0)
        return lean_callback(RawEvents(VERSION, calls), FILTER_ID, callback, DeliveryThreads())

    def lean_serve() -> Callable:
        callback = Callback(SubscriberSpec(cost_us=0.0), calls, threading.Event(), 0)
        return lean_callback(RawEvents(VERSION, calls), FILTER_ID, callback.serve, DeliveryThreads())

    return [("ctypes entry, empty body", empty), ("ctypes entry, kept thread state", kept),
            ("+ lean_callback, no-op subscriber", lean_noop), ("+ zero-work Callback, inlined", lean_inline),
            ("  (serve() as a second call instead)", lean_serve)]


def per_call_ns(lib: C.CDLL, function: Callable, event_addr: int, calls: int) -> float:
    callback = RAW_CALLBACK(function)
    ns = lib.call_from_new_thread(C.cast(callback, C.c_void_p), None, event_addr, calls)
    if ns < 0:
        raise SystemExit("bench_callback_floor: pthread_create failed")
    return ns / calls


def python_call_ns(make: Callable[[], Callable], event_addr: int, calls: int) -> float:
    function = make()
    start = time.perf_counter_ns()
    for _ in range(calls):
        function(None, event_addr)
    return (time.perf_counter_ns() - start) / calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    if args.calls < 1 or args.reps < 1:
        print("bench_callback_floor: --calls and --reps must be at least 1", file=sys.stderr)
        sys.exit(2)
    lib = build_caller()
    event, keep = drop_event()
    addr = C.addressof(event)
    gc.disable()  # as during a trial
    print(f"callback called {args.calls:,} times from a C thread, median of {args.reps} runs; "
          f"load {os.getloadavg()[0]:.1f}; {interpreter()}")
    print(f"{'layer':40} {'ns/call':>9} {'added':>8}  runs (ns)")
    previous = None
    for label, make in variants(args.calls):
        runs = [per_call_ns(lib, make(), addr, args.calls) for _ in range(args.reps)]
        median = statistics.median(runs)
        added = f"{median - previous:+8.0f}" if previous is not None else ""
        print(f"{label:40} {median:9.0f} {added:>8}  " + " ".join(f"{r:.0f}" for r in runs))
        if not label.startswith(" "):  # an indented alternative: 'added' is against the line above it,
            previous = median          # and the next layer is added to that line, not to the alternative
    lean = variants(args.calls)[3][1]  # the harness's path
    runs = [python_call_ns(lean, addr, args.calls) for _ in range(args.reps)]
    print(f"{'the harness path, called from Python':40} {statistics.median(runs):9.0f} {'':>8}  "
          + " ".join(f"{r:.0f}" for r in runs))
    native = native_per_call(lib, addr, args.calls, args.reps)
    print(f"{'native callback, zero-work Callback':40} {statistics.median(native):9.0f} {'':>8}  "
          + " ".join(f"{r:.0f}" for r in native))
    del keep


def native_per_call(lib: C.CDLL, event_addr: int, calls: int, reps: int) -> list[float]:
    """ns per call of the native callback, a fresh Callback and rows per run."""
    if sys.platform != "win32" and not os.environ.get(ENV_OVERRIDE):
        sys.path.insert(0, str(ROOT / "tests"))
        from platforms import fake_wfp_library  # its kernel32 exports: the clock, the thread id
        os.environ[ENV_OVERRIDE] = fake_wfp_library()
    system = native_system()
    runs = []
    for _ in range(reps):
        callback = Callback(SubscriberSpec(cost_us=0.0), calls, Release(), 0)
        block = Block(system, RawEvents(VERSION, calls), FILTER_ID, callback.native_parts())
        ns = lib.call_from_new_thread(C.cast(system.callback, C.c_void_p), block.context, event_addr, calls)
        if ns < 0 or callback.finish()["key"].size != calls:
            raise SystemExit("bench_callback_floor: the native callback did not serve every call")
        runs.append(ns / calls)
    return runs


if __name__ == "__main__":
    main()
