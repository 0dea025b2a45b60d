"""Live progress, the headline summary and JUnit properties of `pytest scenarios/`."""
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from harness.campaign import Campaign, load_expectations
from harness.platforms.model import ModelPlatform
from harness.report.progress import Progress, SearchPlan
from platforms import needs_nflog

ROOT = Path(__file__).resolve().parents[1]
EXPECT = ROOT / "tests" / "expect-buffer-2000.json"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_line_per_trial_with_the_search_it_belongs_to(tmp_path):
    clock, shown = Clock(), []
    progress = Progress(tmp_path / "progress.log", shown.append, SearchPlan(ndr_resolution=0.02,
                                                                            ndr_confirm_factor=3.0), clock)
    burst = {"experiment": "burst", "count": 4096, "offered_rate_per_s": None, "delivered": 4096, "lost": 0,
             "send_span_s": 0.004, "search": 0}
    clock.now += 2
    progress(burst, 0.5)
    clock.now += 2
    progress({**burst, "count": 16384, "delivered": 16777, "lost": 3000}, 0.5)
    for k in range(3):
        clock.now += 10
        progress({"experiment": "sustained", "search_cost_us": 100.0, "count": 80000, "offered_rate_per_s": 20000.0,
                  "delivered": 79000, "lost": 1000, "send_span_s": 4.0, "confirmation": None}, 10.0)
    assert shown[0] == ("wfpcap +0:02 burst #1: burst 4,096, delivered 4,096, lost 0, trial 0.00 s (0.50 s wall); "
                        "search 0:00, left ?")
    assert "burst #2: burst 16,384, delivered 16,777, lost 3,000" in shown[1]
    assert "~0:12 left" in shown[1]  # 2 of 1 x (2 + 3 + 1) + 6 sweep trials done in 2.5 s
    # a new search starts counting again; 7 plain trials + a 3x confirmation expected, 3 done in 30 s
    assert shown[2] == ("wfpcap +0:14 sustained 100us #1: rate 20,000/s, delivered 79,000, lost 1,000, "
                               "trial 4.00 s (10.00 s wall); search 0:10, ~1:30 left")
    assert shown[4].endswith("search 0:30, ~1:10 left")
    assert (tmp_path / "progress.log").read_text().splitlines() == shown


def test_the_onset_search_is_planned_as_its_repetitions(tmp_path):
    clock, shown = Clock(), []
    progress = Progress(tmp_path / "progress.log", shown.append, SearchPlan(onset_repeats=3), clock)
    for k in range(3):
        clock.now += 10
        progress({"experiment": "onset", "search_cost_us": 100.0, "count": 100000, "offered_rate_per_s": 13000.0,
                  "delivered": 84000, "lost": 16000, "send_span_s": 7.5, "confirmation": None}, 10.0)
    assert shown[0].endswith("search 0:10, ~0:20 left") and shown[2].endswith("search 0:30, ~0:00 left")


def test_lines_come_between_trials_once_the_trial_is_on_disk(tmp_path):
    platform = ModelPlatform()
    c = Campaign.open(platform, str(tmp_path), "quick", load_expectations(None))
    events = []
    original = platform.run_trial

    def spy(spec):
        events.append("start")
        result = original(spec)
        events.append("end")
        return result

    def listener(row, wall_s):
        on_disk = len(pd.read_csv(c.store.trials_csv))
        events.append(("line", row["trial"], on_disk, wall_s > 0))

    platform.run_trial = spy
    c.store.trial_listeners.append(listener)
    c.burst()
    trials = len(c.store.trials())
    assert events == [x for k in range(trials) for x in ("start", "end", ("line", k, k + 1, True))]


def run_scenarios(tmp_path, *extra, backend="model", select="burst_capacity_is_bounded or queue_limit"):
    model = ["--model-param", "system_buffer=2000", "--expect", str(EXPECT)] if backend == "model" else []
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-p", "no:cacheprovider", "--backend", backend,
           "--report-dir", str(tmp_path / "reports"), "--machine-label", "live", "-k", select, *model, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    run = next((tmp_path / "reports").glob("*/*"))
    return p, run


def progress_lines(text):
    return [line for line in text.splitlines() if line.startswith("wfpcap +")]


def assert_ends_with_headline(stdout, run):
    lines = stdout.rstrip().splitlines()
    assert " passed" in lines[-1] and " in " in lines[-1]  # pytest's own closing line stays last
    body = [line for line in lines[:-1] if not line.startswith(("SKIPPED", "FAILED", "=" * 10 + " short"))]
    end = len(body) - 1 - body[::-1].index("=" * 78)
    start = max(k for k, line in enumerate(body[:end]) if line.startswith("=") and " wfpcap: " in line)
    block = body[start:end + 1]
    assert block == (run / "headline.txt").read_text().splitlines()
    assert any("System buffer" in x or "Burst capacity" in x for x in block) and block[-2].startswith("report: ")
    assert end >= len(body) - 2, body[end:]


@pytest.mark.subprocess
def test_verbose_run_shows_every_trial_and_ends_with_the_headline_and_junit_has_the_numbers(tmp_path):
    junit = tmp_path / "junit.xml"
    p, run = run_scenarios(tmp_path, "-v", "--junitxml", str(junit))
    assert p.returncode == 0, p.stdout[-3000:]
    shown = progress_lines(p.stdout)
    trials = pd.read_csv(run / "trials.csv")
    assert len(shown) == len(trials) > 5
    assert shown == (run / "progress.log").read_text().splitlines()
    assert all(f" #{k}:" in line for k, line in enumerate(shown[:5], start=1))
    assert_ends_with_headline(p.stdout, run)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {name: {q.get("name"): q.get("value") for q in c.iter("property")} for name, c in cases.items()}
    burst = props["test_burst_capacity_is_bounded"]
    assert burst["burst_capacity"] == "2277" and burst["plateau"] == "2277"
    assert burst["check: plateau agrees with burst capacity"].startswith("pass; measured 2277")
    queue = props["test_queue_limit_matches_expectation"]
    assert queue["queue_limit"] == "256" and queue["buffer_depth"] == "2000"
    assert queue["check: next-queue limit"] == "pass; measured 256; expected 256"
    assert "burst_capacity" not in queue  # each case carries what it measured itself


@pytest.mark.subprocess
def test_quiet_run_is_quiet_unless_asked(tmp_path):
    quiet, run = run_scenarios(tmp_path / "q", "-q", select="burst_capacity_is_bounded")
    assert quiet.returncode == 0 and progress_lines(quiet.stdout) == []
    assert len((run / "progress.log").read_text().splitlines()) == len(pd.read_csv(run / "trials.csv"))
    assert_ends_with_headline(quiet.stdout, run)
    asked, run = run_scenarios(tmp_path / "p", "-q", "--progress", select="burst_capacity_is_bounded")
    assert len(progress_lines(asked.stdout)) == len(pd.read_csv(run / "trials.csv"))


@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.subprocess
@needs_nflog
def test_nflog_verbose_run_shows_a_line_per_trial_as_it_ends(tmp_path):
    p, run = run_scenarios(tmp_path, "-v", backend="nflog", select="burst_capacity_is_bounded")
    shown = progress_lines(p.stdout)
    assert len(shown) == len(pd.read_csv(run / "trials.csv")) > 5, p.stdout[-3000:]
    assert all(" burst #" in line and ", delivered " in line and " s wall); search " in line for line in shown)
    assert_ends_with_headline(p.stdout, run)


@pytest.mark.subprocess
def test_a_line_starts_on_its_own_even_after_a_note_written_under_capture(tmp_path):
    """Another plugin writing to the terminal while pytest captures output (a note during the
    campaign's setup) must not glue the first progress line to pytest's test name."""
    conftest = tmp_path / "conftest.py"
    conftest.write_text(
        "import pytest\n"
        "pytest_plugins = ('harness.plugin.options', 'harness.plugin.reporting')\n"
        "class Store:\n"
        "    def __init__(self, path):\n"
        "        self.path, self.trial_listeners, self.checks, self.config_id = path, [], [], 'x'\n"
        "    def to_json(self): return {'platform': 'model', 'config_id': 'x'}\n"
        "class Campaign:\n"
        "    class profile:\n"
        "        class burst: repetitions, verify, sweep = 1, 1, ()\n"
        "    class ndr_config: resolution, confirm_factor = 0.02, 3.0\n"
        "    onset_repeats = 3\n"
        "@pytest.fixture(scope='session')\n"
        "def campaign(request, tmp_path_factory):\n"
        "    request.config.pluginmanager.get_plugin('terminalreporter').write_line('a note under capture')\n"
        "    c = Campaign(); c.store = Store(tmp_path_factory.mktemp('run'))\n"
        "    return c\n")
    (tmp_path / "test_x.py").write_text(
        "def test_one(campaign):\n"
        "    for listener in campaign.store.trial_listeners:\n"
        "        listener({'experiment': 'burst', 'count': 10, 'delivered': 10, 'lost': 0, 'send_span_s': 0.0}, 0.1)\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stdout
    assert len(progress_lines(p.stdout)) == 1, p.stdout
