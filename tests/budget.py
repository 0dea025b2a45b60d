"""The per-test time budget: with `--fail-slower-than SECONDS` the session fails when any test's
setup, call or teardown took longer (.ci/run passes 60), naming each one, so that a slow test is
seen the day it arrives rather than when the suite has crept back to a quarter of an hour."""
from __future__ import annotations

import pytest


class Budget:
    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self.over: list[tuple[float, str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # under xdist the controller sees every worker's reports, with their durations
        if report.duration > self.limit_s:
            self.over.append((report.duration, report.when, report.nodeid))

    def lines(self) -> list[str]:
        return [f"{duration:.1f}s {when} {nodeid}" for duration, when, nodeid in sorted(self.over, reverse=True)]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.over:
            terminalreporter.section(f"over the per-test budget of {self.limit_s:g} s", red=True)
            for line in self.lines():
                terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.over and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fail-slower-than", type=float, default=None, metavar="SECONDS",
                     help="fail the session when a test's setup, call or teardown takes longer (CI: 60)")


def configure(config: pytest.Config) -> None:
    limit = config.getoption("--fail-slower-than")
    if limit is not None and not hasattr(config, "workerinput"):  # the xdist controller, or a plain run
        config.pluginmanager.register(Budget(limit), "wfpcap-budget")
