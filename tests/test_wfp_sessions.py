"""Whether the run that left the net-event options changed is still alive: told by its pid and its
process's creation time, cross-checked with the engine's sessions (FwpmSessionEnum0), never by
whether its session key is refused. The fake keeps sessions in one registry for all its processes,
and both undocumented behaviours are selectable: a duplicate key refused or accepted, a dead
process's session lingering or not."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.platforms.wfp.api import Library, WfpError
from harness.platforms.wfp.engine import Session, open_sessions
from harness.platforms.wfp.kernel32 import Kernel32
from harness.platforms.wfp.options import holder_alive

ROOT = Path(__file__).resolve().parents[1]
KEY = "0b5e5510-0000-4000-8000-00000000abcd"

HOLD_A_SESSION = """
import sys
from harness.platforms.wfp.api import Library
from harness.platforms.wfp.engine import Session
Session(Library(sys.argv[1]), dynamic=False, name="holder", key=sys.argv[2])
print("open", flush=True)
sys.stdin.read()
"""

CHANGE_THE_KEYWORDS = """
import sys
from harness.platforms.wfp.api import Library
from harness.platforms.wfp.options import EngineOptions
o = EngineOptions(Library(sys.argv[1]))
o.ensure(1, 0x10)  # FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS += CLASSIFY_ALLOW
print("changed", flush=True)
sys.stdin.read()
"""

START_AGAIN = """
import json, sys
from harness.platforms.base import PlatformUnavailable
from harness.platforms.wfp.api import Library
from harness.platforms.wfp.options import EngineOptions
try:
    o = EngineOptions(Library(sys.argv[1]))
except PlatformUnavailable as exc:
    print(json.dumps({"refused": str(exc)}))
else:
    print(json.dumps({"restored": o.restored}))
    o.close()
"""


@pytest.fixture()
def machine(fake, tmp_path):
    """The fake's processes on one machine: engine options and sessions shared through files, both
    session behaviours chosen per test (set here for this process, passed to the children)."""
    path, dll = fake
    registry = tmp_path / "sessions"
    dll.FakeSetSessionRegistry(str(registry).encode())
    options = tmp_path / "bfe-options"
    options.write_text("1\n0\n0\n0\n0\n0\n")
    env = {**os.environ, "WFPCAP_FAKE_SESSION_DIR": str(registry), "WFPCAP_FAKE_OPTIONS_FILE": str(options),
           "WFPCAP_STATE_DIR": str(tmp_path / "state")}

    def rules(accept_duplicates: int, linger: int) -> dict:
        dll.FakeSetSessionRules(accept_duplicates, linger)
        env.update(WFPCAP_FAKE_ACCEPT_DUPLICATE_KEYS=str(accept_duplicates), WFPCAP_FAKE_SESSIONS_LINGER=str(linger))
        return env

    yield path, dll, rules, options
    dll.FakeSetSessionRules(0, 0)
    default = f"{os.environ.get('TMPDIR') or '/tmp'}/wfpcap-fake-sessions-{os.getuid()}"  # as the fake's own default
    dll.FakeSetSessionRegistry((os.environ.get("WFPCAP_FAKE_SESSION_DIR") or default).encode())


def child(script: str, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def start_again(path: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", START_AGAIN, path], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
@pytest.mark.parametrize("accept_duplicates, linger", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_the_fake_keeps_sessions_across_processes_both_ways(machine, accept_duplicates, linger):
    path, dll, rules, _ = machine
    env = rules(accept_duplicates, linger)
    lib = Library(path)
    holder = child(HOLD_A_SESSION, env, path, KEY)
    try:
        assert holder.stdout.readline().strip() == "open"
        mine = Session(lib, dynamic=False, name="test")
        try:
            assert (KEY, holder.pid) in open_sessions(lib, mine)  # another process's session, with its pid
            if accept_duplicates:
                Session(lib, dynamic=False, name="same key", key=KEY).close()
            else:
                with pytest.raises(WfpError, match="FWP_E_ALREADY_EXISTS"):
                    Session(lib, dynamic=False, name="same key", key=KEY)
            holder.kill()
            holder.wait()
            listed = [k for k, _ in open_sessions(lib, mine)]
            assert (KEY in listed) == bool(linger)  # a dead process's session lingers, or is gone
            if linger and not accept_duplicates:
                with pytest.raises(WfpError, match="FWP_E_ALREADY_EXISTS"):
                    Session(lib, dynamic=False, name="same key", key=KEY)
            else:
                Session(lib, dynamic=False, name="same key", key=KEY).close()
        finally:
            mine.close()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.subprocess
@pytest.mark.parametrize("accept_duplicates, linger", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_a_live_run_is_never_restored_over_and_a_killed_one_always_is(machine, accept_duplicates, linger):
    """Duplicates accepted: a second start used to restore a live run's options. A dead run's
    session lingering: its options used to be refused for good."""
    path, dll, rules, options = machine
    env = rules(accept_duplicates, linger)
    first = child(CHANGE_THE_KEYWORDS, env, path)
    try:
        assert first.stdout.readline().strip() == "changed" and options.read_text().split()[1] == "16"
        second = start_again(path, env)
        assert f"another wfpcap run (pid {first.pid}) holds the net-event options" in second.get("refused", ""), second
        assert f"pid {first.pid} is still running (the same process: created " in second["refused"]
        assert options.read_text().split()[1] == "16"  # the live run's options are left as it set them
    finally:
        first.kill()  # TerminateProcess: no handler, no atexit
        first.wait()
    third = start_again(path, env)
    restored = third.get("restored", {}).get("net_event_match_any_keywords")
    assert restored and (restored["left_by_run"], restored["restored_to"]) == (16, 0), third
    assert restored["run"] == f"pid {first.pid} has exited" + ("; its session is still open in the engine (it lingers)"
                                                             if linger else "")
    assert options.read_text().split()[1] == "0"


@pytest.mark.subprocess
def test_a_state_file_whose_pid_is_another_process_now_is_acted_on(machine, tmp_path):
    """Windows reuses pids soon: a live process under the recorded pid but with another creation
    time is not the run."""
    path, dll, rules, options = machine
    env = rules(0, 0)
    state = tmp_path / "state"
    state.mkdir()
    me = Kernel32(path).process(os.getpid())
    (state / "net-event-options.json").write_text(json.dumps({
        "session_key": KEY, "pid": os.getpid(), "created": str(int(me[1]) - 10_000_000),
        "found": {"1": 0}, "set": {"1": 16}}))
    options.write_text("1\n16\n0\n0\n0\n0\n")
    restored = start_again(path, env)["restored"]["net_event_match_any_keywords"]
    assert restored["restored_to"] == 0 and restored["run"].startswith(f"pid {os.getpid()} is another process now")


@pytest.mark.parametrize("process, sessions, alive, said", [
    ((True, "100"), None, True, "pid 7 is still running (the same process: created 100)"),
    ((True, "101"), [(KEY, 7)], False, "pid 7 is another process now (created 101, the run's was 100); its session"),
    ((False, None), [(KEY, 7)], False, "pid 7 has exited; its session is still open in the engine (it lingers)"),
    ((False, None), [], False, "pid 7 has exited"),
    ((True, None), [(KEY, 7)], True, "pid 7 is running and still holds the run's session"),
    ((True, None), [(KEY, 8)], False, "pid 7 is running but holds no session"),
    ((True, None), None, True, "pid 7 is running and could not be told apart from the run"),
])
def test_who_holds_the_options_is_told_by_the_process_then_by_the_engines_sessions(process, sessions, alive, said):
    verdict = holder_alive({"pid": 7, "created": "100", "session_key": KEY}, process, sessions)
    assert verdict[0] is alive and verdict[1].startswith(said), verdict
    if process[1] is None:  # a state file of an older harness has no creation time: the same without it
        assert holder_alive({"pid": 7, "session_key": KEY}, process, sessions)[0] is alive
