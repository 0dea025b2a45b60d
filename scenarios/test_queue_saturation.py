"""How many events the next queue holds: read from the batch structure of a drain."""
from harness.analysis.verdict import FAIL, INCONCLUSIVE, PASS, Verdict
from verdicts import settle


def test_queue_limit_matches_expectation(campaign):
    drain = campaign.drain()
    q = drain.queue_limit
    want = campaign.expectations.queue_limit
    if want is None:  # null: not checked, the measured value is reported
        campaign.check("next-queue limit", True, q.value, "not set", f"measured queue limit {q.value}")
        return
    if not q.detectable:  # batches could not be seen: nothing measured to compare
        noise = campaign.interference_in([drain.trial])
        during = f"; the drain trial saw interference: {'; '.join(noise)}" if noise else ""
        verdict = Verdict(INCONCLUSIVE, None, want, f"queue limit {q.reason}; expected {want}{during}",
                          {"interference": noise})
    else:
        verdict = Verdict(PASS if q.value == want else FAIL, q.value, want,
                          f"measured queue limit {q.value} ({q.method}), expected {want}")
    settle(campaign, "next-queue limit", verdict)


def test_backlog_reaches_capacity(campaign):
    """The backlog seen from records at the end of a held burst holds every event the path kept
    (but the one in the held callback): it is one more reading of the burst capacity, and must lie
    within the range of the others."""
    drain = campaign.drain()
    peak = int(drain.backlog["backlog"].max())
    low, high = campaign.capacity_range()
    # a real kernel that packs events into batches (nflog: one netlink message per qthresh events)
    # keeps a batch more or less, as the burst happened to be cut: one first batch is a reading's
    # grain there; the model is exact
    real_time = not campaign.platform.capabilities.virtual_time
    grain = drain.first_batch.value if real_time and drain.first_batch.value else 1
    step = max(campaign.burst().capacity.evidence.get("resolution") or 1, grain)
    passed = low is not None and low - step <= peak + 1 <= high + step
    # a real kernel's capacity depends on how fast the burst went in (a preempted sender leaves partial
    # batches, which take more buffer per event): a miss while the machine interfered decides nothing
    trials = [drain.trial, *campaign.burst().capacity.evidence.get("rests_on", [])]
    noise = campaign.interference_in(trials)
    status = PASS if passed else INCONCLUSIVE if noise else FAIL
    settle(campaign, "peak backlog vs burst capacity",
           Verdict(status, peak, f"{low - 1 - step} .. {high - 1 + step}" if low else "a capacity",
                   f"peak backlog {peak} while held (one more event is in the held callback); burst capacity "
                   f"readings {low} .. {high}, allowing {step} (the search step or one first batch)"
                   + (f" ({'; '.join(noise)})" if noise else ""),
                   {"low": low, "high": high, "step": step, "interference": noise}))
