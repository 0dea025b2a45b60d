"""The dispatcher of the field notes, in virtual time (docs/methodology.md, the model).

FIFO throughout. An arriving event joins the batch being formed while the dispatcher is idle
(for `dispatch_latency` after the first one); otherwise it waits in the next queue while that
holds fewer than Q, then in the system buffer while that holds fewer than B; else it is lost.
Because the buffer only fills once the next queue is full and refills it oldest first, the two
together act as one FIFO of Q + B places from which each new batch takes the oldest min(Q, n).

A batch is delivered one callback per event; its kernel packets are released together when the
last callback returns; after the batch turnaround the next batch starts.

With a batch threshold (off by default: nflog's kernel batches, qthresh and its flush timer), a
batch is handed over only once `threshold` events wait for it, or once the oldest of them has
waited `flush_timeout`; the dispatcher, asleep meanwhile, starts it `dispatch_latency` later.
A dispatcher that finds the batch ready when it turns around starts it at once.

The loop below runs once per *batch*, not per event: arrivals that fall into a busy period are
counted with a binary search, and per-event times are filled in afterwards with numpy.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class Simulation:
    """Result of one simulated trial. Positions are in delivery order; indices are arrival indices."""

    delivered_index: np.ndarray  # arrival index of each delivered event, in delivery order
    callback_start: np.ndarray   # ns
    callback_end: np.ndarray     # ns
    batch_of: np.ndarray         # batch number of each delivered event
    batch_start: np.ndarray      # ns, per batch
    batch_end: np.ndarray        # ns, per batch (last callback returned; kernel packets released)
    batch_size: np.ndarray       # per batch
    batch_from_queue: np.ndarray # bool per batch: taken from the next queue (False: formed while idle)
    lost_index: np.ndarray       # arrival indices that were lost
    series: dict[str, np.ndarray]  # ground truth over time: t_ns, next_queue, buffer, kernel_held


def simulate(
    arrivals: np.ndarray,
    service: np.ndarray,
    queue_limit: int,
    system_buffer: int,
    dispatch_latency: int,
    turnaround: int,
    release_at: int | None = None,
    threshold: int = 0,
    flush_timeout: int = 0,
) -> Simulation:
    """Simulate the dispatcher.

    arrivals: sorted int64 ns times of the events (only events that pass the template).
    service:  int64 ns callback time of the k-th *delivered* event (i.i.d. draws, one per position).
    release_at: if set, the first callback is held until this time (a burst trial's hold).
    threshold, flush_timeout: a batch waits for `threshold` events or `flush_timeout` ns (0: off).
    """
    n = len(arrivals)
    if len(service) < n:
        raise ValueError("need one service time per possible delivery")
    arr = arrivals.tolist()
    # prefix sums of service by delivery position: the busy time of a batch is one subtraction
    busy_prefix = np.concatenate(([0], np.cumsum(service[:n], dtype=np.int64))).tolist()
    capacity = queue_limit + system_buffer

    seg_first: list[int] = []   # accepted arrivals come in contiguous runs of arrival indices
    seg_len: list[int] = []
    seg_waits: list[bool] = []  # run went to the waiting FIFO (True) or straight into a forming batch
    b_head: list[int] = []
    b_size: list[int] = []
    b_start: list[int] = []
    b_shift: list[int] = []
    b_queued: list[bool] = []

    head = tail = i = 0         # head/tail: delivery positions; i: next arrival not yet placed
    t_swap = 0
    hold_pending = release_at is not None
    waiting_runs: deque[list[int]] = deque()  # with a threshold: [first arrival, count] of the FIFO's runs
    while True:
        if head == tail:  # idle: the next arrival forms a batch
            if i >= n:
                break
            if threshold:
                close = _closes(arr, i, threshold, arr[i] + flush_timeout)
                start = close + dispatch_latency
                j = bisect_right(arr, close, i, min(n, i + queue_limit))
            else:
                start = arr[i] + dispatch_latency
                j = bisect_right(arr, start, i, min(n, i + queue_limit))
            seg_first.append(i); seg_len.append(j - i); seg_waits.append(False)
            size = j - i
            tail += size
            i = j
            queued = False
        else:
            start = t_swap
            if threshold and tail - head < threshold:  # the batch is not ready: wait for it
                close = _closes(arr, i + threshold - (tail - head) - 1, 0, arr[waiting_runs[0][0]] + flush_timeout)
                if close > t_swap:
                    start = close + dispatch_latency
                    # they join it while there is room: arrivals at the very instant it closes
                    # may be more than it lacked, and those beyond Q + B are lost
                    j = bisect_right(arr, close, i)
                    take = min(j - i, capacity - (tail - head))
                    if take > 0:
                        seg_first.append(i); seg_len.append(take); seg_waits.append(True)
                        waiting_runs.append([i, take])
                        tail += take
                    i = j
            size = min(queue_limit, tail - head)
            queued = True
            if threshold:
                _consume(waiting_runs, size)
        end = start + busy_prefix[head + size] - busy_prefix[head]
        shift = 0
        if hold_pending:
            shift = max(0, release_at - (start + busy_prefix[head + 1] - busy_prefix[head]))
            end += shift
            hold_pending = False
        b_head.append(head); b_size.append(size); b_start.append(start); b_shift.append(shift); b_queued.append(queued)
        head += size
        t_swap = end + turnaround
        j = bisect_right(arr, t_swap, i)  # everything arriving while this batch runs must wait
        take = min(j - i, capacity - (tail - head))
        if take > 0:
            seg_first.append(i); seg_len.append(take); seg_waits.append(True)
            tail += take
            if threshold:
                waiting_runs.append([i, take])
        i = j

    return _assemble(arrivals, service[:tail], queue_limit, seg_first, seg_len, seg_waits,
                     b_head, b_size, b_start, b_shift, b_queued, n)


def _closes(arr: list[int], last: int, threshold: int, timer: int) -> int:
    """When a batch is handed over: at its completing arrival (index `last`, or `last + threshold - 1`
    counted from a batch's first) or at its flush timer, whichever comes first."""
    k = last + threshold - 1 if threshold else last
    return min(arr[k], timer) if k < len(arr) else timer


def _consume(runs: deque[list[int]], size: int) -> None:
    """Take `size` events off the front of the FIFO's runs."""
    while size:
        run = runs[0]
        used = min(size, run[1])
        run[0] += used
        run[1] -= used
        size -= used
        if run[1] == 0:
            runs.popleft()


def _runs(first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Concatenate aranges first[k] .. first[k]+length[k]-1 without a Python loop."""
    total = int(length.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(first - np.concatenate(([0], np.cumsum(length)[:-1])), length)
    return offsets + np.arange(total, dtype=np.int64)


def _assemble(arrivals, service, queue_limit, seg_first, seg_len, seg_waits,
              b_head, b_size, b_start, b_shift, b_queued, n) -> Simulation:
    first = np.asarray(seg_first, dtype=np.int64)
    length = np.asarray(seg_len, dtype=np.int64)
    waits = np.asarray(seg_waits, dtype=bool)
    delivered = _runs(first, length)
    accepted = np.zeros(n, dtype=bool)
    accepted[delivered] = True
    lost = np.flatnonzero(~accepted)

    size = np.asarray(b_size, dtype=np.int64)
    start = np.asarray(b_start, dtype=np.int64)
    head = np.asarray(b_head, dtype=np.int64)
    shift = np.asarray(b_shift, dtype=np.int64)
    queued = np.asarray(b_queued, dtype=bool)
    batch_of = np.repeat(np.arange(len(size)), size)
    cum = np.cumsum(service, dtype=np.int64)
    cum_before_batch = (cum - service)[head] if len(head) else head
    cb_end = start[batch_of] + cum - cum_before_batch[batch_of] + shift[batch_of]
    cb_start = cb_end - service
    cb_start[head] = start  # the held first callback was invoked at the batch start
    batch_end = cb_end[head + size - 1] if len(size) else start

    # ground truth: occupancy of queue+buffer changes by +1 per waiting arrival, -size per queued batch
    waiting_arrivals = arrivals[_runs(first[waits], length[waits])]
    t = np.concatenate((waiting_arrivals, start[queued]))
    delta = np.concatenate((np.ones(len(waiting_arrivals), dtype=np.int64), -size[queued]))
    order = np.lexsort((-delta, t))  # at equal times arrivals count before the swap that takes them
    t, occupancy = t[order], np.cumsum(delta[order])
    # kernel packets held: a batch's packets from its start until its last callback returns
    kt = np.concatenate((start, batch_end))
    kd = np.concatenate((size, -size))
    korder = np.lexsort((kd, kt))
    kt, held = kt[korder], np.cumsum(kd[korder])
    series_t = np.concatenate((t, kt))
    occ_at = np.concatenate((occupancy, _step_lookup(t, occupancy, kt)))
    held_at = np.concatenate((_step_lookup(kt, held, t), held))
    sorder = np.argsort(series_t, kind="stable")
    occ_sorted = occ_at[sorder]
    series = {
        "t_ns": series_t[sorder],
        "next_queue": np.minimum(occ_sorted, queue_limit),
        "buffer": np.maximum(occ_sorted - queue_limit, 0),
        "kernel_held": held_at[sorder],
    }
    return Simulation(delivered, cb_start, cb_end, batch_of, start, batch_end, size, queued, lost, series)


def _step_lookup(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Value of a right-continuous step function (times, values) at `at`; 0 before the first step."""
    idx = np.searchsorted(times, at, side="right") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)] if len(values) else 0, 0)
    return out.astype(np.int64)
