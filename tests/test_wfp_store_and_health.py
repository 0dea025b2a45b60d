"""The subscription's health and the net-event store, on the fake: every trial says whether its subscription was alive, and counts what the
system recorded (the BFE's net-event store) beside what was sent and what was delivered."""
import numpy as np
import pytest

from harness.campaign import Campaign, load_expectations
from harness.report.render import render
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from platforms import fake_controls, fake_wfp_library, open_wfp
from tiers import needs

HELD = SubscriberSpec(hold=True)


@pytest.fixture()
@needs("root", "realtime")
def wfp(fake):
    path, dll = fake
    with open_wfp(path) as platform:
        yield platform, dll


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
    render(c.store.path)
    verdict = (c.store.path / "report.md").read_text().split("## Headline estimates")[0]
    assert "The subscription failed in 1 trial(s), first in trial 0: died during the trial: 300 events" in verdict
    assert "A held subscriber loses nothing" not in verdict
    dll.FakeSetDeliverAtMost(0)  # never delivers: the issue's own words
    nothing = platform.run_trial(TrialSpec(TrafficSpec(count=100), HELD)).telemetry
    assert nothing["subscription"] == "delivered nothing (dead or ineffective)"


def test_the_store_is_enumerated_as_documented_a_snapshot_in_pages_at_the_subscriptions_version(fake):
    """FwpmNetEventCreateEnumHandle0 snapshots the store with the template's window; EnumN+1 pages
    through it (FWPM_NET_EVENT(N+1), the subscription's struct), each page freed with
    FwpmFreeMemory0 (the fixture checks), DestroyEnumHandle0 ends it."""
    from harness.platforms.wfp.api import Library
    from harness.platforms.wfp.engine import FilterSession
    from harness.platforms.wfp.event_store import count_trial, enumerate_store
    from harness.platforms.wfp.kernel32 import Kernel32
    from harness.spec import FilterSpec
    for version in (4, 0):  # Subscribe4 -> Enum5 (FWPM_NET_EVENT5); Subscribe0 -> Enum1 (FWPM_NET_EVENT1)
        lib = Library(fake_wfp_library(version))
        dll = fake_controls(lib.path)  # each build is a library of its own
        assert (lib.subscribe_version, lib.enum_version) == (version, version + 1)
        dll.FakeSetStoreSize(100_000)
        filters = FilterSession(lib)
        try:
            fid = filters.install(FilterSpec())
            clock = Kernel32(lib.override)
            start = clock.precise_unix_ns()
            for k in range(250):
                assert dll.FakeInjectUdp(0x7F000001, 20000 + k, 40000) == 1
            end = clock.precise_unix_ns()
            pages, seen = [], []
            original = lib.enum_fn

            def counting(*args):
                rc = original(*args)
                pages.append(args[4]._obj.value)
                return rc
            lib.enum_fn = counting
            snapshot_then_more = []
            enumerate_store(lib, filters.session, start, end + 60 * 10**9, None,  # a window into the future
                            lambda e: seen.append((type(e).__name__, e.type, e.classifyDrop.contents.filterId,
                                                   e.header.remotePort)) or snapshot_then_more.append(
                                dll.FakeInjectUdp(0x7F000001, 30000, 40000)))
            assert pages == [250, 0]  # a page of up to 1,000, then an empty one ends it
            assert len(seen) == 250 and {s[:3] for s in seen} == {(f"FWPM_NET_EVENT{version + 1}", 3, fid)}
            assert snapshot_then_more == [1] * 250  # events made while enumerating ...
            assert sorted(s[3] for s in seen) == list(range(20000, 20250))  # ... are not in the snapshot
            count = count_trial(lib, filters.session, fid, start, end, "127.0.0.0/8", False, lambda a, p: p - 20000,
                                np.ones(300, dtype=bool))
            assert (count["recorded"], count["recorded_packets"]) == (250, 250)
            # 300 "sent", the first 250 recorded: not a wrapped store's tail, so loss before generation
            assert not count["store_too_small"]
        finally:
            filters.close()
        assert dll.FakeOpenEnumHandles() == 0
        assert dll.FakeOutstandingAllocations() == 0


def test_the_canary_is_a_packet_the_template_lets_through(wfp, monkeypatch):
    from harness.experiments.template import MIXED_ADDRESSES, template_for
    platform, _ = wfp
    monkeypatch.setattr(type(platform), "CANARY_TIMEOUT_S", 0.5)
    traffic = TrafficSpec(count=400, remote_addresses=MIXED_ADDRESSES)
    t = platform.run_trial(TrialSpec(traffic, HELD, template=template_for("127.2.0.0/16"))).telemetry
    assert t["subscription"] == "alive" and t["canary_s"] is not None  # the first address is not the template's
    nothing = platform.run_trial(TrialSpec(traffic, HELD, template=template_for("127.9.0.0/16"))).telemetry
    assert nothing["subscription"] == "alive" and nothing["canary"].startswith("not sent")
    # a paced trial: the sender's first send time is a few ms off its event's stamp; every event
    # still counts as recorded, and the previous trial's canary does not
    paced = TrafficSpec(count=1_000, pacing="constant", rate_per_s=5_000)
    t = platform.run_trial(TrialSpec(paced, SubscriberSpec(cost_us=5))).telemetry
    assert (t["recorded"], t["recorded_packets"], t["loss_at"]) == (1_000, 1_000, "none"), t
