"""The native per-event path (harness/platforms/wfp/native.py): it must do what the lean Python
callback and an inline Callback's serve() do, row for row, from threads Python never started and
several at once. Its clock, thread id and hold wait come from the fake's kernel32 exports here, as
from kernel32 on Windows. Its speed is measured by benchmarks/bench_callback.py, not here."""
import ctypes
import threading
import time

import numpy as np
import pytest

from harness.platforms.base import PlatformUnavailable
from harness.platforms.wfp.api import Library
from harness.platforms.wfp.engine import FilterSession
from harness.platforms.wfp.event_rows import FOREIGN, INCOMPLETE, MINE, OTHER_TYPE, RawEvents, decode
from harness.platforms.wfp.native import CALLBACK_ENV, Block, choose_callback, native_system
from harness.platforms.wfp.subscription import DeliveryThreads, Subscription, lean_callback
from harness.spec import FilterSpec, SubscriberSpec
from harness.subscriber import Callback, Release
from test_wfp_lean import FILTER_ID, events_of_every_kind, release_a_held_first_event

pytest.importorskip("numba")


def native_on(path: str, raw: RawEvents, callback: Callback):
    """The compiled callback bound to a block, as WFP would call it: on_event(event address). The
    block must outlive every call (its words are the context): the function holds it."""
    system = native_system(path)
    block = Block(system, raw, FILTER_ID, callback.native_parts())

    def on_event(event: int) -> None:
        system.callback(block.context, event)

    return on_event, block


@pytest.mark.parametrize("cost_us, cost_cv", [(0.0, 0.0), (30.0, 0.0), (30.0, 0.8)])
def test_the_native_callback_fills_what_the_python_callback_fills(fake, cost_us, cost_cv):
    """Same events in, same rows out: the raw event and drop rows byte for byte, the served keys,
    the work spun, the overflow past the subscriber's capacity and the decoded kinds."""
    path, _ = fake
    addresses, keep = events_of_every_kind()
    spec = SubscriberSpec(cost_us=cost_us, cost_cv=cost_cv)
    native, python = Callback(spec, 6, Release(), 7), Callback(spec, 6, threading.Event(), 7)
    raw_native, raw_python = RawEvents(4, 64), RawEvents(4, 64)
    on_event, block = native_on(path, raw_native, native)
    by_python = lean_callback(raw_python, FILTER_ID, python, DeliveryThreads())
    for address in addresses:
        on_event(address)
        by_python(None, address)
    on_event(0)  # no event: nothing
    a, b = native.finish(), python.finish()
    assert block.handed == len(addresses)
    assert a["key"].tolist() == b["key"].tolist() == [0, 1, 2, 6, 7, 8]
    assert native.n == python.n == 6 and native.overflow == python.overflow == 2
    assert raw_native.events.tobytes() == raw_python.events.tobytes()
    assert raw_native.drops.tobytes() == raw_python.drops.tobytes()
    assert (raw_native.thread[:11] != 0).all() and not raw_native.thread[11:].any()
    took = a["t_done"] - a["t_callback"]
    assert (took >= native.work[:6]).all() and (np.diff(a["t_callback"]) >= 0).all()
    if cost_us == 0:
        assert (took == 0).all()  # no work: done when called
    else:  # spun for its work, not much longer (the clock's 100 ns and a slow machine's preemption aside)
        assert np.median(took - native.work[:6]) < 20_000
    assert decode(raw_native, 11, False, FILTER_ID).kind.tolist() == \
        [MINE] * 3 + [FOREIGN, OTHER_TYPE, INCOMPLETE] + [MINE] * 5
    del keep


@pytest.mark.parametrize("hz", [10_000_000, 3_579_545, 2_500_000_000])
def test_native_stamps_are_perf_counter_ns_at_the_counters_resolution(fake, hz):
    """QueryPerformanceCounter ticks (10 MHz on today's Windows; 3,579,545 Hz or the TSC's rate on
    others) converted as CPython converts them: each stamp lies between perf_counter_ns readings
    taken around the call, floored to the counter's tick."""
    path, dll = fake
    dll.FakeSetQpcFrequency(hz)
    addresses, keep = events_of_every_kind()
    with Callback(SubscriberSpec(cost_us=0.0), 64, Release(), 0) as callback:
        on_event, _ = native_on(path, RawEvents(4, 64), callback)
        bounds = []
        for _ in range(20):
            before = time.perf_counter_ns()
            on_event(addresses[0])
            bounds.append((before, time.perf_counter_ns()))
            time.sleep(0.001)
        stamps = callback.finish()["t_callback"]
    tick_ns = -(-1_000_000_000 // hz)
    assert len(stamps) == 20
    for t, (before, after) in zip(stamps, bounds):
        assert before - tick_ns <= t <= after
    assert stamps.tolist() == sorted(stamps.tolist())
    del keep


def test_the_native_callback_holds_its_first_event_until_released(fake):
    """The held callback waits on a kernel event that the release sets: it wakes when released (a
    Sleep(1) poll would wake at Windows' next timer tick, 15.6 ms by default; without the event it
    would wake at its 1 s safety net)."""
    path, dll = fake
    addresses, keep = events_of_every_kind()
    release = Release()
    with Callback(SubscriberSpec(cost_us=0.0, hold=True), 16, release, 0) as callback:
        on_event, block = native_on(path, RawEvents(4, 64), callback)
        assert dll.FakeOpenEventHandles() == 1
        # ctypes lets go of the GIL for the call: the hold blocks the first event's thread only
        t_release = release_a_held_first_event(lambda: on_event(addresses[0]), callback, release)
        on_event(addresses[1])
        c = callback.finish()
        block.close()
    assert dll.FakeOpenEventHandles() == 0
    assert t_release > c["t_callback"][0]
    assert 0 <= c["t_done"][0] - t_release + 100 < 50_000_000  # done when released (100 ns ticks)
    assert c["t_done"][1] == c["t_callback"][1]
    del keep


def test_a_release_that_came_first_lets_the_held_callback_through(fake):
    path, dll = fake
    addresses, keep = events_of_every_kind()
    release = Release()
    release.set()
    with Callback(SubscriberSpec(cost_us=0.0, hold=True), 16, release, 0) as callback:
        on_event, block = native_on(path, RawEvents(4, 64), callback)
        start = time.perf_counter_ns()
        on_event(addresses[0])
        assert time.perf_counter_ns() - start < 500_000_000
        block.close()
    assert dll.FakeOpenEventHandles() == 0
    del keep


def test_a_release_calls_its_hooks_once_set_never_after_they_are_forgotten():
    """The native hold's kernel event is set by a hook; after forget() (then the handle is closed,
    and Windows hands its value out again) no hook may run."""
    release, calls = Release(), []
    early, late = (lambda: calls.append("early")), (lambda: calls.append("late"))
    release.also(early)
    release.set()
    release.also(late)  # already set: called at once
    assert calls == ["early", "late"] and release.flag[0] == 1
    release.forget(early)
    release.forget(late)
    release.set()
    assert calls == ["early", "late"]
    with pytest.raises(RuntimeError, match="set once"):
        release.clear()


def test_a_hold_without_a_flag_or_a_copy_mode_subscriber_stays_on_the_python_path():
    with Callback(SubscriberSpec(hold=True), 4, threading.Event(), 0) as plain:
        assert plain.native_parts() is None
    with Callback(SubscriberSpec(mode="copy"), 4, Release(), 0) as copy:
        assert copy.native_parts() is None


def test_native_rows_are_exact_with_callbacks_on_several_threads_at_once(fake):
    """Four threads in the native callback at once (ctypes drops the GIL for a foreign call, so
    they truly run together) past both capacities: every row taken once, the overflow exact."""
    path, _ = fake
    addresses, keep = events_of_every_kind()
    drops = [a for a, kind in zip(addresses, [MINE] * 3 + [FOREIGN, OTHER_TYPE, INCOMPLETE] + [MINE] * 5)
             if kind == MINE]
    callback = Callback(SubscriberSpec(cost_us=0.0), 50_000, Release(), 0)
    raw = RawEvents(4, 70_000)
    on_event, block = native_on(path, raw, callback)
    threads = [threading.Thread(target=lambda: [on_event(drops[k % len(drops)]) for k in range(20_000)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = callback.finish()
    assert block.handed == 80_000 and np.count_nonzero(raw.thread) == 70_000
    keys = c["key"]  # the raw rows of the first 50,000 served: each once, each a copied row
    assert len(keys) == len(np.unique(keys)) == 50_000 and (raw.thread[keys] != 0).all()
    assert callback.overflow == 20_000  # of the 70,000 copied drops
    assert len(np.unique(raw.thread)) >= 2  # several threads did deliver
    del keep


def test_a_subscription_runs_inline_subscribers_natively_from_the_fakes_threads(fake, monkeypatch):
    """Through FwpmNetEventSubscribe: the fake's pool of three delivery threads hands batches of 4 to
    any free one, so callbacks run on several threads at once; rows and counters stay exact."""
    path, dll = fake
    monkeypatch.delenv(CALLBACK_ENV, raising=False)
    dll.FakeConfigure(4, 2000, 100)
    dll.FakeConfigureDelivery(3, 1, 0)
    dll.FakeSetConcurrentDelivery(1)
    lib = Library(path)
    fs = FilterSession(lib)
    fid = fs.install(FilterSpec(remote_prefix="127.0.0.0/8"))
    with Callback(SubscriberSpec(cost_us=200.0), 40, Release(), 0) as callback:
        sub = Subscription(lib, fs.session, None, False, fid, callback, capacity=45)
        assert sub.path == "native"
        for k in range(50):
            dll.FakeInjectUdp(0x7F000001, 20000 + k, 40000)
        deadline = time.monotonic() + 10
        while dll.FakeDelivered(sub.events) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        sub.close()
        fs.close()
        c = callback.finish()
    assert sub.rows == 45 and sub.not_copied == 5
    keys = c["key"]
    assert len(np.unique(keys)) == 40 and callback.overflow == 5 and keys.max() < 45
    assert (c["t_done"] - c["t_callback"] >= 200_000).all()
    assert sub.decoded().kind.tolist() == [MINE] * 45
    assert sub.callback_threads >= 2
    order = np.argsort(c["t_callback"])
    overlapped = (c["t_callback"][order][1:] < c["t_done"][order][:-1]).sum()
    assert overlapped > 0  # some callback began before the one before it had returned


def test_the_callback_path_is_chosen_by_the_environment(fake, monkeypatch):
    path, dll = fake
    lib = Library(path)
    fs = FilterSession(lib)
    fid = fs.install(FilterSpec(remote_prefix="127.0.0.0/8"))
    try:
        monkeypatch.setenv(CALLBACK_ENV, "python")
        assert choose_callback(path) == (False, "WFPCAP_CALLBACK=python")
        with Callback(SubscriberSpec(), 4, Release(), 0) as callback:
            sub = Subscription(lib, fs.session, None, False, fid, callback)
            assert sub.path == "python"
            sub.close()
        monkeypatch.setenv(CALLBACK_ENV, "native")
        assert choose_callback(path) == (True, "")
        monkeypatch.setenv(CALLBACK_ENV, "fast")
        with pytest.raises(PlatformUnavailable, match="WFPCAP_CALLBACK='fast': expected 'native' or 'python'"):
            choose_callback(path)
    finally:
        fs.close()


def test_a_native_callback_that_cannot_be_had_falls_back_unless_asked_for(fake, monkeypatch):
    """numba missing (an import that fails) or broken (a compile that fails): unset, the Python
    callback runs and the platform says why; asked for by name, one clear line."""
    import sys

    import harness.platforms.wfp.native as native
    path, _ = fake
    monkeypatch.setattr(native, "_systems", {})
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delenv(CALLBACK_ENV, raising=False)
    native_ok, why = choose_callback(path)
    assert not native_ok and why.startswith("numba is not installed (")
    monkeypatch.setenv(CALLBACK_ENV, "native")
    with pytest.raises(PlatformUnavailable, match="^WFPCAP_CALLBACK=native: numba is not installed"):
        choose_callback(path)
    monkeypatch.delitem(sys.modules, "numba")

    def broken(dll):
        raise RuntimeError("LLVM ERROR: no target\nmore")

    monkeypatch.setattr(native, "_compile", broken)
    monkeypatch.delenv(CALLBACK_ENV)
    assert choose_callback(path) == (False, "the native callback did not compile (RuntimeError: LLVM ERROR: no target)")


def test_the_native_callback_is_compiled_once_per_process(fake):
    path, _ = fake
    assert native_system(path) is native_system(path)
    assert ctypes.cast(native_system(path).callback, ctypes.c_void_p).value


def test_the_doctors_self_test_enters_the_callback_from_a_thread_the_os_starts(fake):
    """CreateThread (a pthread the fake starts; on Windows, kernel32's): a thread Python never saw,
    as WFP's delivery threads are. The row it wrote names that thread, and the thread is gone."""
    from harness.platforms.wfp.native import self_test
    path, dll = fake
    said = self_test(path, 4)
    tid = int(said.split("OS thread (")[1].split(")")[0])
    assert tid not in (threading.get_native_id(), 0)
    assert said.endswith("with a synthetic FWPM_NET_EVENT5: its row is right")
    assert self_test(path, 0).endswith("FWPM_NET_EVENT1: its row is right")  # the oldest struct too
    assert dll.FakeOpenThreadHandles() == 0 and dll.FakeOpenEventHandles() == 0


def test_the_progress_counter_never_goes_back(fake):
    """Callbacks on several threads take rows in one order and store progress in another: a plain
    store of row + 1 from a callback that took an earlier row lowered it (the drain reads it)."""
    path, _ = fake
    addresses, keep = events_of_every_kind()
    with Callback(SubscriberSpec(cost_us=0.0), 16, Release(), 0) as callback:
        on_event, _ = native_on(path, RawEvents(4, 64), callback)
        callback._counters[0] = 9  # as left by a callback that took row 8 and stored first
        on_event(addresses[0])  # takes row 0
        assert callback.n == 9
        callback.finish()
    del keep


def test_a_numba_that_fails_to_load_is_not_reported_as_missing(fake, monkeypatch):
    """numba's extensions need the MSVC runtime on Windows: without it the import fails with a DLL
    load error, which is not 'numba is not installed'."""
    import harness.platforms.wfp.native as native
    path, _ = fake
    monkeypatch.setattr(native, "_systems", {})

    def no_runtime(dll):
        raise ImportError("DLL load failed while importing _helperlib: The specified module could not be found.",
                          name="numba._helperlib")

    monkeypatch.setattr(native, "_compile", no_runtime)
    monkeypatch.delenv(CALLBACK_ENV, raising=False)
    native_ok, why = choose_callback(path)
    assert not native_ok and why == ("numba is installed but did not load: numba._helperlib (DLL load failed while "
                                     "importing _helperlib: The specified module could not be found.)")
    monkeypatch.setenv(CALLBACK_ENV, "native")
    with pytest.raises(PlatformUnavailable, match="^WFPCAP_CALLBACK=native: numba is installed but did not load"):
        choose_callback(path)


EXIT_WITH_A_HELD_SUBSCRIPTION = """
import ctypes, sys, time
from harness.platforms.wfp.api import Library
from harness.platforms.wfp.engine import FilterSession
from harness.platforms.wfp.subscription import Subscription
from harness.spec import FilterSpec, SubscriberSpec
from harness.subscriber import Callback, Release
lib = Library(sys.argv[1])
filters = FilterSession(lib)
fid = filters.install(FilterSpec(remote_prefix="127.0.0.0/8"))
callback = Callback(SubscriberSpec(hold=True), 16, Release(), 0)
sub = Subscription(lib, filters.session, None, False, fid, callback)
assert sub.path == "native"
dll = ctypes.CDLL(sys.argv[1])
dll.FakeInjectUdp.argtypes = [ctypes.c_uint32, ctypes.c_uint16, ctypes.c_uint16]
for k in range(3):
    dll.FakeInjectUdp(0x7F000001, 20000 + k, 40000)
while callback.n == 0:
    time.sleep(0.01)
print("held", flush=True)
# and exits without closing anything: the held callback still waits inside the compiled code
"""


@pytest.mark.subprocess
def test_subscriptions_still_open_at_interpreter_exit_are_closed_before_it_goes(fake, tmp_path):
    """WFP may call a subscription's callback until it is unsubscribed; at interpreter exit the
    compiled code, its rows and its block are freed. So open subscriptions are released and closed
    first (the fake reports how many were still open once the interpreter had gone)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    path, _ = fake
    report = tmp_path / "open-at-exit"
    env = {**os.environ, "WFPCAP_FAKE_EXIT_REPORT": str(report)}
    done = subprocess.run([sys.executable, "-c", EXIT_WITH_A_HELD_SUBSCRIPTION, path], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "held", done.stderr[-2000:]
    assert report.read_text().strip() == "0"
