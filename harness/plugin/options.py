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
from harness.plugin import early
from harness.campaign import PROFILES, check_measurable
from harness.judge import require
from harness.judge.baseline import DEFAULT_THRESHOLD_PCT, Baseline
from harness.judge.baseline import load as load_baseline
from harness.platforms.model import ModelParams
from harness.platforms.select import BACKENDS, resolve
from harness.results.records import RunSummary
from harness.results.store import ResultStore

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
    return RunOptions(backend, params, nflog, expectations, inputs.report_dir(opt("--report-dir")), profile,
                      opt("--machine-label"))


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


