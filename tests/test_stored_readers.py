"""Files from outside are checked when they are read, by one reader per kind of file (summary,
trials, baseline, --expect, events): a schema, finite numbers, ranges, a size cap, keys given once,
and the file's name in every message. One damaged run hides nothing else of its configuration.
Every kind is fuzzed through every command that reads it."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import inputs
from harness.judge import baseline, compare, history
from harness.plugin.options import run_options
from harness.report import fleet, history_page
from harness.report.render import render
from harness.results.read import StoredFileError, read_baseline, read_summary, read_trial_rows
from cli_runs import wfpcap
from session_runs import ROOT
from stored_runs import real_run, set_status
from test_inputs import Options

ONE_LINE_CASES = {
    "a string value": {"estimates": {"buffer_depth": "big"}},
    "a low/high of the wrong type": {"low": "16000"},
    "estimates as a list": {"estimates_as_list": True},
    "a negative capacity": {"value": -5.0, "low": -6.0, "high": -4.0},
    "a zero capacity": {"value": 0.0, "low": 0.0, "high": 0.0},
    "a value outside its spread": {"value": 20000.0, "low": 16000.0, "high": 17000.0},
}


# session scope: built once on each xdist worker that runs these tests, which then spread over the
# workers (a module-scoped fixture keeps a module on one worker: tests/tiers.py group)
@pytest.fixture(scope="session")
def config(tmp_path_factory) -> Path:
    """A configuration folder with two complete model runs (each with its drain's events kept)."""
    root = tmp_path_factory.mktemp("reports")
    first = real_run(root, (100.0,), system_buffer=1000, queue_limit=32)
    real_run(root, (100.0,), system_buffer=1000, queue_limit=32)
    return first.parent


@pytest.fixture()
def copy(config, tmp_path) -> Path:
    out = tmp_path / config.name
    shutil.copytree(config, out)
    return out


@pytest.fixture(scope="session")
def saved_baseline(config, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("baseline") / "b.json"
    baseline.save(config, out)
    return json.loads(out.read_text())


def _damage_baseline(data: dict, case: dict) -> dict:
    data = json.loads(json.dumps(data))
    if case.get("estimates_as_list"):
        data["estimates"] = list(data["estimates"].values())
    elif "estimates" in case:
        data["estimates"]["buffer_depth"] = case["estimates"]["buffer_depth"]
    else:
        data["estimates"]["burst_capacity"].update(case)
    return data


# -- a baseline is checked whole when the option is read --------------------------------------
@pytest.mark.parametrize("case", ONE_LINE_CASES, ids=list(ONE_LINE_CASES))
def test_a_bad_baseline_is_refused_in_one_line_naming_it(saved_baseline, tmp_path, case):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(_damage_baseline(saved_baseline, ONE_LINE_CASES[case])))
    with pytest.raises(StoredFileError) as refused:
        read_baseline(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.subprocess
def test_a_bad_baseline_stops_the_session_before_anything_runs(saved_baseline, tmp_path):
    """Checked when the option is read: one line, exit 2, no platform opened, nothing measured
    (before, a string value crashed after the whole measurement, and CI read exit 1 as a regression)."""
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(_damage_baseline(saved_baseline, ONE_LINE_CASES["a string value"])))
    p = subprocess.run([sys.executable, "-m", "pytest", "scenarios/", "-q", "-p", "no:cacheprovider",
                        "--report-dir", str(tmp_path / "r"), "--baseline", str(path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2, p.stdout[-1500:] + p.stderr
    assert p.stderr.startswith(f"wfpcap: baseline {path} is damaged") and p.stderr.count("\n") == 1, p.stderr
    assert not (tmp_path / "r").exists()


def test_a_saved_baseline_reads_back(saved_baseline, tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(saved_baseline))
    assert read_baseline(path)["estimates"]["burst_capacity"]["value"] > 0


# -- numbers that are not finite ----------------------------------------------------------
@pytest.mark.parametrize("text", ["1e400", "-1e400", "NaN", "Infinity", "123456789012345678901234567890"])
def test_a_summary_number_that_is_not_finite_is_refused_naming_the_file(copy, text):
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    summary = (run / "summary.json").read_text()
    (run / "summary.json").write_text(summary.replace('"value": ', f'"value": {text}, "was": ', 1))
    with pytest.raises(StoredFileError, match=f"{run / 'summary.json'} is not valid JSON"):
        read_summary(run / "summary.json")
    for args in (["compare", str(run)], ["report", str(run)], ["baseline", "save", str(run), "--out", str(copy / "b")]):
        p = wfpcap(*args)
        assert p.returncode == 2 and str(run / "summary.json") in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not (copy / "b").exists()  # no baseline written with an Infinity in it


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf"])
def test_a_trials_cell_that_is_not_finite_is_refused_naming_the_line(copy, cell):
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    lines = (run / "trials.csv").read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[2].split(",")
    fields[header.index("loss_ratio")] = cell
    lines[2] = ",".join(fields)
    (run / "trials.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(StoredFileError, match=f"{run / 'trials.csv'} line 3: '{cell}' is not a finite number"):
        read_trial_rows(run / "trials.csv")


# -- one damaged run hides nothing else -------------------------------------------------------
@pytest.mark.parametrize("value", ["", [], {}, -1])
def test_a_wrong_reading_in_an_ndr_s_slope_evidence_is_refused_naming_the_file(copy, value):
    """The evidence an NDR rests on is a typed record (results/records.SlopeEvidence): a reading of
    the wrong type, or a negative rate, is refused when the summary is read, not met by a plot."""
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    summary = json.loads((run / "summary.json").read_text())
    summary["estimates"]["ndr"][0]["slope_evidence"]["below"]["offered_rate_per_s"] = value
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(StoredFileError, match="summary.json"):
        read_summary(run / "summary.json")
    p = wfpcap("report", str(run))
    assert p.returncode == 2 and str(run / "summary.json") in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_a_damaged_run_is_skipped_and_named_and_the_configuration_used(copy):
    old, new = sorted(p for p in copy.iterdir() if p.is_dir())
    (new / "summary.json").write_text('{"platform": "model", "config_id"')  # cut mid-write on another machine
    fleet_ = compare.collect([copy.parent])
    assert [e.run.path for e in fleet_.entries] == [old]
    assert any(path == new and why.startswith("damaged") for path, why in fleet_.left_out)
    assert f"{copy.name}/{new.name}" in fleet.markdown(fleet_)
    built = history.build(copy)
    assert [r.path for r in built.runs] == [old] and [d.path for d in built.damaged] == [new]
    assert any(new.name in line and "damaged" in line for line in history_page.summary_lines(built))
    gate = baseline.load(copy)
    assert gate.runs == [old.name] and any(new.name in note for note in gate.notes)
    p = wfpcap("compare", str(copy.parent))
    assert p.returncode == 0 and new.name in p.stdout, p.stdout + p.stderr


def test_history_of_a_run_folder_names_its_configuration(copy):
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    p = wfpcap("history", str(run))
    assert p.returncode == 2 and p.stderr == f"wfpcap: {run} is a run folder; give its configuration folder, {copy}\n"


def test_history_out_an_existing_file_is_one_line(copy, tmp_path):
    (tmp_path / "f").write_text("x")
    p = wfpcap("history", str(copy), "--out", str(tmp_path / "f"))
    assert p.returncode == 2 and p.stderr.startswith(f"wfpcap: history: --out {tmp_path / 'f'} is a file"), p.stderr


# -- expectations and events -----------------------------------------------------------------
def test_an_endless_expectations_file_is_refused_by_its_size():
    with pytest.raises(inputs.BadInput, match="/dev/zero is larger than 1 MB"):
        inputs.expectations("/dev/zero", {})


def test_an_expectation_given_twice_is_refused(tmp_path):
    path = tmp_path / "e.json"
    path.write_text('{"queue_limit": 64, "queue_limit": 128}')
    with pytest.raises(inputs.BadInput, match="key 'queue_limit' is given twice"):
        inputs.expectations(str(path), {})
    path.write_text('{"buffer_depth": 100, "system_buffer": 200}')
    with pytest.raises(inputs.BadInput, match="buffer_depth is given twice"):
        inputs.expectations(str(path), {})


def test_a_damaged_events_file_is_named(copy):
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    drain = next((run / "events").glob("*-drain-delivered.csv.gz"))
    drain.write_bytes(b"not gzip at all")
    p = wfpcap("report", str(run))
    assert p.returncode == 2 and str(drain) in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_an_events_file_with_an_empty_time_cell_is_refused_naming_it(copy):
    """Found by the fuzz test below: a cut line read as NaN, which became a garbage int64 time in
    the drain's plot (numpy warned, nothing refused it)."""
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    drain = next((run / "events").glob("*-drain-delivered.csv.gz"))
    lines = gzip.decompress(drain.read_bytes()).decode().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("t_callback_ns")] = ""
    lines[2] = ",".join(cells)
    drain.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    p = wfpcap("report", str(run))
    assert p.returncode == 2 and str(drain) in p.stderr and "t_callback_ns" in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1, p.stderr


@pytest.mark.parametrize("name, value", [("sender_rate_per_s", None), ("queue_limit", -1)])
def test_a_resumed_runs_stored_model_parameter_out_of_range_is_one_line_naming_the_summary(copy, name, value):
    """Found by the fuzz test below (and fixed on main at the same time): the stored model parameters
    were checked as if typed on the command line, and the message did not say which file they came from."""
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    set_status(run, "interrupted")
    summary = json.loads((run / "summary.json").read_text())
    summary["fingerprint"]["stable"]["platform"]["model_params"][name] = value
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError) as refused:
        run_options(Options(resume=str(run)))
    message = str(refused.value)
    assert message.startswith(f"{run / 'summary.json'}: ") and f"model parameter {name} " in message, message
    assert "\n" not in message, message


@pytest.mark.parametrize("where, value", [(("slope_evidence", "above", "slope_low_per_s"), ""),
                                          (("slope_evidence", "below", "slope_high_per_s"), [1]),
                                          (("confirmation", "duration_s"), "5"), (("mu_per_s",), {})])
def test_a_number_the_report_prints_from_an_ndr_row_is_checked_when_read(copy, where, value):
    """Found by the fuzz test below: the NDR row's slope evidence was not in the summary's schema, and
    `wfpcap report` stopped with a traceback formatting '' as a number."""
    run = sorted(p for p in copy.iterdir() if p.is_dir())[0]
    summary = json.loads((run / "summary.json").read_text())
    node = summary["estimates"]["ndr"][0]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    (run / "summary.json").write_text(json.dumps(summary))
    p = wfpcap("report", run)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and str(run / "summary.json") in p.stderr, p.stderr


# -- every kind through every reader ---------------------------------------------------------
def _readers(config: Path, run: Path, baseline_file: Path, plots: bool = True) -> list:
    """What `wfpcap report`, `compare`, `history`, `baseline save`, `--baseline` and `--resume` do
    with the files, in process (the commands print ValueError's one line and exit 2)."""
    return [lambda: render(run, plots=plots), lambda: fleet.markdown(compare.collect([config])),
            lambda: history_page.markdown(history.build(config), {}),
            lambda: baseline.save(config, config.parent / "saved.json"),
            lambda: baseline.load(baseline_file), lambda: baseline.load(config),
            lambda: run_options(Options(resume=str(run)))]


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats()
                           | st.text(max_size=6), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _replace_somewhere(data, tree: object) -> object:
    paths, stack = [], [((), tree)]
    while stack:
        where, node = stack.pop()
        paths.append(where)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        stack += [((*where, k), v) for k, v in items]
    where = data.draw(st.sampled_from(paths[1:] or [()]))
    if not where:
        return data.draw(json_values)
    node = tree
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = data.draw(json_values)
    return tree


# eight examples of each kind (a render per example): one test per kind, so they spread over workers
@pytest.mark.parametrize("kind", ["summary", "trials", "baseline", "events", "expect"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_stored_file_kind_through_every_reader_is_read_or_one_line_naming_it(config, saved_baseline,
                                                                                   tmp_path_factory, kind, data):
    work = tmp_path_factory.mktemp("fuzz") / config.name
    shutil.copytree(config, work)
    run = sorted(p for p in work.iterdir() if p.is_dir())[-1]
    set_status(run, "interrupted")  # so that --resume reads it too
    baseline_file = work.parent / "baseline.json"
    baseline_file.write_text(json.dumps(saved_baseline))
    if kind == "summary":
        target = run / "summary.json"
        text = target.read_text()
        damaged = data.draw(st.one_of(st.just(text[: data.draw(st.integers(0, len(text)))]),
                                      st.just(json.dumps(_replace_somewhere(data, json.loads(text)), allow_nan=True))))
        target.write_text(damaged)
    elif kind == "trials":
        target = run / "trials.csv"
        text = target.read_text()
        at = data.draw(st.integers(0, len(text)))
        target.write_text(text[:at] + data.draw(st.text(max_size=10)) + text[at + data.draw(st.integers(0, 5)):])
    elif kind == "baseline":
        target = baseline_file
        target.write_text(json.dumps(_replace_somewhere(data, json.loads(target.read_text())), allow_nan=True))
    elif kind == "events":
        target = next((run / "events").glob("*-drain-delivered.csv.gz"))
        raw = gzip.decompress(target.read_bytes())
        at = data.draw(st.integers(0, len(raw)))
        cut = raw[:at] + data.draw(st.binary(max_size=8))
        target.write_bytes(gzip.compress(cut) if data.draw(st.booleans()) else cut)
    else:
        target = work.parent / "expect.json"
        target.write_text(json.dumps(data.draw(json_values), allow_nan=True))
        readers = [lambda: inputs.expectations(str(target), {})]
    if kind != "expect":
        readers = _readers(work, run, baseline_file, plots=kind != "baseline")  # no plot reads a baseline
    for reader in readers:
        try:
            reader()
        except ValueError as exc:  # StoredFileError, BadInput: one line, naming the file that is wrong
            message = str(exc)
            assert "\n" not in message, message
            assert str(target) in message or str(target.parent) in message or target.name in message, (kind, message)
