"""The Windows workflow: valid YAML, the runner/Python matrix, reports uploaded, one fleet page."""
import os
import subprocess
import sys
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


def compare_step(workdir: Path) -> subprocess.CompletedProcess:
    """The compare job's script, run as the runner would (bash, a step summary file)."""
    step = next(s for s in load()["jobs"]["compare"]["steps"] if "wfpcap compare" in s.get("run", ""))
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(workdir / "summary.md"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workdir, env=env, capture_output=True, text=True)


def test_compare_says_clearly_when_no_report_arrived(tmp_path):
    done = compare_step(tmp_path)  # all-reports/ does not even exist: no artifact was uploaded
    assert done.returncode == 1
    assert "No capacity report arrived" in done.stdout and "::error::" in done.stdout
    assert "## No capacity report arrived" in (tmp_path / "summary.md").read_text()
    download = next(s for s in load()["jobs"]["compare"]["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["continue-on-error"] is True  # a missing artifact is reported by the step above


def test_compare_lays_out_the_reports_that_arrived(tmp_path):
    from stored_runs import real_run
    real_run(tmp_path / "all-reports", label="runner-a")
    done = compare_step(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 report(s) arrived" in done.stdout and (tmp_path / "fleet.md").exists() and (tmp_path / "fleet.html").exists()


def test_doctor_runs_first_and_the_diagnostics_bundle_is_uploaded_whatever_happened():
    steps = load()["jobs"]["measure"]["steps"]
    names = [s.get("name") for s in steps]
    doctor = step(load()["jobs"]["measure"], "Doctor")
    assert "wfpcap doctor --out diagnostics/doctor.txt" in doctor["run"] and "if" not in doctor
    assert names.index("Doctor") < names.index("Measure the WFP net-event path")
    assert names.index("Install") < names.index("Doctor")
    bundle = step(load()["jobs"]["measure"], "Diagnostics bundle")
    assert bundle["if"] == "always()" and names.index("Diagnostics bundle") > names.index("Measure the WFP net-event path")
    for wanted in ("diagnostics/doctor.txt", "netsh wfp show state file=diagnostics/", "netsh wfp show netevents file=diagnostics/",
                   "Get-Service BFE", "Copy-Item -Recurse -Force reports diagnostics/reports"):
        assert wanted in bundle["run"], wanted
    upload = step(load()["jobs"]["measure"], "Upload the diagnostics bundle")
    assert upload["if"] == "always()" and upload["with"]["path"] == "diagnostics/"
    assert upload["uses"].startswith("actions/upload-artifact") and names.index("Upload the diagnostics bundle") > names.index("Diagnostics bundle")
