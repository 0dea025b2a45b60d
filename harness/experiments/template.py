"""Template reduction: mixed traffic of which a fixed share matches the subscription template.
Delivered events and the sustainable offered rate, with and without the template.

The mix is four loopback /16s (127.1.0.1, 127.2.0.1, ...) and the template matches the first one,
127.1.0.0/16: the traffic plan steps addresses inside each /16 when the ports wrap, so a quarter
of every trial matches, whatever its size (traffic/plan.py)."""
from __future__ import annotations

from dataclasses import replace
from harness.experiments.search import NdrConfig
from harness.experiments.trial import default_max_rate, sustained_spec, trusted_run
from harness.experiments.ndr import search_ndr
from harness.platforms.base import Platform
from harness.results.records import TemplateArm, TemplateResult
from harness.results.store import ResultStore
from harness.spec import Condition, TemplateSpec, TrialSpec

EXPERIMENT = "template"
MIXED_ADDRESSES = ("127.1.0.1", "127.2.0.1", "127.3.0.1", "127.4.0.1")
MATCHING_PREFIX = "127.1.0.0/16"


def template_for(prefix: str = MATCHING_PREFIX) -> TemplateSpec:
    return TemplateSpec((Condition("remote_address", prefix), Condition("net_event_type", 3)))


def measure_template(platform: Platform, base: TrialSpec, store: ResultStore, cost_us: float, count: int,
                     capacity: int | None, generator_max: float, config: NdrConfig) -> TemplateResult:
    mixed = replace(base, traffic=replace(base.traffic, remote_addresses=MIXED_ADDRESSES))
    fraction = 1 / len(MIXED_ADDRESSES)
    out = TemplateResult(fraction, cost_us, MATCHING_PREFIX)
    light_rate = default_max_rate(cost_us, generator_max) / 4  # well below what the callback sustains
    for name, template, reach in (("without", None, 1.0), ("with", template_for(), 1 / fraction)):
        spec = replace(mixed, template=template)
        _, row, refused = trusted_run(platform, sustained_spec(spec, cost_us, light_rate, count / light_rate), store,
                                      EXPERIMENT, capacity, template=name)
        # with the template only a fraction reaches the callback, so the search must reach further
        max_rate = min(generator_max, default_max_rate(cost_us, generator_max) * reach)
        ndr = search_ndr(platform, spec, store, cost_us, capacity, generator_max,
                         replace(config, max_rate_per_s=max_rate), EXPERIMENT, template=name)
        arm = TemplateArm(delivered=row["delivered"], sent=count, expected=row["expected"], unexpected=row["unexpected"],
                          light_trial=row["trial"], light_trusted=row["trusted"],
                          untrusted_trials=refused + ndr.untrusted_trials, ndr_offered_rate_per_s=ndr.rate_per_s,
                          ndr=ndr, rests_on=sorted(set(ndr.rests_on) | ({int(row["trial"])} if row["trusted"] else set())))
        if name == "with":
            out.with_ = arm
        else:
            out.without = arm
    return out
