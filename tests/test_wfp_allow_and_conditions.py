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
