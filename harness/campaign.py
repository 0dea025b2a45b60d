"""A measurement campaign: one platform, one result store, one profile, and the results that
several scenarios share (the burst search feeds the drain, the drain feeds the NDR trial length).
Scenarios ask it for results; it runs each experiment once and hands the typed results to the
store. It is the one writer of a run's results: experiments return records, scenarios record
their verdicts and the platform's facts through it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from harness.agent import Agent
from harness.analysis.backlog import peak_backlog
from harness.experiments.burst import BurstConfig, BurstOutcome, search_burst_capacity
from harness.experiments.drain import DrainOutcome, measure_drain
from harness.experiments.headroom import HeadroomConfig, headroom_estimate, search_headroom
from harness.experiments.replay import Capacity, replay_result, run_replay
from harness.experiments.inline_copy import compare_inline_copy
from harness.experiments.ndr import search_ndr
from harness.experiments.onset import measure_onset
from harness.experiments.search import NdrConfig
from harness.experiments.template import measure_template
from harness.inputs import BadInput
from harness.inputs import expectations as read_expectations
from harness.interference import flags, worst
from harness.platforms.base import Platform
from harness.results import catalog
from harness.results.fingerprint import fingerprint
from harness.results.records import (Check, DrainSection, Expectations, Facts, HeadroomResult, InlineCopyResult,
                                     NdrResult, OnsetResult, PlatformFacts, ReplayResult, TemplateResult, Verdict)
from harness.results.store import ResultStore
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from harness.traffic.schedule import default_trace_events
from harness.traffic.window import arrival_profile

# what the checks compare with unless --expect says otherwise: the field notes' claims (catalogue)
DEFAULT_EXPECTATIONS: dict[str, float | None] = {
    "queue_limit": catalog.BY_KEY["queue_limit"].field_note,
    "buffer_depth": catalog.BY_KEY["buffer_depth"].field_note,
    "buffer_depth_tolerance": catalog.BY_KEY["buffer_depth"].field_note_tolerance,
}


@dataclass(frozen=True)
class Profile:
    """How hard to look. `ndr` is for virtual time, where long trials cost nothing; `ndr_realtime`
    bounds trial length on real platforms (and reports the overload it then cannot see)."""

    name: str
    burst: BurstConfig
    ndr: NdrConfig
    ndr_realtime: NdrConfig
    callback_costs_us: tuple[float, ...]
    drain_quiet_s: float = 0.25
    drain_cost_us: float = 5.0
    drain_cost_cv: float = 0.2
    inline_copy_work_us: float = 100.0


# NDR searches judge short trials by their backlog slope and confirm with one loss trial
# (experiments/ndr.py). In virtual time trials cost CPU only, so they start short and a
# confirmation may be long; in real time, trials start at 0.25 s and the confirmation is bounded
# (the overload it could not have seen is reported as its confirmed resolution).
PROFILES = {
    "quick": Profile("quick", BurstConfig(repetitions=1, verify=1),
                     NdrConfig(resolution=0.02, trial_s=0.02, max_trial_s=16.0, max_confirm_s=300.0),
                     NdrConfig(resolution=0.02, trial_s=0.25, max_trial_s=2.0, max_confirm_s=6.0,
                               max_confirmations=3, max_trials=16, quiet_s=0.3),
                     (20.0, 100.0, 500.0)),
    "full": Profile("full", BurstConfig(repetitions=3, verify=2),
                    NdrConfig(resolution=0.01, trial_s=0.02, max_trial_s=64.0, max_confirm_s=1200.0),
                    NdrConfig(resolution=0.01, trial_s=0.5, max_trial_s=8.0, max_confirm_s=60.0,
                              max_confirmations=3, quiet_s=0.5),
                    (5.0, 20.0, 100.0, 500.0, 2000.0), drain_quiet_s=2.0),
}


def platform_expectations(platform: Platform) -> dict[str, float | None]:
    """What a platform should show when nothing else is said. For nflog the batch is the queue
    threshold it configured; its buffer depends on the receive buffer, so it is reported only."""
    if platform.name == "nflog":
        return {"queue_limit": platform.config.qthresh, "buffer_depth": None}
    return {}


def load_expectations(path: str | None, defaults: dict[str, float | None] | None = None) -> dict[str, float | None]:
    """DEFAULT_EXPECTATIONS, then the platform's `defaults`, then the --expect file (checked:
    harness/inputs.py). A value of null means: not checked, the measured value is reported."""
    return read_expectations(path, {**DEFAULT_EXPECTATIONS, **(defaults or {})})


def check_measurable(params: Any, profile: str) -> None:
    """A model whose burst capacity lies beyond the burst search's upper bound cannot be measured."""
    upper = PROFILES[profile].burst.upper
    capacity = params.true_burst_capacity()
    if capacity >= upper:
        raise BadInput(f"model queue_limit + system_buffer give a burst capacity of {capacity:,} events; "
                       f"the burst search reaches {upper:,} at most")


@dataclass
class Campaign:
    platform: Platform
    store: ResultStore
    profile: Profile
    expectations: Expectations
    max_send_rate: float = 0.0  # the generator's rate, measured once at the start of the run
    agent: Agent | None = None  # the user's trace and subscriber (harness/agent.py), when given
    _cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, platform: Platform, report_dir: str, profile: str, expectations: dict[str, float | None],
             machine_label: str | None = None,
             store_ready: Callable[[ResultStore], None] | None = None, agent: Agent | None = None) -> "Campaign":
        """A new run folder; `store_ready(store)` hears of it before the platform measures itself
        (calibration), so that an interrupted calibration still has a run to mark."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        store = ResultStore(report_dir, fingerprint(cls.settings(platform, profile, agent), machine_label), platform.name)
        expected = Expectations.from_json(expectations)
        store.set_experiment("expected", expected)
        if store_ready is not None:
            store_ready(store)
        store.at("calibration", running=False)
        store.set_measured(platform.measured())
        return cls(platform, store, PROFILES[profile], expected, platform.max_send_rate_per_s(), agent)

    @staticmethod
    def settings(platform: Platform, profile: str, agent: Agent | None = None) -> Facts:
        """What is hashed into the config id besides the machine (an agent's trace and subscriber
        too: another agent is another configuration, with a history of its own)."""
        return {**platform.describe(), "profile": profile, **({"agent": agent.describe()} if agent else {})}

    def base_spec(self) -> TrialSpec:
        p = self.profile
        return TrialSpec(TrafficSpec(count=1), SubscriberSpec(cost_us=p.drain_cost_us, cost_cv=p.drain_cost_cv),
                         drain_quiet_s=p.drain_quiet_s)

    def _once(self, key: str, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def ndr_config(self) -> NdrConfig:
        return self.profile.ndr if self.platform.capabilities.virtual_time else self.profile.ndr_realtime

    def burst(self) -> BurstOutcome:
        def compute() -> BurstOutcome:
            out = search_burst_capacity(self.platform, self.base_spec(), self.store, self.profile.burst)
            for kind in catalog.of_experiment("burst"):
                self.store.set_estimate(kind.key, getattr(out, "capacity" if kind.key == "burst_capacity" else kind.key))
            return out
        return self._once("burst", compute)

    def drain(self) -> DrainOutcome:
        def compute() -> DrainOutcome:
            burst = self.burst()
            size = int((burst.capacity.value or self.profile.burst.start) * 1.25) + 1  # must overflow
            out = measure_drain(self.platform, self.base_spec(), self.store, size, burst.capacity)
            self.store.set_experiment("drain", DrainSection(out.trial, out.t_release_ns, peak_backlog(out.backlog)))
            for kind in catalog.of_experiment("drain"):
                self.store.set_estimate(kind.key, getattr(out, kind.key))
            return out
        return self._once("drain", compute)

    def ndr(self, cost_us: float) -> NdrResult:
        def compute() -> NdrResult:
            capacity = self.burst().capacity.value
            row = search_ndr(self.platform, self.base_spec(), self.store, cost_us, capacity,
                             self.max_send_rate, self.ndr_config)
            self.store.set_ndr(row)
            return row
        return self._once(f"ndr:{cost_us}", compute)

    def capacity_range(self) -> tuple[int | None, int | None]:
        """The burst capacity with its measured spread: the search's repetitions and the plateau
        of the oversized bursts."""
        burst = self.burst()
        values = [v for v in (burst.capacity.value, burst.plateau.evidence.get("min"),
                              burst.plateau.evidence.get("max"), *burst.searches) if v]
        return (min(values), max(values)) if values else (None, None)

    def interference_in(self, trials: list[int]) -> list[str]:
        """Interference seen in these trials (the worst of each figure), in words."""
        wanted = {int(t) for t in trials}
        rows = [r for r in self.store.rows if int(r["trial"]) in wanted]
        measured = any(r.get("intf_others_cores") is not None or r.get("intf_cpu_ref_begin_ns") is not None
                       for r in rows)  # in real time (on Windows /proc's figures are None, the rest is measured)
        return flags(worst(rows)) if measured else []

    @property
    def onset_repeats(self) -> int:
        """In real time the onset varies from trial to trial: three trials measure by how much."""
        return 1 if self.platform.capabilities.virtual_time else 3

    def onset(self) -> OnsetResult:
        """Loss onset, overloaded at 1.5 x the measured mu of the middle callback cost."""
        def compute() -> OnsetResult:
            costs = self.profile.callback_costs_us
            row = self.ndr(costs[len(costs) // 2])
            low, high = self.capacity_range()
            out = measure_onset(self.platform, self.base_spec(), self.store, row, low, high,
                                self.drain().queue_limit.value, repeats=self.onset_repeats)
            self.store.set_experiment("onset", out)
            return out
        return self._once("onset", compute)

    def inline_copy(self, rate: float, duration_s: float) -> InlineCopyResult:
        def compute() -> InlineCopyResult:
            out = compare_inline_copy(self.platform, self.base_spec(), self.store, self.profile.inline_copy_work_us,
                                      rate, duration_s, self.burst().capacity.value)
            self.store.set_experiment("inline_copy", out)
            return out
        return self._once("inline_copy", compute)

    def template(self, cost_us: float) -> TemplateResult:
        def compute() -> TemplateResult:
            out = measure_template(self.platform, self.base_spec(), self.store, cost_us, 20_000,
                                   self.burst().capacity.value, self.max_send_rate, self.ndr_config)
            self.store.set_experiment("template", out)
            return out
        return self._once("template", compute)

    # -- the user's own question (harness/agent.py): their trace, their subscriber ---------------
    def known_capacity(self) -> Capacity:
        """The queue limit Q and Q + B a replay's backlog is held against: measured by this run's
        drain where it ran before, else what the run expects (the field notes, --expect)."""
        drain = self._cache.get("drain")
        if drain is not None and drain.queue_limit.value and drain.buffer_depth.value is not None:
            q, b = int(drain.queue_limit.value), int(drain.buffer_depth.value)
            return Capacity(q, q + b, "measured by this run's drain")
        q, b = self.expectations.queue_limit, self.expectations.buffer_depth
        if q is None:
            return Capacity(None, None, "not measured in this run, nothing expected")
        return Capacity(int(q), int(q + b) if b is not None else None,
                        "expected (the field notes, the platform's setting or --expect), not measured in this run")

    def _agent(self) -> Agent:
        if self.agent is None:
            raise ValueError("no agent: give --agent agent.toml or --traffic-capture ... (docs/your-agent.md)")
        return self.agent

    def replay(self) -> ReplayResult:
        """The user's trace replayed once at its scale, with their subscriber."""
        def compute() -> ReplayResult:
            agent = self._agent()
            spec = agent.spec()
            capacity = self.known_capacity()
            self._save_profile(agent)
            if agent.subscriber.cost_distribution is not None:  # the distribution used, for the report
                d = agent.subscriber.cost_distribution
                self.store.save_frame("subscriber-cost", pd.DataFrame({"us": d.values_ns / 1e3, "cdf": d.cdf}))
            row, _ = run_replay(self.platform, spec, self.store, capacity)
            why = ("the layer's rule" if agent.trace.trace_events == default_trace_events(agent.layer)
                   else "as asked (--trace-events)")
            why = f"{why}: {agent.layer} classifies " + ("a flow's first packet" if agent.trace.trace_events == "flows"
                                                          else "every packet")
            out = replay_result(row, spec, capacity, self.interference_in([row["trial"]]), why, list(agent.notes))
            if agent.library is not None:
                out.subscriber["library"] = (getattr(self.platform, "subscriber_library", None) or {})
            self.store.set_experiment("replay", out)
            return out
        return self._once("replay", compute)

    def headroom(self) -> HeadroomResult:
        """How much faster the user's trace may get before their subscriber loses events."""
        def compute() -> HeadroomResult:
            agent = self._agent()
            # in real time a replay may not grow longer than five minutes as the search slows the trace
            config = HeadroomConfig(resolution=agent.resolution,
                                    max_replay_s=None if self.platform.capabilities.virtual_time else 300.0)
            out = search_headroom(self.platform, agent.spec(), self.store, config, self.known_capacity(),
                                  agent.required)
            self.store.set_experiment("headroom", out)
            self.store.set_estimate("headroom", headroom_estimate(out, agent.trace.describe()))
            return out
        return self._once("headroom", compute)

    def _save_profile(self, agent: Agent) -> None:
        """The trace's arrival profile over its whole source, for the report (the window marked there)."""
        source = agent.source
        bin_ns = max(1_000_000, int(source.base_offsets_ns[-1] // 2000) + 1)
        t, counts = arrival_profile(source.scaled(1.0), bin_ns)
        self.store.save_frame("trace-profile", pd.DataFrame({"t_s": t / 1e9, "events_per_ms": counts * 1e6 / bin_ns}))

    def check(self, name: str, passed: bool, measured: Any, expected: Any, message: str) -> None:
        """Record an expectation check in the report; the scenario then asserts it."""
        self.store.add_check(Check(name, bool(passed), measured, expected, message))

    def verdict(self, name: str, v: Verdict) -> Verdict:
        """Record a pass / fail / inconclusive verdict in the report (an inconclusive one is not a
        failure: it carries the spread that kept it from deciding)."""
        self.store.add_check(Check.of(name, v))
        return v

    def record_facts(self, name: str, facts: PlatformFacts) -> None:
        """What the platform found about the machine (wfp: the doctor, allow visibility, the
        template matrix, the probe, delivery), recorded as found."""
        self.store.set_experiment(name, facts)
