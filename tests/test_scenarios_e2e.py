"""The main job as a user runs it: `pytest scenarios/` writes a report, passes on matching
expectations and fails, naming measured and expected values, on a what-if that disagrees."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.subprocess


def run_scenarios(tmp_path, *extra):
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
           "--report-dir", str(tmp_path / "reports"), "--machine-label", "e2e", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


def only_summary(tmp_path):
    found = list((tmp_path / "reports").glob("*/*/summary.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def test_what_if_with_matching_expectations_passes(tmp_path):
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"queue_limit": 128, "system_buffer": 4000, "system_buffer_tolerance": 0.01}))
    p = run_scenarios(tmp_path, "--model-param", "queue_limit=128", "--model-param", "system_buffer=4000",
                      "--expect", str(expect), "-k", "queue or buffer or burst")
    assert p.returncode == 0, p.stdout[-3000:]
    s = only_summary(tmp_path)
    assert s["estimates"]["queue_limit"]["value"] == 128
    assert s["estimates"]["buffer_depth"]["value"] == 4000
    assert s["fingerprint"]["stable"]["platform"]["model_params"]["queue_limit"] == 128
    assert (Path(s and next((tmp_path / "reports").glob("*/*"))) / "report.html").exists()


def test_disagreeing_expectation_fails_with_values_and_still_reports(tmp_path):
    p = run_scenarios(tmp_path, "--model-param", "queue_limit=100", "-k", "queue_limit")
    assert p.returncode == 1
    assert "measured queue limit 100" in p.stdout and "expected 256" in p.stdout
    s = only_summary(tmp_path)
    assert s["checks"][0]["passed"] is False
    assert (next((tmp_path / "reports").glob("*/*")) / "report.html").exists()


def test_bad_option_is_one_clear_line(tmp_path):
    p = run_scenarios(tmp_path, "--model-param", "queue_limit=lots")
    assert p.returncode == 2
    assert "wfpcap: model parameter queue_limit needs a whole number" in p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
