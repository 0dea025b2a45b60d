"""The traffic generator process: forked once when the platform opens (before any thread
starts), it owns the sockets inside the namespace and sends each trial's packets on schedule, so
that pacing never competes with the subscriber for the interpreter lock."""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import socket
from dataclasses import replace
from typing import Any

import numpy as np

from harness.platforms.nflog import netns
from harness.platforms.nflog.mmsg import MmsgSender
from harness.spec import TrialSpec
from harness.traffic.packets import compile_packets
from harness.traffic.pacing import deadlines_ns, generator_report, run_paced
from harness.traffic.plan import plan_traffic

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this child when the parent dies, even by SIGKILL (PR_SET_PDEATHSIG).
    Signals meant for the run (Ctrl-C in a terminal reaches the whole group) are the parent's to
    handle: it stops the child itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _serve(conn, sockets: dict[str, socket.socket], max_batch: int, parent: int) -> None:
    die_with_parent(parent)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        spec, kind, tag = msg
        try:
            plan = plan_traffic(spec)
            packets = compile_packets(tagged(plan, tag))
            sender = MmsgSender(sockets[kind], kind, packets)
            offsets = deadlines_ns(spec.traffic)
            sent_at, t0 = run_paced(sender, offsets, max_batch=max_batch)
            conn.send(("ok", sent_at, generator_report(spec.traffic, sent_at, offsets, t0)))
        except Exception as exc:  # reported to the parent as one line
            conn.send(("error", f"{type(exc).__name__}: {exc}", None))


def tagged(plan, tag: int):
    """Carry the trial number in the top 16 bits of the sequence field, so that a late event of
    an earlier trial is never mistaken for one of this trial."""
    return replace(plan, seq=plan.seq | (np.int64(tag) << 48))


class SenderProcess:
    def __init__(self, namespace: str, max_batch: int = 256) -> None:
        self.sockets = {
            "udp": netns.socket_in(namespace, socket.AF_INET, socket.SOCK_DGRAM),
            "raw": netns.socket_in(namespace, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
        }
        for s in self.sockets.values():
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, self.sockets, max_batch, os.getpid()), daemon=True,
                                name="wfpcap-sender")
        self.proc.start()
        child.close()

    def send(self, spec: TrialSpec, kind: str, tag: int, timeout_s: float) -> tuple[np.ndarray, dict[str, Any]]:
        self.conn.send((spec, kind, tag))
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"sender did not finish within {timeout_s:.0f} s")
        status, payload, report = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"sender failed: {payload}")
        return payload, report

    def kill(self) -> None:
        """Stop a send in progress at once (the process cannot be asked: it is busy sending)."""
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)

    def close(self) -> None:
        if not self.proc.is_alive():
            for s in self.sockets.values():
                s.close()
            return
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
        for s in self.sockets.values():
            s.close()
