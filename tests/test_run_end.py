"""The end of a run is as solid as its middle: a full disk at any phase of the end leaves every
earlier file whole and the terminal saying what the folder says; a signal while the report is
drawn ends the drawing with the summary already marked, and its exit status; a stop before the run
folder exists is said; the harness's own stops are its own one line; a resumed run is whole."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import live_runs
from harness.campaign import Campaign, load_expectations
from harness.files import WriteFailed
from harness.judge import compare
from harness.platforms.model import ModelParams, ModelPlatform
from harness.plugin import lifecycle
from harness.report import fleet, headline, render
from harness.results.read import read_summary, read_trial_rows
from session_runs import ROOT, env, resume_cmd, run, scenario_cmd, small_model_args, summaries, wait_for_phase
from stored_runs import set_status
from tiers import needs

PHASES = ("trials", "summary", "plots", "html", "headline")


def fill(disk: Path) -> None:
    """Take every free byte of the disk."""
    with open(disk / f"ballast-{time.monotonic_ns()}", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass


class Reporting:
    """The reporting plugin's part in the end of a run: no baseline, the headline files."""

    def judge(self, store) -> None:
        pass

    def write_headline(self, store, report: str) -> None:
        headline.write(store.path, store.summary, report, store.trials())


@pytest.mark.parametrize("phase", PHASES)
def test_a_disk_that_fills_at_each_phase_of_the_end_leaves_what_was_before_whole(small_disk, monkeypatch, phase):
    c = Campaign.open(ModelPlatform(ModelParams(system_buffer=300, queue_limit=16)), str(small_disk), "quick",
                      load_expectations(None), "end")
    c.drain()
    before = {p: p.read_bytes() for p in c.store.path.rglob("*") if p.is_file()}
    on_disk_before = read_summary(c.store.path / "summary.json").status
    store = c.store
    wrap = {"trials": (store, "flush_trials"), "summary": (store, "set_run"), "plots": (render, "make_plots"),
            "html": (render, "to_html"), "headline": (headline, "write")}[phase]
    real = getattr(*wrap)

    def filling(*args, **kwargs):
        fill(small_disk)
        return real(*args, **kwargs)

    monkeypatch.setattr(*wrap, filling)
    state = lifecycle.SessionState(store=store, selected=["s"], finished={"s"})
    lifecycle._finish(state, Reporting())
    assert state.failed and state.notes  # each write that failed (the drawing, then the headline) is one line
    for note in state.notes:
        assert note.startswith(f"wfpcap: cannot write {store.path}") and note.endswith("No space left on device"), note
    for path in store.path.rglob("*"):  # whole or absent: no cut file, no temporary left
        assert path.is_dir() or path.stat().st_size > 0, path
        assert not path.name.startswith("."), f"temporary file left: {path}"
    for path, data in before.items():  # what was there before the end is as it was, or rewritten whole
        if path.name not in ("summary.json", "trials.csv"):
            assert path.read_bytes() == data, path
    read_trial_rows(store.path / "trials.csv")
    on_disk = read_summary(store.path / "summary.json").status
    assert on_disk == (on_disk_before if phase in ("trials", "summary") else "complete")
    assert state.summary_written == (on_disk == "complete")


@pytest.fixture
@needs("root")  # mounts a tmpfs
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    yield disk
    subprocess.run(["umount", str(disk)])


def _held(tmp_path: Path, where: str, *extra: str) -> subprocess.Popen:
    """A small model run that holds at a checkpoint (live_runs.checkpoint) until a signal."""
    live = tmp_path / "live"
    proc = subprocess.Popen(scenario_cmd(tmp_path / "reports", *small_model_args(tmp_path), *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env(live, hold=where))
    deadline = time.monotonic() + 120
    while not (live / f"{proc.pid}.at-{where}").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc


@pytest.mark.subprocess
def test_a_signal_while_the_report_is_drawn_ends_the_drawing_and_says_so(tmp_path):
    proc = _held(tmp_path, "report")
    [summary_path] = summaries(tmp_path / "reports")
    assert read_summary(summary_path).status == "complete"  # on disk before the drawing began
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 5
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:] + err
    assert read_summary(summary_path).status == "complete"
    assert not (summary_path.parent / "report.html").exists()
    assert f"the report was not drawn (SIGTERM while drawing); wfpcap report {summary_path.parent} draws it" in out
    assert "wfpcap run: complete" in out and "not written" not in out
    assert "report: not drawn" in (summary_path.parent / "headline.txt").read_text()


@pytest.mark.subprocess
def test_ctrl_c_before_the_run_folder_exists_is_said(tmp_path):
    proc = _held(tmp_path, "open")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, out[-2000:] + err
    assert "wfpcap run: interrupted before its folder was made (SIGINT while the auto platform opened); " \
           "nothing was measured and nothing is left behind" in out
    assert "KeyboardInterrupt" not in out + err and summaries(tmp_path / "reports") == []


@pytest.mark.subprocess
def test_sigterm_at_random_moments_ends_a_run_within_a_runners_kill_grace(tmp_path):
    """A runner's kill grace is commonly 10 s: the run, its platform and its report end within it,
    however busy the machine (benchmarks/bench_stop.py measures twenty stops: median and worst)."""
    rng = random.Random(1207)
    for k in range(3):
        folder = tmp_path / f"r{k}"
        proc = subprocess.Popen(scenario_cmd(folder, *small_model_args(tmp_path)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env(tmp_path / "live"))
        wait_for_phase(proc, tmp_path / "live", None)
        time.sleep(rng.uniform(0.0, 4.0))
        started = time.monotonic()
        ended_before = proc.poll() is not None  # the run was over before the signal could reach it
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
        assert took < 10, (k, took)
        status = read_summary(summaries(folder)[0]).status
        assert status in ("interrupted", "complete"), status
        # stopped while measuring: interrupted; while closing or drawing: complete; the exit says the signal
        # whenever it came while the run was alive
        if ended_before:
            assert status == "complete" and proc.returncode == 0, out[-2000:] + err
        else:
            assert proc.returncode == 128 + signal.SIGTERM, out[-2000:] + err


@pytest.mark.subprocess
def test_a_backend_that_cannot_run_is_the_harness_own_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pytest", "scenarios/", "-q", "-p", "no:cacheprovider",
                        "--report-dir", str(tmp_path), "--backend", "wfp"], capture_output=True, text=True,
                       cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "WFPCAP_FWPUCLNT"})
    assert p.returncode == 2, p.stdout[-2000:]
    assert "wfpcap: backend wfp cannot run here: doctor: FAILED at 'elevated'" in p.stdout
    assert "_pytest.outcomes.Exit" not in p.stdout + p.stderr and "!!!" not in p.stdout


def test_another_live_run_is_in_the_report_and_the_headline(tmp_path):
    c = Campaign.open(ModelPlatform(ModelParams(system_buffer=300, queue_limit=16)), str(tmp_path), "quick",
                      load_expectations(None), "company")
    c.burst()
    c.store.note("other_live_runs", [{"pid": 4242, "backend": "nflog", "started_utc": "t", "report": None,
                                      "phase": {}, "source": "registry"}])
    c.store.set_run(read_summary(c.store.path / "summary.json").run)
    page = render.render(c.store.path)
    for text in (page["md"].read_text(), page["html"].read_text(),
                 "\n".join(headline.lines(c.store.summary, None, c.store.trials()))):
        assert "another harness run was live beside this one (pid 4242 (nflog))" in text


def test_compare_marks_a_named_run_that_is_not_complete(tmp_path):
    c = Campaign.open(ModelPlatform(ModelParams(system_buffer=300, queue_limit=16)), str(tmp_path), "quick",
                      load_expectations(None), "named")
    c.burst()
    set_status(c.store.path, "interrupted", detail="SIGTERM during burst trial 3")
    text = fleet.markdown(compare.collect([c.store.path]))
    assert "(interrupted: SIGTERM during burst trial 3)" in text


# -- resuming ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
@needs("subprocess")
def interrupted(tmp_path_factory) -> Path:
    """A small model run stopped by SIGTERM in its sustained experiment."""
    tmp = tmp_path_factory.mktemp("interrupted")
    proc = subprocess.Popen(scenario_cmd(tmp / "reports", *small_model_args(tmp)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env(tmp / "live", hold="sustained"))
    wait_for_phase(proc, tmp / "live", "sustained")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    [summary] = summaries(tmp / "reports")
    return summary.parent


@pytest.mark.subprocess
def test_resume_with_a_selection_is_refused_and_keeps_every_trial(interrupted, tmp_path):
    trials = (interrupted / "trials.csv").read_text()
    p = run(resume_cmd(interrupted, "-k", "burst_capacity_is_bounded"), tmp_path / "live")
    assert p.returncode == 2, p.stdout[-2000:]
    assert "wfpcap: --resume continues the whole run; drop -k, -m or the file selection" in p.stdout
    assert (interrupted / "trials.csv").read_text() == trials
    assert read_summary(interrupted / "summary.json").status == "interrupted"


def test_resume_of_a_run_that_is_still_live_is_refused_naming_it(interrupted, tmp_path, monkeypatch):
    from harness.plugin.options import run_options
    from test_inputs import Options
    monkeypatch.setenv("WFPCAP_LIVE_DIR", str(tmp_path / "live"))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "live").mkdir()
        entry = {"pid": sleeper.pid, "start": live_runs.process_start(sleeper.pid), "backend": "model",
                 "report": str(interrupted), "started_utc": "t", "phase": {}}
        (tmp_path / "live" / f"{sleeper.pid}.json").write_text(json.dumps(entry))
        with pytest.raises(ValueError, match=f"--resume {interrupted}: its run is still live \\(pid {sleeper.pid} "):
            run_options(Options(resume=str(interrupted)))
    finally:
        sleeper.kill()
        sleeper.wait()
    run_options(Options(resume=str(interrupted)))  # once it has ended, it can be continued


def test_a_write_that_fails_mid_run_says_its_one_line(tmp_path, monkeypatch):
    """The lifecycle turns a failed write into the session's stop with the harness's line."""
    state = lifecycle.SessionState()

    class Item:
        class config:
            stash = {lifecycle.STATE: state}

    with pytest.raises(pytest.exit.Exception) as stopped:
        lifecycle._stop_on(Item, WriteFailed(tmp_path / "trials.csv", "No space left on device"))
    assert stopped.value.msg == f"wfpcap: cannot write {tmp_path / 'trials.csv'}: No space left on device"
    assert stopped.value.returncode == 2
