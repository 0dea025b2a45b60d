"""Which harness runs are live on this machine: two runs at once share the CPU, the loopback
path and the kernel, and each measures less than it would alone, so a run says when it had
company.

A run registers when its session starts (one small JSON file per process in a shared folder,
WFPCAP_LIVE_DIR or <tmp>/wfpcap-live-runs) and unregisters at its end; the file also says what
the run is doing (experiment, trial). Namespaces `wfpcap-<pid>-*` of live processes count too,
so nflog runs that never registered (a benchmark, a test) are seen as well.

    other_live_runs() -> list[LiveRun]   # every live harness run but this process
"""
from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.files import write_atomic
from harness.host import process_alive as alive
from harness.host import process_start

NETNS_DIR = Path("/var/run/netns")
NAMESPACE_RE = re.compile(r"^wfpcap-(\d+)-[0-9a-f]{6}$")  # harness/platforms/nflog/netns.py names


@dataclass(frozen=True)
class LiveRun:
    pid: int
    backend: str                 # "model", "nflog", "wfp"; "nflog" for a bare namespace
    started_utc: str | None = None
    report: str | None = None    # its run folder, when it registered
    phase: dict[str, Any] = field(default_factory=dict)  # {"experiment": ..., "trial": ...}
    source: str = "registry"     # "registry" or "namespace" (seen only by its namespace)

    def describe(self) -> str:
        where = f", in {self.phase.get('experiment')}" if self.phase.get("experiment") else ""
        return f"pid {self.pid} ({self.backend}{where}{', since ' + self.started_utc if self.started_utc else ''})"


def registry() -> Path:
    return Path(os.environ.get("WFPCAP_LIVE_DIR") or Path(tempfile.gettempdir()) / "wfpcap-live-runs")


def _entry_path(pid: int) -> Path:
    return registry() / f"{pid}.json"


def register(backend: str, report: str | None, started_utc: str) -> None:
    folder = registry()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(folder, 0o1777)  # shared by every user's runs, like /tmp
    except OSError:
        pass
    entry = {"pid": os.getpid(), "start": process_start(os.getpid()), "backend": backend, "report": report,
             "started_utc": started_utc, "host": socket.gethostname(), "phase": {}}
    write_atomic(_entry_path(os.getpid()), json.dumps(entry), durable=False)


HOLD_ENV = "WFPCAP_HOLD_AT"  # tests: "<experiment>" holds the run where it enters that experiment
HOLD_MAX_S = 300.0


def update_phase(phase: dict[str, Any]) -> None:
    """Say what this run is doing now (read by other runs and by tests that need a moment)."""
    path = _entry_path(os.getpid())
    try:
        entry = json.loads(path.read_text())
        entry["phase"] = {"experiment": phase.get("experiment"), "trial": phase.get("trial")}
        write_atomic(path, json.dumps(entry), durable=False)
    except (OSError, ValueError):
        return  # not registered (a bare campaign): nothing to update
    if phase.get("experiment") and os.environ.get(HOLD_ENV) == phase["experiment"]:
        _hold()


def checkpoint(name: str) -> None:
    """A moment of the run outside any experiment ("open": before the platform opens; "report":
    before the report is drawn), for tests that signal a run there: with WFPCAP_HOLD_AT=name the
    run says so in <registry>/<pid>.at-<name> and holds until a signal ends it."""
    if os.environ.get(HOLD_ENV) != name:
        return
    try:
        registry().mkdir(parents=True, exist_ok=True)
        (registry() / f"{os.getpid()}.at-{name}").touch()
    except OSError:
        pass
    _hold()


def _hold() -> None:
    """Wait here (after the registry says where) until a signal ends the run, at most HOLD_MAX_S.
    Tests that signal a run in a given phase set WFPCAP_HOLD_AT, so that a phase of one short
    trial (the drain) or a second (calibration) cannot end before the signal lands."""
    deadline = time.monotonic() + HOLD_MAX_S
    while time.monotonic() < deadline:
        time.sleep(0.05)


def unregister() -> None:
    try:
        _entry_path(os.getpid()).unlink()
    except OSError:
        pass


ENTRY_RE = re.compile(r"^\d+\.json$")  # <pid>.json; not the temporary files of write_atomic


def _entries() -> list[dict[str, Any]]:
    out = []
    for path in sorted(registry().glob("*.json")) if registry().is_dir() else []:
        if not ENTRY_RE.match(path.name):
            continue
        try:
            entry = json.loads(path.read_text())
            if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
                out.append({**entry, "_path": path})
        except (OSError, ValueError):
            continue
    return out


def _namespace_pids() -> set[int]:
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return set()
    return {int(m.group(1)) for m in map(NAMESPACE_RE.match, names) if m}


def other_live_runs() -> list[LiveRun]:
    """Every harness run alive on this machine except this process, registered or seen by its
    nflog namespace; sorted by pid."""
    me = os.getpid()
    runs: dict[int, LiveRun] = {}
    for e in _entries():
        if e["pid"] != me and alive(e["pid"], e.get("start")):
            runs[e["pid"]] = LiveRun(e["pid"], str(e.get("backend")), e.get("started_utc"), e.get("report"),
                                     e.get("phase") if isinstance(e.get("phase"), dict) else {})
    for pid in _namespace_pids():
        if pid != me and pid not in runs and alive(pid):
            runs[pid] = LiveRun(pid, "nflog", source="namespace")
    return [runs[p] for p in sorted(runs)]


def reap() -> list[str]:
    """Remove the entries of runs whose process is gone (killed: they could not unregister) and
    say, one line each, what they left."""
    said = []
    for e in _entries():
        if not alive(e["pid"], e.get("start")):
            try:
                e["_path"].unlink()
            except OSError:
                continue
            folder = f"; its run folder {e['report']} stays marked as never finished" if e.get("report") else ""
            said.append(f"run pid {e['pid']} ({e.get('backend')}) ended without cleaning up{folder}")
    for path in registry().glob(".*.json") if registry().is_dir() else []:
        # a run killed while it rewrote its entry leaves the temporary file: .<hex>.<pid>.json
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not alive(int(pid)):
            try:
                path.unlink()
            except OSError:
                pass
    return said


def as_dicts(runs: list[LiveRun]) -> list[dict[str, Any]]:
    return [asdict(r) for r in runs]
