"""The NFLOG subscriber: one thread reads datagrams (one kernel batch each), parses them in bulk
and runs the callback once per event, like the WFP dispatcher. The callback records
(seq, t_callback, thread) into preallocated arrays and then spends the subscriber's cost:

- hold: the first callback blocks until the trial releases it (nothing is read meanwhile, so the
  kernel's socket buffer fills and then overflows, exactly what a stuck WFP callback does);
- inline: the work is a busy wait inside the callback;
- copy: the callback spends only the copy cost and hands the event to a worker thread.
"""
from __future__ import annotations

import errno
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from harness.platforms.nflog.netlink import PacketParser
from harness.spec import SubscriberSpec

TAG_SHIFT = 48
SEQ_MASK = (1 << TAG_SHIFT) - 1


def _spin_until(deadline_ns: int) -> None:
    clock = time.perf_counter_ns
    while clock() < deadline_ns:
        pass


@dataclass
class Records:
    seq: np.ndarray
    nflog_seq: np.ndarray
    t_event: np.ndarray
    t_callback: np.ndarray
    t_done: np.ndarray
    thread: np.ndarray
    batch: np.ndarray
    n: int = 0
    stale: int = 0
    enobufs: int = 0
    datagrams: int = 0
    untimestamped: int = 0
    parse_ns: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def allocate(cls, size: int) -> "Records":
        z = lambda: np.zeros(size, dtype=np.int64)  # noqa: E731
        return cls(z(), z(), z(), z(), z(), z(), z())

    def grow(self) -> None:
        for name in ("seq", "nflog_seq", "t_event", "t_callback", "t_done", "thread", "batch"):
            setattr(self, name, np.resize(getattr(self, name), 2 * len(getattr(self, name)) + 16))


class Subscriber:
    def __init__(self, sock: socket.socket, parser: PacketParser | None = None, bufsize: int = 4 << 20) -> None:
        self.sock = sock
        self.parser = parser or PacketParser()
        self.buf = bytearray(bufsize)

    def discard_pending(self, quiet_s: float) -> int:
        """Read and drop whatever an earlier trial left, until nothing arrives for quiet_s."""
        dropped = 0
        self.sock.settimeout(quiet_s)
        while True:
            try:
                dropped += self.sock.recv_into(self.buf) > 0
            except socket.timeout:
                return dropped
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise

    def run(self, tag: int, expected: int, sub: SubscriberSpec, sending_done: threading.Event,
            release: threading.Event, quiet_s: float, timeout_s: float, seed: int) -> Records:
        rec = Records.allocate(expected + 64)
        rng = np.random.default_rng(seed)
        work = _costs(rng, sub, expected + 64)
        copy_ns = int(sub.copy_cost_us * 1000)
        hold_pending = sub.hold
        worker, jobs = None, None
        old_interval = sys.getswitchinterval()
        if sub.mode == "copy":
            jobs = queue.SimpleQueue()
            worker = threading.Thread(target=_work, args=(jobs, rec, work), daemon=True, name="wfpcap-copy-worker")
            sys.setswitchinterval(2e-5)  # let the worker and the reader interleave finely
            worker.start()
        clock = time.perf_counter_ns
        real_offset = time.time_ns() - clock()  # kernel timestamps are CLOCK_REALTIME
        thread_id = threading.get_ident()
        start = last = clock()
        self.sock.settimeout(min(0.02, quiet_s / 4))
        try:
            while True:
                try:
                    nbytes = self.sock.recv_into(self.buf)
                except socket.timeout:
                    now = clock()
                    if sending_done.is_set() and (not sub.hold or release.is_set()) and now - last > quiet_s * 1e9:
                        break
                    if now - start > timeout_s * 1e9:
                        rec.notes.append(f"drain timeout after {timeout_s} s")
                        break
                    continue
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:  # once per overflow episode; losses are counted by sequence
                        rec.enobufs += 1
                        continue
                    raise
                t_parse = clock()
                events = self.parser.parse(self.buf, nbytes)
                rec.parse_ns += clock() - t_parse
                rec.datagrams += 1
                mine = (events.payload_seq >> TAG_SHIFT) == tag
                rec.stale += int((~mine).sum())
                seqs = events.payload_seq[mine] & SEQ_MASK
                nfs = events.nflog_seq[mine]
                ts = events.timestamp_ns[mine]
                for k in range(len(seqs)):
                    i = rec.n
                    if i >= len(rec.seq):
                        rec.grow()
                        work = np.resize(work, len(rec.seq))
                    t_cb = clock()
                    rec.seq[i], rec.nflog_seq[i], rec.t_callback[i] = seqs[k], nfs[k], t_cb
                    rec.t_event[i] = ts[k] - real_offset if ts[k] >= 0 else t_cb
                    rec.untimestamped += int(ts[k] < 0)
                    rec.thread[i], rec.batch[i] = thread_id, rec.datagrams
                    rec.n += 1
                    if hold_pending:
                        hold_pending = False
                        release.wait()
                    if jobs is None:
                        _spin_until(t_cb + int(work[i]))
                        rec.t_done[i] = clock()
                    else:
                        _spin_until(t_cb + copy_ns)
                        jobs.put(i)
                last = clock()
        finally:
            if jobs is not None:
                jobs.put(-1)
                worker.join(timeout=timeout_s)
                sys.setswitchinterval(old_interval)
        return rec


def _work(jobs: queue.SimpleQueue, rec: Records, work: np.ndarray) -> None:
    clock = time.perf_counter_ns
    while True:
        i = jobs.get()
        if i < 0:
            return
        _spin_until(clock() + int(work[i]))
        rec.t_done[i] = clock()


def _costs(rng: np.random.Generator, sub: SubscriberSpec, n: int) -> np.ndarray:
    mean = sub.cost_us * 1000
    if sub.cost_cv == 0 or mean == 0:
        return np.full(n, int(mean), dtype=np.int64)
    shape = 1.0 / sub.cost_cv ** 2
    return rng.gamma(shape, mean / shape, n).astype(np.int64)
