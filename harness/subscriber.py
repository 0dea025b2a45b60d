"""What the subscriber's callback does with each event, the same on every real platform.

It records (seq, platform timestamp, callback time, thread) into preallocated arrays, then:
- hold: the first callback blocks until the trial releases it;
- inline: the work (`cost_us`, gamma-distributed when `cost_cv` > 0) is a busy wait in the callback;
- copy: the callback spends only `copy_cost_us` and hands the event to a worker thread, which does
  the work and stamps when it finished.
While it exists the garbage collector is off (and, in copy mode, the switch interval is short and
the worker runs); `close()` (or leaving `with Callback(...)`) puts all of it back, whatever ended
the trial.
"""
from __future__ import annotations

import gc
import queue
import sys
import threading
import time

import numpy as np

from harness.spec import SubscriberSpec

COLUMNS = ("seq", "t_event", "t_callback", "t_done", "thread")


def spin_until(deadline_ns: int) -> None:
    clock = time.perf_counter_ns
    while clock() < deadline_ns:
        pass


def work_costs(rng: np.random.Generator, sub: SubscriberSpec, n: int) -> np.ndarray:
    """Per-event work in ns: fixed, or gamma-distributed with coefficient of variation cost_cv."""
    mean = sub.cost_us * 1000
    if sub.cost_cv == 0 or mean == 0:
        return np.full(n, int(round(mean)), dtype=np.int64)
    shape = 1.0 / sub.cost_cv ** 2
    return np.round(rng.gamma(shape, mean / shape, n)).astype(np.int64)


class Callback:
    def __init__(self, sub: SubscriberSpec, capacity: int, release: threading.Event, seed: int,
                 extra: tuple[str, ...] = ()) -> None:
        self.sub = sub
        self.release = release
        self.capacity = capacity
        self.columns = {name: np.zeros(capacity, dtype=np.int64) for name in COLUMNS + extra}
        self.n = 0
        self.overflow = 0
        self.work = work_costs(np.random.default_rng(seed), sub, capacity)
        self.copy_ns = int(sub.copy_cost_us * 1000)
        self._hold = sub.hold
        self._lock = threading.Lock()  # the platform may call from more than one thread
        self._jobs: queue.SimpleQueue | None = None
        self._worker: threading.Thread | None = None
        self._interval = sys.getswitchinterval()
        self._abandon = False  # the trial failed: the worker drops what is left
        # the collector's pauses (tens of us every few dozen callbacks) would look like batch gaps
        self._collecting = gc.isenabled()
        gc.disable()
        if sub.mode == "copy":
            self._jobs = queue.SimpleQueue()
            self._worker = threading.Thread(target=self._work_loop, daemon=True, name="wfpcap-copy-worker")
            sys.setswitchinterval(2e-5)  # let the worker and the callback thread interleave finely
            try:
                self._worker.start()
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> "Callback":
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        self._abandon = exc_type is not None
        self.close()

    def __call__(self, seq: int, t_event_ns: int, **extra: int) -> None:
        t_cb = time.perf_counter_ns()
        with self._lock:
            i = self.n
            if i >= self.capacity:
                self.overflow += 1
                return
            self.n += 1
            hold, self._hold = self._hold, False
        c = self.columns
        c["seq"][i], c["t_event"][i], c["t_callback"][i], c["thread"][i] = seq, t_event_ns, t_cb, threading.get_ident()
        for name, value in extra.items():
            c[name][i] = value
        if hold:
            self.release.wait()
        if self._jobs is None:
            spin_until(t_cb + int(self.work[i]))
            c["t_done"][i] = time.perf_counter_ns()
        else:
            spin_until(t_cb + self.copy_ns)
            self._jobs.put(i)

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
        """close(), then the filled columns."""
        self.close(timeout_s)
        return {name: column[: self.n] for name, column in self.columns.items()}
