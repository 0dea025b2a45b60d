"""Ctrl-C or SIGTERM while pytest is still starting (importing numpy, pandas, matplotlib and the
harness can take seconds on a busy machine): noted here, from the first line of the scenarios'
conftest, so that the session ends before it opens anything, with its own line instead of a
traceback from an import (the lifecycle takes over the signals once pytest is configured).
Only the standard library here: this must be in place before anything slow is imported."""
from __future__ import annotations

import signal
import threading

STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name))
_received: list[int] = []


def _note(signum: int, frame: object) -> None:
    _received.append(signum)


def install() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in STOPPING:
            signal.signal(sig, _note)


def received() -> int | None:
    """The first stopping signal that came while pytest started, if one did."""
    return _received[0] if _received else None
