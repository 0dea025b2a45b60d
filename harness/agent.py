"""The user's own question, as the run's input: a trace (their traffic), a subscriber (their cost
distribution or their code) and the headroom they require: an `Agent`.

It comes from options (`--traffic-capture`, `--subscriber-cost`, ...) or from a small TOML file
(`--agent agent.toml`, docs/your-agent.md), options given beside the file overriding its entries.
Everything is read and checked here, before any platform opens: a bad value is one line
(BadInput), never a traceback, and nothing is installed.

    [traffic]                     # exactly one of capture, netevents, shape
    capture = "storm.pcapng"      # paths are relative to the file's folder
    window = "auto:10"            # optional: the busiest 10 s, or START:LENGTH (s)
    scale = 1.0                   # optional: the scale replayed (the search starts there)
    events = "flows"              # optional: packets | flows (default: the layer's rule)
    layer = "ALE_AUTH_CONNECT_V4" # optional: the harness's filter layer

    [subscriber]                  # at most one of cost, function (a library may go with a cost)
    cost = "costs.csv"            # or function = "mypackage.events:on_event"
    library = "build/agent.so:on_event"   # wfp's native callback only
    mode = "copy"                 # inline | copy (a function: copy unless told)
    seed = 0                      # of the cost draws

    [headroom]
    required = 1.5                # the agent's CI fails below this
    resolution = 0.02             # the search's bracket, relative
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.inputs import BadInput
from harness.spec import LAYERS, FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec
from harness.subscriber_code import PYTHON_FLOOR_NOTE, check_function_spec, resolve_function
from harness.subscriber_cost import read_cost_file
from harness.traffic.schedule import Schedule, check_trace_events, default_trace_events, parse_scale

SECTIONS: dict[str, tuple[str, ...]] = {
    "traffic": ("capture", "netevents", "shape", "window", "scale", "events", "layer"),
    "subscriber": ("cost", "function", "library", "mode", "seed"),
    "headroom": ("required", "resolution"),
}
PATHS = ("capture", "netevents", "cost")  # relative to the agent file's folder
MODES = ("inline", "copy")
DEFAULT_RESOLUTION = 0.02

# option -> (section, key): what --agent's entries are called on the command line
OPTION_KEYS: dict[str, tuple[str, str]] = {
    "--traffic-capture": ("traffic", "capture"), "--traffic-netevents": ("traffic", "netevents"),
    "--traffic-shape": ("traffic", "shape"), "--trace-window": ("traffic", "window"),
    "--traffic-scale": ("traffic", "scale"), "--trace-events": ("traffic", "events"),
    "--subscriber-cost": ("subscriber", "cost"), "--subscriber": ("subscriber", "function"),
    "--subscriber-lib": ("subscriber", "library"), "--subscriber-mode": ("subscriber", "mode"),
    "--required-headroom": ("headroom", "required"),
}


@dataclass(frozen=True)
class Agent:
    """What the replay and the headroom search run: the trace at the scale asked for, the
    subscriber, and what the report names them by."""

    source: Schedule               # the trace as read, before the window: its arrival profile
    trace: Schedule                # windowed, with its event rule, at `scale`
    layer: str
    subscriber: SubscriberSpec
    library: str | None = None     # PATH:SYMBOL, for the wfp platform's native callback
    required: float | None = None
    resolution: float = DEFAULT_RESOLUTION
    origin: str = "options"        # the agent file, or "options"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def scale(self) -> float:
        return self.trace.scale

    def spec(self, scale: float | None = None) -> TrialSpec:
        """The replay trial at `scale` (default: the agent's own)."""
        trace = self.trace if scale is None else self.trace.scaled(scale)
        return TrialSpec(TrafficSpec.replay(trace), self.subscriber, FilterSpec(layer=self.layer),
                         drain_quiet_s=0.5, label=f"replay@{trace.scale:g}x")

    def describe(self) -> dict[str, Any]:
        """What names this agent (hashed into the run's configuration: another trace or subscriber
        is another configuration, with a history of its own). Files by content and name, not by
        folder: a CI checkout in another place is the same agent."""
        sub = self.subscriber
        trace = {k: v for k, v in self.trace.describe().items() if k not in ("scale", "source")}
        source = self.trace.provenance
        name = source.source if source.kind == "shape" else Path(source.source).name
        out: dict[str, Any] = {"trace": {"name": name, **trace},
                               "scale": self.scale, "layer": self.layer, "mode": sub.mode}
        if sub.cost_distribution is not None:
            d = sub.cost_distribution
            out["cost"] = {"name": Path(d.source).name, "sha256": d.sha256, "kind": d.kind, "seed": d.seed}
        if sub.function is not None:
            out["function"] = sub.function
        if self.library is not None:
            out["library"] = self.library
        return out


def read_agent_file(path: str) -> dict[str, dict[str, Any]]:
    """The TOML file's sections, checked for unknown names; paths made relative to its folder."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read agent file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"agent file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise BadInput(f"unknown section in agent file {path}: [{unknown[0]}]; known: "
                       + ", ".join(f"[{s}]" for s in SECTIONS))
    out: dict[str, dict[str, Any]] = {}
    for section, keys in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise BadInput(f"agent file {path}: [{section}] must be a table")
        wrong = sorted(set(table) - set(keys))
        if wrong:
            raise BadInput(f"unknown key in agent file {path}: {section}.{wrong[0]}; known: {', '.join(keys)}")
        values = dict(table)
        for key in PATHS:
            if key in values and isinstance(values[key], str):
                values[key] = str(Path(path).parent / values[key])
        if isinstance(values.get("library"), str) and ":" in values["library"]:
            lib, _, symbol = values["library"].rpartition(":")
            values["library"] = f"{Path(path).parent / lib}:{symbol}"
        out[section] = values
    return out


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{what} must be a string, got {value!r}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadInput(f"{what} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{what} must be a finite number, got {value!r}")
    return float(value)


def load_agent(options: dict[str, Any], agent_file: str | None) -> Agent | None:
    """The agent from --agent's file and the options (options win); None when neither names a
    trace nor a subscriber."""
    given = read_agent_file(agent_file) if agent_file else {s: {} for s in SECTIONS}
    for option, (section, key) in OPTION_KEYS.items():
        if options.get(option) is not None:
            given[section][key] = options[option]
    traffic, sub, head = given["traffic"], given["subscriber"], given["headroom"]
    if not agent_file and not any(traffic.values()) and not any(sub.values()) and not any(head.values()):
        return None
    origin = agent_file or "options"
    sources = [k for k in ("capture", "netevents", "shape") if traffic.get(k) is not None]
    if len(sources) != 1:
        named = ", ".join(sources) if sources else "none"
        raise BadInput(f"the agent's traffic needs exactly one of --traffic-capture, --traffic-netevents, "
                       f"--traffic-shape (capture, netevents or shape in [traffic]); given: {named}")
    layer = _text(traffic.get("layer", "ALE_AUTH_CONNECT_V4"), "traffic.layer")
    if layer not in LAYERS:
        raise BadInput(f"traffic.layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    events = check_trace_events(_text(traffic.get("events", default_trace_events(layer)), "--trace-events"))
    source = read_trace(sources[0], traffic[sources[0]], events)
    trace = source
    if traffic.get("window") is not None:
        from harness.traffic.window import apply_window
        trace = apply_window(source, _text(traffic["window"], "--trace-window"))
    scale = parse_scale(str(traffic["scale"])) if traffic.get("scale") is not None else 1.0
    trace = trace.scaled(scale)
    subscriber, library, notes = read_subscriber(sub, (str(Path(agent_file).parent),) if agent_file else ())
    required = None
    if head.get("required") is not None:
        required = _number(head["required"], "the required headroom")
        if required <= 0:
            raise BadInput(f"the required headroom must be > 0 (a scale: 1.5 = half as fast again), got {required:g}")
    resolution = _number(head.get("resolution", DEFAULT_RESOLUTION), "headroom.resolution")
    if not 0.001 <= resolution <= 0.5:
        raise BadInput(f"headroom.resolution must be within 0.001..0.5, got {resolution:g}")
    return Agent(source, trace, layer, subscriber, library, required, resolution, origin, tuple(notes))


def read_trace(kind: str, value: Any, events: str) -> Schedule:
    """The trace named by capture, netevents or shape (each reader refuses bad input in one line)."""
    if kind == "capture":
        from harness.traffic.capture import read_capture
        return read_capture(_text(value, "--traffic-capture"), trace_events=events)
    if kind == "netevents":
        from harness.traffic.netevents_xml import read_netevents
        return read_netevents(_text(value, "--traffic-netevents"), trace_events=events)
    from harness.traffic.shapes import parse_shape
    return parse_shape(_text(value, "--traffic-shape"), trace_events=events)


def read_subscriber(sub: dict[str, Any], folders: tuple[str, ...] = ()) -> tuple[SubscriberSpec, str | None, list[str]]:
    """The subscriber spec, the library to load (wfp) and what the report should say about it;
    a function's module is also looked for in `folders` (the agent file's)."""
    notes: list[str] = []
    if sub.get("cost") is not None and sub.get("function") is not None:
        raise BadInput("--subscriber-cost and --subscriber are two subscribers: give one (a function's cost is "
                       "measured)")
    if sub.get("function") is not None and sub.get("library") is not None:
        raise BadInput("--subscriber (Python) and --subscriber-lib (native) are two subscribers: give one")
    function = sub.get("function")
    if function is not None:
        check_function_spec(_text(function, "--subscriber"))
        resolve_function(function, folders=folders)  # imports now: a module that does not import is refused here
    mode = sub.get("mode") or ("copy" if function is not None else "inline")
    if mode not in MODES:
        raise BadInput(f"--subscriber-mode must be inline or copy, got {mode!r}")
    if function is not None and mode == "copy" and sub.get("mode") is None:
        notes.append(PYTHON_FLOOR_NOTE)
    library = sub.get("library")
    if library is not None:
        library = _text(library, "--subscriber-lib")
        if ":" not in library:
            raise BadInput(f"--subscriber-lib must be PATH:SYMBOL, got {library!r}")
        if mode != "inline":
            raise BadInput("--subscriber-lib runs in the native callback, an inline subscriber: drop copy mode")
    seed = sub.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BadInput(f"subscriber.seed must be a whole number >= 0, got {seed!r}")
    cost = read_cost_file(_text(sub["cost"], "--subscriber-cost"), seed) if sub.get("cost") is not None else None
    spec = SubscriberSpec(cost_distribution=cost, mode=mode, function=function)
    return spec, library, notes


def with_scale(agent: Agent, scale: float) -> Agent:
    return replace(agent, trace=agent.trace.scaled(scale))
