"""Issue 8: the report leads with the answers. On the fake: where loss happened by the store's
count, the per-trial sent/recorded/delivered table, event types and the condition matrix; and a
dead subscription is the first line, with no capacity reported."""
from harness.campaign import Campaign, load_expectations
from harness.platforms.wfp.allow import allow_visibility
from harness.platforms.wfp.template_matrix import template_matrix
from harness.report.render import render
from netns import needs_netns
from platforms import open_wfp


def report(campaign) -> str:
    campaign.store.write_summary()
    render(campaign.store.path)
    return (campaign.store.path / "report.md").read_text()


@needs_netns
def test_the_report_says_where_loss_happened_and_what_this_machine_honours(fake, tmp_path):
    path, _ = fake
    with open_wfp(path) as platform:
        c = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None), "fake")
        c.burst()
        c.store.sections["allow_visibility"] = allow_visibility(platform, count=10)
        c.store.sections["template_matrix"] = template_matrix(platform)
        md = report(c)
    verdict = md.split("## Headline estimates")[0]
    assert "Where loss happens (sent vs recorded by the system vs delivered" in verdict
    delivery = int(verdict.split("in delivery in ")[1].split(",")[0])
    assert delivery > 0 and "before event generation in 0" in verdict  # the fake generates every event
    assert "Event types: allow events: 0 of 10 with the keywords as found" in verdict
    assert "Template conditions: template conditions that filter: IP_PROTOCOL" in verdict
    assert "## Sent, recorded by the system, delivered" in md and "## Template conditions on this machine" in md
    assert "| FWPM_CONDITION_DIRECTION | msFwpDirection | no | FWP_E_CONDITION_NOT_FOUND |" in md


@needs_netns
def test_a_dead_subscription_leads_the_report_and_no_capacity_is_given(fake, tmp_path):
    path, dll = fake
    with open_wfp(path) as platform:
        c = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None), "fake")
        dll.FakeSetDeliverAtMost(300)
        outcome = c.burst()
        md = report(c)
    assert outcome.capacity.value is None
    verdict = md.split("## Headline estimates")[0]
    assert "The subscription failed in 1 trial(s), first in trial 0: died during the trial: 300 events delivered" in verdict
    assert "A held subscriber loses nothing" not in verdict
