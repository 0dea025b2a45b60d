"""The traffic generator in a process of its own, on every platform.

It never competes with the subscriber's callbacks for the interpreter lock. Started with the
`spawn` method (the only one Windows has, and the same on Linux so that the code that runs on
Windows runs in the Linux tests), it makes its sockets itself, through a picklable factory that
the platform hands over (nflog: inside its network namespace; wfp: plain loopback sockets). It
dies with its parent: a watchdog thread waits on the parent's sentinel.

The loop that paces and sends is native code where it compiles (harness/traffic/native_loop.py,
bound by the platform's factory to libc or ws2_32), else the Python loop (pacing.run_paced); which one
ran, and why, is in every trial's report (`sender_path`), with the cores the sender and the harness
process were pinned to and the sender's priority (harness/traffic/cores.py).

Per trial it opens a fresh UDP socket, so every trial has a new local port and with it new
tuples: a classify cache can never decide a trial's result. The raw sender sends the same
scapy-compiled packets, with that port as their source, through a send-only raw socket; it never
captures. For inbound layers it first binds a receiver on every destination port, because a
datagram without a listener never reaches them. The trial's sockets stay open until the next
trial, so whatever classifies the packets afterwards still finds them.
"""
from __future__ import annotations

import errno
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import replace
from multiprocessing import connection
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from harness.platforms.base import PlatformUnavailable
from harness.spec import TrialSpec
from harness.traffic.cores import CoreSplit, SubscriberCores, ThreadControl, pin_sender, process_cores, split
from harness.traffic.native_loop import NativeLoop, Target
from harness.traffic.packets import SEQ_OFFSET, PacketBatch, compile_packets
from harness.traffic.pacing import BatchSender, deadlines_ns, generator_report, run_paced
from harness.traffic.plan import TrafficPlan, plan_traffic
from harness.traffic.safety import check_destinations
from harness.traffic.sender_path import SenderUnavailable, open_native, sender_choice

KINDS = ("udp", "raw")


def _errnos(*names: str) -> set[int]:
    """Socket errors by name; on Windows a socket's OSError carries the WSA code."""
    return {getattr(errno, name) for name in names if hasattr(errno, name)}


_BUSY = _errnos("EAGAIN", "EWOULDBLOCK", "ENOBUFS", "WSAEWOULDBLOCK", "WSAENOBUFS")
_IN_USE = _errnos("EADDRINUSE", "WSAEADDRINUSE")
# a port no one may listen on: a range that Hyper-V, WSL2 or Docker excluded (WSAEACCES, in winerror)
_REFUSED = {10013}


class SocketFactory(Protocol):
    """How a platform's sockets are made, called in the sender process (so it must pickle)."""

    def enter(self) -> dict[str, Any]:
        """Once, first thing in the child (e.g. enter a namespace); returns facts for the parent."""
        ...

    def udp(self) -> socket.socket:
        ...

    def raw(self) -> socket.socket:
        ...

    def sender(self, sock: socket.socket, kind: str, packets: PacketBatch) -> BatchSender:
        ...

    # optional: `receiver(address, port) -> socket.socket`, a UDP socket bound there (default: bind_receiver);
    # `native() -> Binding`, the OS side of the native send loop (native_loop.py; without it the Python loop runs);
    # `threads() -> ThreadControl`, pinning and priority (cores.py; without it nothing is pinned)


def bind_receiver(address: str, port: int) -> socket.socket:
    """A UDP socket listening on (address, port); OSError if it cannot."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((address, port))
    except OSError:
        s.close()
        raise
    return s


def error_name(exc: OSError) -> str:
    """EACCES, WSAEACCES (Windows sockets carry WSA codes in winerror), or the number."""
    code = getattr(exc, "winerror", None) or exc.errno
    return errno.errorcode.get(code, str(code))


class SendtoSender:
    """One sendto per packet (every OS). A send that a filter refuses (WSAEACCES on Windows) is
    counted, not an error; a full send queue makes the pacer try again."""

    def __init__(self, sock: socket.socket, kind: str, packets: PacketBatch) -> None:
        skip = SEQ_OFFSET if kind == "udp" else 0
        self.sock = sock
        self.payloads = [bytes(row) for row in packets.data[:, skip:]]
        ports = packets.dport.tolist() if kind == "udp" else [0] * len(packets.dport)
        self.targets = [(socket.inet_ntoa(int(a).to_bytes(4, "big")), p) for a, p in zip(packets.dst.tolist(), ports)]
        self.refused = 0
        self.errors: Counter[str] = Counter()  # refused sends by error name (EACCES, WSAEACCES, ...)

    def send(self, first: int, last: int) -> int:
        sendto, payloads, targets = self.sock.sendto, self.payloads, self.targets
        for k in range(first, last):
            try:
                sendto(payloads[k], targets[k])
            except OSError as exc:
                if exc.errno in _BUSY:
                    return k - first
                self.refused += 1
                self.errors[error_name(exc)] += 1
        return last - first


def tagged(plan: TrafficPlan, tag: int) -> TrafficPlan:
    """Carry the trial number in the top 16 bits of the payload's sequence field, so that a late
    event of an earlier trial is never mistaken for one of this trial (nflog reads the payload)."""
    return replace(plan, seq=plan.seq | (np.int64(tag) << 48))


def _watch_parent() -> None:
    """Exit at once when the parent is gone (killed or crashed), even in the middle of a send."""
    parent = mp.parent_process()
    if parent is not None:
        connection.wait([parent.sentinel])
        os._exit(1)


def _raise_fd_limit() -> None:
    try:
        import resource  # POSIX only; Windows has no per-process socket limit of this kind
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _receivers(plan: TrafficPlan, bind: Callable[[str, int], socket.socket] = bind_receiver
               ) -> tuple[list[socket.socket], int, list[tuple[int, int]]]:
    """A UDP socket on every destination (loopback address, port): never on all addresses, so
    that nothing from outside can reach them. One that someone else holds already is a
    listener too, which is all an inbound layer needs. One where no socket may listen (a Windows
    excluded port range: WSAEACCES) is returned as refused: an inbound layer never sees its packets."""
    held, elsewhere, refused = [], 0, []
    pairs = np.unique(np.stack([plan.remote_v4, plan.remote_port], axis=1), axis=0).tolist()
    for address, port in pairs:
        try:
            held.append(bind(socket.inet_ntoa(int(address).to_bytes(4, "big")), port))
        except OSError as exc:
            if getattr(exc, "winerror", None) in _REFUSED:  # Windows only: Linux refuses no port >= 1024 to root
                refused.append((int(address), int(port)))
            elif exc.errno in _IN_USE:
                elsewhere += 1
            else:
                raise OSError(exc.errno, f"cannot bind a receiver on port {port}: {exc.strerror}") from None
    return held, elsewhere, refused


def thread_control(sockets: SocketFactory) -> tuple[ThreadControl | None, str]:
    """The platform's pinning and priority calls, or None and why not."""
    make = getattr(sockets, "threads", None)
    if make is None:
        return None, "this platform offers no thread control"
    try:
        return make(), ""
    except (OSError, PlatformUnavailable) as exc:
        return None, str(exc)


def plan_destinations(plan: TrafficPlan) -> list[str]:
    """Every address the trial's packets go to (the native loop sends to exactly these)."""
    return [socket.inet_ntoa(int(a).to_bytes(4, "big")) for a in np.unique(plan.remote_v4).tolist()]


class _Child:
    def __init__(self, conn, sockets: SocketFactory, max_batch: int, pinned: dict[str, str]) -> None:
        self.conn, self.sockets, self.max_batch = conn, sockets, max_batch
        self.held: list[socket.socket] = []
        self.last: tuple[Any, np.ndarray, TrialSpec, int] | None = None
        self.native: NativeLoop | None = None
        self.path: dict[str, str] = {}  # set by choose() before the child says it is ready
        self.pinned = pinned

    def choose(self, native: NativeLoop | None, why: str) -> None:
        self.native = native
        if native is None:
            self.path = {"sender_path": "python", "sender_path_reason": why}
            return
        self.path = {"sender_path": "native", "sender_binding": native.binding.name,
                     **{f"sender_{k}": v for k, v in native.binding.describe().items()}}

    def release(self) -> None:
        for s in self.held:
            s.close()
        self.held.clear()
        self.last = None

    def trial(self, spec: TrialSpec, kind: str, tag: int, receivers: bool) -> tuple[np.ndarray, dict[str, Any]]:
        self.release()
        if kind not in KINDS:
            raise ValueError(f"sender kind must be udp or raw, got {kind!r}")
        plan = plan_traffic(spec)
        check_destinations(plan_destinations(plan))  # here too: the native loop sends to the plan's addresses
        bound = elsewhere = 0
        refused: list[tuple[int, int]] = []
        if receivers:
            listeners, elsewhere, refused = _receivers(plan, getattr(self.sockets, "receiver", bind_receiver))
            self.held += listeners
            bound = len(listeners)
        udp = self.sockets.udp()  # a fresh local port for this trial's tuples
        self.held.append(udp)
        port = udp.getsockname()[1]
        packets = compile_packets(tagged(plan, tag), sport=port)
        sock = udp
        if kind == "raw":
            sock = self.sockets.raw()
            self.held.append(sock)
        if self.native is not None:
            sender = self.native.binding.target(sock, kind, packets)
        else:
            sender = self.sockets.sender(sock, kind, packets)
        listening = {"receivers": bound, "receivers_elsewhere": elsewhere, "receivers_refused": len(refused)}
        if refused:  # (address, port) pairs, which the platform takes out of the report
            listening["refused_receivers"] = refused
        self.last = (sender, deadlines_ns(spec.traffic), spec, port, listening)  # any schedule: a trace's too
        return self.paced()

    def paced(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Send the current trial's packets (again) from its sockets, on schedule."""
        if self.last is None:
            raise RuntimeError("no trial to send again")
        sender, offsets, spec, port, listening = self.last
        if self.native is not None:
            sent_at, t0, call_ns, extra = self._native(sender, offsets)
        else:
            sent_at, t0, call_ns, extra = self._python(sender, offsets)
        report = generator_report(spec.traffic, sent_at, offsets, t0, call_ns=call_ns)
        report.update(extra)
        report.update(self.path)
        report.update(self.pinned)
        report["sender_pid"] = os.getpid()
        report["local_port"] = port  # every packet of the trial comes from this port (raw ones too)
        report.update(listening)  # the same receivers listen for a send again
        return sent_at, report

    def _native(self, target: Target, offsets: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, dict[str, Any]]:
        run, t0 = self.native.paced(target, offsets, self.max_batch)
        codes, counts = np.unique(run.errors[run.errors != 0], return_counts=True)
        kinds = {self.native.binding.error_name(int(c)): int(k) for c, k in zip(codes.tolist(), counts.tolist())}
        return run.sent_at, t0, run.call_ns, {"send_errors": int(counts.sum()), "send_error_kinds": kinds,
                                              "send_calls": run.calls, "send_busy": run.busy}

    def _python(self, sender: BatchSender, offsets: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, dict[str, Any]]:
        refused = getattr(sender, "refused", 0)
        errors_before = Counter(getattr(sender, "errors", {}))
        call_ns: list[int] = []
        sent_at, t0 = run_paced(sender, offsets, max_batch=self.max_batch, call_ns=call_ns)
        return sent_at, t0, np.asarray(call_ns, dtype=np.int64), {
            "send_errors": getattr(sender, "refused", 0) - refused,
            "send_error_kinds": dict(Counter(getattr(sender, "errors", {})) - errors_before)}

    def serve(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except EOFError:
                return
            if msg is None:
                return
            try:
                if msg[0] == "trial":
                    self.conn.send(("ok", *self.trial(*msg[1:])))
                else:  # "again"
                    self.conn.send(("ok", *self.paced()))
            except Exception as exc:  # reported to the parent as one line
                self.release()
                self.conn.send(("error", f"{type(exc).__name__}: {exc}", None))


def _main(conn, sockets: SocketFactory, max_batch: int, cores: CoreSplit, choice: str) -> None:
    # Ctrl-C in a terminal reaches the whole process group: it is the parent's to handle (it stops
    # this process itself, at once)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, daemon=True, name="wfpcap-sender-watchdog").start()
    _raise_fd_limit()
    try:
        info = sockets.enter()
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}", None))
        return
    control, why_not = thread_control(sockets)
    pinned = pin_sender(control, cores if control is not None else replace(cores, why_not=f"not pinned: {why_not}"))
    child = _Child(conn, sockets, max_batch, pinned)
    try:  # compiled as the platform opens (~1-3 s), never in a trial: a trial's timing is the traffic's
        child.choose(*open_native(sockets, choice))
    except SenderUnavailable as exc:  # asked for by name: the platform refuses to open
        conn.send(("unavailable", str(exc), None))
        return
    conn.send(("ok", {**info, **pinned, "pid": os.getpid()}, None))
    try:
        child.serve()
    finally:
        child.release()


POLL_SLICE_S = 0.1  # how soon a signal delivered to another thread is acted on while waiting for the sender


class SenderError(RuntimeError):
    pass


class SenderProcess:
    """The parent's handle: `send` runs one trial's traffic and returns (send times, report).

    While it runs, this process keeps off the sender's core (cores.py). PlatformUnavailable (one
    line) for a WFPCAP_SENDER that is not native or python, or native where it cannot be had.
    `path` ("native" or "python") overrides WFPCAP_SENDER (a benchmark runs both side by side)."""

    def __init__(self, sockets: SocketFactory, max_batch: int = 256, start_timeout_s: float = 120.0,
                 path: str | None = None) -> None:
        try:
            choice = sender_choice() if path is None else path
        except ValueError as exc:
            raise PlatformUnavailable(str(exc)) from None
        if choice not in ("", "native", "python"):
            raise ValueError(f"sender path must be native or python, got {path!r}")
        control, why_not = thread_control(sockets)
        cores = (split(process_cores(control)) if control is not None
                 else CoreSplit(frozenset(), frozenset(), f"not pinned: {why_not}"))
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_main, args=(child, sockets, max_batch, cores, choice), daemon=True,
                                name="wfpcap-sender")
        self.proc.start()
        child.close()
        self.subscriber: SubscriberCores | None = None
        try:
            self.info: dict[str, Any] = self._reply(start_timeout_s, "start")[0]
        except BaseException:
            self.kill()
            raise
        if not cores.why_not and self.info.get("sender_cpus", "").startswith("not pinned"):
            cores = CoreSplit(frozenset(), frozenset(), "not pinned: the sender has no core of its own")
        self.subscriber = SubscriberCores(control, cores)

    def _reply(self, timeout_s: float, what: str) -> tuple[Any, Any]:
        # wait in slices: a signal the kernel gave to another thread (the subscriber's reader) does
        # not wake this thread's poll, and on Windows a wait on a pipe is not woken by Ctrl-C at all;
        # between slices Python runs the pending handler (KeyboardInterrupt, the SIGTERM path)
        deadline = time.monotonic() + timeout_s
        while not self.conn.poll(max(0.0, min(POLL_SLICE_S, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"sender did not {what} within {timeout_s:.0f} s")
        try:
            status, payload, report = self.conn.recv()
        except EOFError:
            raise SenderError(f"sender process died (exit code {self.proc.exitcode})") from None
        if status == "unavailable":
            raise PlatformUnavailable(payload)
        if status != "ok":
            raise SenderError(f"sender failed: {payload}")
        if isinstance(report, dict) and getattr(self, "subscriber", None) is not None:
            report["subscriber_cpus"] = self.subscriber.text
        return payload, report

    def send(self, spec: TrialSpec, kind: str, tag: int, timeout_s: float,
             receivers: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
        self.conn.send(("trial", spec, kind, tag, receivers))
        return self._reply(timeout_s, "finish")

    def again(self, timeout_s: float) -> tuple[np.ndarray, dict[str, Any]]:
        """The last trial's packets once more, from the same sockets (the same tuples)."""
        self.conn.send(("again",))
        return self._reply(timeout_s, "finish")

    def kill(self) -> None:
        """Stop a send in progress at once (the process cannot be asked: it is busy sending)."""
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        self._unpin()

    def _unpin(self) -> None:
        if getattr(self, "subscriber", None) is not None:
            self.subscriber.release()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(timeout=5)
            self.kill()
        self._unpin()
        self.conn.close()
