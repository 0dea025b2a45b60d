"""Shared fixtures of the scenario suite: one campaign (platform + result store) per pytest
session; the report is rendered when the session ends, whether the scenarios passed or not."""
from __future__ import annotations

import pytest

from harness.campaign import PROFILES, Campaign, load_expectations, platform_expectations
from harness.platforms.base import PlatformUnavailable
from harness.platforms.model import ModelParams
from harness.platforms.select import BACKENDS, open_platform, resolve
from harness.report.render import render


REPORT_KEY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    path = config.stash.get(REPORT_KEY, None)
    if path:
        terminalreporter.write_line(f"wfpcap report: {path}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wfpcap", "capacity harness")
    group.addoption("--backend", default="auto", choices=BACKENDS,
                    help="platform to measure: auto (wfp on Windows, model elsewhere), model, wfp, nflog")
    group.addoption("--report-dir", default="reports", help="root folder of the result store (default: reports)")
    group.addoption("--machine-label", default=None, help="name of this machine configuration (default: hostname)")
    group.addoption("--profile", default="quick", choices=sorted(PROFILES), help="quick (CI) or full (longer, repeated)")
    group.addoption("--model-param", action="append", default=[], metavar="NAME=VALUE",
                    help="model what-if parameter, repeatable (queue_limit, system_buffer, batch_turnaround_us, ...)")
    group.addoption("--nflog-param", action="append", default=[], metavar="NAME=VALUE",
                    help="nflog settings, repeatable: qthresh, timeout_cs, nlbufsiz, rcvbuf, sender (udp|raw)")
    group.addoption("--expect", default=None, metavar="FILE",
                    help="JSON with expected values (queue_limit, system_buffer, system_buffer_tolerance)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Callback costs come from the profile (quick: 20, 100, 500 us)."""
    if "cost_us" in metafunc.fixturenames:
        costs = PROFILES[metafunc.config.getoption("--profile")].callback_costs_us
        metafunc.parametrize("cost_us", costs, ids=[f"{c:g}us" for c in costs])


def _pairs(option: str, pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"{option} needs NAME=VALUE, got {pair!r}")
        name, value = pair.split("=", 1)
        overrides[name.strip()] = value.strip()
    return overrides


@pytest.fixture(scope="session")
def campaign(request: pytest.FixtureRequest):
    opt = request.config.getoption
    try:
        backend = resolve(opt("--backend"))
        params = ModelParams.from_overrides(_pairs("--model-param", opt("--model-param")))
        if opt("--model-param") and backend != "model":
            raise ValueError("--model-param only applies to --backend model")
        if opt("--nflog-param") and backend != "nflog":
            raise ValueError("--nflog-param only applies to --backend nflog")
        platform = open_platform(backend, params, _pairs("--nflog-param", opt("--nflog-param")))
        try:
            expectations = load_expectations(opt("--expect"), platform_expectations(platform))
        except ValueError:
            platform.close()
            raise
    except PlatformUnavailable as exc:
        pytest.skip(f"backend {opt('--backend')} cannot run here: {exc}")
    except ValueError as exc:
        pytest.exit(f"wfpcap: {exc}", returncode=2)
    with platform:
        run = Campaign.open(platform, opt("--report-dir"), opt("--profile"), expectations, opt("--machine-label"))
        try:
            yield run
        finally:
            paths = render(run.store.path)
            request.config.stash[REPORT_KEY] = str(paths["html"])
