"""A user's own subscriber code: a Python function (`--subscriber MODULE:FUNCTION`) or a native
one in a shared library (`--subscriber-lib PATH:SYMBOL`).

- Python: `function(event: bytes) -> None`, called once per event of the harness's filter with the
  platform's record of the event (the logged IPv4 packet on nflog and the model; on wfp the
  FWPM_NET_EVENTn structure as Windows handed it). Found by import: from sys.path, then the current
  folder and the agent file's.
- Native: `void symbol(const void *event, void *context)`, called by the wfp platform's native
  callback with the FWPM_NET_EVENTn pointer Windows handed over (harness/platforms/wfp/native.py).
  Loaded once, before any subscription, and named by its path and SHA-256 (the fingerprint).

Both are refused with one line (BadInput) when they cannot be had: a malformed name, a module
that does not import, a missing function or symbol, a library that does not load.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.inputs import BadInput

# Why copy mode is a Python subscriber's default: a Python callback costs this much per event before
# any work of its own (README, benchmarks/bench_callback.py), which inline would add to every event
PYTHON_FLOOR_NOTE = ("a Python subscriber runs in copy mode unless told otherwise: the Python callback "
                     "itself costs ~2.5-3.5 us per event on wfp (the interpreter's floor), which inline mode "
                     "adds to the subscriber's own time in WFP's delivery thread")


def _split(spec: str, option: str, left: str, right: str) -> tuple[str, str]:
    head, sep, tail = str(spec).rpartition(":")
    if not sep or not head.strip() or not tail.strip():
        raise BadInput(f"{option} must be {left}:{right}, got {spec!r}")
    return head.strip(), tail.strip()


def resolve_function(spec: str, option: str = "--subscriber", folders: tuple[str, ...] = ()) -> Callable[[bytes], Any]:
    """MODULE:FUNCTION as a callable (imported now). Besides sys.path, the module is looked for in
    the current folder and in `folders` (the agent file's), after everything else."""
    module_name, name = _split(spec, option, "MODULE", "FUNCTION")
    for folder in (os.getcwd(), *folders):
        if folder not in sys.path:
            sys.path.append(folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error of the user's module: one line
        raise BadInput(f"{option} {spec}: cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise BadInput(f"{option} {spec}: {module_name} has no function {name}")
    return function


@dataclass(frozen=True)
class NativeSubscriber:
    """A loaded library's per-event function: its address, and what names it in the report."""

    path: str
    symbol: str
    sha256: str
    address: int

    def describe(self) -> dict[str, str]:
        return {"path": self.path, "symbol": self.symbol, "sha256": self.sha256}


_loaded: dict[str, ctypes.CDLL] = {}  # a library stays loaded as long as the process (WFP may call it)


def load_library(spec: str, option: str = "--subscriber-lib") -> NativeSubscriber:
    """PATH:SYMBOL, loaded (once per process and path) and its symbol found."""
    path, symbol = _split(spec, option, "PATH", "SYMBOL")
    file = Path(path)
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as exc:
        raise BadInput(f"cannot read {option} library {path}: {exc.strerror or exc}") from None
    key = os.path.realpath(path)
    try:
        lib = _loaded.get(key) or ctypes.CDLL(key)
    except OSError as exc:
        raise BadInput(f"{option} {path} does not load as a shared library: {exc}") from None
    _loaded[key] = lib
    try:
        function = getattr(lib, symbol)
    except AttributeError:
        raise BadInput(f"{option} {path} exports no symbol {symbol}") from None
    address = ctypes.cast(function, ctypes.c_void_p).value
    return NativeSubscriber(str(file), symbol, digest, int(address))


def check_function_spec(spec: str) -> str:
    """The form MODULE:FUNCTION (for a SubscriberSpec; it is imported where it runs)."""
    _split(spec, "--subscriber", "MODULE", "FUNCTION")
    return spec
