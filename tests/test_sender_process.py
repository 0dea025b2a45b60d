"""The traffic generator process that both real platforms use (spawned, its own sockets)."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.platforms.wfp.sockets import LoopbackSockets
from harness.spec import FilterSpec, TrafficSpec, TrialSpec
from harness.traffic.sender_path import SENDER_ENV
from harness.traffic.sender_process import SenderError, SenderProcess
from netns import NetNamespace, needs_netns
from platforms import fake_wfp_library
from tiers import needs

ROOT = Path(__file__).resolve().parents[1]
SPEC = TrialSpec(TrafficSpec(count=20), filter=FilterSpec(remote_port_low=31000, remote_port_high=31999))


@pytest.fixture(scope="module", params=["native", "python"])
@needs("root")  # a network namespace of its own
def sender(request):
    """The wfp platform's sender process on each send loop: the native one runs its Windows branch
    (ws2_32's sendto, kernel32's timer) through the fake, which stands in for those DLLs here."""
    from netns import reason
    if reason():
        pytest.skip(reason())
    if request.param == "native":
        pytest.importorskip("numba")
    ns = NetNamespace()
    with ns, sender_env(request.param):
        s = SenderProcess(LoopbackSockets(fake_wfp_library()))
    yield s, ns
    s.close()
    ns.close()


@contextmanager
def sender_env(choice: str | None):
    """WFPCAP_SENDER as given (None: unset) while a sender process starts."""
    before = os.environ.pop(SENDER_ENV, None)
    if choice is not None:
        os.environ[SENDER_ENV] = choice
    try:
        yield
    finally:
        os.environ.pop(SENDER_ENV, None)
        if before is not None:
            os.environ[SENDER_ENV] = before


def received(ns, ports, action):
    with ns:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in ports]
    for s, p in zip(socks, ports):
        s.bind(("127.0.0.1", p))
        s.settimeout(2.0)
    result = action()
    got = []
    for s in socks:
        data, source = s.recvfrom(100)
        got.append((int.from_bytes(data[:8], "big") & ((1 << 48) - 1), source[1]))
        s.close()
    return result, got


def test_reports_the_image_it_runs(sender):
    s, _ = sender
    assert s.info["image"] == os.path.realpath(f"/proc/{s.info['pid']}/exe")
    assert s.info["pid"] == s.proc.pid != os.getpid()


@needs_netns
@pytest.mark.parametrize("kind", ["udp", "raw"])
def test_each_trial_sends_from_a_fresh_port(sender, kind, request):
    s, ns = sender
    ports = list(range(31000, 31020))
    (_, first), got = received(ns, ports, lambda: s.send(SPEC, kind, 1, timeout_s=30))
    assert first["sender_path"] == request.node.callspec.params["sender"]  # the loop asked for ran
    if first["sender_path"] == "native":  # the Windows branch, through the fake's ws2_32 and kernel32
        assert (first["sender_binding"], first["sender_timer"]) == ("ws2_32 sendto", "high resolution")
    assert [g[0] for g in got] == list(range(20))                # numbered in the payload
    assert {g[1] for g in got} == {first["local_port"]}          # raw too: from the trial's own port
    (_, second), _ = received(ns, ports, lambda: s.send(SPEC, kind, 2, timeout_s=30))
    assert second["local_port"] != first["local_port"]           # new tuples every trial
    (_, again), got = received(ns, ports, lambda: s.again(timeout_s=30))
    assert {g[1] for g in got} == {second["local_port"]} and again["packets"] == 20  # the same tuples once more


@needs_netns
def test_receivers_are_bound_on_every_destination_port_when_asked(sender):
    s, ns = sender
    _, report = s.send(SPEC, "udp", 3, timeout_s=30, receivers=True)
    assert report["receivers"] == 20
    with ns:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError):
        probe.bind(("0.0.0.0", 31005))  # held by the sender until its next trial
    probe.close()


def test_a_failure_in_the_child_is_one_line_and_it_keeps_serving(sender):
    s, _ = sender
    with pytest.raises(SenderError, match="sender failed: ValueError: sender kind must be udp or raw"):
        s.send(SPEC, "carrier-pigeon", 4, timeout_s=30)
    assert s.proc.is_alive()


PARENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, "tests")
    from harness.platforms.wfp.sockets import LoopbackSockets
    from harness.spec import TrafficSpec, TrialSpec
    from harness.traffic.sender_process import SenderProcess
    s = SenderProcess(LoopbackSockets(sys.argv[1]))
    print(s.proc.pid, flush=True)
    s.conn.send(("trial", TrialSpec(TrafficSpec(count=2_000_000, pacing="constant", rate_per_s=50_000)), "udp", 1, False))
    time.sleep(60)
""")


@pytest.mark.subprocess
def test_the_sender_dies_with_its_parent_even_while_sending():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, fake_wfp_library()], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    child = int(parent.stdout.readline())
    time.sleep(1.0)
    parent.send_signal(signal.SIGKILL)  # no handler, no atexit: like TerminateProcess
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and \
            Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)
    gone = not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
    if not gone:
        os.kill(child, signal.SIGKILL)
    assert gone, "the sender outlived its parent"


@needs_netns
def test_refused_sends_are_counted_by_error_name(sender):
    """A send that the system refuses (on Windows a blocking ALE filter can answer WSAEACCES) is
    counted and named, not an error: here an nftables drop on output in the test's own namespace,
    which Linux answers with EPERM, and the fake's ws2_32 (the native loop's Windows branch) with
    WSAEACCES, as Windows would."""
    s, ns = sender
    rules = ("table ip refuse {\n chain out {\n type filter hook output priority 0; policy accept;\n"
             " udp dport 31000-31009 drop\n }\n}\n")
    with ns:
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        _, report = s.send(SPEC, "udp", 3, timeout_s=30)
    finally:
        with ns:
            subprocess.run(["nft", "delete", "table", "ip", "refuse"], check=True)
    name = "WSAEACCES" if report["sender_path"] == "native" else "EPERM"
    assert report["send_errors"] == 10 and report["send_error_kinds"] == {name: 10}
    _, clean = s.send(SPEC, "udp", 4, timeout_s=30)
    assert clean["send_errors"] == 0 and clean["send_error_kinds"] == {}


class _Interrupted(Exception):
    pass


def test_a_signal_taken_by_another_thread_interrupts_the_wait_for_the_sender():
    """The kernel may hand a process's SIGINT or SIGTERM to any thread (the subscriber's reader);
    the main thread, waiting for the sender's reply, must still act on it at once (seen: a Ctrl-C
    mid-trial that waited out the 30 s trial)."""
    import multiprocessing
    import threading

    def interrupted(signum, frame):
        raise _Interrupted()

    waiting = object.__new__(SenderProcess)  # only its wait: no process behind the pipe
    waiting.conn, other_end = multiprocessing.Pipe()
    busy = threading.Event()
    bystander = threading.Thread(target=busy.wait, args=(10,), daemon=True)  # a thread blocked elsewhere
    bystander.start()
    threading.Timer(0.3, signal.pthread_kill, args=(bystander.ident, signal.SIGINT)).start()
    previous = signal.signal(signal.SIGINT, interrupted)
    started = time.monotonic()
    try:
        with pytest.raises(_Interrupted):
            waiting._reply(5.0, "finish")
    finally:
        signal.signal(signal.SIGINT, previous)
        busy.set()
        other_end.close()
    assert time.monotonic() - started < 2.0


def test_a_port_where_no_socket_may_listen_is_refused_not_fatal():
    """Windows: WSAEACCES in an excluded port range (errno EACCES, the WSA code in winerror). A
    plain EACCES (Linux) is an error, and a port in use is a listener elsewhere."""
    import errno as errnos

    from harness.spec import TrafficSpec, TrialSpec
    from harness.traffic.plan import plan_traffic
    from harness.traffic.sender_process import _receivers

    def refused(code: int, winerror: int | None = None) -> OSError:
        exc = OSError(code, "refused")
        if winerror is not None:
            exc.winerror = winerror
        return exc

    def bind(address: str, port: int):  # stubs: no real port is taken
        if port in (20001, 20002):
            raise refused(errnos.EACCES, 10013)
        if port == 20003:
            raise refused(errnos.EADDRINUSE)
        return (address, port)

    held, elsewhere, gone = _receivers(plan_traffic(TrialSpec(TrafficSpec(count=5))), bind)
    assert (held, elsewhere, sorted(p for _, p in gone)) == ([("127.0.0.1", 20000), ("127.0.0.1", 20004)], 1, [20001, 20002])

    def linux_eacces(address: str, port: int):
        raise refused(errnos.EACCES)

    with pytest.raises(OSError, match="cannot bind a receiver on port 20000"):
        _receivers(plan_traffic(TrialSpec(TrafficSpec(count=5))), linux_eacces)


class WithoutNativeLoop(LoopbackSockets):
    """A platform's sockets that offer no native send loop."""

    native = None


@pytest.mark.root
@needs_netns
def test_a_sender_named_in_the_environment_that_cannot_run_is_one_line(monkeypatch):
    """Bad input and a native loop asked for by name that cannot be had: PlatformUnavailable, one
    line (the scenario session turns it into exit 2); unset, the Python loop runs and says why."""
    from harness.platforms.base import PlatformUnavailable
    monkeypatch.setenv(SENDER_ENV, "fast")
    with pytest.raises(PlatformUnavailable, match="^WFPCAP_SENDER='fast': expected 'native' or 'python'$"):
        SenderProcess(LoopbackSockets(fake_wfp_library()))
    monkeypatch.setenv(SENDER_ENV, "native")
    with pytest.raises(PlatformUnavailable, match="^WFPCAP_SENDER=native: this platform's sockets have no native send loop$"):
        SenderProcess(WithoutNativeLoop(fake_wfp_library()))
    monkeypatch.delenv(SENDER_ENV)
    ns = NetNamespace()
    with ns:
        s = SenderProcess(WithoutNativeLoop(fake_wfp_library()))
    try:
        _, report = s.send(TrialSpec(TrafficSpec(count=3), filter=SPEC.filter), "udp", 1, timeout_s=30)
    finally:
        s.close()
        ns.close()
    assert report["sender_path"] == "python"
    assert report["sender_path_reason"] == "this platform's sockets have no native send loop"


@needs_netns
def test_a_replayed_schedule_is_the_one_sent(sender):
    """Any schedule (here a trace's shape: fours 70 us apart, 2 ms between them) crosses to the
    child in the trial's spec and is walked as given; its report measures lateness against it."""
    import numpy as np

    from harness.traffic.schedule import Schedule
    s, ns = sender
    k = np.arange(20)
    offsets = (k // 4) * 2_000_000 + (k % 4) * 70_000
    spec = TrialSpec(TrafficSpec.replay(Schedule(offsets)), filter=SPEC.filter)
    (sent_at, report), got = received(ns, list(range(31000, 31020)), lambda: s.send(spec, "udp", 7, 30))
    assert sorted(g[0] for g in got) == list(range(20)) and report["packets"] == 20
    assert sent_at[-1] - sent_at[0] >= offsets[-1] - report["late_max_us"] * 1000  # the schedule's span, never less
