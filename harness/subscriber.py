"""What the subscriber's callback does with each event, the same on every real platform.

`serve(key)` runs once per event of the harness, on the platform's delivery thread. It stamps the
callback time and the platform's `key` for the event (the row of the platform's own raw record, which
the platform decodes in bulk after the trial) into preallocated memory, then:
- hold: the first callback blocks until the trial releases it;
- inline: the work (`cost_us`, gamma-distributed when `cost_cv` > 0, or drawn from the user's cost
  distribution) is a busy wait in the callback
  (its last clock reading is `t_done`: with no work, the callback time itself);
- copy: the callback spends only `copy_cost_us` and hands the event to a worker thread, which does
  the work and stamps when it finished.
A user's Python subscriber (`function`, harness/subscriber_code.py) is the work instead: it is
called with the event's bytes, which the platform gives through `read_events_with` (the callback
takes them, the copy of copy mode; the worker then calls the function). An exception it raises is
counted (`function_errors`, with the first one's text), never let through the platform's thread.
No Python object is kept per event: rows come from an atomic counter, values go into the columns
through memoryviews (a numpy item assignment costs several times more).
While it exists the garbage collector is off (and, in copy mode, the switch interval is short and
the worker runs); `close()` (or leaving `with Callback(...)`) puts all of it back, whatever ended
the trial.
"""
from __future__ import annotations

import gc
import itertools
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from harness.spec import SubscriberSpec
from harness.subscriber_code import resolve_function

COLUMNS = ("key", "t_callback", "t_done")


class InlineParts(NamedTuple):
    """What serve() binds (Callback.inline_parts gives it to a platform for inline mode)."""
    clock: Callable[[], int]
    next_row: Callable[[], int]  # atomic under the GIL
    capacity: int
    hold: bool
    release: threading.Event
    t_cbs: memoryview
    keys: memoryview
    t_dones: memoryview
    works: memoryview
    progress: memoryview  # [rows handed out] (int64)


class NativeParts(NamedTuple):
    """What an inline Callback gives the native path (Callback.native_parts): the addresses of its
    columns and counters."""
    capacity: int
    hold: bool
    served: int      # int64: rows handed out (fetch-and-add)
    t_callback: int  # int64 columns of `capacity`
    keys: int
    t_done: int
    work: int        # ns per row
    progress: int    # int64: rows handed out so far, for the drain
    release: "Release"  # what the held first callback waits for


class Release(threading.Event):
    """The trial's release of a held first callback, also for callbacks outside Python (the wfp
    native path): a word in memory (`flag`, 0 until set) and functions called when it is set
    (`also`: the native path sets a kernel event its held callback waits on). Set once."""

    def __init__(self) -> None:
        super().__init__()
        self.flag = np.zeros(1, dtype=np.int64)
        self._also: list[Callable[[], object]] = []
        self._lock = threading.Lock()

    def also(self, when_set: Callable[[], object]) -> None:
        """Call `when_set` when the release is set (now, if it is)."""
        with self._lock:
            self._also.append(when_set)
            if self.is_set():
                when_set()

    def forget(self, when_set: Callable[[], object]) -> None:
        with self._lock:
            if when_set in self._also:
                self._also.remove(when_set)

    def set(self) -> None:
        # the hooks run under the lock: once forget() has returned, none runs any more (a hook
        # sets a kernel event whose handle is closed after forget, and Windows reuses handles)
        with self._lock:
            self.flag[0] = 1  # before the event: a callback woken by it must see the flag
            super().set()
            for when_set in self._also:
                when_set()

    def clear(self) -> None:
        raise RuntimeError("a trial's Release is set once (the native path's kernel event stays set): make a new one")


def preallocated(n: int, dtype) -> np.ndarray:
    """Zeroed memory that is already mapped: np.zeros maps its pages at first touch, and a page
    fault in the middle of a drain (one per 4 KiB: every 128 rows of 32 bytes) is a pause that
    looks like a batch boundary."""
    a = np.empty(n, dtype=dtype)
    a.view(np.uint8)[:] = 0
    return a


def spin_until(deadline_ns: int) -> None:
    clock = time.perf_counter_ns
    while clock() < deadline_ns:
        pass


def _no_bytes(key: int) -> bytes:
    raise RuntimeError("this platform gives a subscriber function no event bytes (Callback.read_events_with)")


def work_costs(rng: np.random.Generator, sub: SubscriberSpec, n: int) -> np.ndarray:
    """Per-event work in ns: fixed, gamma-distributed with coefficient of variation cost_cv, or
    drawn from the user's cost distribution (with its own seed, not `rng`: the same on every platform)."""
    if sub.cost_distribution is not None:
        return sub.cost_distribution.draw(n)
    mean = sub.cost_us * 1000
    if sub.cost_cv == 0 or mean == 0:
        return np.full(n, int(round(mean)), dtype=np.int64)
    shape = 1.0 / sub.cost_cv ** 2
    return np.round(rng.gamma(shape, mean / shape, n)).astype(np.int64)


class Callback:
    def __init__(self, sub: SubscriberSpec, capacity: int, release: threading.Event, seed: int) -> None:
        self.sub = sub
        self.release = release
        self.capacity = capacity
        self.columns = {name: preallocated(capacity, np.int64) for name in COLUMNS}
        self._key, self._t_cb, self._t_done = (memoryview(self.columns[name]) for name in COLUMNS)
        self._counters = preallocated(2, np.int64)  # [rows handed out so far (for the drain), native path's next row]
        self._progress = memoryview(self._counters[:1])
        self._native = False  # native_parts() was asked: rows come from the native counter, not _rows
        self._beyond: int | None = None  # events that found every row taken, counted by finish()
        self.work = work_costs(np.random.default_rng(seed), sub, capacity)
        self._work = memoryview(self.work)
        self.copy_ns = int(sub.copy_cost_us * 1000)
        self._rows = itertools.count()  # next() is atomic under the GIL: the platform may call from several threads
        self._filled: int | None = None
        self._jobs: queue.SimpleQueue | None = None
        self._worker: threading.Thread | None = None
        self._interval = sys.getswitchinterval()
        self._abandon = False  # the trial failed: the worker drops what is left
        # the collector's pauses (tens of us every few dozen callbacks) would look like batch gaps
        self._collecting = gc.isenabled()
        gc.disable()
        if sub.mode == "copy":
            self._jobs = queue.SimpleQueue()
            loop = self._work_loop if sub.function is None else self._function_loop
            self._worker = threading.Thread(target=loop, daemon=True, name="wfpcap-copy-worker")
            sys.setswitchinterval(2e-5)  # let the worker and the callback thread interleave finely
            try:
                self._worker.start()
            except BaseException:
                self.close()
                raise
        self.function = resolve_function(sub.function) if sub.function else None
        self.function_errors = 0
        self.first_function_error = ""
        self._event_bytes: list[Callable[[int], bytes]] = [_no_bytes]
        self.serve = self._server() if self.function is None else self._function_server()

    @property
    def n(self) -> int:
        """Rows handed out so far (progress for the drain; finish() counts exactly)."""
        return self._progress[0]

    @property
    def overflow(self) -> int:
        """Events that found every row taken: what the atomic row counter handed out beyond the
        capacity (no per-event counter, whose increments concurrent callbacks could lose). Known
        once finish() has run."""
        if self._beyond is None:
            raise RuntimeError("Callback.overflow is counted by finish()")
        return self._beyond

    def __enter__(self) -> "Callback":
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        self._abandon = exc_type is not None
        self.close()

    def read_events_with(self, event_bytes: Callable[[int], bytes]) -> None:
        """How the platform gives a user function an event's bytes: event_bytes(key), called in
        the callback for the event of `key` (before the platform's next delivery reuses them)."""
        self._event_bytes[0] = event_bytes

    def inline_parts(self) -> InlineParts | None:
        """What serve() binds in inline mode (None in copy mode), for a platform that runs the
        subscriber inside its own per-event function: the wfp callback does, to save a second Python
        call per event. Such a function must do exactly what serve() does below in inline mode
        (tests/test_wfp_lean.py compares the two)."""
        if self.sub.mode != "inline" or self.function is not None:
            return None
        return self._parts()

    def native_parts(self) -> NativeParts | None:
        """The addresses of the columns and counters, for a platform whose per-event function is
        native code (harness/platforms/wfp/native.py): it must do what serve() does in inline mode,
        and takes its rows from the counter here (finish() then reads it). None in copy mode, or
        when the release is not a Release (a native hold needs its flag)."""
        if self.sub.mode != "inline" or self.function is not None or not isinstance(self.release, Release):
            return None
        self._native = True
        return NativeParts(self.capacity, self.sub.hold, self._counters.ctypes.data + 8,
                           *(self.columns[name].ctypes.data for name in ("t_callback", "key", "t_done")),
                           self.work.ctypes.data, self._counters.ctypes.data, self.release)

    def _parts(self) -> InlineParts:
        return InlineParts(time.perf_counter_ns, self._rows.__next__, self.capacity, self.sub.hold, self.release,
                           self._t_cb, self._key, self._t_done, self._work, self._progress)

    def _server(self) -> Callable[[int], None]:
        """serve(key), with everything it touches bound to locals (attribute lookups cost per event;
        and no reference to self, which would keep the columns alive in a cycle after the trial)."""
        clock, next_row, capacity, hold, release, t_cbs, keys, t_dones, works, progress = self._parts()
        jobs, copy_ns = self._jobs, self.copy_ns

        def serve(key: int) -> None:
            t_cb = t = clock()
            i = next_row()
            if i >= capacity:  # counted by finish()
                return
            progress[0] = i + 1
            t_cbs[i] = t_cb
            keys[i] = key
            if i == 0 and hold:
                release.wait()
                t = clock()
            if jobs is None:
                work = works[i]
                if work:  # spin; the last reading is when the work was done (no clock call more)
                    deadline = t_cb + work
                    while t < deadline:
                        t = clock()
                t_dones[i] = t
            else:
                if copy_ns:
                    spin_until(t_cb + copy_ns)
                jobs.put(i)

        return serve

    def _function_server(self) -> Callable[[int], None]:
        """serve(key) for a user function: as _server, with the function called on the event's
        bytes as the work (inline), or the bytes handed to the worker (copy)."""
        clock, next_row, capacity, hold, release, t_cbs, keys, t_dones, _, progress = self._parts()
        jobs, copy_ns, source, call = self._jobs, self.copy_ns, self._event_bytes, self._call

        def serve(key: int) -> None:
            t_cb = clock()
            i = next_row()
            if i >= capacity:  # counted by finish()
                return
            progress[0] = i + 1
            t_cbs[i] = t_cb
            keys[i] = key
            data = source[0](key)
            if i == 0 and hold:
                release.wait()
            if jobs is None:
                call(data)
                t_dones[i] = clock()
            else:
                if copy_ns:
                    spin_until(t_cb + copy_ns)
                jobs.put((i, data))

        return serve

    def _call(self, data: bytes) -> None:
        try:
            self.function(data)
        except Exception as exc:  # the user's error: counted, never through the platform's thread
            self.function_errors += 1
            if not self.first_function_error:
                self.first_function_error = f"{type(exc).__name__}: {exc}"

    def _function_loop(self) -> None:
        clock, call, t_done = time.perf_counter_ns, self._call, self.columns["t_done"]
        while True:
            job = self._jobs.get()
            if job == -1:
                return
            if self._abandon:
                continue
            i, data = job
            call(data)
            t_done[i] = clock()

    def _work_loop(self) -> None:
        clock = time.perf_counter_ns
        while True:
            i = self._jobs.get()
            if i < 0:
                return
            if self._abandon:
                continue
            spin_until(clock() + int(self.work[i]))
            self.columns["t_done"][i] = clock()

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the worker (after it has done every queued event), restore the switch interval and
        the garbage collector. Safe to call more than once."""
        try:
            if self._jobs is not None:
                self._jobs.put(-1)
                if self._worker.is_alive():
                    self._worker.join(timeout=timeout_s)
                self._jobs = None
        finally:
            sys.setswitchinterval(self._interval)
            if self._collecting:
                gc.enable()
                self._collecting = False

    def finish(self, timeout_s: float = 60.0) -> dict[str, np.ndarray]:
        """close(), then the filled columns (call it once the platform can no longer call serve)."""
        self.close(timeout_s)
        if self._filled is None:
            # no callback can take a row any more
            handed = int(self._counters[1]) if self._native else next(self._rows)
            self._filled, self._beyond = min(handed, self.capacity), max(0, handed - self.capacity)
        return {name: column[: self._filled] for name, column in self.columns.items()}
