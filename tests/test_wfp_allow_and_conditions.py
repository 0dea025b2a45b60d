"""Issue 8 on the fake: allow visibility (allow events only with the keyword, the keyword put back
also after an exception) and the template-condition matrix (both ways: accepted and filtering,
refused by name)."""
import pytest

from harness.platforms.wfp import allow as allow_module
from harness.platforms.wfp.allow import KEYWORDS, allow_visibility
from netns import needs_netns
from platforms import open_wfp


@pytest.fixture()
def wfp(fake):
    path, dll = fake
    with open_wfp(path) as platform:
        yield platform, dll


@needs_netns
def test_allow_events_arrive_only_with_the_keyword_which_is_put_back(wfp):
    platform, dll = wfp
    found = dll.FakeOption(KEYWORDS)
    out = allow_visibility(platform, count=10)
    assert out["cases"]["as found"]["events"] == {}
    assert out["cases"]["with CLASSIFY_ALLOW"]["events"] == {"CLASSIFY_ALLOW": 10}
    assert out["cases"]["with CLASSIFY_ALLOW"]["keywords"] == found | 0x10
    assert out["keywords_after"] == found == dll.FakeOption(KEYWORDS)
    assert "a user-mode subscriber gets allow events only with the keyword" in out["fact"]
    assert not platform.options.state_path.exists()  # nothing left for a next start to restore


@needs_netns
def test_the_keyword_is_put_back_after_an_exception_mid_experiment(wfp, monkeypatch):
    platform, dll = wfp
    found = dll.FakeOption(KEYWORDS)
    real = allow_module._case
    seen = []

    def failing(platform_, filter_id, count, port):
        if seen:  # the second case: the keyword is set now
            assert dll.FakeOption(KEYWORDS) == found | 0x10
            raise RuntimeError("the sender broke")
        seen.append(1)
        return real(platform_, filter_id, count, port)

    monkeypatch.setattr(allow_module, "_case", failing)
    with pytest.raises(RuntimeError, match="the sender broke"):
        allow_visibility(platform, count=5)
    assert dll.FakeOption(KEYWORDS) == found and not platform.options.state_path.exists()
    assert platform.filters.filter_id is None  # the permit filter is gone too


@needs_netns
def test_the_condition_matrix_shows_the_documented_fields_filtering_and_the_others_refused_by_name(wfp):
    from harness.platforms.wfp.template_matrix import DOCUMENTED, template_matrix
    platform, _ = wfp
    out = template_matrix(platform)
    rows = {r["field"]: r for r in out["rows"]}
    honoured = DOCUMENTED | {"FWPM_CONDITION_NET_EVENT_TYPE"}
    for field in honoured:  # the fake follows the documented seven with a GUID, plus NET_EVENT_TYPE
        r = rows[field]
        assert r["accepted"] and r["filters"] is True and r["duplicate_refused"], r
        assert r["duplicate_error"] == "FWP_E_DUPLICATE_CONDITION"
    # the mixed traffic really was mixed: a field that splits it let part of it through
    assert rows["FWPM_CONDITION_IP_REMOTE_PORT"]["arrived"] == rows["FWPM_CONDITION_IP_REMOTE_PORT"]["offered"] // 2 > 0
    assert rows["FWPM_CONDITION_IP_LOCAL_ADDRESS"]["arrived"] == 2
    refused = [r for r in out["rows"] if r["field"].startswith("FWPM_") and r["field"] not in honoured]
    assert refused and all(r["accepted"] is False and r["error"] == "FWP_E_CONDITION_NOT_FOUND" for r in refused)
    assert "SCOPE_ID has no GUID" in rows["(scopeId)"]["note"]
    assert out["summary"].startswith("template conditions that filter: ") and "DIRECTION (FWP_E_CONDITION_NOT_FOUND)" in out["summary"]
