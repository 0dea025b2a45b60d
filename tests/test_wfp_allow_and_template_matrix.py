"""The wfp backend's findings on the fake, in one platform session: allow visibility (allow events only with the
keyword, the keyword put back, also after an exception), the template-condition matrix (both
ways: accepted and filtering, refused by name), and the report that leads with the answers
(where loss happened by the store's count, event types, conditions) and their tables."""
import pytest

from harness.campaign import Campaign, load_expectations
from harness.experiments.trial import run_recorded
from harness.platforms.wfp import allow as allow_module
from harness.platforms.wfp.allow import KEYWORDS, allow_visibility
from harness.platforms.wfp.template_matrix import DOCUMENTED, template_matrix
from harness.report.render import render
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from platforms import open_wfp


@pytest.mark.root
@pytest.mark.realtime
def test_allow_visibility_the_condition_matrix_and_the_reports_answers(fake, tmp_path):
    path, dll = fake
    found = dll.FakeOption(KEYWORDS)
    with open_wfp(path) as platform:
        c = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None), "fake")
        for count in (1_000, 5_000):  # one burst that fits, one that overflows the fake's 2,000-event buffer
            run_recorded(platform, TrialSpec(TrafficSpec(count=count), SubscriberSpec(hold=True)), c.store, "burst",
                         search=0)
        allow = allow_visibility(platform, count=10)
        matrix = template_matrix(platform)
        c.record_facts("allow_visibility", allow)
        c.record_facts("template_matrix", matrix)
        render(c.store.path)
        md = (c.store.path / "report.md").read_text()

    # allow events only with the keyword, and the keyword back to its found value
    assert allow.cases.as_found.events == {}
    assert allow.cases.with_classify_allow.events == {"CLASSIFY_ALLOW": 10}
    assert allow.cases.with_classify_allow.keywords == found | 0x10
    assert allow.keywords_after == found == dll.FakeOption(KEYWORDS)
    assert "a user-mode subscriber gets allow events only with the keyword" in allow.fact

    # the documented seven with a GUID and NET_EVENT_TYPE: accepted, filtering, duplicate refused
    # (ALE_USER_ID is silent, as it should be, but no positive control can be had: not judged)
    rows = {r.field: r for r in matrix.rows}
    honoured = DOCUMENTED | {"FWPM_CONDITION_NET_EVENT_TYPE"}
    for field in honoured:
        r = rows[field]
        judged = None if field == "FWPM_CONDITION_ALE_USER_ID" else True
        assert r.accepted and r.filters is judged and r.duplicate_error == "FWP_E_DUPLICATE_CONDITION", r
    assert rows["FWPM_CONDITION_IP_REMOTE_PORT"].arrived == rows["FWPM_CONDITION_IP_REMOTE_PORT"].offered // 2 > 0
    assert rows["FWPM_CONDITION_IP_LOCAL_ADDRESS"].arrived == 2  # the mixed traffic really was mixed
    refused = [r for r in matrix.rows if r.field.startswith("FWPM_") and r.field not in honoured]
    assert refused and all(r.accepted is False and r.error == "FWP_E_CONDITION_NOT_FOUND" for r in refused)
    assert "SCOPE_ID has no GUID" in rows["(scopeId)"].note

    # the report leads with the answers
    verdict = md.split("## Headline estimates")[0]
    assert ("Where loss happens (sent vs recorded by the system vs delivered, 2 trials): in delivery in 1, "
            "before event generation in 0, none in 1.") in verdict
    assert "Event types: allow events: 0 of 10 with the keywords as found" in verdict
    assert "Template conditions: template conditions honoured: IP_PROTOCOL" in verdict
    assert "DIRECTION (FWP_E_CONDITION_NOT_FOUND)" in verdict
    assert "| 1 | burst | 5,000 | 5,000 | " in md and "## Template conditions on this machine" in md
    assert "| FWPM_CONDITION_DIRECTION | msFwpDirection | no | FWP_E_CONDITION_NOT_FOUND |" in md


@pytest.mark.root
@pytest.mark.realtime
def test_the_keyword_is_put_back_after_an_exception_mid_experiment(fake, monkeypatch):
    path, dll = fake
    found = dll.FakeOption(KEYWORDS)
    real, seen = allow_module._case, []

    def failing(platform_, filter_id, count, port):
        if seen:  # the second case: the keyword is set now
            assert dll.FakeOption(KEYWORDS) == found | 0x10
            raise RuntimeError("the sender broke")
        seen.append(1)
        return real(platform_, filter_id, count, port)

    monkeypatch.setattr(allow_module, "_case", failing)
    with open_wfp(path) as platform:
        with pytest.raises(RuntimeError, match="the sender broke"):
            allow_visibility(platform, count=5)
        assert dll.FakeOption(KEYWORDS) == found and not platform.options.state_path.exists()
        assert platform.filters.filter_id is None  # the permit filter is gone too
