"""The reporting side of `pytest scenarios/` (loaded by scenarios/conftest.py via pytest_plugins):

- live progress: a line per trial when it ends (shown with -v or --progress, quiet otherwise,
  always written to progress.log in the run folder);
- JUnit: each scenario's new estimates and checks become properties of its test case;
- the regression gate: --baseline PATH with --fail-if-worse PCT fails the session on a regression;
- the end: the report is rendered again with the run's final status and the baseline verdict, and
  a one-screen headline summary closes the terminal output (and is kept as headline.txt/.md).
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Any

import pytest

from harness.report import baseline, headline
from harness.report.progress import Progress, SearchPlan
from harness.report.render import render
from harness.report.spread import readings


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wfpcap-report", "capacity reports")
    group.addoption("--progress", action="store_true", default=False,
                    help="show a line per trial as it ends, also under -q (always with -v; always in progress.log)")
    group.addoption("--baseline", default=None, metavar="PATH",
                    help="fail on a regression against a run folder, a config folder (its latest complete run) "
                         "or a baseline JSON (`wfpcap baseline save`)")
    group.addoption("--fail-if-worse", type=float, default=baseline.DEFAULT_THRESHOLD_PCT, metavar="PCT",
                    help="with --baseline: how much worse (percent) an estimate may be before it fails "
                         f"(default {baseline.DEFAULT_THRESHOLD_PCT:g}; never inside the measured spread)")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Reporting(config), "wfpcap-reporting")


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
        self.summary: dict[str, Any] | None = None
        self.report: str | None = None
        self.regressions = 0
        self.trials = None
        self._first_in_test = True
        path = config.getoption("--baseline")
        if path:
            threshold = config.getoption("--fail-if-worse")
            try:
                baseline.judge({}, {}, threshold)  # checks the threshold
                self.baseline = baseline.load(path)
            except ValueError as exc:
                pytest.exit(f"wfpcap: {exc}", returncode=2)

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
        before = readings(campaign.store.summary())
        checks = len(campaign.store.checks)
        try:
            return (yield)
        finally:
            self._properties(item, campaign, before, checks)

    @staticmethod
    def _properties(item: pytest.Item, campaign: Any, before: dict, checks: int) -> None:
        """What this scenario measured, as <property> elements of its JUnit test case."""
        item.user_properties.append(("config_id", campaign.store.config_id))
        for key, reading in readings(campaign.store.summary()).items():
            if before.get(key) == reading:
                continue
            value = reading.value
            item.user_properties.append((key, "not detectable" if value is None
                                         else int(value) if float(value).is_integer() else value))
            if reading.spread_text():
                item.user_properties.append((f"{key}.spread", reading.spread_text()))
        for check in campaign.store.checks[checks:]:
            item.user_properties.append((f"check: {check['name']}",
                                         f"{'pass' if check['passed'] else 'FAIL'}; measured {check['measured']}; "
                                         f"expected {check['expected']}"))

    # -- the end of the session ----------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.campaign is None:
            return
        store = self.campaign.store
        if not (store.path / "summary.json").exists():  # nothing was written: nothing to judge or render
            return
        summary = json.loads((store.path / "summary.json").read_text())
        if self.baseline is not None:
            threshold = self.config.getoption("--fail-if-worse")
            verdicts = baseline.judge(self.baseline.readings, readings(summary, store.trials()), threshold)
            self.regressions = sum(v.failed for v in verdicts)
            store.sections["baseline"] = {
                "source": self.baseline.source, "config_id": self.baseline.config_id, "threshold_pct": threshold,
                "regressions": [v.key for v in verdicts if v.failed],
                "lines": baseline.verdict_lines(verdicts, self.baseline, summary["config_id"])}
            store.write_summary()
            summary = json.loads((store.path / "summary.json").read_text())
            if self.regressions and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.summary = summary
        try:  # again: the final status and the baseline verdict are known now
            self.report = str(render(store.path)["html"])
        except Exception as exc:  # noqa: BLE001 - the headline and the exit status must still come out
            self.report = f"not rendered ({type(exc).__name__}: {exc})"
        self.trials = store.trials()
        (store.path / "headline.txt").write_text("\n".join(headline.lines(summary, self.report, self.trials)) + "\n",
                                                encoding="utf-8")
        (store.path / "headline.md").write_text(headline.markdown(summary, self.report, self.trials), encoding="utf-8")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        if self.summary is None:
            return
        terminalreporter.ensure_newline()
        for line in headline.lines(self.summary, self.report, self.trials):
            red = "REGRESSION" in line or line.lstrip().startswith("FAIL")
            terminalreporter.write_line(line, red=red, bold=red)
