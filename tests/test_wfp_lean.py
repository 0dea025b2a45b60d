"""The lean callback path (issue 9, item 4): what makes it cheap must hold, each with a test that
fails without it. Its speed is measured by benchmarks/bench_callback.py, not here."""
import ctypes
import gc
import os
import threading
import time
import weakref

import numpy as np

from harness.platforms.wfp.api import Library
from harness.platforms.wfp.engine import FilterSession
from harness.platforms.wfp.events import MINE
from harness.platforms.wfp.subscription import Subscription
from harness.spec import FilterSpec, SubscriberSpec
from harness.subscriber import Callback, preallocated


def resident_fraction(a: np.ndarray) -> float:
    """Share of the array's pages that are in memory, asked of the kernel page by page (mincore).
    The process's RSS counter is no measure here: with transparent huge pages 64 MiB is 32 faults,
    and the kernel folds a task's RSS count into /proc/self/statm only every 64 faults."""
    libc = ctypes.CDLL(None, use_errno=True)
    page = os.sysconf("SC_PAGE_SIZE")
    start = a.ctypes.data - a.ctypes.data % page
    length = a.ctypes.data + a.nbytes - start
    pages = (length + page - 1) // page
    vec = (ctypes.c_ubyte * pages)()
    if libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vec) != 0:
        raise OSError(ctypes.get_errno(), "mincore")
    return sum(v & 1 for v in vec) / pages


def test_preallocated_rows_are_mapped_before_the_first_event():
    """np.zeros maps its pages at first touch: a page fault every 4 KiB of rows during a drain,
    a pause that the queue-limit estimator took for batch boundaries (it read 128, not 256)."""
    # (a bare np.zeros of fresh pages reads ~0 here; a long-lived process may hand back resident memory,
    # so only the promise is asserted: every page of the rows is in memory before the first event)
    rows = preallocated(1 << 23, np.int64)
    assert resident_fraction(rows) > 0.99
    assert not rows.any()


def test_a_delivery_thread_keeps_its_python_thread_state(fake):
    """ctypes makes and deletes a Python thread state for every call from a thread Python did not
    start (a threading.local would forget between events); the subscription keeps one per thread."""
    path, dll = fake
    lib = Library(path)
    fs = FilterSession(lib)
    fid = fs.install(FilterSpec(remote_prefix="127.0.0.0/8"))
    local, seen = threading.local(), []

    def on_drop(row: int) -> None:
        seen.append(getattr(local, "calls", 0))
        local.calls = seen[-1] + 1

    sub = Subscription(lib, fs.session, None, False, fid, on_drop)
    for k in range(5):
        dll.FakeInjectUdp(0x7F000001, 20000 + k, 40000)
    deadline = time.monotonic() + 5
    while len(seen) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    sub.close()
    fs.close()
    assert seen == [0, 1, 2, 3, 4]
    assert sub.decoded().kind.tolist() == [MINE] * 5 and len(sub.callback_threads) == 1


def test_a_finished_callback_is_freed_without_the_garbage_collector():
    """serve() is a closure bound to locals; had it referred to the Callback, the pair would be a
    cycle that keeps every column of the trial alive until the collector runs (it is off during
    trials)."""
    gc.disable()
    try:
        callback = Callback(SubscriberSpec(), 1000, threading.Event(), 0)
        for key in range(3):
            callback.serve(key)
        assert callback.finish()["key"].tolist() == [0, 1, 2] and callback.n == 3
        freed = weakref.ref(callback)
        del callback
        assert freed() is None
    finally:
        gc.enable()
