"""The machine's net-event options: read first, changed only when a trial needs it, put back.

FWPM_ENGINE_COLLECT_NET_EVENTS and FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS are global and survive
reboots. A non-dynamic session reads them when the platform opens; `ensure` changes one only when
it differs, and `close` restores what was changed: on close, on an exception or Ctrl-C (the
platform is a context manager), at interpreter exit, and on SIGTERM/SIGBREAK where a handler runs
(its own, unless the caller has one: the scenario session's closes the platform).
On Windows a killed process (TerminateProcess, which is what os.kill and a cancelled CI job do)
runs no handler and no atexit. So before the first change the options found are written to a
state file; the next start finds it and restores what the killed run left changed (only options
still as that run set them), then removes it. Whether the run that wrote it is still alive is told
by its pid and its process's creation time (a reused pid is another process), cross-checked with
the engine's own list of sessions (FwpmSessionEnum0) where the creation time cannot be read. A
duplicate session key decides nothing: no Microsoft page says that BFE refuses one from another
process, nor when it ends the session of a process that died.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.platforms.base import PlatformUnavailable
from harness.platforms.wfp.api import Library, WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Session, open_sessions
from harness.platforms.wfp.kernel32 import Kernel32

OPTION_NAMES = {K["FWPM_ENGINE_COLLECT_NET_EVENTS"]: "collect_net_events",
                K["FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS"]: "net_event_match_any_keywords"}
STATE_FILE = "net-event-options.json"


def state_dir(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> Path:
    """WFPCAP_STATE_DIR, else machine-wide (the options are the machine's): %ProgramData%\\wfpcap on
    Windows, the temporary directory's wfpcap elsewhere (where only the tests' fake has options)."""
    if environ.get("WFPCAP_STATE_DIR"):
        return Path(environ["WFPCAP_STATE_DIR"])
    base = environ.get("ProgramData") if platform == "win32" else None
    return Path(base or tempfile.gettempdir()) / "wfpcap"


def holder_alive(state: Mapping[str, Any], process: tuple[bool, str | None],
                 sessions: list[tuple[str, int]] | None) -> tuple[bool, str]:
    """Is the run that wrote `state` (its pid, its process's creation time, the key of its options
    session) still alive, and how that was told. `process`: (running, creation time) of that pid
    now; `sessions`: (key, pid) of every session the engine has open, None where they could not be
    listed. The process decides: the pid running with the recorded creation time is that run; a
    pid that has exited, or is another process now (pids are reused quickly on Windows), is not,
    whatever the engine still lists under the run's key (a session of a dead process may linger:
    no Microsoft page says when BFE ends it). Only where the creation time cannot be told (another
    user's process, a state file without it) does the engine decide: the run's key open under that pid."""
    pid, created, key = state.get("pid"), state.get("created"), state.get("session_key")
    running, now = process
    lingers = "; its session is still open in the engine (it lingers)" if sessions and any(
        k == key for k, _ in sessions) else ""
    if not running:
        return False, f"pid {pid} has exited{lingers}"
    if created is not None and now is not None:
        if now == created:
            return True, f"pid {pid} is still running (the same process: created {created})"
        return False, f"pid {pid} is another process now (created {now}, the run's was {created}){lingers}"
    if sessions is None:  # cannot tell: rather refuse than put back a live run's options
        return True, f"pid {pid} is running and could not be told apart from the run (no creation time, no session list)"
    if any(k == key and p == pid for k, p in sessions):
        return True, f"pid {pid} is running and still holds the run's session {key}"
    return False, f"pid {pid} is running but holds no session {key}: another process now"


def this_process(lib: Library) -> tuple[int, str | None]:
    """(pid, creation time) of this process, as holder_alive() reads them for another."""
    return os.getpid(), Kernel32(lib.override).process(os.getpid())[1]


def restore_left_by_killed_run(lib: Library, path: Path | None = None) -> dict[str, Any]:
    """Put back the options that a run killed before it could restore them left changed; return
    what was done per option. Refuses while that run is still alive (holder_alive: its pid and
    creation time, cross-checked with the engine's sessions)."""
    path = path or state_dir() / STATE_FILE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
        left, found = state["set"], state["found"]
    except (OSError, ValueError, KeyError) as exc:
        raise PlatformUnavailable(f"cannot read the options state file {path} ({exc}): check the net-event "
                                  "options by hand (netsh wfp show options) and remove it") from None
    session = Session(lib, dynamic=False, name="wfpcap restore")
    done: dict[str, Any] = {}
    try:
        try:
            sessions: list[tuple[str, int]] | None = open_sessions(lib, session)
        except WfpError:
            sessions = None
        alive, how = holder_alive(state, Kernel32(lib.override).process(int(state.get("pid") or 0)), sessions)
        if alive:
            raise PlatformUnavailable(f"another wfpcap run (pid {state.get('pid')}) holds the net-event options "
                                      f"(state file {path}; {how}); wait for it to end")
        for text, value in left.items():
            option = int(text)
            now = session.get_option(option)
            if now == value:
                session.set_option(option, int(found[text]))
                done[OPTION_NAMES.get(option, text)] = {"left_by_run": value, "restored_to": int(found[text]), "run": how}
            else:  # changed again since then, by someone else: theirs now
                done[OPTION_NAMES.get(option, text)] = {"left_by_run": value, "found_now": now, "restored_to": None,
                                                        "run": how}
    finally:
        session.close()
    path.unlink()
    return done


class EngineOptions:
    """Reads the net-event options at start; `ensure` changes one only when it differs; `put_back`
    and `restore` put back what was changed, to its value at the change and only if it is still as
    this run left it. Restored on close, at interpreter exit, and on SIGTERM/SIGBREAK."""

    WATCHED = tuple(OPTION_NAMES)

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self.state_path = state_dir() / STATE_FILE
        self.restored = restore_left_by_killed_run(lib, self.state_path)
        self.session = Session(lib, dynamic=False, name="wfpcap options")
        try:
            self.found = {option: self.session.get_option(option) for option in self.WATCHED}
        except BaseException:
            self.session.close()
            raise
        self.left_alone: dict[str, dict[str, int]] = {}  # changed by someone else during the run: theirs
        self.changed: dict[int, int] = {}   # option -> value found
        self._set: dict[int, int] = {}      # option -> value set
        self._previous_handlers: dict[int, Any] = {}
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGBREAK"):
                sig = getattr(signal, name, None)
                # never over a handler of the caller's (the scenario session turns SIGTERM into
                # Ctrl-C, which closes the platform and with it these options)
                if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
                    self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.close()
        raise SystemExit(128 + signum)

    def _remember(self) -> None:
        """The state file, written before a change is made (atomically: a killed run leaves a whole one)."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(f".{os.getpid()}.tmp")
        pid, created = this_process(self.lib)
        tmp.write_text(json.dumps({
            "session_key": str(self.session.key), "pid": pid, "created": created,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "found": {str(o): v for o, v in self.changed.items()}, "set": {str(o): v for o, v in self._set.items()}}))
        os.replace(tmp, self.state_path)

    def ensure(self, option: int, value: int) -> None:
        now = self.session.get_option(option)
        if now == value:
            return
        first_change = option not in self.changed
        self.changed.setdefault(option, now)  # what to put back: the value at the change, not at open
        self._set[option] = value
        self._remember()  # before the change: a run killed right after it leaves what to undo
        try:
            self.session.set_option(option, value)
        except BaseException:
            # refused (e.g. ERROR_ACCESS_DENIED without administrator rights): nothing changed,
            # so nothing to restore now or at the next start
            if first_change:
                del self.changed[option], self._set[option]
            if self.changed:
                self._remember()
            else:
                self.state_path.unlink(missing_ok=True)
            raise

    def put_back(self, option: int) -> None:
        """Restore one option now, as restore() does (the others stay as they are); the state file
        keeps the rest."""
        if option not in self.changed:
            return
        self._put_back(option)
        if self.changed:
            self._remember()
        else:
            self.state_path.unlink(missing_ok=True)

    def _put_back(self, option: int) -> None:
        """The value found when this run changed `option`, unless someone else changed it again
        meanwhile (as the killed-run path does): then it is theirs, and left as they set it."""
        now = self.session.get_option(option)
        if now == self._set[option]:
            self.session.set_option(option, self.changed[option])
        else:
            self.left_alone[OPTION_NAMES.get(option, str(option))] = {"set_by_run": self._set[option], "found_now": now}
        del self.changed[option]
        del self._set[option]

    def restore(self) -> None:
        """Put back everything this run changed (each only if still as this run left it)."""
        for option in list(self.changed):
            self._put_back(option)
        self.state_path.unlink(missing_ok=True)

    def close(self) -> None:
        if not self.session.handle:
            return
        try:
            if self.changed:
                self.restore()
        finally:
            self.session.close()
            for sig, handler in self._previous_handlers.items():
                signal.signal(sig, handler)
            self._previous_handlers.clear()
            atexit.unregister(self.close)

    def describe(self) -> dict[str, int]:
        return {OPTION_NAMES[o]: v for o, v in self.found.items()}
