"""Backlog over time, from records alone: events sent and later delivered, whose callback has not
started yet. (Lost events are left out: when they were dropped cannot be seen from outside.)"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.matching import send_times


def backlog_over_time(sent: pd.DataFrame, delivered: pd.DataFrame) -> pd.DataFrame:
    hit, t_in = send_times(sent, delivered)
    t_out = delivered["t_callback_ns"].to_numpy()[hit]
    t = np.concatenate((t_in, t_out))
    step = np.concatenate((np.ones(len(t_in), np.int64), -np.ones(len(t_out), np.int64)))
    order = np.lexsort((-step, t))
    return pd.DataFrame({"t_ns": t[order], "backlog": np.cumsum(step[order])})


def peak_backlog(backlog: pd.DataFrame) -> int:
    return int(backlog["backlog"].max()) if len(backlog) else 0


def downsample_max(t: np.ndarray, values: np.ndarray, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Keep the maximum of each of `points` time bins so that peaks survive plotting."""
    if len(t) <= points:
        return t, values
    edges = np.linspace(t[0], t[-1], points + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, points - 1)
    out = np.full(points, np.iinfo(np.int64).min)
    np.maximum.at(out, idx, values)
    keep = out != np.iinfo(np.int64).min
    return edges[:-1][keep], out[keep]
