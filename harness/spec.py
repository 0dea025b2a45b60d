"""What a trial is: frozen, validated descriptions shared by every platform.

A spec says *what* to do (filter, template, traffic, subscriber); a platform decides *how*.
Every constructor validates its fields so that bad input fails early with one clear message.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # carried by value; imported where built (harness/traffic/schedule.py, harness/subscriber_cost.py)
    from harness.subscriber_cost import CostDistribution
    from harness.traffic.schedule import Schedule

Layer = Literal["ALE_AUTH_CONNECT_V4", "ALE_AUTH_RECV_ACCEPT_V4", "OUTBOUND_TRANSPORT_V4", "INBOUND_TRANSPORT_V4"]
LAYERS: tuple[str, ...] = ("ALE_AUTH_CONNECT_V4", "ALE_AUTH_RECV_ACCEPT_V4", "OUTBOUND_TRANSPORT_V4", "INBOUND_TRANSPORT_V4")
PACINGS: tuple[str, ...] = ("burst", "constant", "poisson", "schedule")
CONDITION_FIELDS: tuple[str, ...] = ("net_event_type", "protocol", "remote_address", "remote_port")
PROTOCOLS = {"udp": 17, "tcp": 6, "icmp": 1}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_port(port: int, what: str) -> None:
    _check(isinstance(port, int) and 0 < port < 65536, f"{what} must be a port number 1..65535, got {port!r}")


@dataclass(frozen=True)
class FilterSpec:
    """A blocking filter: drops the test traffic so that every packet becomes one drop event."""

    layer: str = "ALE_AUTH_CONNECT_V4"
    protocol: str = "udp"
    remote_prefix: str = "127.0.0.0/8"
    remote_port_low: int = 20000
    remote_port_high: int = 60000
    match_own_process: bool = False

    def __post_init__(self) -> None:
        _check(self.layer in LAYERS, f"filter layer must be one of {', '.join(LAYERS)}, got {self.layer!r}")
        _check(self.protocol in PROTOCOLS, f"filter protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        try:
            ipaddress.IPv4Network(self.remote_prefix)
        except ValueError:
            raise ValueError(f"filter remote_prefix must be an IPv4 network such as 127.0.0.0/8, got {self.remote_prefix!r}") from None
        _check_port(self.remote_port_low, "filter remote_port_low")
        _check_port(self.remote_port_high, "filter remote_port_high")
        _check(self.remote_port_low <= self.remote_port_high, "filter remote_port_low must not exceed remote_port_high")

    @property
    def port_count(self) -> int:
        return self.remote_port_high - self.remote_port_low + 1


@dataclass(frozen=True)
class Condition:
    """One template condition: `field` equals `value`, or lies in [value, high] when high is set."""

    field: str
    value: int | str
    high: int | None = None

    def __post_init__(self) -> None:
        _check(self.field in CONDITION_FIELDS, f"template condition field must be one of {', '.join(CONDITION_FIELDS)}, got {self.field!r}")
        if self.high is not None:
            _check(self.field == "remote_port", "only remote_port conditions take a range")
            _check(int(self.value) <= self.high, "template port range low must not exceed high")
        if self.field == "remote_address":  # an address or a prefix (WFP: FWP_UINT32 or FWP_V4_ADDR_MASK)
            try:
                ipaddress.IPv4Network(str(self.value))
            except ValueError:
                raise ValueError(f"template remote_address must be an IPv4 address or prefix such as "
                                 f"127.1.0.0/16, got {self.value!r}") from None


@dataclass(frozen=True)
class TemplateSpec:
    """Subscription template: conditions AND'ed; a field may appear only once (WFP rejects duplicates)."""

    conditions: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        fields = [c.field for c in self.conditions]
        dupes = sorted({f for f in fields if fields.count(f) > 1})
        _check(not dupes, f"template condition duplicated: {', '.join(dupes)} (WFP rejects a duplicated condition)")

    def port_range(self) -> tuple[int, int] | None:
        for c in self.conditions:
            if c.field == "remote_port":
                return int(c.value), int(c.high if c.high is not None else c.value)
        return None


@dataclass(frozen=True)
class TrafficSpec:
    """Test traffic: `count` packets, paced as a burst (back-to-back), at a constant rate, as Poisson
    arrivals, or by a schedule (a trace: its offsets, flows and which packets make events).

    Packet i carries sequence number i; its remote port is `remote_port_low + i % port_count` of the
    filter, so that every packet is its own tuple (ALE classifies the first packet of a tuple), and its
    remote address is `remote_addresses[i % len(remote_addresses)]` (mixed traffic for templates).
    """

    count: int
    pacing: str = "burst"
    rate_per_s: float | None = None
    seed: int = 0
    remote_addresses: tuple[str, ...] = ("127.0.0.1",)
    schedule: Schedule | None = None  # with pacing "schedule"; compared and pickled by content

    def __post_init__(self) -> None:
        _check(isinstance(self.count, int) and self.count >= 1, f"traffic count must be a positive integer, got {self.count!r}")
        _check(self.pacing in PACINGS, f"traffic pacing must be one of {', '.join(PACINGS)}, got {self.pacing!r}")
        _check((self.pacing == "schedule") == (self.schedule is not None),
               "a schedule goes with pacing 'schedule' (and that pacing needs one)")
        if self.schedule is not None:
            _check(self.count == self.schedule.count,
                   f"traffic count {self.count} differs from the schedule's {self.schedule.count} packets")
            _check(self.rate_per_s is None, "a schedule sets its own times: no rate_per_s")
        elif self.pacing != "burst":
            _check(self.rate_per_s is not None and self.rate_per_s > 0, f"{self.pacing} pacing needs a positive rate_per_s")
        _check(len(self.remote_addresses) >= 1, "traffic needs at least one remote address")
        for address in self.remote_addresses:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise ValueError(f"traffic remote address must be an IPv4 address, got {address!r}") from None

    @classmethod
    def replay(cls, schedule: Schedule, **fields) -> "TrafficSpec":
        """Traffic that follows `schedule` (at its scale)."""
        return cls(count=schedule.count, pacing="schedule", schedule=schedule, **fields)

    @property
    def duration_s(self) -> float | None:
        if self.schedule is not None:
            return self.schedule.duration_s
        return None if self.rate_per_s is None else self.count / self.rate_per_s


@dataclass(frozen=True)
class SubscriberSpec:
    """The callback's behaviour.

    cost_us:  work per event; `cost_cv` > 0 draws it from a gamma distribution with that coefficient
              of variation (seeded), so service times jitter like a real callback.
    cost_distribution: the user's measured costs (harness/subscriber_cost.py), drawn per event with
              its own seed; it replaces cost_us and cost_cv, which then stay 0.
    hold:     block the first callback until the trial releases it (burst trials).
    mode:     "inline" does the work in the callback; "copy" copies the event (`copy_cost_us`) and
              leaves the work to a worker thread with its own queue.
    function: the user's Python subscriber, MODULE:FUNCTION (harness/subscriber_code.py), called with
              each event's bytes as the work (inline, or on the worker in copy mode); it replaces
              the cost, which then stays 0.
    """

    cost_us: float = 0.0
    cost_cv: float = 0.0
    hold: bool = False
    mode: str = "inline"
    copy_cost_us: float = 1.0
    cost_distribution: CostDistribution | None = None
    function: str | None = None

    def __post_init__(self) -> None:
        _check(self.function is None or (isinstance(self.function, str) and ":" in self.function),
               f"subscriber function must be MODULE:FUNCTION, got {self.function!r}")
        _check(self.function is None or (self.cost_us == 0 and self.cost_cv == 0 and self.cost_distribution is None),
               "a subscriber function is the work: give it or a cost, not both")
        _check(self.cost_us >= 0, f"subscriber cost_us must be >= 0, got {self.cost_us!r}")
        _check(self.cost_distribution is None or (self.cost_us == 0 and self.cost_cv == 0),
               "a subscriber cost distribution replaces cost_us and cost_cv: give one or the other")
        _check(0 <= self.cost_cv <= 5, f"subscriber cost_cv must be within 0..5, got {self.cost_cv!r}")
        _check(self.mode in ("inline", "copy"), f"subscriber mode must be inline or copy, got {self.mode!r}")
        _check(self.copy_cost_us >= 0, "subscriber copy_cost_us must be >= 0")


@dataclass(frozen=True)
class TrialSpec:
    """One trial: a filter, an optional template, traffic and a subscriber.

    settle_s: with hold, how long after the last send the callback is released.
    drain_quiet_s / drain_timeout_s: after release, the trial ends when nothing arrived for
    drain_quiet_s (RFC 2544's residual wait), or at drain_timeout_s at the latest.
    """

    traffic: TrafficSpec
    subscriber: SubscriberSpec = field(default_factory=SubscriberSpec)
    filter: FilterSpec = field(default_factory=FilterSpec)
    template: TemplateSpec | None = None
    settle_s: float = 0.05
    drain_quiet_s: float = 2.0
    drain_timeout_s: float = 60.0
    label: str = ""

    def __post_init__(self) -> None:
        _check(self.settle_s >= 0, "trial settle_s must be >= 0")
        _check(self.drain_quiet_s > 0, "trial drain_quiet_s must be > 0")
        _check(self.drain_timeout_s >= self.drain_quiet_s, "trial drain_timeout_s must be at least drain_quiet_s")
        network = ipaddress.IPv4Network(self.filter.remote_prefix)
        outside = [a for a in self.traffic.remote_addresses if ipaddress.IPv4Address(a) not in network]
        _check(not outside, f"traffic address {', '.join(outside)} is outside the filter's {network}: it would not be blocked")

    def with_count(self, count: int) -> "TrialSpec":
        return replace(self, traffic=replace(self.traffic, count=count))
