"""No estimate of a report rests on a trial whose generator missed its load: the wfp backend on
the fake fwpuclnt, real sender process, real packets in a namespace of the test's own."""
from dataclasses import replace

import pytest

from evidence import check_report
from harness.campaign import PROFILES, Campaign, load_expectations, platform_expectations
from netns import needs_netns
from platforms import make

pytestmark = [needs_netns, pytest.mark.slow]  # about a minute: the fake run in .ci/run checks its report the same way


def test_no_estimate_of_a_fake_wfp_report_rests_on_an_untrusted_trial(tmp_path):
    quick = PROFILES["quick"]
    with make("wfp") as platform:
        # the first trial of the search asks for 20 x what the sender process can do: it misses its
        # load, for real, and the search must lower its ceiling instead of counting it
        profile = replace(quick, ndr_realtime=replace(quick.ndr_realtime, max_rate_per_s=20 * platform.max_send_rate_per_s()))
        campaign = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None, platform_expectations(platform)),
                                 "evidence")
        campaign.profile = profile
        campaign.drain()
        row = campaign.ndr(100.0)
        campaign.onset()
        campaign.inline_copy(2e6 / quick.inline_copy_work_us, 0.5)
        run = campaign.store.path
    checked, untrusted = check_report(run)
    assert untrusted >= 1 and row["untrusted_trials"], "the over-asked first trial should have been refused"
    assert checked >= 8
    assert row["generator_limit_per_s"] or row["first_overloaded_rate_per_s"]
    assert row["rate_per_s"] is None or row["rate_per_s"] <= 1e6 / 100.0  # never above what the callback allows
