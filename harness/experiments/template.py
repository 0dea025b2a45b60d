"""Template reduction: mixed traffic of which only a fraction matches the subscription template.
Delivered events and the sustainable offered rate, with and without the template."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.experiments.sustained import NdrConfig, default_max_rate, search_ndr, sustained_spec
from harness.experiments.trial import run_recorded
from harness.platforms.base import Platform
from harness.report.store import ResultStore
from harness.spec import Condition, TemplateSpec, TrialSpec

EXPERIMENT = "template"
MIXED_ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")


def template_for(address: str = MIXED_ADDRESSES[0]) -> TemplateSpec:
    return TemplateSpec((Condition("remote_address", address), Condition("net_event_type", 3)))


def measure_template(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float, count: int,
                     capacity: int | None, generator_max: float, config: NdrConfig) -> dict[str, Any]:
    mixed = replace(base, traffic=replace(base.traffic, remote_addresses=MIXED_ADDRESSES))
    fraction = 1 / len(MIXED_ADDRESSES)
    out: dict[str, Any] = {"match_fraction_sent": fraction, "cost_us": cost_us}
    light_rate = default_max_rate(cost_us, generator_max) / 4  # well below what the callback sustains
    for name, template, reach in (("without", None, 1.0), ("with", template_for(), 1 / fraction)):
        spec = replace(mixed, template=template)
        _, row = run_recorded(platform, sustained_spec(spec, cost_us, light_rate, count / light_rate), store,
                              EXPERIMENT, template=name)
        # with the template only a fraction reaches the callback, so the search must reach further
        max_rate = min(generator_max, default_max_rate(cost_us, generator_max) * reach)
        # ... and its trials must be longer: an offered overload reaches the buffer scaled by the fraction
        hint = int(capacity * reach) if capacity else None
        ndr = search_ndr(platform, spec, store, cost_us, hint, generator_max,
                         replace(config, max_rate_per_s=max_rate))
        out[name] = {"delivered": row["delivered"], "sent": count, "expected": row["expected"],
                     "unexpected": row["unexpected"], "ndr_offered_rate_per_s": ndr["rate_per_s"]}
    return out
