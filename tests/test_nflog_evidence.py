"""No estimate of a report rests on a trial whose generator missed its load (real kernel, nflog)."""
import pytest

from evidence import check_over_asked_campaign
from platforms import make, needs_nflog

pytestmark = [needs_nflog, pytest.mark.root, pytest.mark.realtime]


def test_no_estimate_of_an_nflog_report_rests_on_an_untrusted_trial(tmp_path):
    with make("nflog") as platform:
        check_over_asked_campaign(platform, tmp_path)
