"""How many events the next queue holds: read from the batch structure of a drain."""


def test_queue_limit_matches_expectation(campaign):
    drain = campaign.drain()
    q = drain.queue_limit
    want = campaign.expectations["queue_limit"]
    if want is None:  # null: not checked, the measured value is reported
        campaign.check("next-queue limit", True, q.value, "not set", f"measured queue limit {q.value}")
        return
    passed = q.value == want
    campaign.check("next-queue limit", passed, q.value, want,
                   f"measured queue limit {q.value} ({q.reason or q.method}), expected {want}")
    assert passed, f"measured queue limit {q.value} ({q.reason or 'from drain batches'}); expected {want}"


def test_backlog_reaches_capacity(campaign):
    """The backlog seen from records at the end of a held burst holds every event the path kept:
    it must agree with the burst capacity (5 %: a real kernel's plateau varies by a few %)."""
    drain = campaign.drain()
    peak = int(drain.backlog["backlog"].max())
    cap = campaign.burst().capacity.value
    passed = abs(peak - (cap - 1)) <= max(2, 0.05 * cap)
    campaign.check("peak backlog vs burst capacity", passed, peak, f"{cap - 1} +/- 5%",
                   f"peak backlog {peak} while held; burst capacity {cap} (one event is in the held callback)")
    assert passed, f"peak backlog {peak} does not match burst capacity {cap} - 1"
