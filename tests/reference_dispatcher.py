"""A deliberately naive, event-by-event implementation of DESIGN section 3, written separately
from harness/platforms/model/dispatcher.py, so that the fast batch-level simulator can be
checked against it."""
from __future__ import annotations

from collections import deque


def reference(arrivals, service, Q, B, d, tau, release=None, threshold=0, timeout=0):
    """Returns (delivered arrival indices, callback start times, lost arrival indices). With a
    threshold, a batch is handed over once that many events wait or its oldest has waited
    `timeout`, and the dispatcher starts it d later (at once if it was ready when it turned around)."""
    n = len(arrivals)
    next_queue: deque = deque()
    buffer: deque = deque()
    delivered, starts, lost = [], [], []
    i = 0
    pos = 0  # delivery position (service is drawn per position)
    held = release is not None
    batch: list[int] = []
    t = None  # time the current batch starts; None = idle

    def arrive(k):
        if len(next_queue) < Q:
            next_queue.append(k)
        elif len(buffer) < B:
            buffer.append(k)
        else:
            lost.append(k)

    while True:
        if not batch and not next_queue:
            if i >= n:
                break
            if threshold:
                close = arrivals[i] + timeout
                if i + threshold - 1 < n:
                    close = min(close, arrivals[i + threshold - 1])
                while i < n and arrivals[i] <= close and len(batch) < Q:
                    batch.append(i)
                    i += 1
                t = close + d
            else:
                t = arrivals[i] + d
                while i < n and arrivals[i] <= t and len(batch) < Q:
                    batch.append(i)
                    i += 1
        elif not batch:
            waiting = len(next_queue) + len(buffer)
            if threshold and waiting < threshold:
                close = arrivals[next_queue[0]] + timeout
                if i + threshold - waiting - 1 < n:
                    close = min(close, arrivals[i + threshold - waiting - 1])
                if close > t:
                    while i < n and arrivals[i] <= close:
                        arrive(i)
                        i += 1
                    t = close + d
            batch = list(next_queue)
            next_queue.clear()
            while buffer and len(next_queue) < Q:
                next_queue.append(buffer.popleft())
        clock = t
        for k, event in enumerate(batch):
            # everything that arrives before this callback starts is placed first
            while i < n and arrivals[i] <= clock:
                arrive(i)
                i += 1
            delivered.append(event)
            starts.append(clock)
            end = clock + service[pos]
            if held:
                end = max(end, release)
                held = False
            pos += 1
            clock = end
        swap = clock + tau
        while i < n and arrivals[i] <= swap:
            arrive(i)
            i += 1
        batch = []
        t = swap
    return delivered, starts, lost
