"""Doing the work in the callback or after a copy: loss and latency for the same work."""
import pytest

from harness.analysis.verdict import FAIL, INCONCLUSIVE, PASS, Verdict
from verdicts import settle


def test_copy_loses_no_more_than_inline(campaign):
    if not campaign.platform.capabilities.copy_mode:
        pytest.skip(f"{campaign.platform.name} has no copy-mode subscriber")
    work = campaign.profile.inline_copy_work_us
    # twice what inline work can sustain: inline overflows the buffer after cap / (rate - 1/work),
    # and the copy worker's backlog (every event, `work` each) drains in 2 x duration, not 6 x
    rate = 2e6 / work
    cap = campaign.burst().capacity.value
    duration = 3 * cap / (rate - 1e6 / work)  # three times as long as inline needs to overflow
    out = campaign.inline_copy(rate, duration)
    inline, copy = out.inline.loss_ratio, out.copy.loss_ratio
    modes = {"inline": out.inline, "copy": out.copy}
    passed = copy <= inline and inline > 0
    noise = [f"{name}: {m.interference}" for name, m in modes.items() if m.interference]
    noise += [f"{name} trial not trusted" for name, m in modes.items() if not m.trusted]
    status = PASS if passed and not any("not trusted" in n for n in noise) else INCONCLUSIVE if noise else FAIL
    verdict = Verdict(status, {"inline": inline, "copy": copy}, "copy <= inline, inline > 0",
                      f"loss inline {inline:.2%}, copy {copy:.2%} at {rate:.0f}/s" + (f" ({'; '.join(noise)})" if noise else ""),
                      {"interference": noise})
    settle(campaign, "copy mode loses no more than inline", verdict)
