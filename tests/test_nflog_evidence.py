"""No estimate of a report rests on a trial whose generator missed its load (real kernel, nflog)."""
from dataclasses import replace

from evidence import check_report
from harness.campaign import PROFILES, Campaign, load_expectations, platform_expectations
from platforms import make, needs_nflog

pytestmark = needs_nflog


def test_no_estimate_of_an_nflog_report_rests_on_an_untrusted_trial(tmp_path):
    quick = PROFILES["quick"]
    with make("nflog") as platform:
        # ask the first trial of the search for 20 x what this generator can do: it misses its load,
        # for real, and the search must lower its ceiling instead of counting it
        profile = replace(quick, ndr_realtime=replace(quick.ndr_realtime, max_rate_per_s=20 * platform.max_send_rate_per_s()))
        expectations = load_expectations(None, platform_expectations(platform))
        campaign = Campaign.open(platform, str(tmp_path), "quick", expectations, "evidence")
        campaign.profile = profile
        campaign.drain()
        row = campaign.ndr(100.0)
        campaign.onset()
        campaign.inline_copy(1.2e6 / quick.inline_copy_work_us, 0.5)
        run = campaign.store.path
    checked, untrusted = check_report(run)
    assert untrusted >= 1 and row["untrusted_trials"], "the over-asked first trial should have been refused"
    assert checked >= 8
    assert row["generator_limit_per_s"] or row["first_overloaded_rate_per_s"]
