"""The NFLOG reader: one thread reads datagrams (one kernel batch each), parses them in bulk,
copies the batch's fields into preallocated columns with numpy, and then runs the subscriber's
callback (harness.subscriber.Callback.serve) once per event, like the WFP dispatcher: per event
only the callback itself runs in Python. While the first callback is held nothing is read, so the kernel's socket buffer
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
from harness.subscriber import Callback, preallocated

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
        capacity = expected + 64
        callback = Callback(sub, capacity, release, seed)
        fields = {name: preallocated(capacity, np.int64) for name in ("seq", "t_event", "nflog_seq", "batch")}
        filled = beyond = 0  # beyond: the harness's events past the expected count, not recorded
        serve = callback.serve
        # a user function reads each event's logged packet from the datagram while it is current
        current: list = [0, np.zeros(0, np.int64), np.zeros(0, np.int64)]  # first key, offsets, sizes
        if callback.function is not None:
            view = memoryview(self.buf)

            def packet(key: int) -> bytes:
                at = int(current[1][key - current[0]])
                return bytes(view[at:at + int(current[2][key - current[0]])])

            callback.read_events_with(packet)
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
                rec.datagrams += 1
                mine = (events.payload_seq >> TAG_SHIFT) == tag
                rec.stale += int((~mine).sum())
                stamps = events.timestamp_ns[mine]
                rec.untimestamped += int((stamps < 0).sum())
                k = min(int(mine.sum()), capacity - filled)
                rows = slice(filled, filled + k)
                fields["seq"][rows] = (events.payload_seq[mine] & SEQ_MASK)[:k]
                fields["t_event"][rows] = np.where(stamps >= 0, stamps - real_offset, t_parse)[:k]
                fields["nflog_seq"][rows] = events.nflog_seq[mine][:k]
                fields["batch"][rows] = rec.datagrams
                rec.parse_ns += clock() - t_parse
                if callback.function is not None:
                    current[:] = [filled, events.packet_at[mine][:k], events.packet_size[mine][:k]]
                for key in range(filled, filled + k):
                    serve(key)
                filled += k
                beyond += int(mine.sum()) - k
                last = clock()
        finally:
            c = callback.finish(timeout_s)
            keys = c.pop("key")
            rec.columns = {**c, **{name: column[keys] for name, column in fields.items()},
                           "thread": np.full(len(keys), threading.get_ident(), dtype=np.int64)}
        if callback.function_errors:
            rec.notes.append(f"the subscriber function raised {callback.function_errors} time(s), first: "
                             f"{callback.first_function_error}")
        if beyond:
            rec.notes.append(f"{beyond} events beyond the expected count were not recorded")
        return rec
