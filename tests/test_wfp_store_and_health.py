"""Issue 8 on the fake: every trial says whether its subscription was alive, and counts what the
system recorded (the BFE's net-event store) beside what was sent and what was delivered."""
import pytest

from harness.campaign import Campaign, load_expectations
from harness.report.render import render
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from netns import needs_netns
from platforms import open_wfp

HELD = SubscriberSpec(hold=True)


@pytest.fixture()
def wfp(fake):
    path, dll = fake
    with open_wfp(path) as platform:
        yield platform, dll


@needs_netns
def test_a_burst_larger_than_the_queue_is_counted_recorded_and_delivered(wfp):
    platform, dll = wfp
    dll.FakeSetStoreSize(50_000)
    r = platform.run_trial(TrialSpec(TrafficSpec(count=30_000), HELD))
    t = r.telemetry
    assert t["subscription"] == "alive" and t["canary_s"] is not None
    assert t["recorded"] == 30_000 and t["recorded_packets"] == 30_000 and not t["store_too_small"]
    assert t["delivered_packets"] < 30_000  # the fake's test buffer is 2,000 deep
    assert t["loss_at"] == f"delivery ({30_000 - t['delivered_packets']} recorded, not delivered)"
    # a store smaller than the burst: said, not blamed on event generation
    dll.FakeSetStoreSize(5_000)
    small = platform.run_trial(TrialSpec(TrafficSpec(count=30_000), HELD)).telemetry
    assert small["recorded"] == 5_000 - 1 and small["store_too_small"]  # the canary took the newest place
    assert small["loss_at"].startswith("unknown (store too small")
    # ... without invalidating a smaller trial that fits
    fits = platform.run_trial(TrialSpec(TrafficSpec(count=1_000), HELD)).telemetry
    assert fits["recorded"] == 1_000 and not fits["store_too_small"] and fits["loss_at"] == "none"
    assert dll.FakeOpenEnumHandles() == 0


@needs_netns
def test_a_subscription_that_dies_mid_burst_stops_the_search_and_leads_the_report(wfp, tmp_path, monkeypatch):
    platform, dll = wfp
    monkeypatch.setattr(type(platform), "CANARY_TIMEOUT_S", 0.5)  # the fake's events arrive in milliseconds
    c = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None), "fake")
    dll.FakeSetDeliverAtMost(300)  # every subscription goes silent after 300 events
    outcome = c.burst()
    assert outcome.capacity.value is None and "subscription died during the trial" in outcome.capacity.reason
    [row] = c.store.trials("burst").to_dict("records")  # stopped at the first trial, not searched down to 0
    assert row["subscription"].startswith("died during the trial: 300 events delivered")
    assert row["recorded"] == row["count"] == 1024  # the system made every event; delivery failed
    c.store.write_summary()
    render(c.store.path)
    verdict = (c.store.path / "report.md").read_text().split("## Headline estimates")[0]
    assert "The subscription failed in 1 trial(s), first in trial 0: died during the trial: 300 events" in verdict
    assert "A held subscriber loses nothing" not in verdict
    dll.FakeSetDeliverAtMost(0)  # never delivers: the issue's own words
    nothing = platform.run_trial(TrialSpec(TrafficSpec(count=100), HELD)).telemetry
    assert nothing["subscription"] == "delivered nothing (dead or ineffective)"
