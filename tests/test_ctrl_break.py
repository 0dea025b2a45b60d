"""Ctrl-Break (SIGBREAK, Windows only) stops a scenario run the way Ctrl-C does: the run is marked
interrupted and ends, instead of the wfp options' handler raising SystemExit inside one test while
the session measures on. SIGUSR1 stands in for SIGBREAK (tests/windows_signals.py)."""
import json
import signal
from pathlib import Path

import pytest

from session_runs import scenario_cmd, small_model_args, start, summaries, wait_for_phase

TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.subprocess


def test_ctrl_break_stops_the_run_like_ctrl_c(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    live = tmp_path / "live"
    child = start(scenario_cmd(tmp_path / "r", "-p", "windows_signals", *small_model_args(tmp_path)), live)
    wait_for_phase(child, live, "sustained", min_trial=3)
    child.send_signal(signal.SIGUSR1)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGUSR1, (out[-2000:], err[-2000:])
    [path] = summaries(tmp_path / "r")
    run = json.loads(path.read_text())["run"]
    assert run["status"] == "interrupted" and run["detail"].startswith("SIGUSR1 during sustained"), run
    assert run["scenarios"]["not_finished"] and "wfpcap run: interrupted" in out
