"""Which send loop a sender process runs: the native one (harness/traffic/native_loop.py) or the
Python one (pacing.run_paced), named in every trial's report as `sender_path`, as the callback's
path is named.

WFPCAP_SENDER=native|python; unset means native where it compiles, else the Python loop and why
(numba missing, a library without the calls, a platform without a native binding). Asked for by
name, a native loop that cannot be had is an error of one line.
"""
from __future__ import annotations

import os
from typing import Any

from harness.platforms.base import PlatformUnavailable
from harness.traffic.native_loop import NativeLoop

SENDER_ENV = "WFPCAP_SENDER"
CHOICES = ("", "native", "python")


class SenderUnavailable(RuntimeError):
    pass


def sender_choice() -> str:
    """'' (native, falling back), 'native' or 'python'; ValueError (one line) for anything else."""
    choice = os.environ.get(SENDER_ENV, "").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"{SENDER_ENV}={choice!r}: expected 'native' or 'python'")
    return choice


def open_native(factory: Any, choice: str) -> tuple[NativeLoop | None, str]:
    """(the compiled loop, "") or (None, why the Python loop runs); SenderUnavailable when the
    native loop was asked for by name and cannot be had."""
    if choice == "python":
        return None, f"{SENDER_ENV}=python"
    make = getattr(factory, "native", None)
    try:
        if make is None:
            raise SenderUnavailable("this platform's sockets have no native send loop")
        return NativeLoop(make()), ""
    except ImportError as exc:  # missing is not broken (as for the native callback): name what did not load
        absent = isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ("numba", "llvmlite")
        why = f"numba is not installed ({exc})" if absent else f"numba is installed but did not load: {exc}"
    except (SenderUnavailable, PlatformUnavailable, OSError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except Exception as exc:  # numba's and llvmlite's errors have no common base: one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        why = f"the native send loop did not compile ({type(exc).__name__}: {first})"
    if choice == "native":
        raise SenderUnavailable(f"{SENDER_ENV}=native: {why}")
    return None, why
