"""The twin on the model: the fit recovers parameters it was not told (several true sets, none of
them the defaults), the held-out predictions equal what those trials measured, a parameter the run
could not determine is said to be missing, and `wfpcap twin` / `wfpcap predict` answer from the
run folder alone."""
import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

from cli_runs import wfpcap
from harness.campaign import Campaign, load_expectations
from harness.headroom import first_lossy_scale, lost_at_scale
from harness.platforms.model import ModelParams, ModelPlatform
from harness.results.read import StoredFileError, read_twin
from harness.results.store import write_twin
from harness.report.render import render
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
from harness.twin.calibrate import calibrate
from harness.twin.whatif import headroom, run as predict_run

# true parameters the fit is never told (it reads only what the trials measured); the last one
# runs the CPU-share mechanism, which a single overhead cannot explain across callback costs
TRUE_SETS = {
    "q64": ModelParams(queue_limit=64, system_buffer=2000, dispatch_latency_us=35.0, batch_turnaround_us=80.0,
                       per_event_overhead_us=3.5, sender_rate_per_s=800_000, seed=3),
    "q100": ModelParams(queue_limit=100, system_buffer=3000, dispatch_latency_us=12.5, batch_turnaround_us=210.0,
                        per_event_overhead_us=1.25, sender_rate_per_s=1_500_000, seed=11),
    "q32-shared": ModelParams(queue_limit=32, system_buffer=1500, dispatch_latency_us=50.0, batch_turnaround_us=40.0,
                              per_event_overhead_us=6.0, sender_rate_per_s=600_000, seed=7, cpu_share=0.6),
}
HELD_OUT_KINDS = ("loss onset", "confirmation", "inline", "copy", "template without: light", "template with: NDR")


def model_campaign(root, params: ModelParams, costs=(20.0, 100.0, 500.0), onset=True, extras=True):
    """What `pytest scenarios/` measures on the model, run directly: returns the run folder."""
    c = Campaign.open(ModelPlatform(params), str(root), "quick", load_expectations(None), "twin")
    c.drain()
    for cost in costs:
        c.ndr(cost)
    if onset:
        c.onset()
    if extras:
        work = c.profile.inline_copy_work_us
        rate, cap = 2e6 / work, c.burst().capacity.value
        c.inline_copy(rate, 3 * cap / (rate - 1e6 / work))
        c.template(100.0)
    return c.store.path


def untold(run, dest):
    """A copy of the run folder with every trace of the true parameters removed but the random
    stream's seed: no ground truth, no model parameters in the fingerprint."""
    shutil.copytree(run, dest)
    path = dest / "summary.json"
    summary = json.loads(path.read_text())
    summary.pop("ground_truth", None)
    stable = summary["fingerprint"]["stable"]["platform"]
    stable["model_params"] = {"seed": stable["model_params"]["seed"]}
    path.write_text(json.dumps(summary))
    return dest


@pytest.fixture(scope="module", params=list(TRUE_SETS))
def fitted(request, tmp_path_factory):
    truth = TRUE_SETS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    run = untold(model_campaign(root / "reports", truth), root / "untold")
    return truth, run, calibrate(run)


def test_the_fit_recovers_every_parameter_it_was_not_told(fitted):
    truth, _, twin = fitted
    assert twin.missing == [] and twin.model_params is not None
    got = {p.name: p for p in twin.parameters}
    assert got["stall_rate_per_s"].value == 0.0 and "none counted" in got["stall_rate_per_s"].method
    assert got["queue_limit"].value == truth.queue_limit
    assert got["system_buffer"].value == truth.system_buffer
    for name in ("dispatch_latency_us", "batch_turnaround_us", "per_event_overhead_us", "cpu_share"):
        assert got[name].value == pytest.approx(getattr(truth, name), abs=1e-6), name
    assert got["sender_rate_per_s"].value == pytest.approx(truth.sender_rate_per_s, rel=1e-6)
    for name, p in got.items():  # the stated range holds the truth
        true = getattr(truth, name)
        assert p.low - 1e-6 * abs(true) - 1e-9 <= true <= p.high + 1e-6 * abs(true) + 1e-9, (name, p.low, true, p.high)
        assert p.rests_on or p.method.startswith("off"), f"{name} names no trial it came from"
    assert got["cpu_share"].method.startswith("fitted") == (truth.cpu_share != 1.0)


def test_held_out_predictions_equal_what_the_trials_measured(fitted):
    _, _, twin = fitted
    assert twin.tolerance == {"exact": True}
    whats = " | ".join(p.what for p in twin.predictions)
    for kind in HELD_OUT_KINDS:
        assert kind in whats, f"no held-out {kind} trial in: {whats}"
    lossy = [p for p in twin.predictions if p.measured_lost]
    assert len(lossy) >= 2, "the held-out trials must include lossy ones (onset, inline)"
    for p in twin.predictions:
        assert (p.predicted_lost, p.predicted_onset_s) == (p.measured_lost, pytest.approx(p.measured_onset_s, abs=1e-6)), p
        assert p.within
    assert twin.verdict == "within" and "all" in twin.headline


def test_a_wrong_twin_misses_and_says_so_in_its_headline(fitted, tmp_path):
    """The check can fail: the same run with its drain's turnaround made wrong (a twin fitted to a
    different machine) predicts the lossy held-out trials wrongly, and the headline says so."""
    truth, run, twin = fitted
    from harness.twin import heldout
    from harness.twin.fit import load
    wrong = replace(ModelParams(**twin.model_params), per_event_overhead_us=truth.per_event_overhead_us + 5)
    predictions = [heldout.predict(wrong, row, what, twin.tolerance) for row, what in heldout.held_out(load(run).rows)]
    verdict, headline = heldout.verdict(predictions, twin.tolerance)
    assert verdict == "outside" and "EXCEED" in headline


def test_a_stalled_subscriber_gives_the_twin_its_stalls_and_its_own_overhead(tmp_path):
    """A model whose subscriber is descheduled now and then (70 stalls a second of service, 6 ms
    each on average): the twin reads the stall rate and length from what the NDR trials counted,
    within what a few hundred stalls allow, and with each trial simulated under its own stalls the
    overhead comes out as the model's, not stretched by the stalls; a stall-free run has none."""
    truth = replace(TRUE_SETS["q64"], stall_rate_per_s=70.0, stall_mean_us=6_000.0)
    run = untold(model_campaign(tmp_path / "reports", truth, costs=(20.0, 500.0), onset=False, extras=False),
                 tmp_path / "untold")
    twin = calibrate(run)
    rate, mean = twin.parameter("stall_rate_per_s"), twin.parameter("stall_mean_us")
    assert rate.evidence["stalls_counted"] > 100
    assert rate.value == pytest.approx(70.0, rel=0.25) and mean.value == pytest.approx(6_000.0, rel=0.25)
    assert twin.parameter("per_event_overhead_us").value == pytest.approx(3.5, abs=1.5)
    assert twin.parameter("cpu_share").value == 1.0
    assert twin.model_params["stall_rate_per_s"] == rate.value


def test_a_parameter_the_run_could_not_determine_is_missing_not_defaulted(tmp_path):
    c = Campaign.open(ModelPlatform(TRUE_SETS["q64"]), str(tmp_path), "quick", load_expectations(None), "burst-only")
    c.burst()
    twin = calibrate(c.store.path)
    by_name = {p.name: p for p in twin.parameters}
    assert twin.verdict == "not fitted" and twin.model_params is None and not twin.predictions
    for name in ("queue_limit", "dispatch_latency_us", "batch_turnaround_us", "per_event_overhead_us"):
        assert by_name[name].value is None and by_name[name].missing, name
    assert by_name["sender_rate_per_s"].value == pytest.approx(800_000, rel=1e-6)  # what it could tell, it tells
    assert "not fitted" in twin.headline and "queue_limit" in twin.headline

    drained = model_campaign(tmp_path / "drained", TRUE_SETS["q64"], costs=(), onset=False, extras=False)
    twin = calibrate(drained)
    overhead = twin.parameter("per_event_overhead_us")
    assert overhead.value is None and "no NDR search trial" in overhead.missing
    assert twin.parameter("queue_limit").value == 64 and twin.model_params is None


def test_stored_runs_without_kept_events_are_not_fitted_and_say_why():
    """The format-1 fixtures kept no drain events: what they lack is named, nothing is guessed."""
    twin = calibrate("tests/data/format1/reports/golden-nflog-nflog-8492db956b/20261207T184321Z")
    assert twin.verdict == "not fitted"
    assert twin.parameter("batch_turnaround_us").missing == "the run kept no drain events"
    assert twin.parameter("queue_limit").value == 16  # the drain's estimate is in the summary


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return model_campaign(root, TRUE_SETS["q64"], costs=(20.0, 100.0), extras=False)


def test_wfpcap_twin_writes_a_typed_record_the_report_shows(small_run):
    done = wfpcap("twin", small_run)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("twin: all") and "per_event_overhead_us" in done.stdout
    twin = read_twin(small_run / "twin.json")
    assert twin.format == 1 and twin.run == small_run.name and twin.verdict == "within"
    assert twin.to_json() == json.loads((small_run / "twin.json").read_text())
    report = (render(small_run)["md"]).read_text()
    assert "## Twin: held-out trials, predicted vs measured" in report
    assert "- Twin: all" in report  # the verdict at the top says it too
    rows = [line for line in report.splitlines() if line.startswith("| ") and "loss onset" in line]
    assert rows and "| yes |" in rows[0]


def test_a_twin_outside_its_tolerance_says_so_in_the_report_headline(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    twin = calibrate(run)
    twin.predictions[0].within, twin.verdict = False, "outside"
    twin.headline = "twin: held-out errors EXCEED its tolerance: 1 of 3 outside"
    write_twin(run, twin)
    verdict = render(run)["md"].read_text().split("## ", 2)[1]
    assert "Twin: held-out errors EXCEED its tolerance" in verdict


def test_a_twin_file_that_is_not_one_is_refused_in_one_line(tmp_path):
    (tmp_path / "twin.json").write_text('{"run": "x"}')
    with pytest.raises(StoredFileError, match="is not a twin record"):
        read_twin(tmp_path / "twin.json")
    (tmp_path / "twin.json").write_text("[1,")
    with pytest.raises(StoredFileError, match="not valid JSON"):
        read_twin(tmp_path / "twin.json")
    assert read_twin(tmp_path / "absent.json") is None


def test_predict_answers_from_the_twin_and_says_it_is_a_prediction(small_run):
    done = wfpcap("predict", small_run, "--rate", 12000, "--duration", 2, "--cost-us", 80, "--headroom")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"PREDICTION (not a measurement) by the twin of run {small_run} (model, config " \
                     f"{read_twin(small_run / 'twin.json').config_id})"
    params = ModelParams(**read_twin(small_run / "twin.json").model_params)
    spec = TrialSpec(TrafficSpec(count=24000, pacing="constant", rate_per_s=12000), SubscriberSpec(cost_us=80))
    direct = predict_run(params, spec).loss
    assert f"delivered {direct.delivered:,} of 24,000 events, lost {direct.lost:,}" in done.stdout
    bracket = first_lossy_scale(lost_at_scale(ModelPlatform(params), replace(spec, traffic=TrafficSpec.replay(
        __import__("harness.twin.whatif", fromlist=["as_schedule"]).as_schedule(spec, params)))))
    assert bracket == headroom(params, spec)
    assert f"loss-free up to {bracket.clean:.4g}x, loses from {bracket.lossy:.4g}x" in done.stdout


def test_predict_takes_a_shape_a_cost_file_and_a_held_burst(small_run, tmp_path):
    costs = tmp_path / "costs.csv"
    costs.write_text("bin,count\n10,90\n400,10\n")
    shaped = wfpcap("predict", small_run, "--traffic-shape", "on-off:3000,40000,0.05,2", "--traffic-scale", 2,
                    "--subscriber-cost", costs)
    assert shaped.returncode == 0, shaped.stderr
    assert "at 2x" in shaped.stdout and "costs drawn from" in shaped.stdout
    held = wfpcap("predict", small_run, "--count", 5000, "--hold")
    assert held.returncode == 0, held.stderr
    capacity = TRUE_SETS["q64"].true_burst_capacity()
    assert f"delivered {capacity:,} of 5,000 events" in held.stdout  # the held burst delivers the capacity


@pytest.mark.parametrize("args, message", [
    ((), "give one traffic"),
    (("--rate", "100", "--count", "5"), "give one traffic"),
    (("--rate", "100", "--traffic-scale", "2"), "--traffic-scale and --trace-window apply to a trace"),
    (("--traffic-shape", "square:1,2"), "--traffic-shape must be on-off:... or ramp:..."),
    (("--traffic-shape", "ramp:1,2"), "--traffic-shape ramp needs ramp:START_RATE,END_RATE,DURATION_S"),
    (("--rate", "100", "--cost-us", "5", "--subscriber-cost", "x.csv"), "--subscriber-cost replaces --cost-us"),
    (("--rate", "100", "--hold"), "--hold goes with --count"),
    (("--rate", "0"), "argument --rate: must be > 0"),
])
def test_predict_refuses_bad_input_in_one_line(small_run, args, message):
    done = wfpcap("predict", small_run, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_twin_and_predict_refuse_a_folder_that_is_not_a_run(tmp_path):
    for command in (("twin", tmp_path), ("predict", tmp_path, "--rate", "5")):
        done = wfpcap(*command)
        assert done.returncode == 2 and done.stderr == f"wfpcap: {tmp_path} is not a run folder (no summary.json)\n"


@pytest.mark.subprocess
def test_a_scenario_run_ends_with_its_twin_checked_in_the_report_and_the_headline(tmp_path):
    """`pytest scenarios/` as a user runs it: the end of the run fits the twin, writes twin.json and
    shows the held-out table in the report and the verdict in the headline; nothing fails on it."""
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"queue_limit": 64, "system_buffer": 2000}))
    cmd = [sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:cacheprovider", "--report-dir",
           str(tmp_path / "reports"), "--machine-label", "twin-e2e", "--model-param", "queue_limit=64",
           "--model-param", "system_buffer=2000", "--expect", str(expect)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    run = next((tmp_path / "reports").glob("*/*/twin.json")).parent
    twin = read_twin(run / "twin.json")
    assert twin.verdict == "within" and len(twin.predictions) >= 8
    assert twin.headline in (run / "headline.txt").read_text() and twin.headline in done.stdout
    assert "## Twin: held-out trials, predicted vs measured" in (run / "report.md").read_text()


def test_the_end_of_a_run_gets_a_twin_verdict_whatever_breaks(small_run, tmp_path):
    """calibrate_run (the lifecycle's call) never raises: a broken kept event file makes the twin
    'not fitted' with the reason in one line, and the run's report is still drawn."""
    from harness.twin.calibrate import calibrate_run
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    next((run / "events").glob("*-drain-sent.csv.gz")).write_bytes(b"not a gzip file")  # the report does not read it
    twin = calibrate_run(run)
    assert twin.verdict == "not fitted" and twin.headline.startswith("twin: not fitted: ")
    assert "\n" not in twin.headline and twin.config_id
    write_twin(run, twin)
    assert "Twin: not fitted" in render(run)["md"].read_text()


def test_predict_replays_a_capture_and_a_netsh_record_at_a_scale(small_run, tmp_path):
    """Traces as issue 21 reads them: a pcap of 40 UDP flows (5 packets each) and a netsh export;
    events follow the layer by default (the model's filter is at ALE: a flow's first packet)."""
    from scapy.layers.inet import IP, UDP
    from captures import ether, write_pcap
    from test_trace_readers import EVENTS, netevents_xml
    frames = [bytes(ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000 + k % 40, dport=53)) for k in range(200)]
    capture = write_pcap(tmp_path / "dns.pcap", frames, [k * 50_000 for k in range(200)])
    flows = wfpcap("predict", small_run, "--traffic-capture", capture, "--traffic-scale", 4, "--cost-us", 50)
    assert flows.returncode == 0, flows.stderr
    assert "at 4x (200 packets, 40 events: one per flow" in flows.stdout
    assert "delivered 40 of 40 events, lost 0" in flows.stdout
    packets = wfpcap("predict", small_run, "--traffic-capture", capture, "--trace-events", "packets", "--cost-us", 50)
    assert "200 events: one per packet" in packets.stdout and "delivered 200 of 200 events" in packets.stdout
    record = tmp_path / "netevents.xml"
    record.write_text(netevents_xml(EVENTS))
    netsh = wfpcap("predict", small_run, "--traffic-netevents", record, "--cost-us", 5, "--headroom")
    assert netsh.returncode == 0, netsh.stderr
    assert "(5 packets, 3 events: one per flow" in netsh.stdout and "headroom:" in netsh.stdout
