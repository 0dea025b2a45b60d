"""ModelParams from the twin's parameters: the fitted values, and the two ends of their ranges (the
twin that loses least and the one that loses most), for predictions with the fit's uncertainty."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from harness.platforms.model import ModelParams
from harness.results.records import TwinParameter

TWIN_PARAMETERS = ("queue_limit", "system_buffer", "dispatch_latency_us", "batch_turnaround_us",
                   "per_event_overhead_us", "sender_rate_per_s", "cpu_share", "batch_threshold", "flush_timeout_us",
                   "stall_rate_per_s", "stall_mean_us")
INTEGER_PARAMETERS = ("queue_limit", "system_buffer", "batch_threshold")


def model_of(values: Mapping[str, TwinParameter], seed: int) -> ModelParams:
    """The ModelParams of determined parameters (BadInput where the model cannot take them)."""
    fields = {name: (int if name in INTEGER_PARAMETERS else float)(values[name].value) for name in TWIN_PARAMETERS}
    return ModelParams(**fields, seed=seed)


def bounds_of(params: ModelParams, parameters: Iterable[TwinParameter]) -> tuple[ModelParams, ModelParams]:
    """The twin at the two ends of the fit's ranges: least loss (least overhead, largest buffer,
    largest share) and most loss."""
    ranges = {p.name: (p.value if p.low is None else p.low, p.value if p.high is None else p.high)
              for p in parameters if p.determined}
    o, b, a = ranges["per_event_overhead_us"], ranges["system_buffer"], ranges["cpu_share"]
    least = replace(params, per_event_overhead_us=o[0], system_buffer=int(b[1]), cpu_share=a[1])
    most = replace(params, per_event_overhead_us=o[1], system_buffer=int(b[0]), cpu_share=a[0])
    return least, most
