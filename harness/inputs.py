"""Every input a user gives, checked in one place before anything is installed or opened.

Each input has a schema (type, range, finiteness); a bad value raises BadInput with one line
that names the input, the value and what it must be. The session and `wfpcap` print that line
and exit with status 2. Ranges are what the harness (and, for nflog, the kernel) can honour.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

INT_MAX = 2**31 - 1
U32_MAX = 2**32 - 1


class BadInput(ValueError):
    """One line that says which input is wrong and why."""


# name -> (kind, low, high); kind "int" or "float"; both bounds inclusive
MODEL_PARAMS: dict[str, tuple[str, float, float]] = {
    "queue_limit": ("int", 1, 100_000),
    "system_buffer": ("int", 0, 1_000_000),
    "dispatch_latency_us": ("float", 0.0, 1e6),
    "batch_turnaround_us": ("float", 0.0, 1e6),
    "per_event_overhead_us": ("float", 0.0, 1e6),
    "sender_rate_per_s": ("float", 1.0, 1e9),
    "seed": ("int", 0, 2**63 - 1),
    "cpu_share": ("float", 0.01, 1.0),
    "batch_threshold": ("int", 0, 100_000),
    "flush_timeout_us": ("float", 0.0, 60e6),
    "stall_rate_per_s": ("float", 0.0, 1e5),
    "stall_mean_us": ("float", 0.0, 60e6),
}

# what the kernel accepts (nfnetlink_log: u32 threshold and timer, nlbufsiz from one page to
# 128 KiB; SO_RCVBUFFORCE: an int that the kernel clamps at INT_MAX / 2, so larger is refused
# rather than silently not given)
NFLOG_PARAMS: dict[str, tuple[str, float, float]] = {
    "qthresh": ("int", 1, U32_MAX),
    "timeout_cs": ("int", 1, 6000),
    "nlbufsiz": ("int", 4096, 131072),
    "rcvbuf": ("int", 4096, INT_MAX // 2),
}
NFLOG_SENDERS = ("udp", "raw")

# --expect: null means "not checked: the measured value is reported only", for both counts; keys
# are the catalogue's (results/catalog.py), and the buffer's older name is still read
EXPECTATION_KEYS: dict[str, tuple[str, float, float, bool]] = {
    "queue_limit": ("int", 1, 10_000_000, True),
    "buffer_depth": ("int", 0, 10_000_000, True),
    "buffer_depth_tolerance": ("float", 0.0, 10.0, False),
}
EXPECTATION_ALIASES = {"system_buffer": "buffer_depth", "system_buffer_tolerance": "buffer_depth_tolerance"}


def one_line(message: object) -> str:
    """An error as the one line the user sees, whatever a path or a value in it held."""
    return str(message).replace("\r", "\\r").replace("\n", "\\n")


def shown(text: object) -> str:
    """Text from a file or a command line as a message shows it: as it is, or quoted where it
    holds what would break the message's one line."""
    text = str(text)
    return text if text.isprintable() else repr(text)


def check_number(what: str, value: Any, kind: str, low: float, high: float) -> int | float:
    """A finite number of the right kind within [low, high]; booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{what} must be {'a whole number' if kind == 'int' else 'a number'}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{what} must be a finite number, got {value!r}")
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise BadInput(f"{what} must be a whole number, got {value!r}")
        value = int(value)
    if not low <= value <= high:
        raise BadInput(f"{what} must be within {_num(low)}..{_num(high)}, got {_num(value)}")
    return value


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x)}"


def parse_number(what: str, text: str, kind: str, low: float, high: float) -> int | float:
    """A NAME=VALUE option's VALUE: parsed as an int or a float, then checked like any number."""
    text = text.strip()
    try:
        value: int | float = int(text) if kind == "int" else float(text)
    except ValueError:
        raise BadInput(f"{what} needs {'a whole number' if kind == 'int' else 'a number'}, got {text!r}") from None
    return check_number(what, value, kind, low, high)


def finite_float(text: str) -> float:
    """A finite float from text; ValueError saying "not a number" or "not a finite number"."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def parse_pairs(option: str, pairs: list[str]) -> dict[str, str]:
    """NAME=VALUE strings of a repeatable option; a name given twice is refused."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BadInput(f"{option} needs NAME=VALUE, got {pair!r}")
        if name in out:
            raise BadInput(f"{option} {name} is given twice")
        out[name] = value.strip()
    return out


def model_values(overrides: dict[str, str]) -> dict[str, int | float]:
    values: dict[str, int | float] = {}
    for name, text in overrides.items():
        if name not in MODEL_PARAMS:
            raise BadInput(f"unknown model parameter {name!r}; known: {', '.join(MODEL_PARAMS)}")
        values[name] = parse_number(f"model parameter {name}", text, *MODEL_PARAMS[name])
    return values


def check_model(values: dict[str, Any]) -> None:
    """Range check of a whole parameter set (also for parameters built in code)."""
    for name, (kind, low, high) in MODEL_PARAMS.items():
        if name in values:
            check_number(f"model parameter {name}", values[name], kind, low, high)


def nflog_values(overrides: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    known = sorted([*NFLOG_PARAMS, "sender"])
    for name, text in overrides.items():
        if name == "sender":
            values[name] = text
        elif name in NFLOG_PARAMS:
            values[name] = parse_number(f"nflog parameter {name}", text, *NFLOG_PARAMS[name])
        else:
            raise BadInput(f"unknown nflog parameter {name!r}; known: {', '.join(known)}")
    check_nflog(values)
    return values


def check_nflog(values: dict[str, Any]) -> None:
    for name, (kind, low, high) in NFLOG_PARAMS.items():
        if values.get(name) is not None:
            check_number(f"nflog parameter {name}", values[name], kind, low, high)
    if "sender" in values and values["sender"] not in NFLOG_SENDERS:
        raise BadInput(f"nflog parameter sender must be udp or raw, got {values['sender']!r}")



def expectations(path: str | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """The --expect file: a JSON object with typed values, merged over `defaults`."""
    from harness.results.read import parse_json, read_text
    out = dict(defaults)
    if not path:
        return out
    text = read_text(path, 1 << 20, BadInput)
    loaded = parse_json(text, f"expectations file {path}", BadInput)
    return {**out, **check_expectations(loaded, f"expectations file {path}")}


def check_expectations(loaded: Any, source: str) -> dict[str, Any]:
    """An expectations object: known keys, typed values; null (counts only) means not checked."""
    if not isinstance(loaded, dict):
        raise BadInput(f"{source} must hold a JSON object such as "
                       f'{{"queue_limit": 256}}, got {type(loaded).__name__}')
    unknown = sorted(set(loaded) - set(EXPECTATION_KEYS) - set(EXPECTATION_ALIASES))
    if unknown:
        raise BadInput(f"unknown keys in {source}: {', '.join(map(shown, unknown))}; known: {', '.join(EXPECTATION_KEYS)} "
                       f"({', '.join(EXPECTATION_ALIASES)}: their older names)")
    out: dict[str, Any] = {}
    for given, value in loaded.items():
        key = EXPECTATION_ALIASES.get(given, given)
        if key in out:
            raise BadInput(f"{key} is given twice in {source} (once as {given})")
        kind, low, high, nullable = EXPECTATION_KEYS[key]
        if value is None and nullable:
            out[key] = None
            continue
        out[key] = check_number(f"{given} in {source}", value, kind, low, high)
    return out


def report_dir(path: str) -> Path:
    """The result store's root: created if missing, and proven writable by writing a file in it."""
    if not path.strip():
        raise BadInput("--report-dir is empty; name a folder (default: reports)")
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise BadInput(f"--report-dir {path} is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".wfpcap-probe-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInput(f"--report-dir {path} is not writable: {exc.strerror or exc}") from None
    return root


def positive(kind: str, high: float = 1e12):
    """An argparse type: a finite number > 0 (int or float) up to `high`."""
    def convert(text: str) -> int | float:
        value = parse_number("value", text, kind, -math.inf, math.inf)
        if not 0 < value <= high:
            raise BadInput(f"must be > 0 and at most {_num(high)}, got {text}")
        return value
    convert.__name__ = f"positive {kind}"
    return convert


def percentage(text: str) -> float:
    """An argparse type: --fail-if-worse's percentage, 0 or more and below 100 (as the gate checks it)."""
    value = parse_number("value", text, "float", -math.inf, math.inf)
    if not 0 <= value < 100:
        raise BadInput(f"must be a percentage in [0, 100), got {text}")
    return value


def within(kind: str, low: float, high: float):
    """An argparse type: a finite number within [low, high]."""
    def convert(text: str) -> int | float:
        return parse_number("value", text, kind, low, high)
    convert.__name__ = f"{kind} within {low:g}..{high:g}"
    return convert
