"""Every estimate the harness makes, once: its key in summary.json, its title, unit and meaning,
which direction is better, the experiment that measures it and what the field notes claim.

The report, the headline, the baseline gate, history, the fleet comparison and the summary's
schema all read this list; adding an estimate is one entry here plus the code that measures it.
An estimate with `better` set is gated (a regression beyond the measured spread fails a run) and
tracked over time; the others are shown only (the first batch is whatever arrived while the
dispatcher woke; the plateau repeats the burst capacity; the drain rate has no measured spread).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EstimateKind:
    key: str                 # the key in summary.json's "estimates" ("ndr" holds one row per callback cost)
    title: str
    unit: str
    meaning: str
    experiment: str          # the experiment whose trials it rests on
    better: str | None = None           # "higher": gated and tracked; None: shown only
    field_note: int | None = None       # what the field notes claim, where they claim a number
    field_note_tolerance: float = 0.0   # relative: a measurement this close agrees with the claim
    positive: bool = True               # its range: above 0 (a capacity, a rate), else 0 or more

    def in_range(self, value: float) -> bool:
        return value > 0 if self.positive else value >= 0

    @property
    def gated(self) -> bool:
        return self.better is not None


CATALOG: tuple[EstimateKind, ...] = (
    EstimateKind("burst_capacity", "Burst capacity", "events", "longest burst delivered without loss (events)",
                 "burst", better="higher"),
    EstimateKind("queue_limit", "Next-queue limit", "events", "full batch size seen in the drain (events)",
                 "drain", better="higher", field_note=256),
    EstimateKind("first_batch", "First batch", "events", "events taken while the dispatcher woke (events)", "drain",
                 positive=False),
    EstimateKind("buffer_depth", "System buffer", "events",
                 "capacity - first batch - queue limit, one drain trial (events)", "drain", better="higher",
                 field_note=16_500, field_note_tolerance=0.05, positive=False),
    EstimateKind("plateau", "Plateau", "events", "delivered count of oversized bursts (events)", "burst"),
    EstimateKind("drain_rate", "Drain rate", "events/s", "events/s delivered after release", "drain"),
    EstimateKind("headroom", "Headroom", "x", "largest speed-up of your trace served without loss (scale)",
                 "headroom", better="higher"),
)
# the highest loss-free rate, one per callback cost, keyed ndr@<cost>us wherever a key names one
NDR = EstimateKind("ndr", "NDR", "events/s", "highest constant rate served without loss, per callback cost",
                   "sustained", better="higher")

BY_KEY = {k.key: k for k in CATALOG}
KEYS = tuple(k.key for k in CATALOG)
GATED = tuple(k.key for k in CATALOG if k.gated)


def of_experiment(experiment: str) -> tuple[EstimateKind, ...]:
    return tuple(k for k in CATALOG if k.experiment == experiment)


def ndr_key(cost_us: float) -> str:
    return f"ndr@{cost_us:g}us"


def ndr_title(cost_us: float) -> str:
    return f"NDR @ {cost_us:g} µs"


def ndr_cost(key: str) -> float | None:
    """The callback cost of an ndr@<cost>us key; None for any other key."""
    if not (key.startswith("ndr@") and key.endswith("us")):
        return None
    try:
        return float(key[4:-2])
    except ValueError:
        return None


def kind_of(key: str) -> EstimateKind:
    """The catalogue entry of a reading's key (ndr@20us is an NDR)."""
    return NDR if ndr_cost(key) is not None else BY_KEY[key]


def known(key: str) -> bool:
    return ndr_cost(key) is not None or key in BY_KEY


def sort_keys(keys: list[str] | set[str]) -> list[str]:
    """Catalogue order, then the NDRs by callback cost."""
    plain = [k for k in KEYS if k in keys]
    return plain + sorted((k for k in keys if ndr_cost(k) is not None), key=lambda k: ndr_cost(k) or 0.0)
