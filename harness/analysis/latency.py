"""Latency from each packet's send time (not from the previous delivery), so that a stalled
subscriber shows up in full: no coordinated omission."""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.matching import send_times

PERCENTILES = {"p50": 50.0, "p99": 99.0, "p99_9": 99.9}


def latencies_ns(sent: pd.DataFrame, delivered: pd.DataFrame, column: str = "t_callback_ns") -> np.ndarray:
    """Per delivered event whose sequence number was sent (in delivery order): `column` (callback
    start, or t_done_ns for work done) minus its send time."""
    hit, t_send = send_times(sent, delivered)
    return delivered[column].to_numpy()[hit] - t_send


def latency_summary(lat_ns: np.ndarray) -> dict[str, float | int | None]:
    """p50, p99, p99.9 and max in microseconds, with the sample count (RFC 8219 asks for >= 500)."""
    if len(lat_ns) == 0:
        return {"count": 0, **{k: None for k in PERCENTILES}, "max": None}
    q = np.percentile(lat_ns, list(PERCENTILES.values()))
    out: dict[str, float | int | None] = {"count": int(len(lat_ns))}
    out.update({k: float(v) / 1e3 for k, v in zip(PERCENTILES, q)})
    out["max"] = float(lat_ns.max()) / 1e3
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}
