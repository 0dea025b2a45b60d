"""No estimate of a report rests on a trial whose generator missed its load: the wfp backend on
the fake fwpuclnt, real sender process, real packets in a namespace of the test's own."""
import pytest

from evidence import check_over_asked_campaign
from platforms import make

pytestmark = [pytest.mark.root, pytest.mark.realtime, pytest.mark.slow]  # about a minute: the fake run in .ci/run checks its report the same way


def test_no_estimate_of_a_fake_wfp_report_rests_on_an_untrusted_trial(tmp_path):
    with make("wfp") as platform:
        check_over_asked_campaign(platform, tmp_path)
