"""The one seam between the harness and an operating system.

An experiment asks a platform to run a trial: `platform.run_trial(TrialSpec) -> TrialResult`.
Per-event records are columnar (numpy arrays wrapped in pandas frames), never per-event objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from harness.spec import TrialSpec

# Column layouts of the two per-event records every platform returns.
SENT_COLUMNS = {"seq": np.int64, "t_send_ns": np.int64, "remote_port": np.int64}
DELIVERED_COLUMNS = {
    "seq": np.int64,           # sequence number decoded from the event (remote port / payload)
    "t_event_ns": np.int64,    # the platform's own timestamp of the event
    "t_callback_ns": np.int64, # when the callback started for it
    "t_done_ns": np.int64,     # when its work finished: inline, the work's last clock reading (no work:
                               # t_callback_ns; after a hold: the release); in copy mode the worker's
    "thread": np.int64,        # thread id that ran the callback
}


def frame(columns: dict[str, Any], **arrays: np.ndarray) -> pd.DataFrame:
    """Build a record frame with exactly the layout's columns and dtypes."""
    missing = set(columns) - set(arrays)
    if missing:
        raise ValueError(f"record is missing columns: {sorted(missing)}")
    return pd.DataFrame({name: np.asarray(arrays[name], dtype=dtype) for name, dtype in columns.items()})


@dataclass(frozen=True)
class Capabilities:
    """What a platform can do; scenarios skip with a reason where it cannot."""

    allow_events: bool = False      # can observe CLASSIFY_ALLOW events
    templates: bool = False         # honours a subscription template
    census: bool = False            # can list other subscriptions / engine options
    hold: bool = False              # can hold the callback and release it
    kernel_timestamps: bool = False # events carry a platform timestamp
    copy_mode: bool = False         # inline vs copy subscriber
    ground_truth: bool = False      # knows its own internal state (model only)
    virtual_time: bool = False      # trials cost simulated, not wall-clock, time


@dataclass
class TrialResult:
    """Everything one trial produced.

    sent / delivered: per-event frames (SENT_COLUMNS / DELIVERED_COLUMNS).
    t_release_ns: when a held callback was released (None when not held).
    telemetry: the platform's own counters and settings for this trial.
    generator: what the traffic generator achieved (rate, lateness); None in virtual time.
    ground_truth: model only: {"series": frame of t_ns/next_queue/buffer/kernel_held, "lost": array, ...}.
    """

    spec: TrialSpec
    sent: pd.DataFrame
    delivered: pd.DataFrame
    t_release_ns: int | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] | None = None
    ground_truth: dict[str, Any] | None = None

    @property
    def sent_count(self) -> int:
        return len(self.sent)

    @property
    def delivered_count(self) -> int:
        return len(self.delivered)


@runtime_checkable
class Platform(Protocol):
    """A backend that can run trials. Use as a context manager: close() must undo everything."""

    name: str
    capabilities: Capabilities

    def describe(self) -> dict[str, Any]:
        """Settings that identify this platform's configuration: configuration only, nothing measured,
        so that every run of one configuration lands in one report folder (they are hashed)."""
        ...

    def measured(self) -> dict[str, Any]:
        """What the platform measured when it opened (generator rate, other subscribers): stored with
        each run beside the fingerprint, never hashed into the config id."""
        ...

    def run_trial(self, spec: TrialSpec) -> TrialResult:
        ...

    def max_send_rate_per_s(self) -> float:
        """The fastest the traffic generator can offer events (measured on real platforms)."""
        ...

    def close(self) -> None:
        ...

    def __enter__(self) -> "Platform":
        ...

    def __exit__(self, *exc: object) -> None:
        ...


class PlatformUnavailable(RuntimeError):
    """Raised when a platform cannot run on this machine (wrong OS, not elevated, tool missing)."""
