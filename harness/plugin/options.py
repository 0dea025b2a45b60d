"""Every option of `pytest scenarios/`, with its default, registered once; and the run's options
read from them (or, with --resume, from the run folder), each checked before anything opens:
bad input is one line (BadInput) and exit status 2."""
from __future__ import annotations

import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import inputs, live_runs
from harness.agent import OPTION_KEYS, Agent, load_agent
from harness.plugin import early
from harness.campaign import PROFILES, check_measurable
from harness.judge import require
from harness.judge.baseline import DEFAULT_THRESHOLD_PCT, Baseline
from harness.judge.baseline import load as load_baseline
from harness.platforms.model import ModelParams
from harness.platforms.select import BACKENDS, resolve
from harness.results.records import RunSummary
from harness.results.store import ResultStore
from harness.subscriber_code import load_library

RESUMABLE = ("interrupted", "running", "subset")

# name -> (default, addoption's other arguments); `run` options are what a resumed run takes from
# its folder, so they may not be given beside --resume
RUN_OPTIONS: dict[str, tuple[Any, dict[str, Any]]] = {
    "--backend": ("auto", {"help": f"platform to measure: {', '.join(BACKENDS)} (auto: wfp on Windows, model elsewhere)"}),
    "--report-dir": ("reports", {"help": "root folder of the result store (default: reports)"}),
    "--machine-label": (None, {"help": "name of this machine configuration (default: hostname)"}),
    "--profile": ("quick", {"help": f"{' or '.join(sorted(PROFILES))}: quick (CI) or full (longer, repeated)"}),
    "--model-param": ([], {"action": "append", "metavar": "NAME=VALUE",
                           "help": "model what-if parameter, repeatable (queue_limit, system_buffer, batch_turnaround_us, ...)"}),
    "--nflog-param": ([], {"action": "append", "metavar": "NAME=VALUE",
                           "help": "nflog settings, repeatable: qthresh, timeout_cs, nlbufsiz, rcvbuf, sender (udp|raw)"}),
    "--expect": (None, {"metavar": "FILE",
                        "help": "JSON with expected values (queue_limit, system_buffer, system_buffer_tolerance)"}),
    # your traffic, your subscriber (harness/agent.py, docs/your-agent.md); options override --agent's file
    "--agent": (None, {"metavar": "FILE", "help": "agent.toml: your trace, subscriber and required headroom "
                                                 "(docs/your-agent.md); the options below override its entries"}),
    "--traffic-capture": (None, {"metavar": "FILE", "help": "replay a pcap/pcapng capture's timing and flows "
                                                           "(to the harness's own blocked tuples, never its addresses)"}),
    "--traffic-netevents": (None, {"metavar": "FILE", "help": "replay `netsh wfp show netevents file=F`'s event times"}),
    "--traffic-shape": (None, {"metavar": "SHAPE", "help": "on-off:mean=R,burst=R,length=S,duration=S or "
                                                          "ramp:start=R,end=R,duration=S"}),
    "--traffic-scale": (None, {"metavar": "X", "help": "replay the trace X times as fast (default 1)"}),
    "--trace-events": (None, {"metavar": "packets|flows", "help": "which packets make events (default: the layer's "
                                                                  "rule: ALE layers a flow's first, transport every packet)"}),
    "--trace-window": (None, {"metavar": "auto:LEN|START:LEN", "help": "replay the busiest LEN seconds, or from START"}),
    "--subscriber-cost": (None, {"metavar": "FILE", "help": "per-event work in us (one a line, or a bin,count CSV)"}),
    "--subscriber": (None, {"metavar": "MODULE:FUNCTION", "help": "your Python subscriber, called with each event's bytes"}),
    "--subscriber-lib": (None, {"metavar": "PATH:SYMBOL", "help": "your native subscriber, "
                                                                 "void f(const void *event, void *context), wfp only"}),
    "--subscriber-mode": (None, {"metavar": "inline|copy", "help": "where your subscriber's work runs "
                                                                  "(default inline; a Python one: copy)"}),
    "--required-headroom": (None, {"metavar": "X", "help": "test_my_agent fails when the headroom is below X"}),
}
SESSION_OPTIONS: dict[str, tuple[Any, dict[str, Any]]] = {
    "--resume": (None, {"metavar": "RUN_DIR", "help": "continue an interrupted run in its folder: finished trials "
                                                      "are not measured again (options come from the run folder)"}),
    "--progress": (False, {"action": "store_true", "help": "show a line per trial as it ends, also under -q "
                                                           "(always with -v; always in progress.log)"}),
    "--baseline": (None, {"metavar": "PATH", "help": "fail on a regression against a run folder, a config folder "
                                                     "(its latest complete run) or a baseline JSON (`wfpcap baseline save`)"}),
    "--fail-if-worse": (None, {"type": float, "metavar": "PCT", "help":
                        "with --baseline: how much worse (percent) an estimate may be before it fails "
                        f"(default {DEFAULT_THRESHOLD_PCT:g}; never inside the measured spread)"}),
    "--require": (None, {"metavar": "ESTIMATE,...", "help": "fail (exit 1) unless each named estimate was measured "
                         "conclusively (e.g. burst_capacity,queue_limit,buffer_depth; ndr or ndr@20us for NDRs)"}),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wfpcap", "capacity harness")
    for name, (default, kwargs) in {**RUN_OPTIONS, **SESSION_OPTIONS}.items():
        group.addoption(name, default=default, **kwargs)


CHECKED = pytest.StashKey["Checked"]()


@dataclass
class Checked:
    """Every input of the session, read and checked once before collection."""

    run: RunOptions
    baseline: Baseline | None
    threshold_pct: float = DEFAULT_THRESHOLD_PCT  # --fail-if-worse
    required: list[str] = field(default_factory=list)  # --require


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Bad input is one line and exit status 2, before any scenario is collected or any platform
    opened: the options, the files they name (--expect, --baseline, --resume's run folder) and
    where the run will write (--report-dir, --junitxml)."""
    if early.received() is not None:  # Ctrl-C or SIGTERM while pytest started: nothing is open yet
        sys.stderr.write(f"wfpcap run: interrupted before it began ({signal.Signals(early.received()).name} while "
                         "pytest started); nothing was measured and nothing is left behind\n")
        return 128 + early.received()
    try:
        given = config.getoption("--fail-if-worse")  # files first; the report folder is made last
        gate = _baseline(config, given)
        required = require.parse(config.getoption("--require"))
        _writable_report(config.option.xmlpath, "--junitxml")
        config.stash[CHECKED] = Checked(run_options(config), gate, DEFAULT_THRESHOLD_PCT if given is None else given,
                                        required)
    except ValueError as exc:  # BadInput, and a stored file that does not fit
        sys.stderr.write(f"wfpcap: {inputs.one_line(exc)}\n")
        return 2
    return None


def checked(config: pytest.Config) -> Checked:
    return config.stash[CHECKED]


def _baseline(config: pytest.Config, threshold: float | None) -> Baseline | None:
    if threshold is not None and not 0 <= threshold < 100:
        raise inputs.BadInput(f"--fail-if-worse takes a percentage in [0, 100), got {threshold:g}")
    path = config.getoption("--baseline")
    if path is None:
        if threshold is not None:
            raise inputs.BadInput("--fail-if-worse applies only with --baseline")
        return None
    return load_baseline(path)


def _writable_report(path: str | None, option: str) -> None:
    """A file the run writes at its very end: its folder must take a file now, not after an hour."""
    if not path:
        return
    folder = Path(path).expanduser().resolve().parent
    while not folder.exists():  # pytest makes the missing folders: the nearest one that exists must take them
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".wfpcap-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise inputs.BadInput(f"{option} {path}: cannot write in {folder}: {exc.strerror or exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Callback costs come from the profile (quick: 20, 100, 500 us)."""
    if "cost_us" in metafunc.fixturenames:
        profile = PROFILES.get(metafunc.config.getoption("--profile"), PROFILES["quick"])
        costs = profile.callback_costs_us
        metafunc.parametrize("cost_us", costs, ids=[f"{c:g}us" for c in costs])


@dataclass
class RunOptions:
    backend: str
    model_params: ModelParams | None
    nflog: dict[str, str]
    expectations: dict[str, float | None]  # what the user set (the platform's defaults come later)
    report_root: Path
    profile: str
    label: str | None
    resume: tuple[ResultStore, RunSummary] | None = None
    agent: Agent | None = None  # the user's trace and subscriber (harness/agent.py)


def run_options(config: pytest.Config) -> RunOptions:
    """Every option, checked before anything is opened; BadInput (one line) otherwise."""
    opt = config.getoption
    if opt("--resume"):
        return _resume_options(config, Path(opt("--resume")))
    backend = opt("--backend")
    if backend not in BACKENDS:
        raise inputs.BadInput(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    backend = resolve(backend)
    profile = opt("--profile")
    if profile not in PROFILES:
        raise inputs.BadInput(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if opt("--model-param") and backend != "model":
        raise inputs.BadInput("--model-param only applies to --backend model")
    if opt("--nflog-param") and backend != "nflog":
        raise inputs.BadInput("--nflog-param only applies to --backend nflog")
    params = None
    if backend == "model":
        params = ModelParams.from_overrides(inputs.parse_pairs("--model-param", opt("--model-param")))
        check_measurable(params, profile)
    nflog = inputs.parse_pairs("--nflog-param", opt("--nflog-param"))
    inputs.nflog_values(nflog)
    expectations = inputs.expectations(opt("--expect"), {})
    agent = agent_options(config, backend)
    return RunOptions(backend, params, nflog, expectations, inputs.report_dir(opt("--report-dir")), profile,
                      opt("--machine-label"), agent=agent)


def agent_options(config: pytest.Config, backend: str) -> Agent | None:
    """The user's trace and subscriber, read and checked now (a capture is read whole here); a
    native subscriber library is loaded now too, and refused where no native callback can run it:
    a run that cannot measure the user's code must not pass as if it had."""
    agent = load_agent({name: config.getoption(name) for name in OPTION_KEYS}, config.getoption("--agent"))
    if agent is not None and backend == "nflog" and agent.trace.trace_events == "flows":
        from harness.platforms.nflog.platform import FLOW_SET_SIZE  # the rule's set of flows seen
        if agent.trace.flow_count > FLOW_SET_SIZE:
            raise inputs.BadInput(f"nflog replays at most {FLOW_SET_SIZE:,} flows with events per flow; the trace "
                                  f"has {agent.trace.flow_count:,} (use --trace-window)")
    if agent is not None and agent.library is not None:
        load_library(agent.library)
        if backend != "wfp":
            raise inputs.BadInput(f"--subscriber-lib runs in the wfp platform's native callback (it is handed "
                                  f"Windows' FWPM_NET_EVENT); this run measures {backend}")
    return agent


def _resume_options(config: pytest.Config, run_dir: Path) -> RunOptions:
    given = [name for name, (default, _) in RUN_OPTIONS.items() if config.getoption(name) != default]
    if given:
        raise inputs.BadInput(f"--resume takes the options of the run it continues; drop {', '.join(given)}")
    if not run_dir.is_dir():
        raise inputs.BadInput(f"--resume {run_dir} is not a run folder")
    for run in live_runs.other_live_runs():
        if run.report and Path(run.report).resolve() == run_dir.resolve():
            raise inputs.BadInput(f"--resume {run_dir}: its run is still live ({run.describe()}); "
                                  "let it end, or stop it, before continuing it")
    store, summary = ResultStore.reopen(run_dir)
    if summary.status not in RESUMABLE:
        raise inputs.BadInput(f"--resume {run_dir}: the run is {summary.status}; only an interrupted, killed or "
                              "subset run can be continued")
    settings = summary.fingerprint.stable.get("platform") or {}
    where = f"{run_dir / 'summary.json'}"
    if settings.get("agent"):
        raise inputs.BadInput(f"--resume {run_dir}: the run replayed an agent's trace, which a resume cannot read "
                              "again from its folder; run it again")
    try:
        profile = settings["profile"]
        if profile not in PROFILES:
            raise inputs.BadInput(f"{where}: unknown profile {profile!r}")
        params = ModelParams(**settings["model_params"]) if summary.platform == "model" else None
        nflog = {k: str(v) for k, v in settings.get("nflog", {}).items() if v is not None}
        inputs.nflog_values(nflog)
        stored = summary.experiments.expected.to_json() if summary.experiments.expected else {}
        known = inputs.EXPECTATION_KEYS
        expected = inputs.check_expectations(
            {k: v for k, v in stored.items() if v is not None or k not in known or known[k][3]}, where)
    except (KeyError, TypeError, ValueError) as exc:  # BadInput is a ValueError: named by the file it came from
        raise inputs.BadInput(f"{where}: cannot take the run's options from it ({exc})") from None
    if summary.platform not in BACKENDS[1:]:
        raise inputs.BadInput(f"{where}: unknown platform {summary.platform!r}")
    return RunOptions(summary.platform, params, nflog, expected, run_dir.parent.parent, profile,
                      summary.fingerprint.stable.get("machine"), (store, summary))


