"""Files are whole or absent: run folders race-free, a full disk gives one line naming the path
and leaves the trials already on disk readable, stored files from outside are refused with one
line naming the file (fuzzed with hypothesis for report, compare and --resume)."""
import json
import multiprocessing as mp
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.campaign import Campaign, load_expectations
from harness.files import WriteFailed
from harness.platforms.model import ModelParams, ModelPlatform
from harness.judge.compare import collect
from harness.report.fleet import markdown
from harness.report.render import render
from harness.results.records import RunStatus
from harness.results.store import ResultStore
from harness.results.read import StoredFileError, read_summary, read_trial_rows
from harness.plugin.options import run_options
from cli_runs import wfpcap
from test_inputs import Options
from tiers import needs


def _open_store(root, barrier, out):
    barrier.wait()
    out.put(str(ResultStore(root, {"stable": {"machine": "race", "platform": {"platform": "model"}}}, "model").path))


def test_six_stores_opened_at_once_get_six_folders(tmp_path):
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_open_store, args=(str(tmp_path), barrier, out)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    assert len({out.get(timeout=5) for _ in procs}) == 6


@pytest.fixture
@needs("root")  # mounts a tmpfs
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    yield disk
    subprocess.run(["umount", str(disk)])


def test_a_full_disk_is_one_line_and_the_trials_on_disk_stay_whole(small_disk):
    c = Campaign.open(ModelPlatform(ModelParams(system_buffer=2000)), str(small_disk), "quick",
                      load_expectations(None), "full")
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "ballast").write_bytes(b"x" * (free - 48 * 1024))  # leave room for a few trials only
    with pytest.raises(WriteFailed) as failed:
        c.drain()
        for cost in (20.0, 100.0, 500.0, 50.0, 200.0, 1000.0, 10.0, 300.0):
            c.ndr(cost)
    assert str(failed.value).startswith(f"cannot write {small_disk}") and "No space left" in str(failed.value)
    rows = read_trial_rows(c.store.path / "trials.csv")
    assert len(rows) >= 1 and all(r["loss_ratio"] is not None for r in rows)
    assert read_summary(c.store.path / "summary.json").config_id == c.store.config_id
    # rendering on the full disk: one line, and no cut or empty file left behind
    with pytest.raises(WriteFailed):
        render(c.store.path)
    for path in c.store.path.rglob("*"):
        assert path.is_dir() or path.stat().st_size > 0, path
        assert not path.name.startswith("."), f"temporary file left: {path}"


def _valid_run(tmp_path):
    c = Campaign.open(ModelPlatform(ModelParams(system_buffer=1000, queue_limit=32)), str(tmp_path), "quick",
                      load_expectations(None), "fuzz")
    c.burst()
    c.store.set_run(RunStatus("interrupted"))
    return c.store.path


@pytest.mark.parametrize("content,line", [
    ("[]", "is not a run summary: the top level: [] is not of type 'object'"),
    ("{}", "is not a run summary: the top level: 'platform' is a required property"),
    ('{"platform": "model", "config_id"', "is not valid JSON"),
])
def test_wfpcap_report_and_compare_refuse_a_bad_summary(tmp_path, content, line):
    run_dir = tmp_path / "cfg" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(content)
    for args in (["report", str(run_dir)], ["compare", str(tmp_path)]):
        p = wfpcap(*args)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert str(run_dir / "summary.json") in p.stderr and line in p.stderr, p.stderr


def test_a_trials_table_that_is_not_csv_is_refused_naming_it(tmp_path):
    run_dir = _valid_run(tmp_path)
    (run_dir / "trials.csv").write_bytes(b"\x00\xff not, a\n\"table")
    p = wfpcap("report", run_dir)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and str(run_dir / "trials.csv") in p.stderr, p.stderr


@pytest.fixture(scope="session")  # once per xdist worker; the module's tests spread (tests/tiers.py group)
def valid_run(tmp_path_factory):
    path = _valid_run(tmp_path_factory.mktemp("valid"))
    return path, (path / "summary.json").read_text(), (path / "trials.csv").read_text()


def _all_readers(run_dir):
    """report, compare and --resume on one run folder: each must end cleanly or with ValueError."""
    outcomes = []
    for reader in (lambda: render(run_dir), lambda: markdown(collect([run_dir])),
                   lambda: run_options(Options(resume=str(run_dir)))):
        try:
            reader()
            outcomes.append("ok")
        except ValueError as exc:  # StoredFileError, BadInput: one line naming what is wrong
            assert "\n" not in str(exc)
            outcomes.append("refused")
    return outcomes


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
                           | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


# fifteen examples of each kind, one test per kind so that they spread over the workers
@pytest.mark.parametrize("kind", ["cut summary", "replace in summary", "cut trials", "bytes in trials"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_stored_files_are_read_or_refused_never_a_crash(valid_run, tmp_path_factory, kind, data):
    path, summary_text, trials_text = valid_run
    run_dir = tmp_path_factory.mktemp("fuzz") / "cfg" / "run"
    (run_dir / "events").mkdir(parents=True)
    summary, trials = summary_text, trials_text
    if kind == "cut summary":
        summary = summary_text[: data.draw(st.integers(0, len(summary_text)))]
    elif kind == "replace in summary":
        tree = json.loads(summary_text)
        where = data.draw(st.sampled_from(list(_paths(tree))[1:]))
        node = tree
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = data.draw(json_values)
        summary = json.dumps(tree)
    elif kind == "cut trials":
        trials = trials_text[: data.draw(st.integers(0, len(trials_text)))]
    else:
        at = data.draw(st.integers(0, len(trials_text)))
        trials = trials_text[:at] + data.draw(st.text(max_size=12)) + trials_text[at:]
    (run_dir / "summary.json").write_text(summary)
    (run_dir / "trials.csv").write_text(trials)
    _all_readers(run_dir)


def test_a_resume_of_a_cut_file_is_refused_naming_it(valid_run, tmp_path):
    path, summary_text, _ = valid_run
    run_dir = tmp_path / "cfg" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(summary_text[:100])
    with pytest.raises(StoredFileError, match=f"{run_dir / 'summary.json'} is not valid JSON"):
        run_options(Options(resume=str(run_dir)))
