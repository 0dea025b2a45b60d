"""Which layer and which sender give events on this machine (wfp only): a block at each layer,
fifty packets from each sender, then the same packets again (does a blocked tuple make a new
event?). Every case ends as a recorded result, an error named in it; the report lists them, with
what the trials saw of the undocumented delivery (callback threads, events per tuple, drops of
other filters)."""
import pytest

from harness.spec import LAYERS

SENDERS = ("udp", "raw")


@pytest.fixture(scope="module")
def probes(campaign):
    if campaign.platform.name != "wfp":
        pytest.skip("the probe is for the wfp backend")
    results = []
    yield results
    campaign.record_facts("probe", results)
    campaign.record_facts("delivery", campaign.platform.observed())


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("layer", LAYERS)
def test_probe(campaign, probes, layer, sender):
    result = campaign.platform.probe(layer, sender)
    probes.append(result)
    if result.error is not None:
        return  # recorded: this sender cannot be used here (e.g. no raw sockets), which is an answer
    assert result.events <= result.sent, f"more events than packets: {result}"
    if result.events:
        # every event came from the probe's own filter at the layer asked for
        assert len(result.layer_ids or []) == 1, result


def test_some_layer_gives_events(campaign, probes):
    if not probes:
        pytest.skip("no probe ran")
    working = [f"{p.layer}/{p.sender}" for p in probes if p.events]
    campaign.check("probe: events arrive", bool(working), working, "at least one layer/sender",
                   f"events arrived for {', '.join(working) or 'no layer and sender'}")
    assert working, "no layer/sender combination produced a single net event on this machine: " \
                    "check that the process is elevated and that net-event collection is allowed"
