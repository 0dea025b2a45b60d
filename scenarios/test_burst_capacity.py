"""How long a burst survives while the subscriber is stuck, and how big the system buffer is."""
from harness.analysis.verdict import FAIL, INCONCLUSIVE, PASS, Verdict
from verdicts import settle


def test_burst_capacity_is_bounded(campaign):
    burst = campaign.burst()
    cap, plateau = burst.capacity, burst.plateau
    assert cap.detectable and cap.evidence.get("bounded"), f"no lossy burst up to the upper bound: {cap.to_dict()}"
    # an oversized held burst delivers the capacity: every such burst is a reading of it, and their
    # range (widened by the search's own last step) is the measured variability
    step = cap.evidence.get("resolution") or 1
    low = (plateau.evidence.get("min") or plateau.value or 0) - step
    high = (plateau.evidence.get("max") or plateau.value or 0) + step
    passed = plateau.detectable and low <= cap.value <= high
    noise = [] if passed else campaign.interference_in(cap.evidence.get("rests_on", []))
    status = PASS if passed else INCONCLUSIVE if noise else FAIL
    settle(campaign, "plateau agrees with burst capacity",
           Verdict(status, cap.value, f"{low} .. {high}",
                   f"burst capacity {cap.value} (search) vs plateau {plateau.value} "
                   f"(oversized bursts delivered {plateau.evidence.get('min')} .. {plateau.evidence.get('max')})"
                   + (f" ({'; '.join(noise)})" if noise else ""),
                   {"plateau_min": plateau.evidence.get("min"), "plateau_max": plateau.evidence.get("max"), "step": step,
                    "interference": noise}))


def test_system_buffer_matches_expectation(campaign):
    depth = campaign.drain().buffer_depth
    want = campaign.expectations.buffer_depth
    if want is None:  # nothing to compare with: report what was measured
        campaign.check("system buffer", True, depth.value, "not set", f"measured buffer depth {depth.value}")
        return
    tol = campaign.expectations.buffer_depth_tolerance  # the user's own tolerance (--expect)
    if not depth.detectable:
        verdict = Verdict(INCONCLUSIVE, None, f"{want} +/- {tol:.0%}", f"buffer depth {depth.reason}")
    else:
        passed = abs(depth.value - want) <= tol * want
        verdict = Verdict(PASS if passed else FAIL, depth.value, f"{want} +/- {tol:.0%}",
                          f"measured buffer depth {depth.value} ({depth.method}), expected {want} +/- {tol:.0%}")
    settle(campaign, "system buffer", verdict)
