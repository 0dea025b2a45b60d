import pytest

from harness.spec import Condition, FilterSpec, SubscriberSpec, TemplateSpec, TrafficSpec, TrialSpec


@pytest.mark.parametrize("make,message", [
    (lambda: TrafficSpec(count=0), "count must be a positive integer"),
    (lambda: TrafficSpec(count=5, pacing="constant"), "needs a positive rate_per_s"),
    (lambda: TrafficSpec(count=5, pacing="zigzag"), "pacing must be one of"),
    (lambda: TrafficSpec(count=5, remote_addresses=("example.com",)), "must be an IPv4 address"),
    (lambda: FilterSpec(layer="NOPE"), "layer must be one of"),
    (lambda: FilterSpec(remote_port_low=70000), "port number"),
    (lambda: FilterSpec(remote_prefix="10.0.0.0/33"), "IPv4 network"),
    (lambda: SubscriberSpec(cost_us=-1), "cost_us must be >= 0"),
    (lambda: SubscriberSpec(mode="async"), "inline or copy"),
    (lambda: Condition("colour", 1), "condition field must be one of"),
    (lambda: TemplateSpec((Condition("protocol", 17), Condition("protocol", 6))), "duplicated: protocol"),
    (lambda: TrialSpec(TrafficSpec(count=1, remote_addresses=("192.0.2.1",))), "outside the filter"),
])
def test_bad_specs_fail_with_one_clear_message(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_specs_are_frozen():
    spec = TrialSpec(TrafficSpec(count=3))
    with pytest.raises(AttributeError):
        spec.traffic.count = 4
    assert spec.with_count(7).traffic.count == 7 and spec.traffic.count == 3


def test_duplicate_condition_is_rejected():
    # moved from scenarios/: a unit test there made a run that measured nothing look green
    with pytest.raises(ValueError, match="duplicated"):
        TemplateSpec((Condition("remote_port", 1000), Condition("remote_port", 2000)))
