"""The `model` platform: the dispatcher of the field notes as a seeded virtual-time simulation.

It is the default off Windows, the ground truth against which estimators are tested, and a
what-if tool. Only `ground_truth` in a TrialResult reveals its parameters; estimators never read it.

A user's Python subscriber (SubscriberSpec.function) runs here too, by measurement: it is called
once per event, with the bytes of the test packet the event stands for (what nflog logs), and each
call's wall time on this machine is that event's work in virtual time. The times are measured
once per trace and function and reused by every trial of it (as a cost distribution's draws are:
two scales of a headroom search differ only in the traffic).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.platforms.base import DELIVERED_COLUMNS, SENT_COLUMNS, Capabilities, TrialResult, frame
from harness.inputs import BadInput, check_model, model_values
from harness.platforms.model.dispatcher import simulate
from harness.spec import TrialSpec
from harness.subscriber import work_costs
from harness.traffic.plan import plan_traffic

NS_PER_US = 1_000


@dataclass(frozen=True)
class ModelParams:
    """Parameters of the dispatcher (defaults from the field notes)."""

    queue_limit: int = 256                # next-queue limit Q
    system_buffer: int = 16_500           # system buffer B
    dispatch_latency_us: float = 20.0     # idle dispatcher: first arrival to first callback
    batch_turnaround_us: float = 150.0    # end of one batch to start of the next
    per_event_overhead_us: float = 2.0    # the dispatcher's own cost per callback, on top of the subscriber's
    sender_rate_per_s: float = 1_000_000  # how fast a back-to-back burst leaves the (virtual) sender
    seed: int = 1
    # mechanisms beyond the field notes, off at their defaults (then results are those of the notes' model)
    cpu_share: float = 1.0                # share of a CPU the subscriber's threads get while they have work
    batch_threshold: int = 0              # a batch waits for this many events (nflog's qthresh); 0: off
    flush_timeout_us: float = 0.0         # ... or until its oldest has waited this long (nflog's flush timer)
    stall_rate_per_s: float = 0.0         # the subscriber's thread is descheduled this often per second of service
    stall_mean_us: float = 0.0            # ... for this long on average (exponential): its neighbours' time slices

    def __post_init__(self) -> None:
        check_model(asdict(self))  # types, ranges, finiteness: harness/inputs.py
        if self.batch_threshold > self.queue_limit:
            raise BadInput(f"model parameter batch_threshold ({self.batch_threshold}) must not exceed the queue "
                           f"limit ({self.queue_limit}): a batch never holds more")
        if self.batch_threshold and self.flush_timeout_us <= 0:
            raise BadInput("model parameter batch_threshold needs a flush_timeout_us > 0 (a batch that never fills "
                           "would wait for ever)")
        if (self.stall_rate_per_s > 0) != (self.stall_mean_us > 0):
            raise BadInput("model parameters stall_rate_per_s and stall_mean_us go together: both > 0 (stalls) or both 0")

    @classmethod
    def from_overrides(cls, overrides: dict[str, str]) -> "ModelParams":
        """Build from NAME=VALUE strings (the --model-param option); unknown names are an error."""
        return cls(**model_values(overrides))

    def as_dict(self) -> dict[str, Any]:
        """The parameters, leaving out mechanisms that are off: a configuration that does not use
        them keeps the description (and so the config id) it had before they existed."""
        return {k: v for k, v in asdict(self).items() if k not in OFF or v != OFF[k]}

    def first_batch(self, arrival_interval_ns: float) -> int:
        """Events that join the first batch of a back-to-back burst while the dispatcher wakes."""
        if arrival_interval_ns <= 0:
            return self.queue_limit
        if self.batch_threshold:  # handed over at its threshold-th event, or at its flush timer
            return int(min(self.batch_threshold, self.flush_timeout_us * NS_PER_US // arrival_interval_ns + 1))
        return int(min(self.queue_limit, self.dispatch_latency_us * NS_PER_US // arrival_interval_ns + 1))

    def true_burst_capacity(self) -> int:
        """Longest back-to-back burst delivered without loss when the callback is held through it."""
        return self.first_batch(1e9 / self.sender_rate_per_s) + self.queue_limit + self.system_buffer


OFF: dict[str, Any] = {"cpu_share": 1.0, "batch_threshold": 0, "flush_timeout_us": 0.0,  # values that turn them off
                       "stall_rate_per_s": 0.0, "stall_mean_us": 0.0}
STALL_STREAM = 2  # the stalls' random stream beside a trial's own


def stall_time(rng: np.random.Generator, busy_ns: np.ndarray, rate_per_s: float, mean_us: float) -> np.ndarray:
    """Time (ns) a thread stays descheduled during each stretch of busy_ns of its own work: stalls
    come as a Poisson process in its busy time (rate_per_s per second of it), each lasting an
    exponential time of mean mean_us; a stretch's total is then Gamma(k, mean) for its k stalls."""
    k = rng.poisson(busy_ns * (rate_per_s / 1e9))
    out = np.zeros(len(busy_ns), dtype=np.int64)
    hit = k > 0
    out[hit] = np.round(rng.gamma(k[hit], mean_us * NS_PER_US)).astype(np.int64)
    return out


class ModelPlatform:
    name = "model"
    capabilities = Capabilities(allow_events=False, templates=True, census=False, hold=True,
                                kernel_timestamps=True, copy_mode=True, ground_truth=True, virtual_time=True)

    def __init__(self, params: ModelParams | None = None) -> None:
        self.params = params or ModelParams()
        self._trials = 0
        self._measured: dict[tuple, tuple[np.ndarray, int, str]] = {}  # a user function's costs per trace

    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, "model_params": self.params.as_dict()}

    def measured(self) -> dict[str, Any]:
        return {"max_send_rate_per_s": self.params.sender_rate_per_s}

    def max_send_rate_per_s(self) -> float:
        return self.params.sender_rate_per_s

    def __enter__(self) -> "ModelPlatform":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def skip_trial(self) -> None:
        """A resumed run replays a stored trial: advance the per-trial seed as running it would."""
        self._trials += 1

    def replay_trial(self, spec: TrialSpec, number: int) -> TrialResult:
        """Run `spec` as trial `number` of a run, on that trial's random stream: the twin's
        prediction of a stored model trial draws what the trial drew."""
        self._trials = number
        return self.run_trial(spec)

    def run_trial(self, spec: TrialSpec) -> TrialResult:
        p = self.params
        # one seeded stream per trial: same platform seed + same trial spec seed -> same result
        number = self._trials
        rng = np.random.default_rng([p.seed, spec.traffic.seed, number])
        self._trials += 1
        plan = plan_traffic(spec)
        t_send = self._send_times(spec, rng)
        expected = np.flatnonzero(plan.expected)
        arrivals = t_send[expected]  # the platform timestamp: the packet is classified as it is sent
        n = len(arrivals)
        sub = spec.subscriber
        function_errors = None
        if sub.function is not None:
            work, function_errors, first_error = self._function_costs(spec, plan, expected)
        else:
            work = work_costs(rng, sub, n)
        overhead = int(round(p.per_event_overhead_us * NS_PER_US))
        in_callback = work if sub.mode == "inline" else np.full(n, int(round(sub.copy_cost_us * NS_PER_US)), np.int64)
        service = in_callback + overhead
        if p.cpu_share != 1.0:  # the thread runs only this share of the time it has work
            service = np.round(service / p.cpu_share).astype(np.int64)
            work = np.round(work / p.cpu_share).astype(np.int64)
        if p.stall_rate_per_s:  # descheduled now and then while it has work (its own stream: the rest draws as before)
            stalls = np.random.default_rng([p.seed, spec.traffic.seed, number, STALL_STREAM])
            service = service + stall_time(stalls, service, p.stall_rate_per_s, p.stall_mean_us)
            if sub.mode == "copy":
                work = work + stall_time(stalls, work, p.stall_rate_per_s, p.stall_mean_us)
        release = int(t_send[-1] + spec.settle_s * 1e9) if sub.hold else None
        sim = simulate(arrivals, service, p.queue_limit, p.system_buffer,
                       int(round(p.dispatch_latency_us * NS_PER_US)), int(round(p.batch_turnaround_us * NS_PER_US)),
                       release, p.batch_threshold, int(round(p.flush_timeout_us * NS_PER_US)))
        done = sim.callback_end if sub.mode == "inline" else _worker_done(sim.callback_end, work[: len(sim.callback_end)])
        delivered_seq = plan.seq[expected][sim.delivered_index]
        sent = frame(SENT_COLUMNS, seq=plan.seq, t_send_ns=t_send, remote_port=plan.remote_port)
        sent["expected"] = plan.expected
        delivered = frame(DELIVERED_COLUMNS, seq=delivered_seq, t_event_ns=arrivals[sim.delivered_index],
                          t_callback_ns=sim.callback_start, t_done_ns=done,
                          thread=np.ones(len(delivered_seq), dtype=np.int64))
        telemetry = {"batches": int(len(sim.batch_size)), "virtual_end_ns": int(done.max()) if len(done) else 0}
        if function_errors is not None:
            telemetry.update(function_errors=function_errors, first_function_error=first_error,
                             function_cost_p50_us=float(np.median(work)) / NS_PER_US if n else None)
        ground_truth = {
            "params": p.as_dict(),
            "true_burst_capacity": p.true_burst_capacity(),
            "lost_seq": plan.seq[expected][sim.lost_index],
            "batch_size": sim.batch_size,
            "series": sim.series,
        }
        return TrialResult(spec=spec, sent=sent, delivered=delivered, t_release_ns=release,
                           telemetry=telemetry, generator=None, ground_truth=ground_truth)

    def _function_costs(self, spec: TrialSpec, plan, expected: np.ndarray) -> tuple[np.ndarray, int, str]:
        """The user function timed on each event's packet, in ns (measured once per trace)."""
        schedule = spec.traffic.schedule
        key = (spec.subscriber.function, schedule.digest if schedule is not None else spec.traffic.count,
               schedule.trace_events if schedule is not None else "", len(expected))
        if key not in self._measured:
            import gc
            import time

            from harness.subscriber_code import resolve_function
            from harness.traffic.packets import compile_packets  # scapy: only when a function runs here
            function = resolve_function(spec.subscriber.function)
            rows = compile_packets(plan).data[expected]
            costs = np.empty(len(rows), dtype=np.int64)
            errors, first = 0, ""
            clock = time.perf_counter_ns
            collecting = gc.isenabled()
            gc.disable()  # as the real platforms' callbacks run
            try:
                for k, row in enumerate(rows):
                    data = row.tobytes()
                    t = clock()
                    try:
                        function(data)
                    except Exception as exc:  # the user's error: counted, as on the real platforms
                        errors += 1
                        first = first or f"{type(exc).__name__}: {exc}"
                    costs[k] = clock() - t
            finally:
                if collecting:
                    gc.enable()
            self._measured[key] = (costs, errors, first)
        return self._measured[key]

    def _send_times(self, spec: TrialSpec, rng: np.random.Generator) -> np.ndarray:
        t = spec.traffic
        n = t.count
        if t.schedule is not None:
            return t.schedule.offsets_ns
        if t.pacing == "burst":
            interval = 1e9 / self.params.sender_rate_per_s
            return (np.arange(n) * interval).astype(np.int64)
        if t.pacing == "constant":
            return (np.arange(n) * (1e9 / t.rate_per_s)).astype(np.int64)
        gaps = rng.exponential(1e9 / t.rate_per_s, n)
        gaps[0] = 0.0
        return np.cumsum(gaps).astype(np.int64)


def _worker_done(copied_at: np.ndarray, work: np.ndarray) -> np.ndarray:
    """Copy mode: a worker takes events FIFO. Lindley's recursion done[k] = max(copied[k], done[k-1]) + w[k],
    solved without a loop: done = S + running max of (copied - S_before)."""
    if len(work) == 0:
        return copied_at
    s = np.cumsum(work, dtype=np.int64)
    return s + np.maximum.accumulate(copied_at - (s - work))

