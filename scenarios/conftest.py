"""The scenario suite's pytest integration is the harness's plugin: every option
(harness/plugin/options.py), the run's lifecycle and its one `campaign` fixture
(harness/plugin/lifecycle.py), progress, JUnit properties, the baseline gate and the headline
(harness/plugin/reporting.py). A stopping signal while they load is noted first
(harness/plugin/early.py)."""
from harness.plugin import early

early.install()

pytest_plugins = ("harness.plugin.options", "harness.plugin.lifecycle", "harness.plugin.reporting")
