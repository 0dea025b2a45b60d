"""The NFLOG reader: one thread reads datagrams (one kernel batch each), parses them in bulk and
runs the subscriber's callback (harness.subscriber.Callback) once per event, like the WFP
dispatcher. While the first callback is held nothing is read, so the kernel's socket buffer
fills and then overflows, as a stuck WFP callback does."""
from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from harness.platforms.nflog.netlink import PacketParser
from harness.spec import SubscriberSpec
from harness.subscriber import Callback

TAG_SHIFT = 48
SEQ_MASK = (1 << TAG_SHIFT) - 1


@dataclass
class Records:
    columns: dict[str, np.ndarray]
    stale: int = 0
    enobufs: int = 0
    datagrams: int = 0
    untimestamped: int = 0
    parse_ns: int = 0
    notes: list[str] = field(default_factory=list)


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
            release: threading.Event, quiet_s: float, timeout_s: float, seed: int,
            abort: threading.Event | None = None) -> Records:
        callback = Callback(sub, expected + 64, release, seed, extra=("nflog_seq", "batch"))
        rec = Records(columns={})
        clock = time.perf_counter_ns
        real_offset = time.time_ns() - clock()  # kernel timestamps are CLOCK_REALTIME
        start = last = clock()
        self.sock.settimeout(min(0.02, quiet_s / 4))
        try:
            while not (abort is not None and abort.is_set()):
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
                seqs = (events.payload_seq[mine] & SEQ_MASK).tolist()
                nfs = events.nflog_seq[mine].tolist()
                stamps = events.timestamp_ns[mine]
                rec.untimestamped += int((stamps < 0).sum())
                t_event = np.where(stamps >= 0, stamps - real_offset, clock()).tolist()
                for k in range(len(seqs)):
                    callback(seqs[k], t_event[k], nflog_seq=nfs[k], batch=rec.datagrams)
                last = clock()
        finally:
            rec.columns = callback.finish(timeout_s)
        if callback.overflow:
            rec.notes.append(f"{callback.overflow} events beyond the expected count were not recorded")
        return rec
