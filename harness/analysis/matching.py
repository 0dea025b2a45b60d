"""Each delivered event's send time, found by its sequence number: the lookup the latency, the
backlog and the service analysis all start from."""
from __future__ import annotations

import numpy as np
import pandas as pd


def find_sorted(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hit, at): is each of `values` in `sorted_values` (sorted, distinct), and where (meaningful
    where hit), by binary search: np.isin's answer without its sort of both arrays on every call."""
    if len(sorted_values) == 0:
        return np.zeros(len(values), dtype=bool), np.zeros(len(values), dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[at] == values, at


def send_times(sent: pd.DataFrame, delivered: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(hit, t_send): for each delivered row, was its sequence number sent; and the send times of
    the rows that were (in delivery order). A binary search in the sorted sent sequence numbers:
    a pandas index lookup hashed them, seconds per million events. Sequence numbers are distinct
    among the sent ones (each packet carries its own)."""
    seq = sent["seq"].to_numpy()
    order = np.argsort(seq, kind="stable")
    sorted_seq, send_ns = seq[order], sent["t_send_ns"].to_numpy()[order]
    hit, at = find_sorted(sorted_seq, delivered["seq"].to_numpy())
    return hit, send_ns[at[hit]]
