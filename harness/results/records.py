"""The results of a run as typed records, and their JSON form in summary.json.

Experiments return these records; the campaign hands them to the result store (results/store.py),
the one writer of summary.json; judge/ and report/ read them back through results/read.py. Each
record is a dataclass whose fields, in order, are the keys of its JSON object, so a summary reads
the same to a person, a CI script and the harness. Reading is lenient where files differ by age:
a missing key takes the field's default, and keys a record does not know are kept (`extra`) and
written back unchanged, so a resumed or re-judged older run loses nothing.

FORMAT_VERSION counts changes of this layout; summaries written before it existed are format 1
and read unchanged (results/read.py).
"""
from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Mapping, TypeVar

import numpy as np

from harness.results import catalog

FORMAT_VERSION = 2

TrialRow = dict[str, Any]
"""One row of trials.csv: the columns of one trial, as the experiments and the store pass them."""

JsonObject = dict[str, Any]
"""A JSON object as summary.json holds it: what a record is written as, and the keys of an older or
newer file that a record keeps without knowing them."""

Facts = JsonObject
"""What a platform says about itself in its own terms (its settings, what it measured when it
opened, the fingerprint's volatile part): kept as found. The wfp platform's facts of the machine
are records (PlatformFacts below)."""

R = TypeVar("R", bound="Record")


def plain(value: Any) -> Any:
    """A value as JSON holds it: records as objects, numpy scalars and arrays as numbers and lists,
    a number that is not finite as null (strict JSON has no NaN or Infinity)."""
    if isinstance(value, (Record, Estimate)):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _record_type(hint: Any) -> type | None:
    """The Record (or Estimate) class a field's type names, directly or inside `X | None`."""
    for candidate in typing.get_args(hint) or (hint,):
        if isinstance(candidate, type) and issubclass(candidate, (Record, Estimate)):
            return candidate
    return None


def _from(hint: Any, value: Any) -> Any:
    """A JSON value read into a field of type `hint`: nested records and lists of them converted."""
    kind = _record_type(hint)
    if kind is not None and isinstance(value, Mapping):
        return kind.from_json(value)
    if kind is None and typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint)  # X | None: read as X
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args and _record_type(args[0]) is not None and isinstance(value, list):
        return [_from(args[0], v) for v in value]
    if origin is dict and len(args) == 2 and _record_type(args[1]) is not None and isinstance(value, Mapping):
        return {k: _from(args[1], v) for k, v in value.items()}
    return value


OPTIONAL = {"omit_none": True}  # a field that only some results have: absent from the JSON when None


class Record:
    """A dataclass written as a JSON object: fields in order (a field's `json` metadata names its key
    where the name is a Python keyword; an OPTIONAL field is left out while None), then `extra`, the
    keys an older or newer file had that this record does not know."""

    ALIASES: ClassVar[dict[str, str]] = {}  # key in older files -> field

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and f.metadata.get("omit_none")):
                continue
            out[f.metadata.get("json", f.name)] = plain(value)
        out.update(plain(getattr(self, "extra", {})))
        return out

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        hints, known = _layout(cls)
        values: JsonObject = {}
        extra: JsonObject = {}
        for given, value in data.items():
            key = cls.ALIASES.get(given, given)
            if key != given and key in data:
                raise ValueError(f"{given} and {key} are one field given twice")
            if key in known:
                f = known[key]
                values[f.name] = _from(hints[f.name], value)
            else:
                extra[key] = value
        for f in known.values():  # a key the file lacks: None where it is OPTIONAL or required, else the default
            if f.name not in values and (f.metadata.get("omit_none") or
                                         (f.default is MISSING and f.default_factory is MISSING)):  # type: ignore[misc]
                values[f.name] = None
        if "extra" in hints:
            values["extra"] = extra
        return cls(**values)


@functools.lru_cache(maxsize=None)
def _layout(cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """A record's field types and its fields by JSON key (read once per class)."""
    return typing.get_type_hints(cls), {f.metadata.get("json", f.name): f for f in fields(cls) if f.name != "extra"}


# -- estimates -------------------------------------------------------------------------------
@dataclass
class Estimate:
    """A value (None when it cannot be told) with the method and the evidence it rests on. Its JSON
    is flat: value, detectable, method, reason (when there is one), then the evidence's keys."""

    value: float | int | None
    method: str
    evidence: JsonObject = field(default_factory=dict)
    reason: str = ""  # why value is None ("not detectable: ...")

    @property
    def detectable(self) -> bool:
        return self.value is not None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"value": self.value, "detectable": self.detectable, "method": self.method}
        if self.reason:
            out["reason"] = self.reason
        out.update(self.evidence)
        return plain(out)

    to_dict = to_json

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Estimate":
        evidence = {k: v for k, v in data.items() if k not in ("value", "detectable", "method", "reason")}
        return cls(data.get("value"), str(data.get("method") or ""), evidence, str(data.get("reason") or ""))

    @classmethod
    def undetectable(cls, method: str, reason: str, **evidence: Any) -> "Estimate":
        return cls(None, method, evidence, reason)


@dataclass
class Confirmation(Record):
    """The loss trial that confirms an NDR found by backlog trend, or why none did."""

    trial: int | None = None
    rate_per_s: float | None = None
    duration_s: float | None = None
    lost: int | None = None
    trusted: bool | None = None
    slope_per_s: float | None = None
    slope_low_per_s: float | None = None
    slope_high_per_s: float | None = None
    confirmed_resolution_per_s: float | None = None  # an overload this large would have shown
    mu_per_s: float | None = None
    mu_low_per_s: float | None = None
    mu_high_per_s: float | None = None
    served_low_per_s: float | None = None   # the range every confirmation trial served
    served_high_per_s: float | None = None
    failed_at_per_s: float | None = None
    failures: int | None = None
    all_lost: bool = False
    confirmed: bool | None = None
    reason: str | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class SlopeEvidence(Record):
    """The trial an NDR's verdict rests on, on one side of it: its offered rate, the backlog's
    slope with its 95 % interval, and the verdict the slope gave (experiments/ndr.py)."""

    trial: int | None = None
    offered_rate_per_s: float | None = None
    send_span_s: float | None = None
    lost: int | None = None
    slope_per_s: float | None = None
    slope_low_per_s: float | None = None
    slope_high_per_s: float | None = None
    slope_margin_per_s: float | None = None
    mean_backlog: float | None = None
    verdict: str | None = None
    verdict_by: str | None = None
    mu_per_s: float | None = None
    extra: JsonObject = field(default_factory=dict)


@dataclass
class NdrResult(Record):
    """The highest rate a subscriber of one callback cost keeps up with, from either search: by
    backlog trend confirmed by loss (experiments/ndr.py: status, mu, slope evidence), or by loss
    only (experiments/ndr_loss.py: iterations, loss tolerance). The first rate the search saw fail
    is `first_overloaded_rate_per_s` for both (the loss search's files call it
    first_lossy_rate_per_s)."""

    ALIASES: ClassVar[dict[str, str]] = {"first_lossy_rate_per_s": "first_overloaded_rate_per_s"}

    callback_cost_us: float
    method: str = ""
    rate_per_s: float | None = None
    confirmed: bool | None = None
    first_overloaded_rate_per_s: float | None = None
    callback_rate_per_s: float | None = None
    resolution: float | None = None
    resolution_per_s: float | None = None
    converged: bool | None = None
    generator_limited: bool | None = None
    generator_limit_per_s: float | None = None
    max_rate_per_s: float | None = None
    mu_per_s: float | None = None
    mu_low_per_s: float | None = None
    mu_high_per_s: float | None = None
    mu_trials: int | None = None
    mu_between_trials_cv: float | None = None
    mu_stall_share: float | None = None
    overhead_us: float | None = None
    overhead_low_us: float | None = None
    overhead_high_us: float | None = None
    slope_evidence: dict[str, SlopeEvidence | None] | None = None   # {"below": ..., "above": ...}
    backlog_traces: dict[str, str] | None = None               # side -> events/<name>.csv.gz
    confirmation: Confirmation | None = None
    trials: int | None = None
    trial_time_s: float | None = None
    untrusted_trials: list[int] = field(default_factory=list)
    rests_on: list[int] = field(default_factory=list)
    interference: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str | None = None          # conclusive, inconclusive, generator-limited; None: the loss search
    status_reasons: list[str] = field(default_factory=list)
    spread: float | None = None
    spread_parts: dict[str, float | None] | None = None
    # the loss-only search
    loss_tolerance: float | None = field(default=None, metadata=OPTIONAL)
    iterations: int | None = field(default=None, metadata=OPTIONAL)
    confirmations: int | None = field(default=None, metadata=OPTIONAL)
    confirm_duration_s: float | None = field(default=None, metadata=OPTIONAL)
    trial_duration_s: float | None = field(default=None, metadata=OPTIONAL)
    unresolvable_overload_per_s: float | None = field(default=None, metadata=OPTIONAL)
    note: str | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)

    @property
    def by_trend(self) -> bool:
        """Found by backlog trend (mu, slopes and status are measured); else by loss only."""
        return self.status is not None


@dataclass
class OnsetResult(Record):
    """Loss onset overloaded at a multiple of mu: when loss began in each trial, against the
    prediction C / (r - mu) with its measured spread; `reason` when nothing could be predicted."""

    callback_cost_us: float
    trial: int | None = None
    trials: list[int] = field(default_factory=list)
    trusted: bool | None = None
    untrusted_trials: list[int] = field(default_factory=list)
    rate_per_s: float | None = None
    mu_per_s: float | None = None
    trial_mu_per_s: float | None = None
    capacity_low: int | None = None
    capacity_high: int | None = None
    onset_s: float | None = None            # None: no loss in the whole trial
    onsets_s: list[float | None] = field(default_factory=list)
    onset_low_s: float | None = None
    onset_high_s: float | None = None
    lost: int | None = None
    predicted_low_s: float | None = None
    predicted_high_s: float | None = None
    interference: list[str] = field(default_factory=list)
    rests_on: list[int] = field(default_factory=list)
    reason: str | None = field(default=None, metadata=OPTIONAL)  # why nothing could be predicted
    extra: JsonObject = field(default_factory=dict)


@dataclass
class ModeResult(Record):
    """One subscriber mode's trial of the inline-vs-copy comparison."""

    trial: int
    trusted: bool
    untrusted_trials: list[int] = field(default_factory=list)
    rests_on: list[int] = field(default_factory=list)
    interference: str | None = None
    loss_ratio: float = 0.0
    lost: int = 0
    delivered: int = 0
    latency_to_callback_us: dict[str, float | None] = field(default_factory=dict)
    latency_to_work_done_us: dict[str, float | None] = field(default_factory=dict)
    model_kernel_packets_held_mean: float | None = field(default=None, metadata=OPTIONAL)  # the model only
    model_kernel_packets_held_max: int | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class InlineCopyResult(Record):
    work_us: float
    rate_per_s: float
    duration_s: float
    inline: ModeResult
    copy: ModeResult
    extra: JsonObject = field(default_factory=dict)


@dataclass
class TemplateArm(Record):
    """Mixed traffic with or without the subscription template: a light trial's counts and the NDR."""

    delivered: int
    sent: int
    expected: int
    unexpected: int
    light_trial: int
    light_trusted: bool
    untrusted_trials: list[int] = field(default_factory=list)
    ndr_offered_rate_per_s: float | None = None
    ndr: NdrResult | None = None
    rests_on: list[int] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class TemplateResult(Record):
    match_fraction_sent: float
    cost_us: float
    matching: str
    without: TemplateArm | None = None
    with_: TemplateArm | None = field(default=None, metadata={"json": "with"})
    extra: JsonObject = field(default_factory=dict)


@dataclass
class DrainSection(Record):
    """Which trial was the drain (its events are kept for the timeline) and its peak backlog."""

    trial: int
    t_release_ns: int | None = None
    peak_backlog: int | None = None
    extra: JsonObject = field(default_factory=dict)


@dataclass
class ReplayResult(Record):
    """A trace replayed once (experiments/replay.py): what the user's subscriber got of it.

    Counts are of events (one per packet, or per flow: `trace_events`); `first_loss_s` is the send
    time of the first lost event from the replay's start; the peak backlog (sent minus called back,
    or on the model the queue and buffer it filled) stands beside the queue limit Q and Q + B the
    run knows (`capacity_source` says from where); latency runs from the platform's own stamp of an
    event to its callback; the sender's lateness is against the schedule, and a replay it could not
    keep (`trusted` False) is evidence of nothing."""

    trial: int
    scale: float
    trace_events: str
    trace_events_why: str = ""
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    loss_ratio: float = 0.0
    first_loss_s: float | None = None
    repeat_events: int = 0           # events beyond one per packet or flow (a layer that classified again)
    unexpected: int = 0
    peak_backlog: int | None = None
    queue_limit: int | None = None
    capacity: int | None = None      # Q + B
    capacity_source: str = ""
    latency_us: dict[str, float | None] = field(default_factory=dict)       # event -> callback: p50, p99, max
    sender_late_us: dict[str, float | None] = field(default_factory=dict)   # against the schedule: p50, p99, max
    trusted: bool = True
    untrusted_reason: str = ""
    interference: list[str] = field(default_factory=list)
    trace: JsonObject = field(default_factory=dict)        # Schedule.describe(), at this scale
    window: JsonObject | None = None                        # the busiest window, marked in the profile
    subscriber: JsonObject = field(default_factory=dict)   # the cost distribution used, the function, the library
    library_cost_us: dict[str, float | None] | None = field(default=None, metadata=OPTIONAL)  # measured per event
    function_errors: int | None = field(default=None, metadata=OPTIONAL)
    frames: dict[str, str] = field(default_factory=dict)   # plot name -> events/<name>.csv.gz
    notes: list[str] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class HeadroomTrial(Record):
    trial: int
    scale: float
    lost: int
    expected: int
    trusted: bool
    first_loss_s: float | None = None
    role: str = "search"   # search, confirmation
    extra: JsonObject = field(default_factory=dict)


@dataclass
class HeadroomResult(Record):
    """How much faster the user's trace may get before their subscriber loses events
    (experiments/headroom.py): the NDR's search along the trace's time scale. `headroom` is the
    largest scale served without loss (confirmed), `first_lossy_scale` the smallest that lost, with
    its loss and onset; `status` conclusive, inconclusive (with reasons: interference, a sender
    that missed its schedule, loss that was not monotone in the scale, a confirmation that lost) or
    generator-limited (the sender could not play the trace faster: the headroom is at least that)."""

    headroom: float | None
    first_lossy_scale: float | None = None
    lost_at_lossy: int | None = None
    expected_at_lossy: int | None = None
    loss_ratio_at_lossy: float | None = None
    onset_at_lossy_s: float | None = None
    resolution: float = 0.02
    resolved: bool = False
    bracket: list[float | None] = field(default_factory=list)
    start_scale: float = 1.0
    confirmed: bool | None = None
    confirmations: int = 0
    status: str = "inconclusive"
    status_reasons: list[str] = field(default_factory=list)
    interference: list[str] = field(default_factory=list)
    untrusted_trials: list[int] = field(default_factory=list)
    rests_on: list[int] = field(default_factory=list)
    trials: list[HeadroomTrial] = field(default_factory=list)
    required: float | None = None
    sentence: str = ""
    notes: list[str] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)


# -- what the wfp platform found: facts of the machine, shown as found, never judged ------------
@dataclass
class DoctorCheck(Record):
    """One check of `wfpcap doctor` (platforms/wfp/doctor.py): passed, failed, or not run (None: a
    check it needs failed), with its evidence."""

    name: str
    ok: bool | None
    evidence: str
    extra: JsonObject = field(default_factory=dict)


@dataclass
class DoctorDiagnosis(Record):
    """The doctor's checks as the scenario session ran them before anything else."""

    ok: bool
    checks: list[DoctorCheck] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class AllowCase(Record):
    """The events of a permit filter's datagrams under one setting of the net-event keywords.
    `allow_filters`: which rule the allow events named (files of older harnesses lack it)."""

    keywords: int
    sent: int
    events: dict[str, int] = field(default_factory=dict)     # event type -> count
    allow_filters: dict[str, int] | None = field(default=None, metadata=OPTIONAL)
    events_of_other_filters: int = 0
    extra: JsonObject = field(default_factory=dict)


@dataclass
class AllowCases(Record):
    """The two settings the allow-visibility experiment compares."""

    as_found: AllowCase | None = field(default=None, metadata={"json": "as found"})
    with_classify_allow: AllowCase | None = field(default=None, metadata={"json": "with CLASSIFY_ALLOW"})
    extra: JsonObject = field(default_factory=dict)


@dataclass
class AllowVisibility(Record):
    """Does a user-mode subscriber get allow events (platforms/wfp/allow.py): the keywords found and
    after, each case's events, and the per-machine fact in one sentence."""

    keywords_found: int
    keywords_after: int
    subscribe_version: int
    cases: AllowCases = field(default_factory=AllowCases)
    fact: str = ""
    extra: JsonObject = field(default_factory=dict)


@dataclass
class PositiveControl(Record):
    """A template of the same field that lets the traffic through: how much of it arrived."""

    arrived: int
    expected: int
    extra: JsonObject = field(default_factory=dict)


@dataclass
class ConditionRow(Record):
    """One candidate field of the template-condition matrix (platforms/wfp/template_matrix.py):
    accepted (or the error's name), whether it filters (None: not judged, `note` says why), with the
    counts that decided it, and whether a template naming it twice is refused. A member without a
    condition field has only `note`."""

    field: str
    member: str
    documented: bool | None = field(default=None, metadata=OPTIONAL)
    accepted: bool | None = None
    error: str | None = field(default=None, metadata=OPTIONAL)            # why it was refused
    positive_error: str | None = field(default=None, metadata=OPTIONAL)   # why its positive control was
    arrived: int | None = field(default=None, metadata=OPTIONAL)
    expected: int | None = field(default=None, metadata=OPTIONAL)
    offered: int | None = field(default=None, metadata=OPTIONAL)
    filters: bool | None = None
    positive_control: PositiveControl | None = field(default=None, metadata=OPTIONAL)
    note: str | None = field(default=None, metadata=OPTIONAL)
    duplicate_refused: bool | None = None
    duplicate_error: str | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class TemplateMatrix(Record):
    """Which template conditions a net-event subscription honours on this machine, row by row, and
    the answer in one sentence."""

    subscribe_version: int
    rows: list[ConditionRow] = field(default_factory=list)
    summary: str = ""
    extra: JsonObject = field(default_factory=dict)


@dataclass
class ProbeCase(Record):
    """One layer and sender of the probe (WfpPlatform.probe): events of a small blocked trial and of
    its repeat, what the trial saw; or the error that ended it, and then only the first four."""

    layer: str
    sender: str
    sent: int
    events: int = 0
    error: str | None = field(default=None, metadata=OPTIONAL)
    events_on_repeat: int | None = field(default=None, metadata=OPTIONAL)
    send_errors: int | None = field(default=None, metadata=OPTIONAL)
    send_error_kinds: dict[str, int] | None = field(default=None, metadata=OPTIONAL)
    receivers: int | None = field(default=None, metadata=OPTIONAL)
    layer_ids: list[int] | None = field(default=None, metadata=OPTIONAL)
    directions: dict[str, int] | None = field(default=None, metadata=OPTIONAL)
    callback_threads: int | None = field(default=None, metadata=OPTIONAL)
    foreign_events: int | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class DeliveryFacts(Record):
    """What the trials of a run saw of undocumented delivery (WfpPlatform.observed): callback
    threads and overlap, events per tuple, other filters' events, unsubscribes that failed, the
    event clock's step (once one was seen)."""

    trials: int = 0
    callback_threads_max: int = 0
    concurrent_callbacks_max: int = 0
    foreign_events: int = 0
    events_per_tuple_max: int = 0
    failed_unsubscribes: int = 0
    leaked_subscriptions: int = 0
    event_clock_step_ns: int | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)


PlatformFacts = DoctorDiagnosis | AllowVisibility | TemplateMatrix | DeliveryFacts | list[ProbeCase]
"""What Campaign.record_facts takes: one of the wfp platform's facts (the probe: its cases)."""


# -- checks, verdicts, the run ------------------------------------------------------------------
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass
class Verdict:
    """A scenario's verdict before it is recorded: pass, fail or inconclusive, with the spread that
    decided it (analysis/verdict.py makes them)."""

    status: str
    measured: Any
    expected: Any
    message: str
    spread: JsonObject = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class Check(Record):
    """A recorded expectation check: what a scenario measured against what was expected."""

    name: str
    passed: bool
    measured: Any = None
    expected: Any = None
    message: str = ""
    verdict: str | None = None   # pass, fail, inconclusive (older files: from `passed`)
    spread: JsonObject = field(default_factory=dict)
    extra: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict is None:  # a plain check, or a file from before verdicts: from `passed`
            self.verdict = PASS if self.passed else FAIL

    @classmethod
    def of(cls, name: str, verdict: Verdict) -> "Check":
        return cls(name, not verdict.failed, verdict.measured, verdict.expected, verdict.message, verdict.status,
                   verdict.spread)


@dataclass
class Expectations(Record):
    """What the run's checks compare with: the field notes' values unless --expect said otherwise;
    None: not checked, the measured value is reported."""

    ALIASES: ClassVar[dict[str, str]] = {"system_buffer": "buffer_depth",
                                         "system_buffer_tolerance": "buffer_depth_tolerance"}

    queue_limit: int | None = None
    buffer_depth: int | None = None
    buffer_depth_tolerance: float | None = None
    extra: JsonObject = field(default_factory=dict)


@dataclass
class BaselineSection(Record):
    """The regression gate's verdict on this run (judge/baseline.py)."""

    source: str
    config_id: str
    threshold_pct: float
    regressions: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)


STATES = ("running", "complete", "interrupted", "subset")


@dataclass
class RunStatus(Record):
    """How the run ended: running (never finished: killed, or still running), complete, subset (some
    scenarios not selected or never run) or interrupted (a signal or an error, and where)."""

    status: str = "running"
    detail: str = ""
    interrupted_at: JsonObject | None = None
    scenarios: dict[str, list[str]] = field(default_factory=lambda: {"selected": [], "finished": [], "not_finished": []})
    started_utc: str | None = None
    ended_utc: str | None = None
    extra: JsonObject = field(default_factory=dict)


@dataclass
class Fingerprint(Record):
    """Which machine configuration the run belongs to (results/fingerprint.py): the stable part is
    hashed into the config id; what the platform measured when it opened and the volatile facts
    (load, uptime, other live runs) are kept per run."""

    stable: JsonObject = field(default_factory=dict)
    measured: JsonObject = field(default_factory=dict)
    volatile: JsonObject = field(default_factory=dict)
    python_executable: str | None = None
    extra: JsonObject = field(default_factory=dict)


@dataclass
class Estimates(Record):
    """The catalogue's estimates (results/catalog.py) by their key, and the NDR rows, one per
    callback cost. An estimate the catalogue does not name cannot be set: a new one is one
    catalogue entry, and every reader knows it from there."""

    values: dict[str, Estimate] = field(default_factory=dict)
    ndr: list[NdrResult] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)

    def get(self, key: str) -> Estimate | None:
        return self.values.get(key)

    def set(self, key: str, estimate: Estimate) -> None:
        if key not in catalog.BY_KEY:
            raise KeyError(f"{key!r} is not an estimate of the catalogue (results/catalog.py)")
        self.values[key] = estimate

    # the order summary.json has always written them in, so that a run's file is the same byte for byte
    STORED_ORDER: ClassVar[tuple[str, ...]] = ("burst_capacity", "plateau", "queue_limit", "first_batch",
                                               "buffer_depth", "drain_rate")

    def to_json(self) -> JsonObject:
        order = [k for k in self.STORED_ORDER if k in catalog.BY_KEY] + [k for k in catalog.KEYS
                                                                          if k not in self.STORED_ORDER]
        out: JsonObject = {k: self.values[k].to_json() for k in order if k in self.values}
        if self.ndr:
            out["ndr"] = [r.to_json() for r in self.ndr]
        out.update(plain(self.extra))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Estimates":
        values = {k: Estimate.from_json(v) for k, v in data.items() if k in catalog.BY_KEY and isinstance(v, Mapping)}
        ndr = [NdrResult.from_json(r) for r in data.get("ndr") or [] if isinstance(r, Mapping)]
        extra = {k: v for k, v in data.items() if k not in values and k != "ndr"}
        return cls(values, ndr, extra)


@dataclass
class Experiments(Record):
    """What each experiment adds beside its estimates, and what the platform found (wfp's doctor,
    allow visibility, template matrix, probe and delivery facts)."""

    expected: Expectations | None = field(default=None, metadata=OPTIONAL)
    drain: DrainSection | None = field(default=None, metadata=OPTIONAL)
    onset: OnsetResult | None = field(default=None, metadata=OPTIONAL)
    inline_copy: InlineCopyResult | None = field(default=None, metadata=OPTIONAL)
    template: TemplateResult | None = field(default=None, metadata=OPTIONAL)
    replay: ReplayResult | None = field(default=None, metadata=OPTIONAL)
    headroom: HeadroomResult | None = field(default=None, metadata=OPTIONAL)
    baseline: BaselineSection | None = field(default=None, metadata=OPTIONAL)
    doctor: DoctorDiagnosis | None = field(default=None, metadata=OPTIONAL)
    allow_visibility: AllowVisibility | None = field(default=None, metadata=OPTIONAL)
    template_matrix: TemplateMatrix | None = field(default=None, metadata=OPTIONAL)
    probe: list[ProbeCase] | None = field(default=None, metadata=OPTIONAL)
    delivery: DeliveryFacts | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)

    def set(self, name: str, record: Any) -> None:
        if name == "extra" or name not in _layout(type(self))[0]:
            raise KeyError(f"{name!r} is not a result the summary holds (results/records.py, Experiments)")
        setattr(self, name, record)


@dataclass
class RunSummary(Record):
    """summary.json: the whole record of one run."""

    platform: str
    config_id: str
    run: RunStatus | None = field(default_factory=RunStatus, metadata=OPTIONAL)  # None: from before runs had one
    fingerprint: Fingerprint = field(default_factory=Fingerprint)
    estimates: Estimates = field(default_factory=Estimates)
    checks: list[Check] = field(default_factory=list)
    experiments: Experiments = field(default_factory=Experiments)
    trials: int = 0
    ground_truth: JsonObject | None = field(default=None, metadata=OPTIONAL)  # the model's parameters
    format: int = FORMAT_VERSION
    extra: JsonObject = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.run.status if self.run is not None and self.run.status in STATES else "unknown"


# -- the JSON schema of the records: what a stored summary must be to be read ------------------
_SCALARS = {float: {"type": "number"}, int: {"type": "integer"}, bool: {"type": "boolean"}, str: {"type": "string"},
            type(None): {"type": "null"}}


def json_schema(hint: Any) -> JsonObject:
    """The JSON schema of a field's type (or of a record): the same dataclasses that write a summary
    say what one must hold to be read, so the two cannot drift apart. Keys a record does not know
    are allowed (they are kept in `extra`)."""
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    if hint is Any:
        return {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [json_schema(a) for a in args]}
    if origin is list:
        return {"type": "array", "items": json_schema(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(args[1]) if args else {}}
    if hint is Estimate:
        return {"type": "object", "properties": {"value": {"type": ["number", "null"]}, "method": {"type": "string"},
                                                 "detectable": {"type": "boolean"}, "reason": {"type": ["string", "null"]}}}
    if hint is Estimates:
        return {"type": "object", "properties": {**{k: json_schema(Estimate) for k in catalog.KEYS},
                                                 "ndr": json_schema(list[NdrResult])}}
    if isinstance(hint, type) and issubclass(hint, Record):
        hints, known = _layout(hint)
        properties = {key: json_schema(hints[f.name]) for key, f in known.items()}
        properties.update({alias: properties[field_] for alias, field_ in hint.ALIASES.items()})
        required = [key for key, f in known.items() if f.default is MISSING and f.default_factory is MISSING]
        return {"type": "object", "properties": properties, **({"required": required} if required else {})}
    raise TypeError(f"no JSON schema for {hint!r}")


# -- the twin: the model fitted to a run (harness/twin/) -------------------------------------------
TWIN_FORMAT = 1  # counts changes of twin.json's layout


@dataclass
class TwinParameter(Record):
    """One model parameter fitted to a run: its value (None: the run could not determine it, and
    `missing` says why; it is never defaulted), the range its evidence allows, how it was read,
    and the trials it rests on. `stands_for` says what it stands in for on a platform whose
    delivery differs from the model's dispatcher."""

    name: str
    value: float | int | None = None
    low: float | None = None
    high: float | None = None
    unit: str = ""
    method: str = ""
    rests_on: list[int] = field(default_factory=list)
    stands_for: str | None = field(default=None, metadata=OPTIONAL)
    missing: str | None = field(default=None, metadata=OPTIONAL)
    evidence: JsonObject = field(default_factory=dict)
    extra: JsonObject = field(default_factory=dict)

    @property
    def determined(self) -> bool:
        return self.value is not None


@dataclass
class HeldOutPrediction(Record):
    """A trial the fit did not see, run again on the twin with its own spec: what it measured,
    what the twin predicts (and the range the fit's uncertainty allows), the error and whether it
    is within the twin's stated tolerance. `interference` is what the trial's row says the machine
    was doing: a miss on such a trial is flagged, never hidden."""

    trial: int
    experiment: str
    what: str
    offered_rate_per_s: float | None = None
    cost_us: float | None = None
    mode: str | None = None
    events: int | None = None
    measured_lost: int | None = None
    predicted_lost: int | None = None
    measured_loss_ratio: float | None = None
    predicted_loss_ratio: float | None = None
    predicted_loss_low: float | None = None
    predicted_loss_high: float | None = None
    loss_error: float | None = None          # relative, or percentage points where measured loss < 10 %
    loss_error_kind: str | None = None       # "relative" or "points"
    loss_within: bool | None = None
    measured_onset_s: float | None = None    # None: no loss
    predicted_onset_s: float | None = None
    onset_error: float | None = None         # relative
    onset_within: bool | None = None
    within: bool | None = None               # both within (an onset only where either lost)
    trusted: bool = True
    interference: str = ""
    # the same, with the twin descheduled as this trial's subscriber was (its own counted stalls):
    # what the twin would say had it known what the neighbours were going to do during the trial
    own_stalls_loss_ratio: float | None = field(default=None, metadata=OPTIONAL)
    own_stalls_within: bool | None = field(default=None, metadata=OPTIONAL)
    extra: JsonObject = field(default_factory=dict)


@dataclass
class Twin(Record):
    """twin.json: the model's parameters fitted to one run (each with its evidence, or missing
    with the reason), what they stand in for on this platform, and the held-out check: the twin
    run on the very specs of trials the fit did not use, against what those trials measured.
    `model_params` is the ModelParams the predictions ran on (None while any parameter is missing)."""

    run: str
    config_id: str
    platform: str
    format: int = TWIN_FORMAT
    fitted_on: list[str] = field(default_factory=list)        # experiments the fit read
    held_out: list[str] = field(default_factory=list)         # experiments it predicts
    parameters: list[TwinParameter] = field(default_factory=list)
    model_params: JsonObject | None = None
    missing: list[str] = field(default_factory=list)
    stand_ins: list[str] = field(default_factory=list)
    tolerance: JsonObject = field(default_factory=dict)
    predictions: list[HeldOutPrediction] = field(default_factory=list)
    repeats: list[JsonObject] = field(default_factory=list)   # held-out trials run alike: how far they agree
    verdict: str = "not fitted"   # within, outside, no held-out trial, not fitted
    headline: str = ""
    notes: list[str] = field(default_factory=list)
    extra: JsonObject = field(default_factory=dict)

    def parameter(self, name: str) -> TwinParameter | None:
        return next((p for p in self.parameters if p.name == name), None)
