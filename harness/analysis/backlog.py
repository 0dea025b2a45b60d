"""Backlog over time, from records alone: events sent and later delivered, whose callback has not
started yet. (Lost events are left out: when they were dropped cannot be seen from outside.)"""
from __future__ import annotations

import numpy as np
import pandas as pd


def backlog_over_time(sent: pd.DataFrame, delivered: pd.DataFrame) -> pd.DataFrame:
    send = pd.Series(sent["t_send_ns"].to_numpy(), index=sent["seq"].to_numpy())
    d = delivered[delivered["seq"].isin(send.index)]
    t_in = send.loc[d["seq"].to_numpy()].to_numpy()
    t_out = d["t_callback_ns"].to_numpy()
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
