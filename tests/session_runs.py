"""Helpers for tests that run `pytest scenarios/` as a user would, in a child process, and watch it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a small model (capacity ~2,100) so that a whole campaign takes seconds
SMALL_MODEL = ("--model-param", "system_buffer=2000", "--model-param", "queue_limit=64")


def scenario_cmd(report_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
            "--report-dir", str(report_dir), "--machine-label", "e2e", *extra]


def resume_cmd(run_dir: Path, *extra: str) -> list[str]:
    """A resumed run takes every option from its folder."""
    return [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
            "--resume", str(run_dir), *extra]


def small_model_args(tmp_path: Path) -> tuple[str, ...]:
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"queue_limit": 64, "system_buffer": 2000}))
    return (*SMALL_MODEL, "--expect", str(expect))


def env(live_dir: Path, hold: str | None = None) -> dict[str, str]:
    """`hold`: the run waits where it enters this experiment until a signal ends it
    (harness/live_runs.py, WFPCAP_HOLD_AT), so that a short phase cannot end before the signal."""
    out = {**os.environ, "WFPCAP_LIVE_DIR": str(live_dir), "PYTHONUNBUFFERED": "1"}
    out.pop("WFPCAP_HOLD_AT", None)
    return {**out, "WFPCAP_HOLD_AT": hold} if hold else out


def start(cmd: list[str], live_dir: Path, hold: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env(live_dir, hold))


def run(cmd: list[str], live_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env(live_dir), timeout=timeout)


def wait_for_phase(proc: subprocess.Popen, live_dir: Path, experiment: str | None, min_trial: int = 0,
                   timeout: float = 300) -> dict:
    """Poll the live-run registry until the run is in `experiment` (at trial >= min_trial); with
    `experiment` None, until the run has registered (its platform is open by then)."""
    entry = live_dir / f"{proc.pid}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before reaching {experiment}: {proc.communicate()}")
        try:
            phase = json.loads(entry.read_text()).get("phase") or {}
        except (OSError, ValueError):
            time.sleep(0.01)
            continue
        if experiment is None:
            return phase
        if phase.get("experiment") == experiment and (phase.get("trial") or 0) >= min_trial:
            return phase
        time.sleep(0.01)
    raise AssertionError(f"run never reached {experiment}")


def summaries(report_dir: Path) -> list[Path]:
    return sorted(report_dir.glob("*/*/summary.json"))


def comparable(summary: dict) -> dict:
    """A summary without what differs between two runs of the same thing: timestamps and the
    machine's volatile facts (load, other live runs, resume notes)."""
    out = json.loads(json.dumps(summary))
    out["fingerprint"].pop("volatile", None)
    out["run"].pop("started_utc", None)
    out["run"].pop("ended_utc", None)
    return out
