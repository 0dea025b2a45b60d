"""Allow events and the harness's filters on the wfp backend: an inbound trial with the allow
keyword on, the filter's address on every layer, the keywords put back as the run found them,
allow events counted by the trial's tuples, silent template conditions beside a positive control;
each against the strict fake fwpuclnt, with the real sender process sending real packets in a test
namespace."""
import pytest

from harness.analysis.loss import loss_by_sequence
from harness.platforms.wfp.api import Library
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Session
from harness.spec import FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec
from platforms import open_wfp

KEYWORDS = K["FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS"]
CLASSIFY_ALLOW = K["FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW"]


def spec(count=300, layer="ALE_AUTH_CONNECT_V4", prefix="127.0.0.0/8", **subscriber):
    return TrialSpec(TrafficSpec(count=count), SubscriberSpec(**subscriber), filter=FilterSpec(layer=layer, remote_prefix=prefix),
                     drain_quiet_s=0.3, drain_timeout_s=10.0)


def another_tool(path) -> Session:
    """A non-dynamic session of some other program (opened inside the trial's namespace)."""
    return Session(Library(path), dynamic=False, name="another tool")


# 1. With the allow keyword on (System Informer sets it and never clears it), a packet blocked at
# ALE_AUTH_RECV_ACCEPT was first permitted at ALE_AUTH_CONNECT on its way out: an allow event as
# well as the drop. Rows were doubled only outside the ALE layers, so the trial's own drops past
# N + N/4 + 4096 rows were counted lost.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("layer", ["ALE_AUTH_RECV_ACCEPT_V4", "INBOUND_TRANSPORT_V4"])
def test_an_inbound_trial_with_the_allow_keyword_on_serves_every_own_event(fake, layer):
    path, dll = fake
    dll.FakeConfigure(256, 16_500, 100)  # the field notes' buffer: 24,000 events in flight fit, as on Windows
    with open_wfp(path) as p:
        admin = another_tool(path)
        admin.set_option(KEYWORDS, CLASSIFY_ALLOW)
        try:
            r = p.run_trial(TrialSpec(TrafficSpec(count=12_000, pacing="constant", rate_per_s=40_000),
                                      SubscriberSpec(), filter=FilterSpec(layer=layer),
                                      drain_quiet_s=0.3, drain_timeout_s=10.0))
        finally:
            admin.set_option(KEYWORDS, 0)
            admin.close()
    assert loss_by_sequence(r.sent, r.delivered).delivered == 12_000
    assert r.telemetry["not_recorded"] == 0
    assert r.telemetry["other_event_types"] >= 12_000  # an allow per packet, from the way out


# 6. At inbound layers the block filter's address condition named IP_REMOTE_ADDRESS: the sender
# (127.0.0.1), while the port condition, the template and the store count use the local side (the
# harness's destination). With traffic to 127.0.0.2 an inbound trial blocked nothing.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("layer", ["ALE_AUTH_RECV_ACCEPT_V4", "INBOUND_TRANSPORT_V4", "ALE_AUTH_CONNECT_V4"])
def test_the_filter_matches_the_destination_address_on_every_layer(fake, layer):
    path, _ = fake
    trial = TrialSpec(TrafficSpec(count=300, remote_addresses=("127.0.0.2",)), SubscriberSpec(),
                      filter=FilterSpec(layer=layer, remote_prefix="127.0.0.2/32"), drain_quiet_s=0.3,
                      drain_timeout_s=10.0)
    with open_wfp(path) as p:
        r = p.run_trial(trial)
    assert sorted(r.delivered["seq"]) == list(range(300))
    assert (r.telemetry["recorded_packets"], r.telemetry["loss_at"]) == (300, "none")


# 7. The keyword was written back without checking that another tool changed it meanwhile, and to
# the value found when the platform opened rather than when it was changed.
class TestTheKeywordIsPutBackOnlyAsThisRunLeftIt:
    @pytest.fixture()
    def options(self, fake):
        from harness.platforms.wfp.options import EngineOptions
        path, dll = fake
        o = EngineOptions(Library(path))
        yield o, dll, path
        o.close()

    def test_left_alone_when_another_tool_changed_it_meanwhile(self, options):
        o, dll, path = options
        o.ensure(KEYWORDS, CLASSIFY_ALLOW)
        other = another_tool(path)
        other.set_option(KEYWORDS, 0x13)  # CLASSIFY_ALLOW kept, BCAST and MCAST added
        other.close()
        o.put_back(KEYWORDS)
        assert dll.FakeOption(KEYWORDS) == 0x13
        assert o.left_alone == {"net_event_match_any_keywords": {"set_by_run": CLASSIFY_ALLOW, "found_now": 0x13}}
        assert not o.state_path.exists()

    def test_restored_to_the_value_found_at_the_change_not_at_open(self, options):
        o, dll, path = options
        assert o.found[KEYWORDS] == 0
        other = another_tool(path)
        other.set_option(KEYWORDS, 0x1)  # MCAST, after the platform opened
        other.close()
        o.ensure(KEYWORDS, 0x1 | CLASSIFY_ALLOW)
        o.put_back(KEYWORDS)
        assert dll.FakeOption(KEYWORDS) == 0x1


@pytest.mark.root
@pytest.mark.realtime
def test_the_allow_experiment_keeps_the_keywords_another_tool_set_after_open(fake):
    from harness.platforms.wfp.allow import allow_visibility
    path, dll = fake
    with open_wfp(path) as p:
        other = another_tool(path)
        other.set_option(KEYWORDS, 0x1)
        other.close()
        allow = allow_visibility(p, count=5)
        assert dll.FakeOption(KEYWORDS) == 0x1
    assert allow.cases.with_classify_allow.keywords == 0x1 | CLASSIFY_ALLOW
    assert allow.keywords_found == 0x1 and allow.keywords_after == 0x1


# 8. An allow event counted only if it carried the harness's permit filter id; which filter id an
# allow carries when several sublayers permit is undocumented.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("from_default", [0, 1])
def test_allow_events_are_counted_by_the_trials_tuples_and_the_rule_is_named(fake, from_default):
    from harness.platforms.wfp.allow import allow_visibility
    path, dll = fake
    dll.FakeSetAllowFromDefault(from_default)
    with open_wfp(path) as p:
        allow = allow_visibility(p, count=10)
    case = allow.cases.with_classify_allow
    assert case.events == {"CLASSIFY_ALLOW": 10}
    if from_default:
        assert case.allow_filters == {"filter 57082 (not the harness's permit)": 10}
        assert allow.fact.endswith("(counted by the trial's tuples: they carried filter 57082, not the harness's permit)")
    else:
        assert case.allow_filters == {"the harness's permit filter": 10}
        assert allow.fact.endswith("(they carried the harness's permit filter id)")


# 5. Candidates whose correct result is no event (IP_PROTOCOL=6 on UDP, a foreign app id,
# NET_EVENT_TYPE=ALLOW while only drops are made, ALE_USER_ID, ALE_PACKAGE_ID) read "filters" when
# silent: so does a template that suppresses everything.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("silent", [0, 1])
def test_a_silent_condition_is_honoured_only_beside_a_positive_control(fake, silent):
    from harness.platforms.wfp.template_matrix import template_matrix
    path, dll = fake
    dll.FakeSetSilentTemplates(silent)  # every template accepted, and none lets an event through
    with open_wfp(path) as p:
        matrix = template_matrix(p)
    rows = {r.field.removeprefix("FWPM_CONDITION_"): r for r in matrix.rows}
    negatives = ("IP_PROTOCOL", "ALE_APP_ID", "NET_EVENT_TYPE")
    for field in negatives:
        r = rows[field]
        assert r.accepted and r.arrived == r.expected == 0, r
        assert r.filters is (not silent), r
        assert r.positive_control.arrived == (0 if silent else r.positive_control.expected) and \
            r.positive_control.expected == r.offered, r
    for field in ("ALE_USER_ID", "ALE_PACKAGE_ID"):  # no positive control can be had here
        if rows[field].accepted:
            assert rows[field].filters is None and rows[field].note.startswith("silent (4 offered, none expected)")
    assert "accepted, silent, no positive control to tell: ALE_USER_ID" in matrix.summary
    if silent:
        assert matrix.summary.startswith("template conditions honoured: none;")
        assert all(rows[f].note.endswith("this template suppresses everything") for f in negatives)
    else:
        assert matrix.summary.startswith("template conditions honoured: IP_PROTOCOL, IP_LOCAL_ADDRESS")
