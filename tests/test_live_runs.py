"""Which harness runs are alive: on Windows through kernel32 (OpenProcess, GetExitCodeProcess,
GetProcessTimes; here the fake's stand-ins over /proc, so the very same ctypes code runs), known
by pid and creation time, so that a killed run is reaped and a reused pid is not taken for it."""
import ctypes
import json
import subprocess
import sys
import time

import pytest

from harness import host, live_runs
from harness.platforms.wfp.kernel32 import Kernel32
from platforms import fake_wfp_library


@pytest.fixture()
def winsys():
    path = fake_wfp_library()
    ws = Kernel32(path)
    handles = ctypes.CDLL(path).FakeOpenProcessHandles
    yield ws
    assert handles() == 0, "process handles left open (CloseHandle)"


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_process_is_alive_with_a_stable_creation_time_and_dead_once_it_exits(winsys):
    child = _sleeper()
    try:
        running, created = winsys.process(child.pid)
        assert running and created is not None and winsys.process(child.pid) == (True, created)
        assert winsys.process(child.pid)[1] != winsys.process(live_runs.os.getpid())[1]
    finally:
        child.kill()
    deadline = time.monotonic() + 5
    while winsys.process(child.pid)[0] and time.monotonic() < deadline:  # exited, not yet reaped
        time.sleep(0.02)
    assert winsys.process(child.pid) == (False, None)
    child.wait()
    assert winsys.process(child.pid) == (False, None)  # gone: OpenProcess fails
    assert winsys.process(0) == (False, None)


@pytest.fixture()
def on_windows(winsys, monkeypatch, alone):
    """live_runs as it runs on Windows, kernel32 being the fake's stand-ins."""
    monkeypatch.setattr(host.sys, "platform", "win32")
    monkeypatch.setattr(host, "_kernel32", lambda: winsys)
    return alone


def _entry_of(live, pid: int, start: str | None) -> None:
    live.mkdir(parents=True, exist_ok=True)
    (live / f"{pid}.json").write_text(json.dumps({"pid": pid, "start": start, "backend": "wfp", "report": None,
                                                  "started_utc": "t", "phase": {}}))


def test_on_windows_a_killed_run_is_reaped_and_a_live_one_is_seen(on_windows, winsys):
    live_runs.register("wfp", None, "now")
    me = json.loads((on_windows / f"{live_runs.os.getpid()}.json").read_text())
    assert me["start"] == winsys.process(live_runs.os.getpid())[1]  # registered with its creation time
    running, dead = _sleeper(), _sleeper()
    try:
        _entry_of(on_windows, running.pid, winsys.process(running.pid)[1])
        _entry_of(on_windows, dead.pid, winsys.process(dead.pid)[1])
        dead.kill()
        dead.wait()
        assert [r.pid for r in live_runs.other_live_runs()] == [running.pid]
        assert live_runs.reap() == [f"run pid {dead.pid} (wfp) ended without cleaning up"]
        assert (on_windows / f"{running.pid}.json").exists() and not (on_windows / f"{dead.pid}.json").exists()
    finally:
        running.kill()
        running.wait()
        live_runs.unregister()


def test_on_windows_a_reused_pid_is_not_the_registered_run(on_windows, winsys):
    other = _sleeper()
    try:
        created = int(winsys.process(other.pid)[1])
        _entry_of(on_windows, other.pid, str(created - 10_000_000))  # the pid's earlier owner, 1 s older
        assert live_runs.other_live_runs() == []
        assert live_runs.reap() == [f"run pid {other.pid} (wfp) ended without cleaning up"]
    finally:
        other.kill()
        other.wait()


def test_the_registry_reads_entries_only_not_a_killed_runs_temporary_file(tmp_path, monkeypatch):
    """A run killed while it rewrote its entry leaves write_atomic's .<hex>.<pid>.json beside it:
    not a second entry (a second 'ended without cleaning up' line), and reaped with it."""
    monkeypatch.setenv("WFPCAP_LIVE_DIR", str(tmp_path))
    child = _sleeper()
    child.kill()
    child.wait()
    _entry_of(tmp_path, child.pid, "1")
    (tmp_path / f".0a1b2c3d.{child.pid}.json").write_text((tmp_path / f"{child.pid}.json").read_text())
    assert live_runs.reap() == [f"run pid {child.pid} (wfp) ended without cleaning up"]
    assert list(tmp_path.iterdir()) == []
