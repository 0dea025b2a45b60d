"""Signals sent to a real nflog run (`pytest scenarios/ --backend nflog`) during calibration, a
burst, a drain and a sustained trial: nothing of the run remains (namespace with its nft table
and NFLOG group, sender process); SIGINT and SIGTERM leave a report marked interrupted; after
SIGKILL the sender dies with its parent and the next run removes the namespace and says so."""
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from platforms import needs_nflog
from session_runs import scenario_cmd, start, summaries, wait_for_phase

pytestmark = [needs_nflog, pytest.mark.root, pytest.mark.realtime, pytest.mark.subprocess]

# the scenario that passes through each phase soonest
SELECT = {"calibration": "burst_capacity", "burst": "burst_capacity", "drain": "queue_limit_matches",
          "sustained": "ndr_below_callback_rate and 500us"}
NETNS = Path("/var/run/netns")


def namespaces_of(pid: int, settle_s: float = 0.5) -> list[str]:
    """The run's namespaces. Another run's `ip netns add` remounts the folder, which can hide its
    entries for a moment, so the answer is the union of what is seen over `settle_s`."""
    seen: set[str] = set()
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        if NETNS.is_dir():
            seen |= {n for n in os.listdir(NETNS) if n.startswith(f"wfpcap-{pid}-")}
        time.sleep(0.02)
    return sorted(seen)


def sender_children(pid: int) -> list[int]:
    """Children of `pid` that multiprocessing spawned (the sender process; not its resource tracker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                out.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True  # dead, waiting for its (dead) parent's reaper
        except OSError:
            return True
        time.sleep(0.05)
    return False


# Phases that may end before a signal lands are held there (WFPCAP_HOLD_AT): calibration lasts about a
# second and the drain is one trial, the last of its run. Burst and sustained are waited for at their
# first trial and signalled at once: more trials of the same phase follow, so the signal lands inside
# the phase, in a trial or between two, without a hold (a real trial in flight).
HELD = {"calibration", "drain"}


def started_in(tmp_path: Path, phase: str):
    live = tmp_path / "live"
    child = start(scenario_cmd(tmp_path / "reports", "--backend", "nflog", "-k", SELECT[phase]), live,
                  hold=phase if phase in HELD else None)
    # namespace and sender exist from the platform's opening, before the run registers
    wait_for_phase(child, live, "calibration" if phase == "calibration" else None, timeout=240)
    senders = sender_children(child.pid)
    names = namespaces_of(child.pid)
    assert names and senders, (names, senders)
    if phase != "calibration":
        wait_for_phase(child, live, phase, timeout=240)
    return child, live, names, senders


PHASES = ["calibration", "burst", "drain", "sustained"]
CASES = [("graceful", signal.SIGINT), ("graceful", signal.SIGTERM), ("kill", signal.SIGKILL)]


@pytest.fixture(scope="module")
def batches() -> dict:
    """phase -> its cases' outcomes, filled as the tests come to each phase."""
    return {}


@pytest.fixture
def outcomes(batches, tmp_path_factory, phase):
    """The three cases of a phase, run at once when its first test asks (alone, the module's twelve
    take ~6 min one after another; a phase at a time keeps each test's setup inside the per-test
    budget): (kind, signal) -> None when it passed, else the exception its checks raised."""
    if phase not in batches:
        def one(case):
            kind, signum = case
            try:
                (graceful if kind == "graceful" else killed)(tmp_path_factory.mktemp(f"{kind}-{phase}-{int(signum)}"),
                                                             phase, signum)
            except BaseException as exc:  # reported by the case's own test
                return exc
            return None

        with ThreadPoolExecutor(len(CASES)) as pool:
            batches[phase] = dict(zip(CASES, pool.map(one, CASES)))
    return batches[phase]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_leave_nothing_and_a_report_marked_interrupted(outcomes, phase, signum):
    if (error := outcomes[("graceful", signum)]) is not None:
        raise error


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_the_sender_dies_with_the_run_and_the_next_run_removes_the_rest(outcomes, phase):
    if (error := outcomes[("kill", signal.SIGKILL)]) is not None:
        raise error


def graceful(tmp_path: Path, phase: str, signum: int) -> None:
    child, live, names, senders = started_in(tmp_path, phase)
    child.send_signal(signum)
    t0 = time.monotonic()
    box: dict = {}
    waiter = threading.Thread(target=lambda: box.update(result=child.communicate(timeout=90)))
    waiter.start()
    # the platform is closed first (namespace, table, group, sender), then the report is rendered:
    # what the run holds of the system must go at once; the report may take its time on a busy machine
    while namespaces_of(child.pid, settle_s=0.05) and time.monotonic() - t0 < 15:
        time.sleep(0.05)
    released_s = time.monotonic() - t0
    waiter.join()
    out, err = box["result"]
    assert released_s < 15, f"the namespace outlived the signal by {released_s:.1f} s"
    assert child.returncode == 128 + signum, (out[-1500:], err[-1500:])
    assert namespaces_of(child.pid) == []                     # with it the nft table and the NFLOG group
    assert all(gone(p) for p in senders)
    assert "Traceback" not in err
    [path] = summaries(tmp_path / "reports")
    s = json.loads(path.read_text())
    assert s["run"]["status"] == "interrupted", s["run"]
    assert s["run"]["interrupted_at"]["experiment"] == phase
    assert s["run"]["detail"].startswith(f"{signal.Signals(signum).name} during {phase}")
    assert "This run is not complete" in path.with_name("report.html").read_text()


def killed(tmp_path: Path, phase: str, signum: int) -> None:
    child, live, names, senders = started_in(tmp_path, phase)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"the run ended before the signal (rc {child.returncode})"
    assert all(gone(p) for p in senders), "the sender outlived its parent"
    # a killed run cannot clean up after itself (a run starting meanwhile, e.g. a concurrent case,
    # may already have removed what it left)
    assert set(namespaces_of(child.pid)) <= set(names)
    # the next run removes what the dead one left, says so, and is itself interrupted at once
    following = start(scenario_cmd(tmp_path / "next", "--backend", "nflog", "-k", SELECT["calibration"]), live,
                      hold="calibration")
    wait_for_phase(following, live, "calibration", timeout=120)
    following.send_signal(signal.SIGINT)
    out, err = following.communicate(timeout=60)
    assert namespaces_of(child.pid) == []
    assert f"run pid {child.pid} (nflog) ended without cleaning up" in out, out[-3000:]
    # the namespace is removed by the first nflog run that starts (on a shared machine that may be
    # another one); when it was this one, it says so
    said = [name for name in names if f"removed namespace {name}" in out]
    assert said == names or not said
    assert not (live / f"{child.pid}.json").exists()
    dead = json.loads(summaries(tmp_path / "reports")[0].read_text())
    assert dead["run"]["status"] == "running"               # on disk: never finished
