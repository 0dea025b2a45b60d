"""Traffic shapes as schedules, besides pacing's burst, constant and Poisson.

- on/off: bursts at `burst_rate_per_s` lasting `burst_s`, repeated so that the average is
  `mean_rate_per_s` (silent in between): the shape that fills buffers. Evenly spaced, so the
  rate at which a busy stretch overflows a queue can be computed.
- ramp: the rate goes linearly from `start_rate_per_s` to `end_rate_per_s` over `duration_s`;
  packet k goes when the integral of the rate reaches k.
Every packet is its own flow (a shape has no flow structure of its own).
"""
from __future__ import annotations

import math

import numpy as np

from harness.inputs import BadInput
from harness.traffic.schedule import Provenance, Schedule

MAX_PACKETS = 50_000_000  # as `wfpcap model --count`


def _positive(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BadInput(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def _bounded(count: int, what: str) -> int:
    if count > MAX_PACKETS:
        raise BadInput(f"{what} makes {count:,} packets; at most {MAX_PACKETS:,}")
    if count < 1:
        raise BadInput(f"{what} makes no packet (an empty trace)")
    return count


def on_off(mean_rate_per_s: float, burst_rate_per_s: float, burst_s: float, duration_s: float,
           trace_events: str = "packets") -> Schedule:
    """Bursts of round(burst_rate * burst_s) packets at 1/burst_rate apart, one every
    period = burst_s * burst_rate / mean_rate, for `duration_s` (whole periods)."""
    mean = _positive("on/off mean rate", mean_rate_per_s)
    burst = _positive("on/off burst rate", burst_rate_per_s)
    length = _positive("on/off burst length", burst_s)
    duration = _positive("on/off duration", duration_s)
    if mean > burst:
        raise BadInput(f"on/off mean rate {mean:g}/s must not exceed the burst rate {burst:g}/s")
    per_burst = max(1, round(burst * length))
    period_ns = round(per_burst / mean * 1e9)
    bursts = max(1, int(duration * 1e9 // period_ns))
    what = f"on/off {mean:g}/s in bursts of {burst:g}/s x {length:g} s over {duration:g} s"
    _bounded(bursts * per_burst, what)
    within = np.rint(np.arange(per_burst) * (1e9 / burst)).astype(np.int64)
    times = (np.arange(bursts, dtype=np.int64)[:, None] * period_ns + within[None, :]).reshape(-1)
    return Schedule(times, None, trace_events, Provenance(source=f"shape: {what}", kind="shape"))


def ramp(start_rate_per_s: float, end_rate_per_s: float, duration_s: float, trace_events: str = "packets") -> Schedule:
    """Packet k at the time t where r0 t + (r1 - r0) t^2 / (2 T) = k."""
    r0 = _positive("ramp start rate", start_rate_per_s)
    r1 = _positive("ramp end rate", end_rate_per_s)
    T = _positive("ramp duration", duration_s)
    what = f"ramp {r0:g}/s to {r1:g}/s over {T:g} s"
    count = _bounded(int(math.floor((r0 + r1) / 2 * T)) + 1, what)
    k = np.arange(count, dtype=np.float64)
    a = (r1 - r0) / (2 * T)
    if a == 0:
        t = k / r0
    else:  # the root of a t^2 + r0 t - k = 0 written so that it stays exact as a -> 0
        t = 2 * k / (r0 + np.sqrt(r0 * r0 + 4 * a * k))
    return Schedule(np.rint(t * 1e9).astype(np.int64), None, trace_events, Provenance(source=f"shape: {what}", kind="shape"))


# --traffic-shape KIND:NAME=VALUE,...: the shape functions' arguments, by name
SHAPES = {"on-off": (on_off, {"mean": "mean_rate_per_s", "burst": "burst_rate_per_s", "length": "burst_s",
                              "duration": "duration_s"}),
          "ramp": (ramp, {"start": "start_rate_per_s", "end": "end_rate_per_s", "duration": "duration_s"})}
SHAPE_FORMS = "on-off:mean=R,burst=R,length=S,duration=S or ramp:start=R,end=R,duration=S (rates per s, times in s)"


def parse_shape(text: str, trace_events: str = "packets") -> Schedule:
    """The --traffic-shape option: `on-off:mean=5000,burst=60000,length=0.1,duration=2` or
    `ramp:start=1000,end=30000,duration=1.5`."""
    kind, sep, rest = str(text).partition(":")
    if not sep or kind.strip() not in SHAPES:
        raise BadInput(f"--traffic-shape must be {SHAPE_FORMS}, got {text!r}")
    make, names = SHAPES[kind.strip()]
    values: dict[str, float] = {}
    for part in rest.split(","):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or name not in names:
            raise BadInput(f"--traffic-shape {kind}: expected {', '.join(f'{n}=' for n in names)}, got {part.strip()!r}")
        if names[name] in values:
            raise BadInput(f"--traffic-shape {kind}: {name} is given twice")
        try:
            values[names[name]] = float(value)
        except ValueError:
            raise BadInput(f"--traffic-shape {kind}: {name} must be a number, got {value.strip()!r}") from None
    missing = [n for n, arg in names.items() if arg not in values]
    if missing:
        raise BadInput(f"--traffic-shape {kind}: {', '.join(missing)} missing")
    return make(**values, trace_events=trace_events)
