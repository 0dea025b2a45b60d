"""The batch-level dispatcher against a naive event-by-event reference, and its invariants."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.platforms.model.dispatcher import simulate
from reference_dispatcher import reference


@st.composite
def scenario(draw):
    n = draw(st.integers(1, 300))
    gaps = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    arrivals = np.cumsum(np.asarray(gaps, dtype=np.int64))
    service = np.asarray(draw(st.lists(st.integers(1, 60), min_size=n, max_size=n)), dtype=np.int64)
    Q = draw(st.integers(1, 12))
    B = draw(st.integers(0, 40))
    d = draw(st.integers(0, 30))
    tau = draw(st.integers(0, 30))
    release = draw(st.one_of(st.none(), st.integers(0, 3000)))
    return arrivals, service, Q, B, d, tau, release


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_matches_reference(case):
    arrivals, service, Q, B, d, tau, release = case
    sim = simulate(arrivals, service, Q, B, d, tau, release)
    delivered, starts, lost = reference(arrivals.tolist(), service.tolist(), Q, B, d, tau, release)
    assert sim.delivered_index.tolist() == delivered
    assert sim.callback_start.tolist() == starts
    assert sim.lost_index.tolist() == lost


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_invariants(case):
    arrivals, service, Q, B, d, tau, release = case
    sim = simulate(arrivals, service, Q, B, d, tau, release)
    n = len(arrivals)
    assert len(sim.delivered_index) + len(sim.lost_index) == n            # every event accounted for
    assert np.all(np.diff(sim.delivered_index) > 0)                      # FIFO
    assert sim.batch_size.max() <= Q                                     # a batch is at most the queue
    assert sim.series["next_queue"].max(initial=0) <= Q
    assert sim.series["buffer"].max(initial=0) <= B
    assert sim.series["kernel_held"].max(initial=0) <= Q
    assert np.all(sim.callback_start >= arrivals[sim.delivered_index])   # no callback before its event
    assert np.all(np.diff(sim.callback_start) >= 0)                      # one dispatcher thread
