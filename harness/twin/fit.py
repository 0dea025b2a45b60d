"""The dispatcher's structure fitted to a run: queue limit and buffer from the burst and the drain,
dispatch latency from the drain's first batch, batch turnaround from the drain's batch boundaries,
the sender's rate from the bursts (DESIGN section 8).

Each parameter comes back as a TwinParameter: its value with the range its evidence allows and
the trials it rests on, or, when the run could not determine it, None with the reason. Nothing is
defaulted. The per-event overhead, which needs the others, is fitted in service.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.results.read import read_trial_rows
from harness.results.records import Estimate, RunSummary, TrialRow, TwinParameter
from harness.results.runs import load_run
from harness.twin.stored import kept_events

# what each parameter stands in for where delivery is not the model's dispatcher
STANDS_FOR = {
    "nflog": {
        "queue_limit": "the NFLOG queue threshold: events per netlink datagram (one kernel batch)",
        "system_buffer": "the netlink socket's receive buffer (bytes), in events of full datagrams",
        "dispatch_latency_us": "filling the first datagram (qthresh events) and waking the reader",
        "batch_turnaround_us": "one recv() and the parse of a datagram",
        "per_event_overhead_us": "the reader's own work per event (copying fields, the Python callback call)",
        "cpu_share": "the share of a CPU the reader thread gets while it has work (neighbours take the rest)",
        "sender_rate_per_s": "the sender process's back-to-back rate into the nftables rule",
        "batch_threshold": "qthresh: the kernel sends a datagram once it holds this many events",
        "flush_timeout_us": "the kernel's flush timer: a datagram that does not fill goes after this long",
        "stall_rate_per_s": "how often the reader thread is descheduled while it has work (its neighbours' time slices)",
        "stall_mean_us": "how long it stays descheduled, on average",
    },
    "wfp": {
        "batch_turnaround_us": "the release of a batch's kernel packets and the swap to the next queue",
        "per_event_overhead_us": "the dispatcher and callback path per event (native or Python callback)",
        "cpu_share": "the share of a CPU the delivery thread gets while it has work (neighbours take the rest)",
        "sender_rate_per_s": "the sender process's back-to-back rate",
        "stall_rate_per_s": "how often the delivery thread is descheduled while it has work (its neighbours' time slices)",
        "stall_mean_us": "how long it stays descheduled, on average",
    },
}


@dataclass
class RunData:
    """What the fit reads from a run folder."""

    path: Path
    summary: RunSummary
    rows: list[TrialRow]
    drain_trial: int | None = None
    drain: dict[str, pd.DataFrame] = field(default_factory=dict)
    model_kernel_batches: bool = True  # nflog's datagrams as the model's batch threshold (False: to compare)

    @property
    def platform(self) -> str:
        return self.summary.platform

    @property
    def platform_settings(self) -> dict[str, Any]:
        return self.summary.fingerprint.stable.get("platform") or {}

    @property
    def seed(self) -> int:
        """The random stream of a model run (its draws of callback costs and Poisson gaps): the twin
        replays the same stream, so that a prediction of a model trial can equal it. It is the
        noise of the run, not a parameter of the machine; real platforms have no such stream."""
        params = self.platform_settings.get("model_params") or {}
        return int(params.get("seed", 1)) if self.platform == "model" else 1

    @property
    def kernel_batches(self) -> tuple[int, float] | None:
        """nflog's kernel batching, as configured: (qthresh events, flush timer us); None elsewhere."""
        nflog = self.platform_settings.get("nflog") or {}
        if not self.model_kernel_batches or self.platform != "nflog" or not nflog.get("qthresh") or not nflog.get("timeout_cs"):
            return None
        return int(nflog["qthresh"]), float(nflog["timeout_cs"]) * 10_000

    @property
    def ready_backlog(self) -> int:
        """Events a batch waits for before delivery, as the run's service rates were measured with
        (analysis/service.py): nflog's queue threshold, else 1."""
        nflog = self.platform_settings.get("nflog") or {}
        return int(nflog.get("qthresh") or 1) if self.platform == "nflog" else 1


def load(path: Path) -> RunData:
    """A run folder's summary, trial rows and the drain's kept events."""
    run = load_run(Path(path))
    table = run.path / "trials.csv"
    rows = read_trial_rows(table) if table.exists() else []  # Python's floats: the rates exactly as written
    drain = run.summary.experiments.drain
    trial = drain.trial if drain is not None else None
    events = kept_events(run.path, trial, "drain") if trial is not None else {}
    return RunData(run.path, run.summary, rows, trial, events)


def _missing(name: str, unit: str, reason: str, **evidence: Any) -> TwinParameter:
    return TwinParameter(name, None, unit=unit, missing=reason, evidence=evidence)


def _rests_on(e: Estimate) -> list[int]:
    return [int(t) for t in e.evidence.get("rests_on", [])]


def queue_limit(data: RunData) -> TwinParameter:
    """The drain's estimate; on nflog, where the kernel's datagram is the batch by construction, the
    configured qthresh when the drain could not show it (a busy machine blurs the boundaries), said so."""
    e = data.summary.estimates.get("queue_limit")
    if e is None or not e.detectable:
        reason = (e.reason if e else "") or "the run has no drain with batch boundaries"
        if data.kernel_batches is not None:
            q = data.kernel_batches[0]
            return TwinParameter("queue_limit", q, q, q, "events", "configured (nflog qthresh, one datagram): the "
                                 "drain could not show it", evidence={"drain": reason})
        return _missing("queue_limit", "events", reason)
    return TwinParameter("queue_limit", int(e.value), int(e.value), int(e.value), "events",
                         "the drain's batch boundaries on a lattice (estimate queue_limit)", _rests_on(e),
                         evidence={k: e.evidence.get(k) for k in ("on_lattice", "coverage", "strays", "lift")})


def capacity_readings(summary: RunSummary) -> list[int]:
    """Every reading of the burst capacity the run made: the search, its repetitions, the plateau
    of the oversized bursts, the drain's oversized burst."""
    est = summary.estimates
    capacity, plateau, depth = est.get("burst_capacity"), est.get("plateau"), est.get("buffer_depth")
    values: list[Any] = []
    if capacity is not None and capacity.detectable:
        values += [capacity.value, *capacity.evidence.get("searches", [])]
    if plateau is not None and plateau.detectable:
        values += [plateau.evidence.get("min"), plateau.evidence.get("max")]
    if depth is not None and depth.detectable:
        values.append(depth.evidence.get("capacity"))
    return [int(v) for v in values if isinstance(v, (int, float))]


def first_batch(data: RunData) -> int | None:
    """The drain's first batch; on nflog, when the drain could not show it, the first datagram."""
    e = data.summary.estimates.get("first_batch")
    if e is not None and e.detectable:
        return int(e.value)
    return data.kernel_batches[0] if data.kernel_batches is not None else None


def system_buffer(data: RunData, queue: TwinParameter, fb: int | None) -> TwinParameter:
    est = data.summary.estimates
    e = est.get("buffer_depth")
    if e is None or not e.detectable:
        reason = (e.reason if e else "") or "the run has no drain"
        drain = next((r for r in data.rows if r.get("trial") == data.drain_trial), None)
        if not queue.determined or fb is None or drain is None or not drain.get("lost"):
            return _missing("system_buffer", "events", reason)
        # the drain's oversized held burst delivered exactly the capacity
        e = Estimate(int(drain["delivered"]) - fb - int(queue.value), "the drain's delivered count - first batch - "
                     "queue limit", {"capacity": int(drain["delivered"]), "first_batch": fb, "queue_limit": queue.value,
                                     "rests_on": [int(data.drain_trial)]})
    readings = capacity_readings(data.summary)
    fixed = int(e.evidence.get("first_batch") or 0) + int(e.evidence.get("queue_limit") or 0)
    low = min(readings) - fixed if readings else e.value
    high = max(readings) - fixed if readings else e.value
    rests = sorted(set(_rests_on(e)) | set(_rests_on(est.get("burst_capacity")) if est.get("burst_capacity") else []))
    return TwinParameter("system_buffer", int(e.value), int(min(low, e.value)), int(max(high, e.value)), "events",
                         "drain capacity - first batch - queue limit; range from every capacity reading",
                         rests, evidence={"capacity": e.evidence.get("capacity"), "capacity_readings": readings})


def _first_callback(data: RunData) -> tuple[pd.DataFrame, int] | None:
    """The drain's delivered events in callback order, and the position where release began."""
    delivered = data.drain.get("delivered")
    if delivered is None or len(delivered) < 2:
        return None
    return delivered.sort_values("t_callback_ns", kind="stable").reset_index(drop=True), 0


def sender_rate(data: RunData) -> TwinParameter:
    """Back-to-back rate. Where the drain's send times sit exactly on a lattice k * interval (the
    model's sender), the interval is pinned to within 1/n ns; otherwise (a real sender) the median
    of the bursts' achieved rates, with their range."""
    sent = data.drain.get("sent")
    if sent is not None and len(sent) > 2:
        t = np.sort(sent["t_send_ns"].to_numpy(np.int64)) - int(sent["t_send_ns"].min())
        k = np.arange(1, len(t), dtype=np.float64)
        low, high = float(np.max(t[1:] / k)), float(np.min((t[1:] + 1) / k))
        if low < high:
            middle = (low + high) / 2
            return TwinParameter("sender_rate_per_s", 1e9 / middle, 1e9 / high, 1e9 / low, "packets/s",
                                 "the drain's send times on a lattice k x interval", [int(data.drain_trial)],
                                 evidence={"interval_ns": [low, high], "packets": int(len(t))})
    bursts = [r for r in data.rows if r.get("pacing") == "burst" and r.get("send_span_s") and int(r["count"]) > 1]
    rates = np.array([(int(r["count"]) - 1) / float(r["send_span_s"]) for r in bursts], dtype=float)
    if len(rates) == 0:
        return _missing("sender_rate_per_s", "packets/s", "the run has no back-to-back burst")
    return TwinParameter("sender_rate_per_s", float(np.median(rates)), float(rates.min()), float(rates.max()),
                         "packets/s", "median (count - 1) / send span of the back-to-back bursts",
                         [int(r["trial"]) for r in bursts], evidence={"bursts": int(len(rates))})


def dispatch_latency(data: RunData, sender: TwinParameter, fb: int | None) -> TwinParameter:
    """How long an idle dispatcher gathers its first batch. In the model it is also the wait for the
    first callback, so the drain's first event to first callback measures it directly; the first
    batch bounds it too: fb events at the sender's interval lie within [(fb - 1), fb) intervals
    (fb below the queue limit; at the limit only the lower end). Where the direct reading falls
    outside that window the platform delays delivery beyond gathering the batch (the fake's packet
    capture hands packets over late, batched by their own times): the window decides, as the
    batch's size is what the model's loss depends on, and the evidence keeps the delay."""
    first = _first_callback(data)
    if first is None:
        return _missing("dispatch_latency_us", "us", "the run kept no drain events")
    delivered, _ = first
    q_estimate = data.summary.estimates.get("queue_limit")
    if data.kernel_batches is not None and fb is not None:
        # the kernel hands the first batch over at its last event; the reader wakes up after that
        closing = int(np.sort(delivered["t_event_ns"].to_numpy(np.int64))[min(fb, len(delivered)) - 1])
        latency_us = (int(delivered["t_callback_ns"].iloc[0]) - closing) / 1e3
        method = "the drain's first callback minus the time of its first batch's last event (the kernel sends then)"
        evidence: dict[str, Any] = {"batch_closed_to_callback_us": latency_us}
        return TwinParameter("dispatch_latency_us", max(0.0, latency_us), max(0.0, latency_us), max(0.0, latency_us),
                             "us", method, [int(data.drain_trial)], evidence=evidence)
    latency_us = (int(delivered["t_callback_ns"].iloc[0]) - int(delivered["t_event_ns"].min())) / 1e3
    evidence = {"first_event_to_callback_us": latency_us}
    method = "the drain's first callback minus its first event's time"
    if fb is None or not sender.determined:
        if latency_us < 0:
            return _missing("dispatch_latency_us", "us", "the drain's first callback came before its first event's "
                            "time stamp (the clocks disagree), and no first batch bounds it")
        return TwinParameter("dispatch_latency_us", latency_us, latency_us, latency_us, "us", method,
                             [int(data.drain_trial)], evidence=evidence)
    interval_us = 1e6 / float(sender.value)
    full = q_estimate is not None and q_estimate.detectable and fb >= int(q_estimate.value)
    low, high = (fb - 1) * interval_us, math.inf if full else fb * interval_us
    evidence.update({"first_batch": fb, "window_us": [round(low, 3), None if full else round(high, 3)]})
    if low - 1e-3 <= latency_us < high:  # 1 ns: the window's ends are computed from a fitted rate
        value, low = latency_us, min(low, latency_us)
    else:
        value = low if full else (low + high) / 2
        method = (f"the first batch ({fb} events at the sender's interval): the first callback came "
                  f"{latency_us:,.1f} us after the first event, outside what that batch allows")
    return TwinParameter("dispatch_latency_us", value, low, value if full else high, "us", method,
                         [int(data.drain_trial)], evidence=evidence)


def median_interval(values: np.ndarray, confidence_z: float = 1.96) -> tuple[float, float, float]:
    """The median with its distribution-free confidence interval (order statistics n/2 +- z sqrt(n)/2)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    half = confidence_z * math.sqrt(n) / 2
    lo, hi = max(0, int(math.floor(n / 2 - half))), min(n - 1, int(math.ceil(n / 2 + half)))
    return float(np.median(v)), float(v[lo]), float(v[hi])


def batch_turnaround(data: RunData, queue: TwinParameter, fb: int | None) -> TwinParameter:
    """Between batches the dispatcher pauses: the gap from one callback's end (its t_done) to the
    next callback's start is the turnaround at a batch boundary and the bare handover within a
    batch. Boundaries are where the drain's lattice puts them (first batch + k x queue limit);
    turnaround = median gap at them - median gap elsewhere."""
    first = _first_callback(data)
    if not queue.determined or fb is None:
        return _missing("batch_turnaround_us", "us", "needs the queue limit and the first batch (the drain's lattice)")
    if first is None:
        return _missing("batch_turnaround_us", "us", "the run kept no drain events")
    delivered, _ = first
    t_cb = delivered["t_callback_ns"].to_numpy(np.int64)
    t_done = delivered["t_done_ns"].to_numpy(np.int64)
    gap = t_cb[1:] - t_done[:-1]  # gap[p - 1]: before the callback at position p
    positions = np.arange(1, len(t_cb))
    boundary = (positions >= fb) & ((positions - fb) % int(queue.value) == 0)
    if boundary.sum() < 2 or (~boundary).sum() < 2:
        return _missing("batch_turnaround_us", "us", f"the drain had {int(boundary.sum())} batch boundaries (need 2)")
    at, at_low, at_high = median_interval(gap[boundary])
    within = float(np.median(gap[~boundary]))
    value = max(0.0, at - within)
    return TwinParameter("batch_turnaround_us", value / 1e3, max(0.0, at_low - within) / 1e3, max(0.0, at_high - within) / 1e3,
                         "us", "median (next callback start - callback end) at the drain's batch boundaries, "
                         "less the same within batches", [int(data.drain_trial)],
                         evidence={"boundaries": int(boundary.sum()), "within_batch_gap_us": round(within / 1e3, 3)})


def kernel_batches(data: RunData, queue: TwinParameter) -> tuple[TwinParameter, TwinParameter]:
    """The batch threshold and its flush timer: nflog's configured qthresh and timeout (the kernel
    holds events until a datagram is full or the timer fires; the drain's batches show the
    threshold); elsewhere off, as the field notes' dispatcher hands over whatever waits."""
    configured = data.kernel_batches
    if configured is None:
        why = f"off: {data.platform}'s dispatcher hands over whatever waits"
        return (TwinParameter("batch_threshold", 0, 0, 0, "events", why),
                TwinParameter("flush_timeout_us", 0.0, 0.0, 0.0, "us", why))
    qthresh, timer_us = configured
    seen = {"queue_limit_measured": queue.value}
    return (TwinParameter("batch_threshold", qthresh, qthresh, qthresh, "events",
                          "configured (nflog qthresh); the drain's batches measure the same" if queue.value == qthresh
                          else "configured (nflog qthresh); the drain's batches measured otherwise", evidence=seen),
            TwinParameter("flush_timeout_us", timer_us, timer_us, timer_us, "us", "configured (nflog timeout_cs)"))


def structure(data: RunData) -> dict[str, TwinParameter]:
    """Every parameter but the per-event overhead and the CPU share (service.py), keyed by
    ModelParams' names."""
    queue = queue_limit(data)
    sender = sender_rate(data)
    threshold, timer = kernel_batches(data, queue)
    if threshold.value and queue.determined and threshold.value > queue.value:
        threshold.missing, threshold.value = f"qthresh {threshold.value} exceeds the measured queue limit {queue.value}", None
    fb = first_batch(data)
    return {"queue_limit": queue, "system_buffer": system_buffer(data, queue, fb),
            "dispatch_latency_us": dispatch_latency(data, sender, fb),
            "batch_turnaround_us": batch_turnaround(data, queue, fb), "sender_rate_per_s": sender,
            "batch_threshold": threshold, "flush_timeout_us": timer}


def mark_stand_ins(parameters: dict[str, TwinParameter], platform: str) -> list[str]:
    """Set what each parameter stands in for on this platform; the lines for the report."""
    meanings = STANDS_FOR.get(platform, {})
    lines = []
    for name, p in parameters.items():
        if name in meanings:
            p.stands_for = meanings[name]
            lines.append(f"{name}: {meanings[name]}")
    return lines
