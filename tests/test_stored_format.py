"""Runs stored before summary.json had a "format" (format 1, checked in under tests/data/format1:
model, nflog and fake-wfp runs, complete, subset and interrupted) read, compare, make history,
save a baseline and resume exactly as the harness of their day did (tests/data/format1/
expected.json was written by that harness from these very files)."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from cli_runs import wfpcap
from harness.judge.spread import readings
from harness.results.read import read_summary
from harness.results.records import FORMAT_VERSION, RunSummary
from harness.results.runs import load_run
from session_runs import resume_cmd, run

DATA = Path(__file__).parent / "data" / "format1"
EXPECTED = json.loads((DATA / "expected.json").read_text())
RUNS = sorted(str(p.relative_to(DATA / "reports")) for p in (DATA / "reports").glob("*/*") if (p / "summary.json").exists())


@pytest.fixture()
def reports(tmp_path: Path) -> Path:
    """A copy of the stored runs (the commands write pages into their folders)."""
    out = tmp_path / "scratch"
    shutil.copytree(DATA / "reports", out)
    return out


def cli(*args: str) -> dict:
    p = wfpcap(*args)
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def as_of_then(result: dict, reports: Path) -> dict:
    """Paths as the expected results named them (written from /tmp/golden/scratch)."""
    return {k: v.replace(str(reports), "/tmp/golden/scratch") if isinstance(v, str) else v for k, v in result.items()}


@pytest.mark.parametrize("name", RUNS)
def test_a_format_1_summary_reads_to_the_same_readings(name):
    run = load_run(DATA / "reports" / name)
    assert run.summary.format == 1 and "format" not in json.loads((run.path / "summary.json").read_text())
    found = {k: asdict(v) for k, v in readings(run.summary, run.trials()).items()}
    assert found == EXPECTED["readings"][name]


@pytest.mark.parametrize("name", RUNS)
def test_a_format_1_summary_round_trips_through_the_records(name):
    """Read and written again, a stored summary keeps every key and value (only the format and the
    buffer expectation's name move on), so resuming or re-judging an old run loses nothing."""
    path = DATA / "reports" / name / "summary.json"
    stored = json.loads(path.read_text())
    again = read_summary(path).to_json()
    assert again.pop("format") == 1
    expected = stored.get("experiments", {}).get("expected")
    if expected is not None:
        renamed = again["experiments"]["expected"]
        assert renamed == {"queue_limit": expected["queue_limit"], "buffer_depth": expected["system_buffer"],
                           "buffer_depth_tolerance": expected["system_buffer_tolerance"]}
        again["experiments"]["expected"] = expected
    for row in again["estimates"].get("ndr", []):  # both searches' first failing rate have one name now
        if "first_lossy_rate_per_s" in json.dumps(stored):
            row["first_lossy_rate_per_s"] = row.pop("first_overloaded_rate_per_s")
    assert again == stored


def test_compare_of_format_1_runs_is_as_before(reports):
    assert as_of_then(cli("compare", str(reports)), reports) == EXPECTED["compare"]
    assert as_of_then(cli("compare", str(reports), "--reference", "C2", "--fail-if-worse", "5"), reports) == \
        EXPECTED["compare_ref"]


def test_history_of_format_1_runs_is_as_before(reports):
    config = reports / "golden-model-5393e39f11"
    assert as_of_then(cli("history", str(config)), reports) == EXPECTED["history"]
    assert (config / "history.md").read_text() == EXPECTED["history_md"]


def test_a_baseline_saved_from_format_1_runs_is_as_before(reports):
    out = reports / "b.json"
    assert cli("baseline", "save", str(reports / "golden-model-5393e39f11"), "--out", str(out), "--last", "2")["rc"] == 0
    saved = as_of_then(json.loads(out.read_text()), reports)
    saved.pop("saved_utc")
    assert saved == EXPECTED["baseline"]


@pytest.mark.subprocess
def test_a_format_1_interrupted_run_resumes_to_what_its_uninterrupted_twin_measured(reports, tmp_path):
    """The interrupted model run (SIGTERM in the sustained experiment) continued by today's harness
    measures, trial for trial and estimate for estimate, what the complete run of that day did."""
    config = reports / "golden-model-5393e39f11"
    interrupted, complete = config / "20261207T183933Z", config / "20261207T183844Z"
    p = run(resume_cmd(interrupted), tmp_path / "live")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    resumed, twin = read_summary(interrupted / "summary.json"), read_summary(complete / "summary.json")
    assert resumed.format == FORMAT_VERSION and resumed.status == "complete"
    assert _measured(resumed) == _measured(twin)
    assert (interrupted / "trials.csv").read_text() == (complete / "trials.csv").read_text()


def _measured(summary: RunSummary) -> dict:
    out = summary.to_json()
    return {"estimates": out["estimates"], "checks": out["checks"], "trials": out["trials"],
            "experiments": {k: v for k, v in out["experiments"].items() if k != "expected"}}
