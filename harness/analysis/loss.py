"""Loss by sequence number: the only exact loss count (error signals fire once per episode)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.matching import find_sorted


@dataclass
class LossSummary:
    expected: int          # events the template lets through
    delivered: int         # distinct expected events delivered
    lost: int
    lost_head: int         # lost before the first delivered sequence number
    lost_middle: int       # lost between delivered ones
    lost_tail: int         # lost after the last delivered one
    unexpected: int        # delivered events that were not expected (other traffic, template leak)
    duplicates: int
    onset_s: float | None  # send time of the first lost event, from the first send
    lost_seq: np.ndarray

    @property
    def ratio(self) -> float:
        return self.lost / self.expected if self.expected else 0.0

    def to_dict(self) -> dict:
        return {"expected": self.expected, "delivered": self.delivered, "lost": self.lost,
                "loss_ratio": self.ratio, "lost_head": self.lost_head, "lost_middle": self.lost_middle,
                "lost_tail": self.lost_tail, "unexpected": self.unexpected, "duplicates": self.duplicates,
                "loss_onset_s": self.onset_s}


def distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values. (np.unique takes seconds on a million nearly sorted int64 here: its
    hash path; one sort and a comparison take milliseconds.)"""
    s = np.sort(np.asarray(values))
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if len(s) else s


def loss_by_sequence(sent: pd.DataFrame, delivered: pd.DataFrame) -> LossSummary:
    expected_mask = sent["expected"].to_numpy() if "expected" in sent else np.ones(len(sent), bool)
    expected_seq = sent["seq"].to_numpy()[expected_mask]
    got = delivered["seq"].to_numpy()
    unique_got = distinct(got)
    hit = find_sorted(unique_got, expected_seq)[0]
    lost_seq = expected_seq[~hit]
    delivered_ok = expected_seq[hit]
    if len(delivered_ok):
        head = int((lost_seq < delivered_ok.min()).sum())
        tail = int((lost_seq > delivered_ok.max()).sum())
    else:
        head, tail = 0, len(lost_seq)
    onset = None
    if len(lost_seq):
        t_send = sent["t_send_ns"].to_numpy()
        first_lost_row = int(np.flatnonzero(sent["seq"].to_numpy() == lost_seq.min())[0])
        onset = float(t_send[first_lost_row] - t_send.min()) / 1e9
    return LossSummary(
        expected=len(expected_seq), delivered=int(hit.sum()), lost=len(lost_seq),
        lost_head=head, lost_middle=len(lost_seq) - head - tail, lost_tail=tail,
        unexpected=int((~find_sorted(distinct(expected_seq), unique_got)[0]).sum()), duplicates=len(got) - len(unique_got),
        onset_s=onset, lost_seq=lost_seq)

