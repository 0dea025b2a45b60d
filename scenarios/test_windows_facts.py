"""Facts of this Windows machine that the seed claims (wfp only): does a user-mode subscriber get
allow events (keywords as found, then with CLASSIFY_ALLOW, put back before the test returns), and
which template conditions does a subscription honour (accepted, filtering, duplicate refused).
Each is recorded in the report as found; a fact is not a pass or a fail."""
import pytest


@pytest.fixture(scope="module")
def wfp(campaign):
    if campaign.platform.name != "wfp":
        pytest.skip("these facts are the wfp backend's")
    return campaign


def test_allow_visibility(wfp):
    from harness.platforms.wfp.allow import allow_visibility
    out = allow_visibility(wfp.platform)
    wfp.record_facts("allow_visibility", out)
    assert out.keywords_after == out.keywords_found, "the keyword was not put back"


def test_template_condition_matrix(wfp):
    from harness.platforms.wfp.template_matrix import template_matrix
    out = template_matrix(wfp.platform)
    wfp.record_facts("template_matrix", out)
    assert any(r.accepted for r in out.rows), out.summary
