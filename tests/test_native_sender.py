"""The native send loop (harness/traffic/native_loop.py) and its two OS bindings.

- The loop's logic on a virtual clock: the same compiled loop, its clock, sleep and send bound to
  words that only the loop moves, so that lateness, catch-up batches, refused and busy sends are
  exact whatever else the machine runs (as tests/test_traffic.py does for the Python loop).
- Each binding on real sockets: Linux's (libc sendmmsg) and Windows' (ws2_32 sendto and kernel32's
  timer, through the fake that stands in for those DLLs here), each packet once, to its own port,
  numbered, stamped between clock readings taken around the walk.
- Windows' affinity and priority calls through the fake, and a sender pinned apart from this process.
Its speed and lateness are measured by benchmarks/bench_sender.py, not here.
"""
import os
import socket
import threading
import time

import numpy as np
import pytest

from harness.platforms.wfp.sockets import LoopbackSockets
from harness.spec import FilterSpec, TrafficSpec, TrialSpec
from harness.traffic.native_loop import OS_WORDS, ERRORS, N, NativeLoop, intrinsics
from harness.traffic.packets import compile_packets
from harness.traffic.pacing import deadlines_ns
from harness.traffic.plan import plan_traffic
from harness.traffic.sender_process import SenderProcess
from netns import NetNamespace, needs_netns
from platforms import fake_wfp_library

pytest.importorskip("numba")

# the virtual OS's words, after the loop's own
NOW, COST, STALL_AT, STALL_NS, BUSY_AT, REFUSE_AT, LOG, LOGGED, YIELDS, YIELD_NS = range(OS_WORDS, OS_WORDS + 10)
REFUSED_CODE = 13
READING = 100  # ns a clock reading takes


class VirtualOs:
    """A binding whose clock moves only when the loop reads it (100 ns a reading), sleeps, yields
    the core (YIELD_NS each, counted in the array at YIELDS) or sends: each send call costs COST ns,
    the call that handles packet STALL_AT takes STALL_NS more (a neighbour took the core), packet
    BUSY_AT is answered "busy" once, packet REFUSE_AT is refused. Every call is logged."""

    name = "virtual"
    max_batch = None
    spin_ns = 200_000

    def primitives(self):
        from numba import carray, njit
        pointer = intrinsics().pointer

        @njit
        def clock(b):
            b[NOW] += READING
            return b[NOW]

        @njit
        def sleep_until(b, t):
            if t > b[NOW]:
                b[NOW] = t + 50_000  # a sleep wakes late, as clock_nanosleep does; the spin absorbs it

        @njit
        def yield_core(b):
            carray(pointer(b[YIELDS]), 1, np.int64)[0] += 1
            b[NOW] += b[YIELD_NS]

        @njit
        def send(b, first, last):
            log = carray(pointer(b[LOG]), 2 * 100_000, np.int64)
            log[2 * b[LOGGED]], log[2 * b[LOGGED] + 1] = first, last
            b[LOGGED] += 1
            b[NOW] += b[COST]
            if first == b[BUSY_AT]:
                b[BUSY_AT] = -1
                return 0
            if first == b[REFUSE_AT]:
                carray(pointer(b[ERRORS]), b[N], np.int32)[first] = REFUSED_CODE
                return 1
            if first <= b[STALL_AT] < last:
                b[NOW] += b[STALL_NS]
            return last - first

        return clock, sleep_until, yield_core, send

    def error_name(self, code):
        return {REFUSED_CODE: "EACCES"}.get(code, str(code))

    def describe(self):
        return {}


class VirtualTarget:
    def __init__(self, start_ns, cost_ns=2_000, stall_at=-1, stall_ns=0, busy_at=-1, refuse_at=-1, yield_ns=0):
        self.log = np.zeros(2 * 100_000, dtype=np.int64)
        self.yields = np.zeros(1, dtype=np.int64)
        self.words = np.array([start_ns, cost_ns, stall_at, stall_ns, busy_at, refuse_at, self.log.ctypes.data, 0,
                               self.yields.ctypes.data, yield_ns], dtype=np.int64)

    def calls(self, count):
        return [tuple(p) for p in self.log[:2 * count].reshape(-1, 2).tolist()]


@pytest.fixture(scope="module")
def virtual_loop():
    return NativeLoop(VirtualOs())


T0 = 1_000_000_000


def test_a_stall_is_caught_up_in_one_batch_and_the_schedule_holds(virtual_loop):
    """The native loop's version of the Python loop's test: a 5 ms stall mid-trial at 20,000/s is
    caught up in one batch, and the rest goes on time."""
    offsets = deadlines_ns(TrafficSpec(count=2000, pacing="constant", rate_per_s=20_000))
    target = VirtualTarget(T0, stall_at=500, stall_ns=5_000_000)
    run = virtual_loop.run(target, offsets + T0, max_batch=512)
    late = run.sent_at - (offsets + T0)
    calls = target.calls(run.calls)
    assert (late >= 0).all()  # never early
    assert [a for a, _ in calls] == [0] + [b for _, b in calls[:-1]] and calls[-1][1] == 2000  # each once, in order
    caught_up = next(b for a, b in calls if a > 500)
    assert caught_up - 501 >= 5_000_000 // 50_000  # what fell due in the stall, in the next call
    assert late[1:501].max() < READING and late[caught_up:].max() < READING  # stamped when handed over: on time
    assert late[501] >= 5_000_000 - 50_000  # due just after the stalled call began, handed over when it ended
    assert run.call_ns.max() == 5_000_000 + 2_000 + READING and (run.call_ns[run.call_ns < 5_000_000] == 2_000 + READING).all()
    assert run.busy == 0 and not run.errors.any()


@pytest.mark.parametrize("shape", ["burst", "poisson", "trace"])
def test_any_schedule_keeps_its_shape(virtual_loop, shape):
    """Whatever the offsets (a replayed trace's 70 us gaps inside bursts of four, then 2 ms of
    silence; Poisson; all at once), each packet goes at its deadline plus one call's cost, or in
    batches of at most max_batch when they are due together."""
    n = 4000
    if shape == "burst":
        offsets = np.zeros(n, dtype=np.int64)
    elif shape == "poisson":
        offsets = deadlines_ns(TrafficSpec(count=n, pacing="poisson", rate_per_s=30_000, seed=3))
    else:
        k = np.arange(n)
        offsets = (k // 4) * 2_000_000 + (k % 4) * 70_000
    target = VirtualTarget(T0, cost_ns=1_000)
    run = virtual_loop.run(target, offsets + T0, max_batch=64)
    late = run.sent_at - (offsets + T0)
    calls = target.calls(run.calls)
    assert calls[-1][1] == n and all(b - a <= 64 for a, b in calls)
    assert (late >= 0).all()
    if shape == "burst":
        assert len(calls) == n // 64 + 1 and np.all(np.diff(run.sent_at) >= 0)
    else:  # each handed over at its deadline (within a clock reading), unless it fell due while the
        # call before it was still sending: then as that one ended
        deadlines = offsets + T0
        waited = np.maximum(run.sent_at[:-1] + 1_000 + READING - deadlines[1:], 0)
        assert (late[1:] <= waited + READING).all()
        assert (late < READING).mean() > 0.95
    if shape == "trace":
        gaps = np.diff(run.sent_at)
        assert np.array_equal(gaps[1:], np.diff(offsets)[1:])  # the 70 us gaps and the 2 ms silences, exactly


def test_the_spin_gives_the_core_away_on_every_turn_and_the_sleep_does_not(virtual_loop):
    """Every turn of the spin before a deadline offers the core to whatever else is ready on it
    (its kernel threads, another sender); a wait longer than spin_ns is slept first
    and spun only for what is left (the virtual sleep wakes 50 us late). Here each turn costs a yield (900 ns) and a reading (100 ns)."""
    n, turn = 50, 900 + READING
    for gap, spun in ((100_000, 100_000 - 2_000 - READING), (1_000_000, 200_000 - 50_000)):
        offsets = np.arange(n, dtype=np.int64) * gap
        target = VirtualTarget(T0, yield_ns=900)
        run = virtual_loop.run(target, offsets + T0, max_batch=8)
        late = run.sent_at - (offsets + T0)
        assert run.calls == n and (late >= 0).all() and late.max() < turn  # a yield is short: on time
        yields = target.yields[0]
        assert abs(yields - (n - 1) * spun / turn) <= n  # one per turn, about spun / turn of them a gap


def test_a_busy_send_is_tried_again_and_a_refused_one_is_counted_once(virtual_loop):
    offsets = deadlines_ns(TrafficSpec(count=100, pacing="constant", rate_per_s=10_000))
    target = VirtualTarget(T0, busy_at=10, refuse_at=20)
    run = virtual_loop.run(target, offsets + T0, max_batch=16)
    calls = target.calls(run.calls)
    assert run.busy == 1 and calls.count((10, 11)) == 2  # busy: nothing went, the same packet again
    assert [a for a, _ in calls].count(20) == 1  # refused: never sent again
    assert np.flatnonzero(run.errors).tolist() == [20] and run.errors[20] == REFUSED_CODE
    assert (run.sent_at > 0).all()


def test_an_empty_schedule_sends_nothing(virtual_loop):
    run = virtual_loop.run(VirtualTarget(T0), np.zeros(0, dtype=np.int64), max_batch=8)
    assert run.calls == 0 and len(run.sent_at) == 0


# ---- the two bindings on real sockets ---------------------------------------------------------
PORTS = FilterSpec(remote_port_low=32000, remote_port_high=32039)


def libc_binding():
    from harness.platforms.nflog.native_send import LibcBinding
    return LibcBinding()


def ws2_binding():
    from harness.platforms.wfp.native_send import Ws2Binding
    return Ws2Binding(fake_wfp_library())


@pytest.mark.root
@needs_netns
@pytest.mark.parametrize("kind", ["udp", "raw"])
@pytest.mark.parametrize("make", [libc_binding, ws2_binding], ids=["linux-libc", "windows-ws2_32-fake"])
def test_each_binding_sends_every_packet_once_to_its_port_stamped_when_it_went(make, kind):
    """40 packets to 40 ports, Poisson-paced at 5,000/s: every one arrives once, from
    the sender's port, numbered in its payload; each stamp is never before its deadline and lies
    between clock readings taken around the walk (the Windows branch reads QueryPerformanceCounter,
    here the fake's 10 MHz counter: stamps floor to 100 ns)."""
    binding = make()
    loop = NativeLoop(binding)
    spec = TrialSpec(TrafficSpec(count=40, pacing="poisson", rate_per_s=5_000, seed=2), filter=PORTS)
    ns = NetNamespace()
    try:
        with ns:
            receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(40)]
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) if kind == "raw" else None
        for k, r in enumerate(receivers):
            r.bind(("127.0.0.1", 32000 + k))
            r.settimeout(2.0)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        packets = compile_packets(plan_traffic(spec), sport=port)
        target = binding.target(raw or sock, kind, packets)
        offsets = deadlines_ns(spec.traffic)
        before = time.perf_counter_ns()
        run, t0 = loop.paced(target, offsets, max_batch=8)
        after = time.perf_counter_ns()
        got = []
        for r in receivers:
            data, source = r.recvfrom(100)
            got.append((int.from_bytes(data[:8], "big"), r.getsockname()[1], source[1]))
        for r in receivers + [sock] + ([raw] if raw else []):
            r.close()
    finally:
        ns.close()
    assert sorted(seq for seq, _, _ in got) == list(range(40))
    assert all(dport == 32000 + seq and sport == port for seq, dport, sport in got)
    assert not run.errors.any() and run.busy == 0
    tick = 100 if make is ws2_binding else 0
    assert before < t0 and (run.sent_at >= offsets + t0 - tick).all() and run.sent_at.max() <= after
    assert np.all(np.diff(run.sent_at) >= 0)


def walk_to_one_receiver(binding, offsets):
    """The binding's loop sends len(offsets) UDP packets on that schedule to one receiver on
    127.0.0.1 (no namespace needed); (the run, t0)."""
    loop = NativeLoop(binding)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        sock.bind(("127.0.0.1", 0))
        spec = TrialSpec(TrafficSpec(count=len(offsets)), filter=FilterSpec(remote_port_low=receiver.getsockname()[1],
                                                                          remote_port_high=receiver.getsockname()[1]))
        packets = compile_packets(plan_traffic(spec), sport=sock.getsockname()[1])
        packets.dst[:] = 0x7F000001  # all to the one receiver on 127.0.0.1 (the plan steps the address)
        return loop.paced(binding.target(sock, "udp", packets), offsets, max_batch=8)


def test_without_high_resolution_timers_the_windows_branch_spins_over_a_default_tick(fake):
    """Before Windows 10 1803 CreateWaitableTimerExW refuses CREATE_WAITABLE_TIMER_HIGH_RESOLUTION:
    the binding takes a default timer, whose waits end at the next 15.6 ms tick, and spins for the
    16 ms before each deadline; a schedule with 30 ms gaps is still walked whole and never early."""
    from harness.platforms.wfp.native_send import Ws2Binding
    path, dll = fake
    dll.FakeSetHighResolutionTimers(0)
    try:
        binding = Ws2Binding(path)
    finally:
        dll.FakeSetHighResolutionTimers(1)
    assert binding.describe() == {"timer": "default (15.6 ms ticks)", "spin_us": 16_000}
    offsets = np.arange(5, dtype=np.int64) * 30_000_000
    run, t0 = walk_to_one_receiver(binding, offsets)
    assert not run.errors.any() and (run.sent_at >= offsets + t0 - 100).all()


# sched_yield counted on its way to the system call; the stand-in's other names resolve to libc
COUNTING_LIBC = r"""
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>
static long calls;
int sched_yield(void) { __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST); return (int)syscall(SYS_sched_yield); }
long yield_calls(void) { return __atomic_load_n(&calls, __ATOMIC_SEQ_CST); }
"""
SPUN = np.arange(50, dtype=np.int64) * 100_000  # 10,000/s: every wait shorter than either binding's spin


def test_the_linux_branch_spins_with_sched_yield(tmp_path):
    """The Linux binding's spin calls libc's sched_yield (here a stand-in's that counts the calls):
    at 10,000/s the whole 100 us between packets is spin, a yield on every turn."""
    import ctypes
    import subprocess

    from fake_fwpuclnt.build import compiler
    from harness.platforms.nflog.native_send import LibcBinding
    if compiler() is None:
        pytest.skip("no C compiler to build the stand-in libc")
    (tmp_path / "counting.c").write_text(COUNTING_LIBC)
    subprocess.run([compiler(), "-shared", "-fPIC", "-O2", "-o", str(tmp_path / "counting.so"), str(tmp_path / "counting.c")],
                   check=True)
    binding = LibcBinding(str(tmp_path / "counting.so"))
    counted = ctypes.CDLL(str(tmp_path / "counting.so")).yield_calls
    counted.restype = ctypes.c_long
    run, t0 = walk_to_one_receiver(binding, SPUN)
    assert not run.errors.any() and (run.sent_at >= SPUN + t0).all()
    assert counted() >= len(SPUN) - 1  # at least one yield in each gap (hundreds, unless the core was taken)


def test_the_windows_branch_spins_with_switch_to_thread(fake):
    """The Windows binding's spin calls kernel32's SwitchToThread (the stand-in's yields the core with
    sched_yield and counts the calls): a yield on every turn of the spin."""
    from harness.platforms.wfp.native_send import Ws2Binding
    path, dll = fake
    dll.FakeSwitchToThreadCalls.restype = __import__("ctypes").c_long
    before = dll.FakeSwitchToThreadCalls()
    run, t0 = walk_to_one_receiver(Ws2Binding(path), SPUN)
    assert not run.errors.any() and (run.sent_at >= SPUN + t0 - 100).all()
    assert dll.FakeSwitchToThreadCalls() - before >= len(SPUN) - 1


# ---- Windows' pinning and priority, through the fake ----------------------------------------------
def in_a_thread(work):
    """Run `work` on a thread of its own (its affinity and priority are its own) and return its result."""
    out = {}

    def run():
        try:
            out["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_windows_priority_is_the_calling_threads():
    from harness.platforms.wfp.threads import WindowsThreads
    threads = WindowsThreads(fake_wfp_library())
    assert in_a_thread(threads.raise_priority) == "thread priority 2 (THREAD_PRIORITY_HIGHEST)"
    assert threads.k.GetThreadPriority(threads.k.GetCurrentThread()) == 0  # another thread's is not this one's


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_windows_process_mask_moves_every_thread_and_comes_back():
    from harness.platforms.wfp.threads import WindowsThreads
    threads = WindowsThreads(fake_wfp_library())
    allowed = threads.allowed()
    first = {min(allowed)}
    waiting, seen = threading.Event(), {}
    bystander = threading.Thread(target=lambda: (waiting.wait(5), seen.update(cpus=os.sched_getaffinity(0))))
    bystander.start()
    try:
        threads.pin_process(first)
        assert threads.allowed() == first and os.sched_getaffinity(0) == first
        assert in_a_thread(lambda: os.sched_getaffinity(0)) == first  # a thread started now inherits it
        with pytest.raises(OSError, match="SetProcessAffinityMask refused cores"):
            threads.pin_process({os.cpu_count() + 1})  # beyond the machine's cores, as Windows refuses
    finally:
        waiting.set()
        bystander.join()
        threads.pin_process(allowed)
    assert seen["cpus"] == first and os.sched_getaffinity(0) == allowed and threads.allowed() == allowed


# ---- which loop runs ---------------------------------------------------------------------------------
class NoNative:
    pass


class BrokenNative:
    def native(self):
        class Broken(VirtualOs):
            def primitives(self):
                raise RuntimeError("LLVM ERROR: no target\nmore")  # as numba and llvmlite fail: no common base
        return Broken()


def test_the_native_loop_falls_back_with_its_reason_unless_asked_for_by_name(monkeypatch):
    import sys

    from harness.traffic.sender_path import SenderUnavailable, open_native
    assert open_native(NoNative(), "python") == (None, "WFPCAP_SENDER=python")
    assert open_native(NoNative(), "") == (None, "this platform's sockets have no native send loop")
    with pytest.raises(SenderUnavailable, match="^WFPCAP_SENDER=native: this platform's sockets have no native"):
        open_native(NoNative(), "native")
    assert open_native(BrokenNative(), "") == (None, "the native send loop did not compile (RuntimeError: LLVM ERROR: no target)")
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ModuleNotFoundError
    loop, why = open_native(type("V", (), {"native": lambda self: VirtualOs()})(), "")
    assert loop is None and why.startswith("numba is not installed (")

    def unloadable(self):
        raise ImportError("DLL load failed while importing _helperlib", name="numba._helperlib")
    loop, why = open_native(type("D", (), {"native": unloadable})(), "")
    assert loop is None and why == "numba is installed but did not load: DLL load failed while importing _helperlib"


def test_the_sender_choice_is_read_from_the_environment(monkeypatch):
    from harness.traffic.sender_path import SENDER_ENV, sender_choice
    monkeypatch.delenv(SENDER_ENV, raising=False)
    assert sender_choice() == ""
    monkeypatch.setenv(SENDER_ENV, " Python ")
    assert sender_choice() == "python"
    monkeypatch.setenv(SENDER_ENV, "fast")
    with pytest.raises(ValueError, match="^WFPCAP_SENDER='fast': expected 'native' or 'python'$"):
        sender_choice()


@pytest.mark.root
@needs_netns
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two cores")
def test_the_sender_and_this_process_are_pinned_apart_while_it_runs():
    """The sender on the last core at a raised priority (through the fake's kernel32, as on Windows),
    this process (the subscriber's side) on the others until the sender goes; every trial says so. A
    second sender (a benchmark's second loop) shares the first one's core, and this process gets its
    cores back when the last one goes. (Here, not beside test_sender_process.py's module-wide
    sender, which holds this process already.)"""
    allowed = os.sched_getaffinity(0)
    last, rest = max(allowed), allowed - {max(allowed)}
    ns = NetNamespace()
    with ns:
        first = SenderProcess(LoopbackSockets(fake_wfp_library()))
        second = SenderProcess(LoopbackSockets(fake_wfp_library()), path="python")
    try:
        assert os.sched_getaffinity(first.proc.pid) == os.sched_getaffinity(second.proc.pid) == {last}
        assert os.sched_getaffinity(0) == rest
        _, report = first.send(TrialSpec(TrafficSpec(count=3), filter=PORTS), "udp", 1, timeout_s=30)
        first.close()
        assert os.sched_getaffinity(0) == rest  # the second sender still runs
    finally:
        first.close()
        second.close()
        ns.close()
    assert os.sched_getaffinity(0) == allowed
    assert report["sender_cpus"] == str(last) and report["subscriber_cpus"] == ",".join(map(str, sorted(rest)))
    assert report["sender_priority"] == "thread priority 2 (THREAD_PRIORITY_HIGHEST)"
