"""The twin of a real run: nflog (a real kernel, as root) and the fake fwpuclnt (real packets in a
namespace of its own). Every parameter is determined or missing with its reason, what each stands
in for is said, every held-out trial is predicted and judged by the stated tolerance, and the
report shows the table. The accuracy bar (issue 22: loss within 5 %, or 0.5 points under 10 % loss;
onset within 10 %) is asserted on the held-out trials the machine left alone; where every one saw
interference the test is inconclusive and says so (skipped with the errors), as the scenarios are."""
import pytest

from harness.campaign import Campaign, load_expectations, platform_expectations
from harness.report.render import render
from harness.results.store import write_twin
from harness.twin import heldout
from harness.twin.calibrate import calibrate
from netns import needs_netns
from platforms import make, needs_nflog

pytestmark = [pytest.mark.root, pytest.mark.realtime]  # real trials on nflog or the fake, in namespaces


def campaign_run(platform, root):
    """burst, drain, two NDR searches, the onset and inline vs copy: what the twin fits and predicts."""
    c = Campaign.open(platform, str(root), "quick", load_expectations(None, platform_expectations(platform)), "twin-rt")
    c.drain()
    for cost in (20.0, 100.0):
        c.ndr(cost)
    c.onset()
    work = c.profile.inline_copy_work_us
    c.inline_copy(2e6 / work, 0.5)
    return c.store.path


def check_twin(run, platform: str) -> None:
    twin = calibrate(run)
    write_twin(run, twin)
    assert twin.platform == platform
    for p in twin.parameters:
        assert p.determined or p.missing, p
    if twin.model_params is None:
        pytest.skip(f"inconclusive: the run could not determine {'; '.join(twin.missing)}")
    assert twin.stand_ins and all(p.stands_for for p in twin.parameters if p.name == "batch_turnaround_us")
    kinds = " | ".join(p.what for p in twin.predictions)
    for kind in ("loss onset", "confirmation", "inline", "copy"):
        assert kind in kinds, kinds
    for p in twin.predictions:  # each verdict is the stated rule applied to the two numbers
        _, kind, ok = heldout.loss_error(p.measured_loss_ratio, p.predicted_loss_ratio, twin.tolerance)
        assert (p.loss_error_kind, p.loss_within) == (kind, ok), p
    report = render(run)["md"].read_text()
    assert "## Twin: held-out trials, predicted vs measured" in report and twin.headline in report
    quiet = [p for p in twin.predictions if p.trusted and not p.interference]
    table = "; ".join(f"trial {p.trial} {p.what}: {p.measured_loss_ratio:.2%} vs {p.predicted_loss_ratio:.2%}"
                      f"{' (' + p.interference + ')' if p.interference else ''}" for p in twin.predictions)
    if not quiet:
        pytest.skip(f"inconclusive: every held-out trial saw interference ({twin.headline}): {table}")
    misses = [p for p in quiet if not p.within]
    assert not misses, f"{twin.headline}: {table}"


@needs_nflog
# slow, out of CI: it asserts issue 22's bar, which nflog misses on these shared machines (identical
# trials disagree by more than the tolerance; docs/twin.md); run it with --run-slow on a quiet one
@pytest.mark.slow
def test_the_twin_of_a_real_kernel_run(tmp_path):
    with make("nflog") as platform:
        run = campaign_run(platform, tmp_path)
    twin = calibrate(run)
    q = twin.parameter("queue_limit")
    assert q.value == 16 and twin.parameter("batch_threshold").value == 16  # qthresh, configured and measured
    assert twin.parameter("flush_timeout_us").value == 100_000
    check_twin(run, "nflog")


@needs_netns
@pytest.mark.slow  # minutes, as test_wfp_evidence's campaign on the fake
def test_the_twin_of_a_fake_fwpuclnt_run(tmp_path):
    with make("wfp", system_buffer=2000) as platform:
        run = campaign_run(platform, tmp_path)
    twin = calibrate(run)
    assert twin.parameter("batch_threshold").value == 0  # the field notes' dispatcher: no kernel batches
    if twin.parameter("queue_limit").determined:
        assert twin.parameter("queue_limit").value == 256
    check_twin(run, "wfp")
