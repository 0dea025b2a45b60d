"""Which stretch of a long trace to replay, and how busy it is over time.

Capacity is decided by the worst stretch, so `--trace-window auto:LENGTH` picks the stretch of
that length with the most events; `START:LENGTH` (seconds of the source's own time, from its
first packet) picks one by hand. The arrival profile (events per bin, 1 ms by default) is what a
report plots with the chosen window marked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.inputs import BadInput, finite_float
from harness.traffic.schedule import Schedule


@dataclass(frozen=True)
class Busiest:
    start_ns: int   # in the source's time (scale 1), at an event
    length_ns: int
    events: int     # events inside [start, start + length)


def busiest_window(schedule: Schedule, length_ns: int) -> Busiest:
    """The stretch of `length_ns` (source time) that holds the most events; the earliest of equals."""
    if length_ns <= 0:
        raise BadInput(f"--trace-window length must be > 0 s, got {length_ns / 1e9:g}")
    t = schedule.base_offsets_ns[schedule.events]
    # a busiest window can always be slid right until it starts at an event
    inside = np.searchsorted(t, t + length_ns, side="left") - np.arange(len(t))
    best = int(np.argmax(inside))
    return Busiest(int(t[best]), int(length_ns), int(inside[best]))


def _seconds(text: str, what: str, spec: str) -> float:
    try:
        return finite_float(text)
    except ValueError:
        raise BadInput(f"--trace-window {spec}: {what} must be a finite number of seconds, got {text!r}") from None


def parse_window(spec: str) -> tuple[float | None, float]:
    """`auto:LENGTH` -> (None, length_s); `START:LENGTH` -> (start_s, length_s)."""
    head, sep, tail = spec.partition(":")
    if not sep:
        raise BadInput(f"--trace-window must be auto:LENGTH or START:LENGTH in seconds, got {spec!r}")
    length = _seconds(tail, "the length", spec)
    if length <= 0:
        raise BadInput(f"--trace-window {spec}: the length must be > 0 s")
    if head.strip() == "auto":
        return None, length
    start = _seconds(head, "the start", spec)
    if start < 0:
        raise BadInput(f"--trace-window {spec}: the start must be >= 0 s")
    return start, length


def apply_window(schedule: Schedule, spec: str) -> Schedule:
    """The --trace-window option applied to a schedule (BadInput for a window outside the trace)."""
    start, length = parse_window(spec)
    length_ns = int(round(length * 1e9))
    if start is None:
        return schedule.window(busiest_window(schedule, length_ns).start_ns, length_ns)
    return schedule.window(int(round(start * 1e9)), length_ns)


def arrival_profile(schedule: Schedule, bin_ns: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Events per bin over the schedule at its scale: (bin start in ns, events in the bin)."""
    t = schedule.offsets_ns[schedule.events]
    counts = np.bincount(t // bin_ns)
    return np.arange(len(counts), dtype=np.int64) * bin_ns, counts.astype(np.int64)
