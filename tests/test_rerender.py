"""Interrupted runs still render, marked incomplete; `wfpcap report` renders a stored run again
from its stored data without touching that data."""
import hashlib
import subprocess
import sys

import pytest

from harness.campaign import Campaign, load_expectations
from harness.platforms.model import ModelParams, ModelPlatform
from harness.report.render import render
from cli_runs import wfpcap
from stored_runs import set_status

DATA = ("summary.json", "trials.csv", "events/*", "progress.log")


class Interrupting(ModelPlatform):
    """Ctrl-C arrives during trial number `after` (as SIGINT would raise it)."""

    def __init__(self, after: int):
        super().__init__(ModelParams(system_buffer=500))
        self.after, self.trials = after, 0

    def run_trial(self, spec):
        self.trials += 1
        if self.trials > self.after:
            raise KeyboardInterrupt
        return super().run_trial(spec)


def interrupted_run(tmp_path, after):
    c = Campaign.open(Interrupting(after), str(tmp_path), "quick", load_expectations(None), "box")
    with pytest.raises(KeyboardInterrupt):
        c.drain()
        c.ndr(20.0)
        c.ndr(100.0)
    set_status(c.store.path, "interrupted", detail="SIGINT (Ctrl-C) in test_sustained_rate.py::test_ndr",
               interrupted_at={"experiment": "sustained", "trial": after},
               scenarios={"selected": ["a", "b", "c"], "finished": ["a"],
                          "not_finished": ["test_sustained_rate.py::test_ndr_below_callback_rate[100us]",
                                           "test_sustained_rate.py::test_loss_onset_matches_capacity"]})
    return c.store.path


def digests(run):
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for pattern in DATA for p in sorted(run.glob(pattern)) if p.is_file()}


@pytest.mark.parametrize("after", [3, 19])  # in the burst search; in the second NDR search
def test_an_interrupted_run_renders_marked_incomplete(tmp_path, after):
    run = interrupted_run(tmp_path, after)
    paths = render(run)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    assert 'id="incomplete"' in html and 'id="verdict"' in html
    for text in (html, md):
        assert "This run is not complete: interrupted: SIGINT (Ctrl-C) in test_sustained_rate.py::test_ndr." in text
        assert "test_sustained_rate.py::test_loss_onset_matches_capacity" in text
    assert paths.get("delivered_vs_burst") and paths["delivered_vs_burst"].stat().st_size > 10_000


def test_report_command_renders_again_with_identical_data_files(tmp_path):
    run = interrupted_run(tmp_path, 19)
    (run / "progress.log").write_text("wfpcap +0:01 burst #1: ...\n")
    first = render(run)
    before = digests(run)
    html_before = first["html"].read_text()
    for path in [first["html"], first["md"], *[p for k, p in first.items() if k not in ("html", "md")]]:
        path.unlink()
    p = wfpcap("report", run)  # what `wfpcap report RUN` does, in this process
    assert p.returncode == 0, p.stderr
    assert digests(run) == before and len(before) >= 5
    assert (run / "report.html").read_text() == html_before
    assert sorted(x.name for x in run.glob("*.png")) == sorted(x.name for k, x in first.items() if k not in ("html", "md"))


@pytest.mark.subprocess
def test_pages_are_utf8_whatever_the_locale_says(tmp_path):
    """Windows writes files in its ANSI code page unless told; the pages say charset=utf-8 and hold
    'µs'. Under an ASCII locale (the strictest case) every command must still write UTF-8."""
    import json
    import os
    from stored_runs import real_run
    run = real_run(tmp_path / "reports", ndr_costs=(20.0,), system_buffer=500)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONIOENCODING": "ascii:backslashreplace"}
    for args in (["report", str(run)], ["history", str(run.parent)],
                 ["compare", str(tmp_path / "reports"), "--html", str(tmp_path / "fleet.html"), "--out",
                  str(tmp_path / "fleet.md")],
                 ["baseline", "save", str(run), "--out", str(tmp_path / "b.json")]):
        p = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env)
        assert p.returncode == 0, (args, p.stderr[-2000:])
    for page in (run / "report.html", run / "report.md", run.parent / "history.html", tmp_path / "fleet.html",
                 tmp_path / "fleet.md"):
        assert "20 µs" in page.read_text(encoding="utf-8"), page
    assert json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))["estimates"]["ndr@20us"]["title"] == "NDR @ 20 µs"
