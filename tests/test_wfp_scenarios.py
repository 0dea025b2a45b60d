"""`pytest scenarios/ --backend wfp` as a Windows runner runs it, here against the fake fwpuclnt
(its defaults: a 256-event next queue, a 16,500-event system buffer) in a network namespace of
its own, with the real sender process; and a named backend that cannot open fails the session."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evidence import check_fake_run
from netns import in_fresh_netns
from platforms import fake_wfp_library

ROOT = Path(__file__).resolve().parents[1]


def scenarios(tmp_path, env, *extra, timeout=600):
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
           "--backend", "wfp", "--report-dir", str(tmp_path / "reports"), "--machine-label", "fake", *extra]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WFPCAP_")},
           "WFPCAP_STATE_DIR": str(tmp_path / "state"), **env}
    return subprocess.run(in_fresh_netns(cmd), capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


# 12. A backend named explicitly that cannot open skipped every scenario: a green job that measured nothing.
@pytest.mark.root
@pytest.mark.subprocess
def test_a_named_backend_that_cannot_open_fails_the_session_with_the_reason(tmp_path):
    nothing = scenarios(tmp_path, {})  # no fwpuclnt on Linux
    assert nothing.returncode == 2, nothing.stdout[-2000:]
    assert "wfpcap: backend wfp cannot run here: doctor: FAILED at 'elevated': " in nothing.stdout + nothing.stderr
    assert "needs Windows" in nothing.stdout + nothing.stderr
    user = scenarios(tmp_path, {"WFPCAP_FWPUCLNT": fake_wfp_library(), "WFPCAP_FAKE_ELEVATED": "0"})
    assert user.returncode == 2, user.stdout[-2000:]
    assert "doctor: FAILED at 'elevated': IsUserAnAdmin: no" in user.stdout + user.stderr


# Issue 8: the doctor is the suite's first step; a failed check stops the session at once with its line.
@pytest.mark.root
@pytest.mark.subprocess
def test_a_failed_doctor_stops_the_session_at_once_naming_the_check(tmp_path):
    dead = scenarios(tmp_path, {"WFPCAP_FWPUCLNT": fake_wfp_library(), "WFPCAP_FAKE_DELIVER_AT_MOST": "0"}, timeout=120)
    out = dead.stdout + dead.stderr
    assert dead.returncode == 2, out[-2000:]
    assert "wfpcap: backend wfp cannot run here: doctor: FAILED at 'canary event': no event of filter" in out
    assert "PASS  elevated" in out and "FAIL  canary event" in out
    assert " passed" not in out and " failed" not in out  # no scenario ran


@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.subprocess
@pytest.mark.slow
def test_the_scenarios_measure_the_fakes_queue_and_buffer(tmp_path):
    done = scenarios(tmp_path, {"WFPCAP_FWPUCLNT": fake_wfp_library()}, timeout=3600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    run = next((tmp_path / "reports").glob("*/*/summary.json")).parent
    check_fake_run(run)  # Q, B, capacity, NDR <= 1/cost, no estimate on an untrusted trial
    summary = json.loads((run / "summary.json").read_text())
    probe = summary["experiments"]["probe"]
    assert len(probe) == 8 and all("error" not in case for case in probe), probe
    # UDP sends are classified per new tuple at ALE and per packet below it (documented); whether a
    # raw socket's IP_HDRINCL datagrams are classified at ALE is not, so raw cases are only recorded
    assert all(case["events"] == case["sent"] for case in probe if case["sender"] == "udp"), probe
    # issue 8: the doctor ran first and passed; every trial was alive and counted by the store; the
    # machine's facts are recorded and lead the report
    assert summary["experiments"]["doctor"]["ok"] is True
    assert summary["experiments"]["allow_visibility"]["cases"]["with CLASSIFY_ALLOW"]["events"].get("CLASSIFY_ALLOW")
    assert "template conditions honoured: IP_PROTOCOL" in summary["experiments"]["template_matrix"]["summary"]
    import pandas as pd
    trials = pd.read_csv(next((tmp_path / "reports").glob("*/*/trials.csv")))
    assert (trials["subscription"] == "alive").all() and trials["recorded"].notna().all()
    assert (trials["loss_at"].str.contains("generation") == False).all()  # noqa: E712 (the fake makes every event)
