"""The Windows workflow: valid YAML, the runner/Python matrix, reports uploaded, one comparison."""
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "windows.yml"


def load():
    return yaml.safe_load(WORKFLOW.read_text())


def test_matrix_covers_runners_and_pythons():
    job = load()["jobs"]["measure"]
    matrix = job["strategy"]["matrix"]
    assert set(matrix["os"]) == {"windows-2022", "windows-2025"}
    assert set(matrix["python"]) == {"3.11", "3.12"}
    assert job["runs-on"] == "${{ matrix.os }}"
    commands = " ".join(step.get("run", "") for step in job["steps"])
    assert "pytest scenarios/ --backend wfp" in commands


def test_reports_are_uploaded_even_when_a_scenario_fails_and_then_compared():
    jobs = load()["jobs"]
    upload = [s for s in jobs["measure"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload and upload[0]["if"] == "always()" and upload[0]["with"]["path"] == "reports/"
    compare = jobs["compare"]
    assert compare["needs"] == "measure"
    assert any("wfpcap compare" in s.get("run", "") for s in compare["steps"])
    assert any(s.get("uses", "").startswith("actions/download-artifact") for s in compare["steps"])
