"""The Windows workflow: valid YAML, the runner/Python matrix, reports uploaded, one fleet page."""
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "windows.yml"


def load():
    return yaml.safe_load(WORKFLOW.read_text())


def step(job, name):
    return next(s for s in job["steps"] if s.get("name") == name)


def test_matrix_covers_runners_and_pythons():
    job = load()["jobs"]["measure"]
    matrix = job["strategy"]["matrix"]
    assert set(matrix["os"]) == {"windows-2022", "windows-2025"}
    assert set(matrix["python"]) == {"3.11", "3.12"}
    assert job["runs-on"] == "${{ matrix.os }}"
    commands = " ".join(step.get("run", "") for step in job["steps"])
    assert "pytest scenarios/ --backend wfp" in commands


def test_measure_writes_junit_live_progress_and_the_headline_and_gates_on_a_checked_in_baseline():
    job = load()["jobs"]["measure"]
    measure = step(job, "Measure the WFP net-event path")
    assert measure["shell"] == "bash"
    assert " -v" in measure["run"] and '--junitxml "reports/junit-$CONFIG.xml"' in measure["run"]
    assert '--baseline "baselines/$CONFIG.json"' in measure["run"]
    summary = step(job, "Headline into the job summary")
    assert summary["if"] == "always()" and "headline.md >> \"$GITHUB_STEP_SUMMARY\"" in summary["run"]


def test_reports_are_uploaded_even_when_a_scenario_fails_and_then_compared():
    jobs = load()["jobs"]
    upload = [s for s in jobs["measure"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload and upload[0]["if"] == "always()" and upload[0]["with"]["path"] == "reports/"
    compare = jobs["compare"]
    assert compare["needs"] == "measure"
    assert any(s.get("uses", "").startswith("actions/download-artifact") for s in compare["steps"])
    fleet = step(compare, "Fleet page")["run"]
    assert "wfpcap compare all-reports/ --out fleet.md --html fleet.html" in fleet
    assert 'cat fleet.md >> "$GITHUB_STEP_SUMMARY"' in fleet
    artifact = [s for s in compare["steps"] if s.get("uses", "").startswith("actions/upload-artifact")][0]
    assert artifact["with"]["path"].split() == ["fleet.html", "fleet.md", "all-reports/"]
