"""Each delivered event's send time by its sequence number (harness/analysis/matching.py): the
latency, backlog and service analyses give what the pandas index lookups they replaced gave, for
any order, unsent and repeated deliveries, and empty trials."""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis.backlog import backlog_over_time
from harness.analysis.latency import latencies_ns
from harness.analysis.service import delivery_order


def pandas_lookup(sent, delivered):
    """The lookup as it was: a Series indexed by sequence number."""
    send = pd.Series(sent["t_send_ns"].to_numpy(), index=sent["seq"].to_numpy())
    matched = delivered[delivered["seq"].isin(send.index)]
    return matched, send.loc[matched["seq"].to_numpy()].to_numpy()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), unique=True, max_size=40), st.lists(st.integers(-5, 60), max_size=60),
       st.randoms(use_true_random=False))
def test_the_analyses_equal_a_pandas_index_lookup(sent_seq, delivered_seq, rnd):
    rnd.shuffle(sent_seq)
    times = lambda k: np.asarray([rnd.randrange(10**6) for _ in range(k)], dtype=np.int64)  # ties happen
    sent = pd.DataFrame({"seq": np.asarray(sent_seq, dtype=np.int64), "t_send_ns": times(len(sent_seq))})
    delivered = pd.DataFrame({"seq": np.asarray(delivered_seq, dtype=np.int64), "t_callback_ns": times(len(delivered_seq))})
    matched, t_send = pandas_lookup(sent, delivered)

    lat = latencies_ns(sent, delivered)
    assert lat.dtype == np.int64 and lat.tolist() == (matched["t_callback_ns"].to_numpy() - t_send).tolist()

    by_callback = matched.assign(t_send=t_send).sort_values("t_callback_ns", kind="stable")
    t_cb, t_in = delivery_order(sent, delivered)
    assert t_cb.tolist() == by_callback["t_callback_ns"].tolist() and t_in.tolist() == by_callback["t_send"].tolist()

    t = np.concatenate((t_send, matched["t_callback_ns"].to_numpy()))
    step = np.concatenate((np.ones(len(t_send), np.int64), -np.ones(len(matched), np.int64)))
    order = np.lexsort((-step, t))
    backlog = backlog_over_time(sent, delivered)
    assert backlog["t_ns"].tolist() == t[order].tolist() and backlog["backlog"].tolist() == np.cumsum(step[order]).tolist()
