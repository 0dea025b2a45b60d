"""Result store, summary.json shape, rendering and comparison."""
import json
import subprocess
import sys

import pytest

from harness.campaign import Campaign, load_expectations
from harness.platforms.model import ModelParams, ModelPlatform
from harness.judge.compare import collect
from harness.report.fleet import markdown
from harness.results.fingerprint import config_id, fingerprint
from harness.report.render import render
from stored_runs import set_status


def run_campaign(tmp_path, **params):
    platform = ModelPlatform(ModelParams(system_buffer=2000, **params))
    c = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None), "test-box")
    c.drain()
    c.ndr(100.0)
    return c


def test_summary_shape_and_report(tmp_path):
    c = run_campaign(tmp_path)
    paths = render(c.store.path)
    s = json.loads((c.store.path / "summary.json").read_text())
    assert s["platform"] == "model" and s["config_id"].startswith("test-box-model-")
    for key in ("burst_capacity", "queue_limit", "first_batch", "buffer_depth"):
        assert "value" in s["estimates"][key]
    assert s["estimates"]["buffer_depth"]["value"] == 2000
    assert s["estimates"]["ndr"][0]["callback_cost_us"] == 100.0 and s["estimates"]["ndr"][0]["rate_per_s"] > 0
    # beside the NDR: mu, the harness's overhead and the backlog-slope evidence on both sides
    row = s["estimates"]["ndr"][0]
    assert row["mu_per_s"] and row["overhead_us"] is not None and row["slope_evidence"]["above"]["slope_per_s"]
    assert s["ground_truth"]["true_burst_capacity"] == 2000 + 256 + 21
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 5 and "<img" in html and 'src="http' not in html
    # 16,500 appears only as the field notes' figure the measurement is compared with (issue 8's verdict)
    text = html.replace("&#x27;", "'")
    assert "16,500" not in text.replace("unlike the field notes' 16,500", "") and "2,000" in html
    assert "System buffer: 2,000 events, unlike the field notes' 16,500" in text
    assert "Queue limit: 256 events, consistent with the field notes' 256" in text
    assert "Where loss happens: not detectable: only the wfp backend has an independent count" in text
    assert "mu (/s), 95% CI" in html and "backlog slope below NDR" in html
    for name in ("delivered_vs_burst", "drain_timeline", "backlog", "loss_vs_rate", "backlog_vs_ndr"):
        assert paths[name].stat().st_size > 10_000
    trials = (c.store.path / "trials.csv").read_text().splitlines()
    assert len(trials) == s["trials"] + 1


def test_every_trial_is_on_disk_before_the_next(tmp_path):
    platform = ModelPlatform()
    c = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None))
    seen = []
    original = platform.run_trial

    def spy(spec):
        seen.append(len(c.store.trials()))
        return original(spec)

    platform.run_trial = spy
    c.burst()
    assert seen == list(range(len(seen)))


def test_config_id_is_stable_and_tracks_settings():
    a = fingerprint({"platform": "model", "q": 1}, "box")
    b = fingerprint({"platform": "model", "q": 1}, "box")
    c = fingerprint({"platform": "model", "q": 2}, "box")
    assert config_id(a) == config_id(b) != config_id(c)


def test_compare_two_configurations(tmp_path):
    for c in (run_campaign(tmp_path), run_campaign(tmp_path, queue_limit=128)):
        set_status(c.store.path, "complete")
    found = collect([tmp_path])
    table = markdown(found)
    rows = [line for line in table.splitlines() if line.startswith("| C")]
    assert len(rows) == 3 and all("test-box-model-" in r for r in rows)  # two headline rows, one difference row
    queue = sorted(r.split(" | ")[6] for r in rows[:2])
    assert queue == ["128", "256"], rows
    assert "Next-queue limit" in table and "-50.0% worse" in table or "+100.0% better" in table


@pytest.mark.subprocess
def test_cli_bad_input_is_one_line(tmp_path):
    for args in (["model", "--model-param", "nope=1"], ["report", str(tmp_path)], ["compare", str(tmp_path / "x")],
                 ["model", "--count", "0"]):
        p = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True)
        assert p.returncode == 2, args
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("wfpcap: ") and "Traceback" not in p.stderr


def test_the_findings_say_whether_callbacks_ran_at_the_same_time():
    import pandas as pd

    from harness.report.findings import _delivery_line
    assert _delivery_line(pd.DataFrame({"lost": [0]})) is None  # not the wfp backend: nothing to say
    turns = _delivery_line(pd.DataFrame({"callback_threads": [1, 3], "concurrent_callbacks": [0, 0]}))
    assert "up to 3 thread(s); in none of 2 inline trials" in turns
    same_time = _delivery_line(pd.DataFrame({"callback_threads": [3, 3, 3], "concurrent_callbacks": [0, 41, None]}))
    assert "ran at the same time in 1 of 2 inline trials" in same_time and "up to 41" in same_time  # copy mode: not measured
    unmeasured = _delivery_line(pd.DataFrame({"callback_threads": [2], "concurrent_callbacks": [None]}))
    assert unmeasured.endswith("at the same time: not measured.")


def _speed_run(folder, refs, status="complete", off=None):
    import json
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "platform": "nflog", "config_id": "cfg", "fingerprint": {"stable": {"platform": {"name": "nflog"}}, "volatile": {}}, "estimates": {},
        "checks": [], "experiments": {}, "trials": len(refs), "run": {"status": status}}))
    rows = ["trial,experiment,count,pacing,offered_rate_per_s,templated,expected,delivered,lost,loss_ratio,"
            "intf_others_cores,intf_cpus,intf_steal_share,intf_load1,intf_cpu_ref_begin_ns,intf_cpu_ref_end_ns,"
            "intf_cpu_speed_off,intf_cpu_speed_limit,interference"]
    for i, ref in enumerate(refs):
        o = "" if off is None or i != len(refs) - 1 else off
        rows.append(f"{i},sustained,100,constant,1000.0,False,100,100,0,0.0,0.1,2,0.0,0.5,{ref},{ref},{o},"
                    f"{'' if o == '' else 0.15},")
    (folder / "trials.csv").write_text("\n".join(rows) + "\n")


def test_the_report_names_the_cpu_speed_against_the_configurations_earlier_runs(tmp_path):
    from harness.report.ndr_section import interference_lines
    from harness.results.runs import load_run
    config = tmp_path / "cfg"
    _speed_run(config / "20261101T000000Z", [70.0] * 6)
    _speed_run(config / "20261102T000000Z", [72.0] * 6)
    _speed_run(config / "20261103T000000Z", [30.0] * 6, status="interrupted")  # not history
    _speed_run(config / "20261104T000000Z", [77.0] * 5 + [44.0], off=0.6)
    words = " ".join(interference_lines(load_run(config / "20261104T000000Z")))
    assert "median 77.0 ns, 44.0-77.0 ns" in words, words
    assert "1 trials ran off the run's typical speed (up to 60%; limit 15%): interference" in words, words
    assert "median reference 71.0 ns over 2 run(s); this run's CPU ran 7.8% slower" in words, words
    first = " ".join(interference_lines(load_run(config / "20261101T000000Z")))
    assert "earlier runs" not in first and "median 70.0 ns" in first
    # Windows: no /proc figures, the reference still
    trials = config / "20261104T000000Z" / "trials.csv"
    trials.write_text(trials.read_text().replace(",0.1,2,0.0,0.5,", ",,2,,,"))
    assert " ".join(interference_lines(load_run(config / "20261104T000000Z"))).startswith("CPU reference")
    # wfp: the events of others through the same queue, on Windows too
    text = trials.read_text().splitlines()
    text = [text[0] + ",intf_shared_events,intf_shared_share"] + [row + (",3,0.03" if i else ",0,0.0") for i, row in enumerate(text[1:])]
    trials.write_text("\n".join(text) + "\n")
    words = " ".join(interference_lines(load_run(config / "20261104T000000Z")))
    assert words.startswith("Events not the trials' own through the same queue") and "max 3 (up to 3.0% of" in words, words
