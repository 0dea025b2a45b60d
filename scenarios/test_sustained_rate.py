"""How fast a subscriber of a given callback cost must be: the highest loss-free rate (NDR)."""
from harness.experiments.sustained import loss_onset


def test_ndr_below_callback_rate(campaign, cost_us):
    row = campaign.ndr(cost_us)
    assert row["rate_per_s"], f"no loss-free rate found for a {cost_us} us callback: {row}"
    ceiling = 1e6 / cost_us + (row["unresolvable_overload_per_s"] or 0) + row["resolution_per_s"]
    passed = row["rate_per_s"] <= ceiling
    campaign.check(f"NDR {cost_us:g} us <= 1/cost", passed, row["rate_per_s"], f"<= {ceiling:.0f}",
                   f"NDR {row['rate_per_s']}/s for a {cost_us} us callback; 1/cost = {1e6 / cost_us:.0f}/s")
    assert passed, f"NDR {row['rate_per_s']}/s exceeds what a {cost_us} us callback can do ({ceiling:.0f}/s)"


def test_loss_onset_matches_capacity(campaign):
    """Overloaded at 1.5 x NDR, loss begins after about capacity / (rate - NDR)."""
    costs = campaign.profile.callback_costs_us
    cost = costs[len(costs) // 2]
    ndr = campaign.ndr(cost)["rate_per_s"]
    cap = campaign.burst().capacity.value
    assert ndr and cap, f"needs a loss-free rate ({ndr}) and a burst capacity ({cap})"
    rate = 1.5 * ndr
    predicted = cap / (rate - ndr)
    row = loss_onset(campaign.platform, campaign.base_spec(), campaign.store, cost, rate, 3 * predicted)
    onset = row["loss_onset_s"]
    passed = onset is not None and abs(onset - predicted) <= 0.35 * predicted
    campaign.check("loss onset at 1.5 x NDR", passed, onset, f"{predicted:.2f} s +/- 35%",
                   f"first loss after {onset} s at {rate:.0f}/s; capacity/(rate - NDR) = {predicted:.2f} s")
    assert passed, f"loss began after {onset} s, expected about {predicted:.2f} s"
