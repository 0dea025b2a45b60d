"""Each delivered event's send time, found by its sequence number: the lookup the latency, the
backlog and the service analysis all start from."""
from __future__ import annotations

import numpy as np
import pandas as pd


def send_times(sent: pd.DataFrame, delivered: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(hit, t_send): for each delivered row, was its sequence number sent; and the send times of
    the rows that were (in delivery order). A binary search in the sorted sent sequence numbers:
    a pandas index lookup hashed them, seconds per million events. Sequence numbers are distinct
    among the sent ones (each packet carries its own)."""
    seq = sent["seq"].to_numpy()
    order = np.argsort(seq, kind="stable")
    sorted_seq, send_ns = seq[order], sent["t_send_ns"].to_numpy()[order]
    got = delivered["seq"].to_numpy()
    if len(sorted_seq) == 0:
        return np.zeros(len(got), dtype=bool), send_ns[:0]
    at = np.minimum(np.searchsorted(sorted_seq, got), len(sorted_seq) - 1)
    hit = sorted_seq[at] == got
    return hit, send_ns[at[hit]]
