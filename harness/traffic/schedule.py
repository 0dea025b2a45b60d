"""A trace as the sender and the model take it: when each packet goes, which flow it belongs to,
and which packets make an event.

A `Schedule` holds int64 send offsets in ns (sorted, the first at 0), an int64 flow id per packet
(numbered 0, 1, ... in order of each flow's first packet) and whether events are one per packet
or one per flow (`--trace-events`): WFP's transport layers classify every packet, its ALE layers
only a flow's first packet. It also says where it came from (`Provenance`: the file and its
SHA-256, the window), so that a report can name what was replayed.

The arrays are read-only and the schedule is compared, hashed and pickled by content (a digest
computed once), so that a frozen TrafficSpec that carries one stays cheap to compare and can
cross to the sender process. A time scale is a number on the schedule, applied when offsets are
asked for: rescaling for a headroom search copies nothing and never compounds rounding.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from harness.inputs import BadInput

TRACE_EVENTS: tuple[str, ...] = ("packets", "flows")


def default_trace_events(layer: str) -> str:
    """What makes an event at `layer`: ALE layers classify a flow's first packet, transport layers every packet."""
    return "flows" if layer.startswith("ALE_") else "packets"


def check_trace_events(mode: str) -> str:
    if mode not in TRACE_EVENTS:
        raise BadInput(f"--trace-events must be one of {', '.join(TRACE_EVENTS)}, got {mode!r}")
    return mode


def check_scale(scale: Any) -> float:
    """A time scale: a finite number > 0 (2 = twice as fast)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise BadInput(f"--traffic-scale must be a finite number > 0, got {scale!r}")
    return float(scale)


def parse_scale(text: str) -> float:
    """The --traffic-scale option's value."""
    try:
        return check_scale(float(text))
    except (ValueError, BadInput):
        raise BadInput(f"--traffic-scale must be a finite number > 0, got {text!r}") from None


@dataclass(frozen=True)
class Provenance:
    """Where a schedule came from, for the report.

    source: the file's path, or a shape's description; sha256: of the file (None for a shape);
    kind: pcap, pcapng, netsh or shape; window: (start, length) in ns of the source's time from its
    first packet, None for all of it; skipped: packets the reader did not take, by reason.
    """

    source: str
    kind: str
    sha256: str | None = None
    window: tuple[int, int] | None = None
    skipped: tuple[tuple[str, int], ...] = ()
    note: str = ""

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "kind": self.kind, "sha256": self.sha256,
                               "skipped": dict(self.skipped)}
        if self.window is not None:
            out["window_s"] = [self.window[0] / 1e9, self.window[1] / 1e9]
        if self.note:
            out["note"] = self.note
        return out


def first_appearance_ids(flow: np.ndarray) -> np.ndarray:
    """Renumber flow ids 0, 1, ... in the order of each flow's first packet (hash-based, O(n))."""
    return pd.factorize(np.asarray(flow, dtype=np.int64))[0].astype(np.int64)


def event_mask(flow: np.ndarray, trace_events: str) -> np.ndarray:
    """Which packets make an event: every one, or the first packet of each flow (`flow` numbered
    by first appearance, as a Schedule's is: a first packet is one whose id exceeds all before it)."""
    if trace_events == "packets":
        return np.ones(len(flow), dtype=bool)
    seen = np.maximum.accumulate(np.concatenate(([-1], flow[:-1])))
    return flow > seen


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class Schedule:
    """Send offsets (ns, sorted, from 0), flow ids and the event rule of one trace, with its provenance.

    `Schedule(times_ns, flow, ...)` accepts times in any order and from any origin: they are
    sorted (stably, flows with them) and shifted to start at 0, and flows are renumbered by first
    appearance. An empty trace is refused (BadInput)."""

    __slots__ = ("_base", "_flow", "trace_events", "scale", "provenance", "_digest", "_cache")

    def __init__(self, times_ns: np.ndarray, flow: np.ndarray | None = None, trace_events: str = "packets",
                 provenance: Provenance | None = None, scale: float = 1.0) -> None:
        times = np.asarray(times_ns, dtype=np.int64)
        if times.ndim != 1 or len(times) == 0:
            source = provenance.source if provenance else "the trace"
            raise BadInput(f"{source} holds no packets to replay (an empty trace)")
        flows = np.arange(len(times), dtype=np.int64) if flow is None else np.asarray(flow, dtype=np.int64)
        if flows.shape != times.shape:
            raise ValueError(f"a schedule needs one flow id per packet: {len(flows)} for {len(times)} packets")
        if np.any(times[1:] < times[:-1]):  # captures from several interfaces interleave out of order
            order = np.argsort(times, kind="stable")
            times, flows = times[order], flows[order]
        self._base = _read_only(times - times[0])
        self._flow = _read_only(first_appearance_ids(flows))
        self.trace_events = check_trace_events(trace_events)
        self.scale = check_scale(scale)
        self.provenance = provenance or Provenance(source="arrays", kind="arrays")
        h = hashlib.sha256(self._base.tobytes())
        h.update(self._flow.tobytes())
        self._digest = h.hexdigest()
        self._cache: dict[str, np.ndarray] = {}

    # -- what the sender and the model read ------------------------------------------------------
    @property
    def offsets_ns(self) -> np.ndarray:
        """int64 send offsets at this schedule's scale (time divided by the scale, rounded)."""
        if self.scale == 1.0:
            return self._base
        if "offsets" not in self._cache:
            self._cache["offsets"] = _read_only(np.rint(self._base / self.scale).astype(np.int64))
        return self._cache["offsets"]

    @property
    def base_offsets_ns(self) -> np.ndarray:
        """Offsets at scale 1 (the source's own time)."""
        return self._base

    @property
    def flow(self) -> np.ndarray:
        return self._flow

    @property
    def events(self) -> np.ndarray:
        """bool per packet: it makes an event (every packet, or a flow's first)."""
        if "events" not in self._cache:
            self._cache["events"] = _read_only(event_mask(self._flow, self.trace_events))
        return self._cache["events"]

    def __len__(self) -> int:
        return len(self._base)

    @property
    def count(self) -> int:
        return len(self._base)

    @property
    def flow_count(self) -> int:
        return int(self._flow.max()) + 1

    @property
    def event_count(self) -> int:
        return self.count if self.trace_events == "packets" else self.flow_count

    @property
    def duration_s(self) -> float:
        """From the first to the last packet, at this scale."""
        return float(self._base[-1]) / self.scale / 1e9

    @property
    def digest(self) -> str:
        """SHA-256 of the offsets and flows at scale 1 (scale and event rule are compared beside it)."""
        return self._digest

    # -- derived schedules -----------------------------------------------------------------------
    def scaled(self, scale: float) -> "Schedule":
        """The same trace played `scale` times as fast (relative to the source, not to this one)."""
        return self._derive(scale=check_scale(scale))

    def with_trace_events(self, trace_events: str) -> "Schedule":
        return self._derive(trace_events=check_trace_events(trace_events))

    def window(self, start_ns: int, length_ns: int) -> "Schedule":
        """The packets sent in [start, start + length) of the source's time (scale 1), starting at 0.

        Flows are renumbered and, with events per flow, a flow whose first packet fell before the
        window makes its event at its first packet inside it: the replay is new to the machine."""
        start_ns, length_ns = int(start_ns), int(length_ns)
        end = self._base[-1]
        if length_ns <= 0 or start_ns < 0 or start_ns > end:
            raise BadInput(f"--trace-window {start_ns / 1e9:g}:{length_ns / 1e9:g} lies outside the trace "
                           f"(0..{end / 1e9:g} s)")
        lo, hi = np.searchsorted(self._base, [start_ns, start_ns + length_ns], side="left")
        if hi <= lo:
            raise BadInput(f"--trace-window {start_ns / 1e9:g}:{length_ns / 1e9:g} holds no packet of the trace")
        earlier = self.provenance.window[0] if self.provenance.window else 0
        provenance = replace(self.provenance, window=(earlier + start_ns, length_ns))
        return Schedule(self._base[lo:hi], self._flow[lo:hi], self.trace_events, provenance, self.scale)

    def _derive(self, **changes: Any) -> "Schedule":
        out = object.__new__(Schedule)
        out._base, out._flow, out._digest = self._base, self._flow, self._digest
        out.trace_events = changes.get("trace_events", self.trace_events)
        out.scale = changes.get("scale", self.scale)
        out.provenance = self.provenance
        out._cache = {k: v for k, v in self._cache.items() if k == "events" and out.trace_events == self.trace_events}
        return out

    # -- comparison and pickling by content ------------------------------------------------------
    def _key(self) -> tuple:
        return self._digest, self.trace_events, self.scale, self.provenance

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __getstate__(self) -> dict[str, Any]:
        return {"base": self._base, "flow": self._flow, "trace_events": self.trace_events, "scale": self.scale,
                "provenance": self.provenance, "digest": self._digest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._base = _read_only(state["base"])
        self._flow = _read_only(state["flow"])
        self.trace_events, self.scale = state["trace_events"], state["scale"]
        self.provenance, self._digest = state["provenance"], state["digest"]
        self._cache = {}

    def __repr__(self) -> str:
        return (f"Schedule({self.count:,} packets, {self.flow_count:,} flows, events per "
                f"{self.trace_events[:-1]}, {self.duration_s:g} s at scale {self.scale:g}, from {self.provenance.source})")

    def describe(self) -> dict[str, Any]:
        """What the report says about the replayed trace."""
        return {"packets": self.count, "flows": self.flow_count, "events": self.event_count,
                "trace_events": self.trace_events, "scale": self.scale, "duration_s": self.duration_s,
                "digest": self._digest, **self.provenance.describe()}
