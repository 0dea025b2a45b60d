"""How fast a subscriber of a given callback cost must be: the highest loss-free rate (NDR), the
service rate mu that explains it, and when loss begins above it.

Tolerances come from what was measured (the search's bracket, mu's confidence interval, the
capacity's range); a check that misses while the trials behind it saw interference, or whose
spread is too wide to decide, is inconclusive: reported with its spread, not failed."""
from harness.analysis.verdict import FAIL, INCONCLUSIVE, PASS, Verdict, interval_check
from harness.analysis.sustained import ndr_expected_range
from verdicts import settle


def ndr_missing(campaign, row) -> Verdict | None:
    """No NDR to check. In real time (a machine with neighbours, a search with a budget of loss
    trials) that is inconclusive, with the search's reasons; in the model's virtual time, where
    nothing interferes, it is a failure."""
    if row.rate_per_s:
        return None
    why = "; ".join(row.status_reasons + row.notes[-1:]) or "no sustained rate found"
    real_time = not campaign.platform.capabilities.virtual_time
    return Verdict(INCONCLUSIVE if real_time else FAIL, None, "an NDR", f"no NDR for {row.callback_cost_us:g} us: {why}",
                   {"interference": row.interference, "status": row.status})


def test_ndr_below_callback_rate(campaign, cost_us):
    """A callback of cost c cannot serve more than 1/c events per second."""
    row = campaign.ndr(cost_us)
    verdict = ndr_missing(campaign, row)
    if verdict is None:
        ceiling = 1e6 / cost_us + (row.resolution_per_s or 0)
        ndr = row.rate_per_s
        status = PASS if ndr <= ceiling else INCONCLUSIVE if row.status != "conclusive" else FAIL
        verdict = Verdict(status, ndr, f"<= {ceiling:.0f}",
                          f"NDR {ndr:.0f}/s for a {cost_us:g} us callback; 1/cost = {1e6 / cost_us:.0f}/s "
                          f"(+ resolution {row.resolution_per_s}/s)", {"status": row.status, "spread": row.spread})
    settle(campaign, f"NDR {cost_us:g} us <= 1/cost", verdict)


def test_service_rate_explains_ndr(campaign, cost_us):
    """The highest loss-free rate sits at the measured service rate mu (of the search's trials and of
    the confirmation trial): not above it (a queue fed faster than it is served grows) by more than
    the buffer absorbs during the loss-free confirmation, and not far below it (the search brackets
    mu). See ndr_expected_range."""
    row = campaign.ndr(cost_us)
    verdict = ndr_missing(campaign, row)
    if verdict is None:
        expected = ndr_expected_range(row)
        if expected is None:
            settle(campaign, f"mu explains NDR {cost_us:g} us",
                   Verdict(INCONCLUSIVE, row.rate_per_s, "a measured mu", f"NDR {cost_us:g} us: no service rate measured",
                           {"interference": row.interference}))
            return
        low, high = expected
        middle = (low + high) / 2
        absorbed = (row.confirmation.confirmed_resolution_per_s if row.confirmation else None) or 0
        verdict = interval_check(row.rate_per_s, low, high,
                                 max_width=4 * row.resolution + 0.05 + absorbed / middle, interference=row.interference,
                                 what=f"NDR {cost_us:g} us vs mu {row.mu_per_s:.0f}/s", unit="/s")
    settle(campaign, f"mu explains NDR {cost_us:g} us", verdict)


def test_loss_onset_matches_capacity(campaign):
    """Overloaded at 1.5 x mu, loss begins once the backlog has filled the capacity:
    after capacity / (rate - mu), with the measured spreads of mu, the capacity and the sender. In
    real time the onset is measured in several trials; the one nearest the prediction is checked
    (their spread is the onset's own)."""
    out = campaign.onset()
    low, high = out.predicted_low_s, out.predicted_high_s
    onsets = [float("inf") if o is None else o for o in out.onsets_s]  # None: no loss at all
    onset = None
    if onsets and low is not None and high is not None:  # the repetition nearest the prediction
        onset = min(onsets, key=lambda o: max(low - o, o - high, 0.0))
    spread = f" (nearest of onsets {min(onsets):.4g}..{max(onsets):.4g} s)" if len(onsets) > 1 else ""
    verdict = interval_check(onset, low, high, max_width=0.5, interference=out.interference,
                             what=f"loss onset at {out.rate_per_s}/s{spread}", unit=" s")
    settle(campaign, "loss onset at 1.5 x mu", verdict)
