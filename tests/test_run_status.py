"""Every run says whether it is complete: interrupted (signal or error, and where), subset (not
every scenario selected or run) or complete; the report shows it, compare prefers complete runs,
and an interrupted model run resumed gives the summary of an uninterrupted one."""
import json
import signal

import pytest

from harness.judge.compare import collect
from harness.report.fleet import markdown
from harness.results.status import status_of
from session_runs import (comparable, resume_cmd, run, scenario_cmd, small_model_args, start, summaries,
                          wait_for_phase)


@pytest.mark.subprocess
def test_sigint_marks_the_run_interrupted_and_resume_equals_an_uninterrupted_run(tmp_path):
    live = tmp_path / "live"
    args = small_model_args(tmp_path)
    whole = run(scenario_cmd(tmp_path / "whole", *args), live)
    assert whole.returncode == 0, whole.stdout[-2000:]
    reference = json.loads(summaries(tmp_path / "whole")[0].read_text())
    assert reference["run"]["status"] == "complete" and "wfpcap run: complete" in whole.stdout

    # interrupted in the middle of the NDR search ...
    child = start(scenario_cmd(tmp_path / "cut", *args), live)
    wait_for_phase(child, live, "sustained", min_trial=20)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, (out[-2000:], err[-2000:])
    [path] = summaries(tmp_path / "cut")
    cut = json.loads(path.read_text())
    assert cut["run"]["status"] == "interrupted"
    assert cut["run"]["interrupted_at"]["experiment"] == "sustained"
    assert "SIGINT during sustained" in cut["run"]["detail"]
    assert cut["run"]["scenarios"]["not_finished"]
    rows = path.with_name("trials.csv").read_text().splitlines()
    assert cut["trials"] == len(rows) - 1 >= 20  # the summary counts what trials.csv holds
    html = path.with_name("report.html").read_text()
    assert "This run is not complete: interrupted: SIGINT" in html
    assert not (live / f"{child.pid}.json").exists()  # unregistered on the way out

    # ... and continued: nothing measured twice, the same summary as the uninterrupted run
    resumed = run(resume_cmd(path.parent), live)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    done = json.loads(path.read_text())
    assert done["run"]["status"] == "complete"
    assert done["fingerprint"]["volatile"]["resumed"][0]["stored_trials"] == cut["trials"]
    assert comparable(done) == comparable(reference)
    assert path.with_name("trials.csv").read_text() == summaries(tmp_path / "whole")[0].with_name("trials.csv").read_text()


@pytest.mark.subprocess
def test_sigterm_takes_the_path_of_ctrl_c(tmp_path):
    live = tmp_path / "live"
    child = start(scenario_cmd(tmp_path / "r", *small_model_args(tmp_path)), live)
    wait_for_phase(child, live, "sustained", min_trial=5)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 143, (out[-2000:], err[-2000:])
    [path] = summaries(tmp_path / "r")
    s = json.loads(path.read_text())
    assert s["run"]["status"] == "interrupted" and s["run"]["detail"].startswith("SIGTERM during sustained")
    assert path.with_name("report.html").exists() and "Traceback" not in err
    assert "wfpcap run: interrupted" in out


@pytest.mark.subprocess
def test_a_selection_is_a_subset(tmp_path):
    live = tmp_path / "live"
    p = run(scenario_cmd(tmp_path / "r", *small_model_args(tmp_path), "-k", "burst_capacity"), live)
    assert p.returncode == 0, p.stdout[-2000:]
    s = json.loads(summaries(tmp_path / "r")[0].read_text())
    assert s["run"]["status"] == "subset"
    assert "not selected" in s["run"]["detail"] and "test_queue_limit_matches_expectation" in s["run"]["detail"]
    assert s["run"]["scenarios"]["finished"] == s["run"]["scenarios"]["selected"]


def _stored_run(folder, name, status, queue_limit):
    run_dir = folder / name
    run_dir.mkdir(parents=True)
    summary = {"platform": "model", "config_id": "box-model-1", "trials": 1,
               "run": {"status": status, "detail": "SIGINT during drain" if status != "complete" else ""},
               "fingerprint": {"stable": {"machine": "box", "platform": {"platform": "model"}}, "volatile": {}},
               "estimates": {"queue_limit": {"value": queue_limit}}, "checks": [], "experiments": {}}
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_compare_prefers_the_newest_complete_run_and_flags_the_rest(tmp_path):
    config = tmp_path / "box-model-1"
    _stored_run(config, "20260101T000000Z", "complete", 256)
    _stored_run(config, "20260102T000000Z", "interrupted", 999)
    fleet = collect([tmp_path])
    [chosen] = fleet.entries
    assert status_of(chosen.run.summary) == "complete" and chosen.run.name == "20260101T000000Z"
    assert [r.name for r in chosen.skipped] == ["20260102T000000Z"]  # the newer run, flagged
    table = markdown(fleet)
    assert "| 256 |" in table and "999" not in table
    only_cut = tmp_path / "other" / "box-model-2"
    _stored_run(only_cut, "20260102T000000Z", "interrupted", 999)
    fleet = collect([config, only_cut])
    assert [e.config_id for e in fleet.entries] == ["box-model-1"]
    assert "left out, no complete run: box-model-2" in markdown(fleet)


def test_a_signal_while_trials_csv_is_written_leaves_summary_and_file_agreeing(tmp_path, monkeypatch):
    """SIGINT can land while trials.csv is rewritten after a trial (an fsync'd atomic write, the
    slowest step of a model trial): the trial is counted but the file keeps the old rows. The
    cleanup writes the file again, so summary.json and trials.csv agree on the trials."""
    from harness.plugin import lifecycle as session
    from harness.campaign import Campaign, load_expectations
    from harness.experiments.trial import run_recorded
    from harness.platforms.model import ModelParams, ModelPlatform
    from harness.results import store as store_module

    c = Campaign.open(ModelPlatform(ModelParams(system_buffer=2000, queue_limit=64)), str(tmp_path), "quick",
                      load_expectations(None), "cut")
    spec = c.base_spec().with_count(100)
    run_recorded(c.platform, spec, c.store, "burst")
    real = store_module.write_atomic

    def interrupted(path, data, durable=True):
        if str(path).endswith("trials.csv"):
            raise KeyboardInterrupt("SIGINT")
        return real(path, data, durable)

    monkeypatch.setattr(store_module, "write_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_recorded(c.platform, spec, c.store, "burst")
    monkeypatch.setattr(store_module, "write_atomic", real)
    state = session.SessionState(store=c.store, signal=signal.SIGINT, selected=["s"])
    session._finish(state, None)
    summary = json.loads((c.store.path / "summary.json").read_text())
    rows = (c.store.path / "trials.csv").read_text().splitlines()
    assert summary["trials"] == len(rows) - 1 == 2
