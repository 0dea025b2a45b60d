"""Shared fixtures of the scenario suite: one campaign (platform + result store) per pytest
session. The session's lifecycle (checked inputs, run status, signals, other live runs, resume,
the report at the end whether the scenarios passed or not) is harness/session.py."""
from __future__ import annotations

import pytest

from harness.campaign import PROFILES
from harness.platforms.base import PlatformUnavailable
from harness.platforms.select import BACKENDS, open_platform, resolve

# the session's lifecycle; reporting (progress, JUnit properties, --baseline, headline)
pytest_plugins = ("harness.session", "harness.report.pytest_plugin")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wfpcap", "capacity harness")
    group.addoption("--backend", default="auto",
                    help=f"platform to measure: {', '.join(BACKENDS)} (auto: wfp on Windows, model elsewhere)")
    group.addoption("--report-dir", default="reports", help="root folder of the result store (default: reports)")
    group.addoption("--machine-label", default=None, help="name of this machine configuration (default: hostname)")
    group.addoption("--profile", default="quick", help=f"{' or '.join(sorted(PROFILES))}: quick (CI) or full (longer, repeated)")
    group.addoption("--model-param", action="append", default=[], metavar="NAME=VALUE",
                    help="model what-if parameter, repeatable (queue_limit, system_buffer, batch_turnaround_us, ...)")
    group.addoption("--nflog-param", action="append", default=[], metavar="NAME=VALUE",
                    help="nflog settings, repeatable: qthresh, timeout_cs, nlbufsiz, rcvbuf, sender (udp|raw)")
    group.addoption("--expect", default=None, metavar="FILE",
                    help="JSON with expected values (queue_limit, system_buffer, system_buffer_tolerance)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Callback costs come from the profile (quick: 20, 100, 500 us)."""
    if "cost_us" in metafunc.fixturenames:
        profile = PROFILES.get(metafunc.config.getoption("--profile"), PROFILES["quick"])
        costs = profile.callback_costs_us
        metafunc.parametrize("cost_us", costs, ids=[f"{c:g}us" for c in costs])


@pytest.fixture(scope="session")
def campaign(request: pytest.FixtureRequest):
    from harness import session  # loaded as a plugin above; imported here so pytest can rewrite it first
    try:
        options = session.run_options(request.config)  # every input checked before anything opens
        diagnosis = _doctor_first(request.config, options.backend)
        platform = open_platform(options.backend, options.model_params, options.nflog)
    except PlatformUnavailable as exc:
        named = request.config.getoption("--backend")
        if named == "auto":  # only auto may pass over a machine where it cannot measure
            pytest.skip(f"backend auto cannot run here: {exc}")
        pytest.exit(f"wfpcap: backend {named} cannot run here: {exc}", returncode=2)
    except ValueError as exc:
        pytest.exit(f"wfpcap: {exc}", returncode=2)
    with session.measuring(request.config, platform, options) as run:
        if diagnosis is not None:
            run.store.sections["doctor"] = diagnosis.to_dict()
        yield run


def _doctor_first(config: pytest.Config, backend: str):
    """On wfp, `wfpcap doctor`'s checks come first: a failed one stops the session at once with its
    line (no hour of red tests); only auto may pass over the machine instead."""
    if resolve(backend) != "wfp":
        return None
    from harness.platforms.wfp.doctor import diagnose
    diagnosis = diagnose()
    if diagnosis.ok:
        return diagnosis
    reason = diagnosis.lines()[-1]
    if config.getoption("--backend") == "auto":
        pytest.skip(f"backend auto cannot run here: {reason}")
    pytest.exit(f"wfpcap: backend wfp cannot run here: {reason}\n" + "\n".join(diagnosis.lines()[:-1]), returncode=2)
