"""How long a burst survives while the subscriber is stuck, and how big the system buffer is."""


def test_burst_capacity_is_bounded(campaign):
    burst = campaign.burst()
    cap, plateau = burst.capacity, burst.plateau
    consistent = cap.detectable and plateau.detectable and abs(plateau.value - cap.value) <= 0.02 * cap.value
    campaign.check("plateau agrees with burst capacity", consistent, cap.value, f"plateau {plateau.value} +/- 2%",
                   f"burst capacity {cap.value} (search) vs plateau {plateau.value} (oversized bursts)")
    assert cap.detectable and cap.evidence.get("bounded"), f"no lossy burst up to the upper bound: {cap.to_dict()}"
    assert consistent, f"burst capacity {cap.value} from the search disagrees with the plateau {plateau.value}"


def test_system_buffer_matches_expectation(campaign):
    depth = campaign.drain().buffer_depth
    want = campaign.expectations["system_buffer"]
    if want is None:  # nothing to compare with: report what was measured
        campaign.check("system buffer", True, depth.value, "not set", f"measured buffer depth {depth.value}")
        return
    tol = campaign.expectations["system_buffer_tolerance"]
    passed = depth.detectable and abs(depth.value - want) <= tol * want
    campaign.check("system buffer", passed, depth.value, f"{want} +/- {tol:.0%}",
                   f"measured buffer depth {depth.value} ({depth.reason or depth.method}), expected {want} +/- {tol:.0%}")
    assert passed, f"measured system buffer {depth.value} ({depth.reason}); expected {want} +/- {tol:.0%}"
