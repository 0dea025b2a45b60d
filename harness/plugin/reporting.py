"""The reporting side of `pytest scenarios/` (loaded by scenarios/conftest.py via pytest_plugins):

- live progress: a line per trial when it ends (shown with -v or --progress, quiet otherwise,
  always written to progress.log in the run folder);
- JUnit: each scenario's new estimates and checks become properties of its test case;
- the regression gate: --baseline PATH with --fail-if-worse PCT fails the session on a regression;
- --require ESTIMATE,...: fails the session unless each was measured conclusively (harness/judge/require.py);
- the end: the baseline's verdict goes into the summary before the report is drawn (once, by the
  lifecycle), and a one-screen headline summary closes the terminal output (kept as
  headline.txt/.md).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest

from harness.judge import baseline, require
from harness.judge.spread import readings
from harness.plugin.options import CHECKED
from harness.report import headline
from harness.report.progress import Progress, SearchPlan
from harness.report.twin_section import summary_line, twin_of
from harness.results.records import BaselineSection, RunSummary
from harness.results.store import ResultStore


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Reporting(config), "wfpcap-reporting")


def _as_stored(store: ResultStore) -> RunSummary:
    """The run's summary as summary.json holds it (plain JSON values), as every later reader sees it."""
    return RunSummary.from_json(store.to_json())


def _plan(campaign: Any) -> SearchPlan:
    profile, ndr = campaign.profile, campaign.ndr_config
    return SearchPlan(burst_repetitions=profile.burst.repetitions, burst_verify=profile.burst.verify,
                      burst_sweep=len(profile.burst.sweep), ndr_resolution=ndr.resolution,
                      ndr_confirm_factor=ndr.confirm_factor, onset_repeats=campaign.onset_repeats)


class Reporting:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.campaign: Any = None
        self.baseline: baseline.Baseline | None = None
        self.summary: RunSummary | None = None
        self.report: str | None = None
        self.regressions = 0
        self.trials = None
        self.twin: str | None = None
        self._first_in_test = True
        self.require_lines: list[str] = []
        self.required: list[str] = []
        self.threshold_pct = baseline.DEFAULT_THRESHOLD_PCT
        if CHECKED in config.stash:  # read and checked before collection (plugin/options.py)
            inputs = config.stash[CHECKED]
            self.baseline, self.threshold_pct, self.required = inputs.baseline, inputs.threshold_pct, inputs.required

    # -- live progress -----------------------------------------------------------------------
    def _live(self) -> bool:
        return self.config.getoption("--progress") or self.config.getoption("verbose") > 0

    def _show(self, line: str) -> None:
        """To the terminal past pytest's output capture (as its live logging does)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            # the first line of a test starts a line of its own: pytest left the test's name open, and
            # the reporter cannot tell when someone wrote under capture (it then believes the line ended)
            if self._first_in_test:
                self._first_in_test = False
                reporter.write("\n")
                reporter.currentfspath = None
            reporter.ensure_newline()
            reporter.write_line(line)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
        result = yield
        if fixturedef.argname == "campaign" and result is not None and self.campaign is None:
            self.campaign = result
            store = result.store
            store.trial_listeners.append(Progress(store.path / "progress.log", self._show if self._live() else None,
                                                  _plan(result)))
        return result

    # -- JUnit properties ----------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        self._first_in_test = True
        campaign = getattr(item, "funcargs", {}).get("campaign")
        if campaign is None:
            return (yield)
        before = readings(_as_stored(campaign.store))
        checks = len(campaign.store.checks)
        try:
            return (yield)
        finally:
            self._properties(item, campaign, before, checks)

    @staticmethod
    def _properties(item: pytest.Item, campaign: Any, before: dict, checks: int) -> None:
        """What this scenario measured, as <property> elements of its JUnit test case."""
        item.user_properties.append(("config_id", campaign.store.config_id))
        for key, reading in readings(_as_stored(campaign.store)).items():
            if before.get(key) == reading:
                continue
            value = reading.value
            item.user_properties.append((key, "not detectable" if value is None
                                         else int(value) if float(value).is_integer() else value))
            if reading.spread_text():
                item.user_properties.append((f"{key}.spread", reading.spread_text()))
        for check in campaign.store.checks[checks:]:
            item.user_properties.append((f"check: {check.name}", f"{'pass' if check.passed else 'FAIL'}; "
                                                                 f"measured {check.measured}; expected {check.expected}"))

    # -- the end of the session ----------------------------------------------------------------
    def judge(self, store: ResultStore) -> None:
        """The baseline's verdict on the finished run, into its summary (the lifecycle writes the
        summary and draws the report after this, once)."""
        self.require_lines = require.lines(_as_stored(store), self.required, store.trials())
        if self.baseline is None:
            return
        threshold = self.threshold_pct
        verdicts = baseline.judge(self.baseline.readings, readings(_as_stored(store), store.trials()), threshold)
        self.regressions = sum(v.failed for v in verdicts)
        store.set_experiment("baseline", BaselineSection(
            self.baseline.source, self.baseline.config_id, threshold, [v.key for v in verdicts if v.failed],
            baseline.verdict_lines(verdicts, self.baseline, store.config_id)))

    def write_headline(self, store: ResultStore, report: str) -> None:
        """The one-screen summary, kept beside the report (the terminal gets it at the very end)."""
        self.summary, self.report, self.trials = store.summary, report, store.trials()
        try:
            self.twin = summary_line(twin_of(store.path))
        except ValueError as exc:  # a twin.json that is not one: say so, the headline stands
            self.twin = f"twin: {exc}"
        headline.write(store.path, self.summary, report, self.trials, self.require_lines, self.twin)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.summary is None:  # nothing was measured (judge() never ran)
            self.require_lines = require.lines(None, self.required)
        # a required estimate not measured conclusively fails the run as a regression does
        if (self.regressions or not require.met(self.require_lines)) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        if self.summary is None:
            for line in self.require_lines:
                terminalreporter.write_line(line, red=True, bold=True)
            return
        terminalreporter.ensure_newline()
        for line in headline.lines(self.summary, self.report, self.trials, self.twin) + self.require_lines:
            red = "REGRESSION" in line or line.lstrip().startswith("FAIL") or line.startswith("REQUIRED NOT MET")
            terminalreporter.write_line(line, red=red, bold=red)
