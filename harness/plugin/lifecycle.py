"""The scenario session's lifecycle, as a pytest plugin (scenarios/conftest.py loads it).

- Inputs: every option was checked before collection (harness/plugin/options.py); the platform
  opens before the first scenario (a machine that cannot measure: one line, exit status 2).
- Status: the run ends complete, subset (scenarios not selected: -k, a single file; or never run:
  -x) or interrupted (a signal or an error; where: experiment, trial, scenario), in summary.json
  (harness/results/status.py), the report's banner and the terminal.
- Signals: SIGTERM (and Ctrl-Break on Windows) takes the path of Ctrl-C: the scenario stops, the
  platform cleans up, the summary is marked, the report is written (without plots), exit status
  128 + signal. Once cleanup has begun, further signals are noted and do not cut it short; one
  while the report is drawn ends the drawing.
- Company: the run registers as live (harness/live_runs.py), warns when other harness runs are
  live, and says what it removed that killed runs had left.
- Resume: --resume RUN_DIR continues an interrupted run (harness/results/replay.py).
"""
from __future__ import annotations

import os
import signal
import threading
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import inputs, live_runs
from harness.campaign import PROFILES, Campaign, load_expectations, platform_expectations
from harness.files import WriteFailed
from harness.platforms.base import Platform, PlatformUnavailable
from harness.platforms.select import open_platform, resolve
from harness.plugin import early
from harness.plugin.options import CHECKED, RunOptions, checked
from harness.results.fingerprint import config_id, fingerprint
from harness.results.read import read_summary
from harness.results.records import Expectations, RunStatus
from harness.results.store import ResultStore, utc_now, write_twin
from harness.results.replay import ResumeMismatch
from harness.twin.calibrate import calibrate_run



@dataclass
class SessionState:
    selected: list[str] = field(default_factory=list)
    never_selected: list[str] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)
    errors: list[dict[str, Any]] = field(default_factory=list)
    current: str | None = None
    signal: int | None = None         # the signal that interrupted the measurement
    late_signal: int | None = None    # the first signal during cleanup: the exit status says it, the status does not
    later_signals: int = 0
    stopped: str | None = None        # why pytest.exit ended the session
    cleaning: bool = False
    drawing: bool = False             # the report is being drawn: a signal ends the drawing
    summary_written: bool = False     # the run's final status is on disk
    config: pytest.Config | None = None
    store: ResultStore | None = None
    report: str | None = None
    notes: list[str] = field(default_factory=list)      # lines for the terminal summary
    failed: bool = False              # the final write failed: exit status 2
    others: dict[int, live_runs.LiveRun] = field(default_factory=dict)
    handlers: dict[int, Any] = field(default_factory=dict)
    collected_all: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)

    def on_signal(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.pid:  # a forked child (sender, netns helper): die as if no handler were set
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.drawing:  # the summary is written: a report can be drawn later, the signal ends it now
            self.late_signal = self.late_signal or signum
            raise KeyboardInterrupt(signal.Signals(signum).name)
        if self.signal is not None or self.cleaning:
            self.later_signals += 1
            if self.signal is None:
                self.late_signal = self.late_signal or signum
            self.say("wfpcap: cleaning up; the platform is being closed and the summary written, please wait")
            return
        self.signal = signum
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def say(self, line: str) -> None:
        """A line on the terminal now, past pytest's output capture (a signal comes at any moment)."""
        capture = self.config.pluginmanager.get_plugin("capturemanager") if self.config is not None else None
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            sys.stderr.write(f"\n{line}\n")
            sys.stderr.flush()

    def attach(self, store: ResultStore) -> None:
        """The run's folder exists: register as live (with where the run is) from here on."""
        self.store = store
        live_runs.register(store.platform_name, str(store.path), store.run.started_utc or utc_now())
        store.listeners.append(live_runs.update_phase)


STATE = pytest.StashKey[SessionState]()


# -- the run --------------------------------------------------------------------------------
@contextmanager
def measuring(config: pytest.Config, platform: Platform, options: RunOptions) -> Iterator[Campaign]:
    """The campaign of this session: opened (or resumed) on an open platform; on the way out,
    whatever happened, the platform is closed first, then the run's status, summary and report
    are written."""
    state = config.stash[STATE]
    try:
        expectations = {**load_expectations(None, platform_expectations(platform)), **options.expectations}
        for line in live_runs.reap():
            _note(config, state, f"wfpcap: {line}")
        for name in getattr(platform, "removed_stale", []):
            _note(config, state, f"wfpcap: removed namespace {name} (with its nft table and NFLOG group) "
                                 "left by a killed run")
        if options.resume:
            run = _resume(state, platform, options, expectations)
        else:
            run = Campaign.open(platform, str(options.report_root), options.profile, expectations, options.label,
                                store_ready=state.attach, agent=options.agent)
        store = run.store
        store.note("removed_leftovers", list(getattr(platform, "removed_stale", [])))
        _look_for_company(config, state)
        yield run
    finally:
        state.cleaning = True  # from here on a signal is noted, not raised: cleanup runs to its end
        try:
            platform.close()
        except Exception as exc:  # noqa: BLE001 - one line, and the report still gets written
            _note(config, state, f"wfpcap: closing the {platform.name} platform failed: {exc}")
        try:
            if state.store is not None:
                _look_for_company(config, state)
                _finish(state, config.pluginmanager.get_plugin("wfpcap-reporting"))
        finally:
            live_runs.unregister()  # alive until its report is drawn


def _resume(state: SessionState, platform: Platform, options: RunOptions, expectations: dict[str, float | None]) -> Campaign:
    store, summary = options.resume
    settings = Campaign.settings(platform, options.profile)
    here = config_id(fingerprint(settings, options.label))
    if here != summary.config_id:
        raise ResumeMismatch(f"cannot resume {store.path}: this machine's configuration (config id {here}) "
                             f"differs from the run's ({summary.config_id})")
    expected = Expectations.from_json(expectations)
    store.continue_from(summary, expected)
    state.attach(store)
    measured = store.fingerprint.measured.get("max_send_rate_per_s")
    rate = float(measured) if isinstance(measured, (int, float)) and measured > 0 else platform.max_send_rate_per_s()
    return Campaign(platform, store, PROFILES[options.profile], expected, rate)


def _look_for_company(config: pytest.Config, state: SessionState) -> None:
    for run in live_runs.other_live_runs():
        if run.pid not in state.others:
            state.others[run.pid] = run
            _note(config, state, f"wfpcap: WARNING: another harness run is live: {run.describe()}; "
                                 "both share this machine and may measure less than alone")
    if state.store is not None:
        state.store.note("other_live_runs", live_runs.as_dicts(list(state.others.values())))


def _note(config: pytest.Config, state: SessionState, line: str) -> None:
    state.notes.append(line)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


def _finish(state: SessionState, reporting: Any) -> None:
    """The end of the run, once: its status, the baseline's verdict (`reporting`, the plugin of
    harness/plugin/reporting.py, when loaded), the summary, the report drawn once from it, and
    the headline. The summary is on disk before the drawing starts; a signal during the drawing
    ends it (`wfpcap report RUN` draws it later) and the exit status says so. A write that fails
    is one line naming the file, exit status 2, and whatever was on disk before stays whole."""
    store = state.store
    if store.replaying:  # stopped before the stored trials were all replayed: nothing new to write
        state.notes.append(f"wfpcap: the resume stopped after replaying {store.replay.next} of "
                           f"{len(store.replay.rows)} stored trials; {store.path} is left as it was")
        return
    status = _status(state)
    status.started_utc, status.ended_utc = store.run.started_utc, utc_now()
    try:
        store.flush_trials()  # the summary counts what trials.csv holds
        if reporting is not None:
            reporting.judge(store)
        store.set_run(status)
        state.summary_written = True
    except (OSError, ValueError) as exc:
        state.failed = True
        state.notes.append(f"wfpcap: {exc}")
        return  # nothing to draw from: the summary on disk is the last one written
    try:
        state.drawing = True
        live_runs.checkpoint("report")
        if state.signal is None:  # the held-out check, before the report shows it (a signal wants out now)
            write_twin(store.path, calibrate_run(store.path))
        # stopped by a signal: the report without its plots, at once (`wfpcap report` draws them)
        from harness.report.render import render  # matplotlib: imported when the report is drawn, not at start
        state.report = str(render(store.path, plots=state.signal is None)["html"])
    except KeyboardInterrupt:
        state.notes.append(f"wfpcap: the report was not drawn ({signal.Signals(state.late_signal).name} while drawing); "
                           f"wfpcap report {store.path} draws it")
    except (OSError, ValueError) as exc:
        state.failed = True
        state.notes.append(f"wfpcap: {exc}")
    except Exception as exc:  # noqa: BLE001 - a report that cannot be drawn must not hide the run
        state.failed = True
        state.notes.append(f"wfpcap: the report of {store.path} could not be rendered: {type(exc).__name__}: {exc}")
    finally:
        state.drawing = False
    if reporting is not None:
        try:
            reporting.write_headline(store, state.report or "not drawn")
        except OSError as exc:
            state.failed = True
            state.notes.append(f"wfpcap: {exc}")


def _status(state: SessionState) -> RunStatus:
    selected = state.selected
    not_finished = [n for n in selected if n not in state.finished]
    scenarios = {"selected": list(selected), "finished": [n for n in selected if n in state.finished],
                 "not_finished": not_finished}
    position = state.store.position
    if state.signal is not None or state.stopped or state.errors:
        if state.signal is not None:
            cause, at = signal.Signals(state.signal).name, position
        elif state.stopped:
            cause, at = f"stopped: {state.stopped}", position
        else:
            cause, at = f"error in {state.errors[0]['scenario']}: {state.errors[0]['message']}", state.errors[0]["at"]
        where = _where(at)
        detail = (f"{cause}{' during ' + where if where else ''}; "
                  f"{len(not_finished)} of {len(selected)} selected scenarios did not finish")
        interrupted_at = {"experiment": at.get("experiment"), "trial": at.get("trial") if at.get("running") else None,
                          "scenario": at.get("scenario", state.current)}
        return RunStatus("interrupted", detail, interrupted_at, scenarios)
    if state.never_selected or not_finished:
        parts = []
        if state.never_selected:
            parts.append(f"{len(state.never_selected)} scenario(s) not selected (-k, or a single file): "
                         + ", ".join(state.never_selected[:6]) + (" ..." if len(state.never_selected) > 6 else ""))
        if not_finished:
            parts.append(f"{len(not_finished)} selected scenario(s) never ran (stopped early, e.g. -x)")
        return RunStatus("subset", "; ".join(parts), None, scenarios)
    return RunStatus("complete", "", None, scenarios)


def _where(at: dict[str, Any]) -> str:
    if not at.get("experiment"):
        return ""
    trial = f" trial {at['trial']}" if at.get("running") and at.get("trial") is not None else ""
    return f"{at['experiment']}{trial}"


# -- the platform, opened before the first scenario ----------------------------------------------
@dataclass
class Opened:
    platform: Platform
    options: RunOptions
    diagnosis: Any = None             # wfp: the doctor's checks, passed
    handed_over: bool = False         # the campaign fixture owns it (and closes it)


OPENED = pytest.StashKey[Opened]()
UNAVAILABLE = pytest.StashKey[str]()  # backend auto on a machine where it cannot measure: why


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """Open the platform (on wfp after the doctor's checks) before the first scenario, so that a
    machine that cannot measure stops the session with one line and exit status 2 before any
    scenario runs, and Ctrl-C while it opens says what happened. Returning True ends the session."""
    config = session.config
    state = config.stash[STATE]
    if config.option.collectonly or not session.items or CHECKED not in config.stash:
        return None
    if state.signal is not None:  # came after the inputs were checked, before anything opened
        state.notes.append(f"wfpcap run: interrupted before it began ({signal.Signals(state.signal).name} while "
                           "pytest started); nothing was measured and nothing is left behind")
        return True
    options = checked(config).run
    named = config.getoption("--backend")
    if options.resume and state.never_selected:  # its trials replay in order: a subset would drop the rest
        left = ", ".join(state.never_selected[:3]) + (" ..." if len(state.never_selected) > 3 else "")
        _stop(state, f"wfpcap: --resume continues the whole run; drop -k, -m or the file selection "
                     f"(not selected: {left})")
        return True
    try:
        live_runs.checkpoint("open")
        diagnosis = _doctor_first(options.backend)
        config.stash[OPENED] = Opened(open_platform(options.backend, options.model_params, options.nflog,
                                                    options.agent.library if options.agent else None),
                                      options, diagnosis)
    except KeyboardInterrupt:  # before there is a run folder: nothing measured, nothing left behind
        name = signal.Signals(state.signal).name if state.signal else "interrupted"
        state.notes.append(f"wfpcap run: interrupted before its folder was made ({name} while the {named} "
                           "platform opened); nothing was measured and nothing is left behind")
        return True
    except PlatformUnavailable as exc:
        if named == "auto":  # only auto may pass over a machine where it cannot measure
            config.stash[UNAVAILABLE] = f"backend auto cannot run here: {exc}"
            return None
        _stop(state, f"wfpcap: backend {named} cannot run here: {exc}")
        return True
    except ValueError as exc:
        _stop(state, f"wfpcap: {exc}")
        return True
    return None


def _status_on_disk(run: Path) -> str:
    try:
        return read_summary(run / "summary.json").status
    except ValueError:
        return "nothing readable"


def _stop(state: SessionState, line: str) -> None:
    state.stopped = line
    state.notes.append(line)


@pytest.fixture(scope="session")
def campaign(request: pytest.FixtureRequest):
    config = request.config
    if UNAVAILABLE in config.stash:
        pytest.skip(config.stash[UNAVAILABLE])
    opened = config.stash[OPENED]
    opened.handed_over = True
    with measuring(config, opened.platform, opened.options) as run:
        if opened.diagnosis is not None:
            run.record_facts("doctor", opened.diagnosis.record())
        yield run


def _doctor_first(backend: str) -> Any:
    """On wfp, `wfpcap doctor`'s checks come first: a failed one stops the session at once with its
    line and the checks before it (no hour of red tests)."""
    if resolve(backend) != "wfp":
        return None
    from harness.platforms.wfp.doctor import diagnose
    diagnosis = diagnose()
    if diagnosis.ok:
        return diagnosis
    lines = diagnosis.lines()
    raise PlatformUnavailable(lines[-1] + "".join(f"\n  {line}" for line in lines[:-1]))


# -- pytest hooks ---------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    state = SessionState(config=config, signal=early.received())  # one that came while pytest started
    config.stash[STATE] = state
    config.pluginmanager.register(OwnStops(config), "wfpcap-own-stops")
    # hypothesis (in [dev]) loads a pytest plugin everywhere; the scenarios have no use for it, and its
    # terminal summary imports hypothesis: two seconds at the end of every run, a stopped one too
    hypothesis = config.pluginmanager.get_plugin("hypothesispytest")
    if hypothesis is not None:
        config.pluginmanager.unregister(hypothesis)
    if threading.current_thread() is threading.main_thread():
        for sig in stopping_signals():
            state.handlers[sig] = signal.signal(sig, state.on_signal)


def stopping_signals() -> list[int]:
    """Ctrl-C, SIGTERM (runners, `timeout`) and, on Windows, Ctrl-Break: each stops the run the way
    Ctrl-C does. Without this, Ctrl-Break reached the wfp options' own handler, which restored the
    options and raised SystemExit inside a test: pytest logged one failure and measured on."""
    return [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)]


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        for sig, handler in state.handlers.items():
            signal.signal(sig, handler)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    state.collected_all = [i.nodeid for i in items]  # before -k / -m deselect


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    state.selected = [i.nodeid for i in session.items]
    chosen = set(state.selected)
    state.never_selected = [n for n in getattr(state, "collected_all", []) if n not in chosen]
    folders = {Path(str(i.path)).parent for i in session.items} or set()
    seen = {Path(str(i.path)).name for i in session.items} | {n.split("::")[0].rsplit("/", 1)[-1]
                                                              for n in state.never_selected}
    for folder in folders:
        for module in sorted(folder.glob("test_*.py")):
            if module.name not in seen:
                state.never_selected.append(module.name)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    item.config.stash[STATE].current = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    state = item.config.stash[STATE]
    if (report.when == "call" or (report.when == "setup" and report.skipped)) and state.signal is None:
        if report.passed or report.skipped or (call.excinfo is not None and call.excinfo.errisinstance(AssertionError)):
            state.finished.add(item.nodeid)
    if report.failed and call.excinfo is not None and not call.excinfo.errisinstance(AssertionError) \
            and state.store is not None:
        message = " ".join(str(call.excinfo.value).split())[:200]
        state.errors.append({"scenario": item.name, "message": f"{call.excinfo.typename}: {message}",
                             "at": {**state.store.position, "scenario": item.nodeid}})
        state.finished.discard(item.nodeid)
    return report


def _stop_on(item: pytest.Item, exc: BaseException) -> None:
    """A write that failed or a resume that cannot go on ends the session: one line, status 2."""
    item.config.stash[STATE].stopped = str(exc)
    pytest.exit(f"wfpcap: {exc}", returncode=2)


def _stopped_by_signal(item: pytest.Item) -> None:
    """The signal the lifecycle turned into Ctrl-C ends the session after this scenario, which is
    not finished. Stopping here, not by letting Ctrl-C travel on, spares pytest from writing out
    the whole traceback with every argument of every frame (seconds, with trials in them), so the
    run ends within a runner's kill grace."""
    state = item.config.stash[STATE]
    name = signal.Signals(state.signal).name
    item.session.shouldstop = f"wfpcap: stopped by {name}"
    pytest.skip(f"stopped by {name}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    try:
        return (yield)
    except (WriteFailed, ResumeMismatch, inputs.BadInput) as exc:
        _stop_on(item, exc)
    except KeyboardInterrupt:
        if item.config.stash[STATE].signal is None:
            raise
        _stopped_by_signal(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    try:
        return (yield)
    except (WriteFailed, ResumeMismatch) as exc:
        _stop_on(item, exc)
    except KeyboardInterrupt:
        if item.config.stash[STATE].signal is None:
            raise
        _stopped_by_signal(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    state = session.config.stash[STATE]
    yield  # the session fixture (platform, status, report) is torn down in here
    opened = session.config.stash.get(OPENED, None)
    if opened is not None and not opened.handed_over:  # opened, but no scenario asked for the campaign
        opened.platform.close()
    received = state.signal or state.late_signal
    if received is not None:
        session.exitstatus = 128 + received
    elif state.stopped or (state.failed and session.exitstatus in (0, 1)):
        session.exitstatus = 2


class OwnStops:
    """A stop of the harness's own in the middle of a run (a write that failed, a resume that cannot
    go on) travels as pytest.exit; pytest then prints the exception's type before the harness's
    line. The line is the harness's: it is printed as it is (pytest has no public switch for it)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)  # after the terminal reporter has kept the exception for its banner
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        value = excinfo.value
        if not (isinstance(value, pytest.exit.Exception) and str(value.msg).startswith("wfpcap:")):
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        memo = getattr(reporter, "_keyboardinterrupt_memo", None)
        if memo is not None and getattr(memo, "reprcrash", None) is not None:
            memo.reprcrash.message = str(value.msg)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    for line in state.notes:  # again at the end, where a reader of a CI log looks
        terminalreporter.write_line(line)
    if state.store is not None:
        run = state.store.run
        line = f"wfpcap run: {run.status}" + (f" ({run.detail})" if run.detail else "")
        if state.store.replaying:
            line = f"wfpcap run: {_status_on_disk(state.store.path)} (as stored: the resume did not catch up)"
        elif not state.summary_written:  # say what the folder says, not only what happened
            on_disk = _status_on_disk(state.store.path)
            line += f"; not written: {state.store.path / 'summary.json'} still says {on_disk}"
        terminalreporter.write_line(line)
    if state.report:
        terminalreporter.write_line(f"wfpcap report: {state.report}")
