"""The scenario suite's pytest integration is the harness's plugin: every option
(harness/plugin/options.py), the run's lifecycle and its one `campaign` fixture
(harness/plugin/lifecycle.py), progress, JUnit properties, the baseline gate and the headline
(harness/plugin/reporting.py)."""

pytest_plugins = ("harness.plugin.options", "harness.plugin.lifecycle", "harness.plugin.reporting")
