"""What a subscription template buys: fewer events delivered, a higher sustainable offered rate."""
import pytest

from harness.analysis.verdict import FAIL, INCONCLUSIVE, PASS, Verdict
from verdicts import settle


def test_template_reduces_delivered_events(campaign):
    if not campaign.platform.capabilities.templates:
        pytest.skip(f"{campaign.platform.name} does not honour subscription templates")
    out = campaign.template(100.0)
    with_, without = out.with_, out.without
    fraction = with_.expected / with_.sent
    exact = with_.delivered == with_.expected and with_.unexpected == 0
    # the sustainable offered rate grows by 1 / fraction, within the two searches' measured spreads
    a, b = with_.ndr, without.ndr
    want = 1 / out.match_fraction_sent
    if a.rate_per_s and b.rate_per_s:
        gain = a.rate_per_s / b.rate_per_s
        slack = (a.spread or 0) + (b.spread or 0) + a.resolution + b.resolution
        in_range = want * (1 - slack) <= gain <= want * (1 + slack)
    else:
        gain, slack, in_range = None, None, False
    noisy = bool(a.interference or b.interference) or a.status != "conclusive" or b.status != "conclusive"
    passed = exact and abs(fraction - out.match_fraction_sent) < 1e-3 and in_range
    status = PASS if passed else INCONCLUSIVE if noisy and exact else FAIL
    verdict = Verdict(status, {"delivered_fraction": fraction, "ndr_gain": gain},
                      f"fraction {out.match_fraction_sent}, gain {want:g} +/- {slack if slack is None else round(slack, 3)}",
                      f"template delivered {with_.delivered} of {with_.sent} ({fraction:.1%}, expected "
                      f"{with_.expected}); sustainable offered rate x{gain if gain is None else round(gain, 3)}",
                      {"slack": slack, "status_with": a.status, "status_without": b.status})
    settle(campaign, "template reduction", verdict)

