"""`--require ESTIMATE,...`: which estimates a run must have measured conclusively, and why each
one it did not is unmet. An inconclusive verdict is a skip, so without this a run in which every
capacity scenario was inconclusive is green; with it, CI chooses what it insists on.

An estimate is unmet when it is
- missing: the summary has none (its scenario was not selected, or the run stopped before it);
- not detectable: measured, without a value (the reason the estimator gave);
- inconclusive: the run says its own number cannot be trusted (the reading's reasons: an NDR
  search's status), or a scenario that judged it ended inconclusive (its message).
Names are the estimate keys of the summary (burst_capacity, queue_limit, buffer_depth, ...), `ndr`
for the NDR at every callback cost, or `ndr@<cost>us` for one. Pure: a run's summary in, lines out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
import pandas as pd

from harness.judge.spread import Reading, readings
from harness.results import catalog
from harness.results.catalog import ndr_key
from harness.results.records import Check, RunSummary

ESTIMATE_NAMES = tuple(kind.key for kind in catalog.CATALOG)
NDR_ONE = re.compile(r"^ndr@(\d+(?:\.\d+)?)us$")

# the scenario checks (scenarios/*.py) whose verdict judges an estimate: an inconclusive one of
# them leaves the estimate inconclusive
CHECKS_ON: dict[str, tuple[str, ...]] = {
    "burst_capacity": ("plateau agrees with burst capacity", "peak backlog vs burst capacity"),
    "plateau": ("plateau agrees with burst capacity",),
    "queue_limit": ("next-queue limit",),
    "buffer_depth": ("system buffer",),
    "headroom": ("headroom",),  # scenarios/test_my_agent.py
}


@dataclass(frozen=True)
class Unmet:
    name: str
    why: str

    def text(self) -> str:
        return f"{self.name} ({self.why})"


def parse(text: str | None) -> list[str]:
    """The names of --require (comma-separated); ValueError naming an unknown one."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    for name in names:
        if name not in ESTIMATE_NAMES and name != "ndr" and not NDR_ONE.match(name):
            raise ValueError(f"--require: unknown estimate {name!r} (known: {', '.join(ESTIMATE_NAMES)}, ndr, ndr@<cost>us)")
    if text is not None and not names:
        raise ValueError("--require needs at least one estimate name")
    return list(dict.fromkeys(names))


def _checks_on(key: str) -> tuple[str, ...]:
    if key.startswith("ndr@"):
        cost = key.removeprefix("ndr@").removesuffix("us")
        return (f"NDR {cost} us <= 1/cost", f"mu explains NDR {cost} us")
    return CHECKS_ON.get(key, ())


def _why(key: str, reading: Reading | None, checks: list[Check]) -> str | None:
    """Why the estimate `key` is unmet, or None when it was measured conclusively."""
    if reading is None:
        return "missing: no scenario measured it (not selected, or the run stopped before it)"
    if reading.value is None:
        return reading.note if reading.note.startswith("not detectable") else f"not detectable: {reading.note}"
    doubts = [reading.inconclusive] if reading.inconclusive else []
    doubts += [c.message or c.name for c in checks if c.verdict == "inconclusive" and c.name in _checks_on(key)]
    return f"inconclusive: {'; '.join(doubts)}" if doubts else None


def _keys(name: str, found: dict[str, Reading]) -> list[str]:
    """The reading keys a required name stands for (`ndr`: every callback cost the run measured)."""
    if name == "ndr":
        return sorted((k for k in found if k.startswith("ndr@")), key=lambda k: float(k[4:-2])) or ["ndr"]
    if NDR_ONE.match(name):
        return [ndr_key(float(name[4:-2]))]
    return [name]


def judge(summary: RunSummary, required: list[str],
          trials: pd.DataFrame | None = None) -> tuple[list[Unmet], list[Unmet]]:
    """(unmet required estimates, inconclusive estimates that were not required), each with why."""
    found = readings(summary, trials)
    checks = list(summary.checks)
    wanted = [key for name in required for key in _keys(name, found)]
    unmet = [Unmet(key, why) for key in wanted if (why := _why(key, found.get(key), checks))]
    others = [Unmet(key, why) for key in found if key not in wanted
              and (why := _why(key, found[key], checks)) and why.startswith("inconclusive")]
    return unmet, others


def lines(summary: RunSummary | None, required: list[str], trials: pd.DataFrame | None = None) -> list[str]:
    """What the headline, the terminal and the job summary say: whether the required estimates were
    measured, each unmet one with why, and the inconclusive ones that were not required."""
    if not required:
        return []
    if summary is None:
        return [f"REQUIRED NOT MET: {', '.join(required)} (missing: nothing was measured)"]
    unmet, others = judge(summary, required, trials)
    out = ([f"REQUIRED NOT MET: {'; '.join(u.text() for u in unmet)}"] if unmet else
           [f"required: {', '.join(required)}: all measured conclusively"])
    out += [f"not required, {u.why}: {u.name}" for u in others]
    return out


def met(summary_lines: list[str]) -> bool:
    return not any(line.startswith("REQUIRED NOT MET") for line in summary_lines)
