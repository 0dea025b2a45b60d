"""The report and the fleet page as a reader sees them: headless Chromium loads each page, every
image must load, the verdict and the headline table must be there, and nothing may be fetched."""
import json
import shutil

import numpy as np
import pytest

from browser import needs_browser, visit
from cli_runs import wfpcap
from harness.judge import compare
from harness.report import fleet
from stored_runs import noisy_copy, real_run


def assert_reads_well(v, images_at_least):
    assert v.requests == [], f"the page fetched {v.requests}"
    assert len(v.images) >= images_at_least, v.images
    broken = [i["alt"] for i in v.images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert {"verdict", "headline"} <= v.ids, v.ids
    assert v.screenshot.stat().st_size > 20_000


@pytest.mark.browser
def test_report_in_chromium(tmp_path):
    needs_browser()
    run = real_run(tmp_path, ndr_costs=(20.0,), system_buffer=1000)
    v = visit(run / "report.html", tmp_path / "report.png")
    assert_reads_well(v, images_at_least=4)
    assert v.title.endswith("-model-" + v.title.split("-model-")[-1])


@pytest.fixture(scope="module")
def thirty_configurations(tmp_path_factory):
    """30 stored configurations, written from three real runs (model: a changed parameter is a new
    configuration) with run-to-run noise, each under its own config id and machine name."""
    root = tmp_path_factory.mktemp("fleet")
    sources = [real_run(root / "src" / str(k), ndr_costs=(20.0,), label=f"src{k}", system_buffer=b, queue_limit=q)
               for k, (b, q) in enumerate(((1000, 256), (700, 256), (500, 128)))]
    rng = np.random.default_rng(11)
    reports = root / "reports"
    for k in range(30):
        config = reports / f"runner-{k:02d}-model-{k:010d}"
        run = noisy_copy(sources[k % 3], config, "20261120T030000Z", rng, "2026-11-20T03:00:00Z")
        summary = json.loads((run / "summary.json").read_text())
        summary["config_id"] = config.name
        summary["fingerprint"]["stable"]["machine"] = f"runner-{k:02d}"
        (run / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(root / "src")
    return reports


@pytest.mark.browser
def test_fleet_page_of_thirty_configurations_in_chromium(thirty_configurations, tmp_path):
    needs_browser()
    found = compare.collect([thirty_configurations])
    assert len(found.entries) == 30
    page = fleet.write_html(found, tmp_path / "fleet.html")
    v = visit(page, tmp_path / "fleet.png")
    assert_reads_well(v, images_at_least=2)
    assert {"differences", "configs"} <= v.ids
    html = page.read_text()
    assert html.count('href="') == 30  # a link to each run's own report
    assert "src=\"http" not in html and "<script" not in html


@pytest.mark.browser
def test_the_checks_can_fail(tmp_path):
    """A page that fetches an image and has a broken one is caught (the checks are not toothless)."""
    needs_browser()
    page = tmp_path / "bad.html"
    page.write_text('<html><body><div id="verdict"></div><table id="headline"></table>'
                    '<img alt="remote" src="http://127.0.0.1:9/x.png"><img alt="broken" src="data:image/png;base64,AAAA">'
                    '</body></html>')
    v = visit(page, tmp_path / "bad.png")
    assert v.requests == ["http://127.0.0.1:9/x.png"]
    assert {i["alt"] for i in v.images if not (i["complete"] and i["width"] > 0)} == {"remote", "broken"}


def test_compare_fails_if_a_configuration_is_worse_than_the_reference(thirty_configurations, tmp_path):
    def compare(*args):
        return wfpcap("compare", thirty_configurations, *args, "--out", tmp_path / "fleet.md")

    worse = compare("--fail-if-worse", "5")  # against C1 (the largest buffer): C2, C3, C5, ... are worse
    assert worse.returncode == 1, worse.stderr
    assert "wfpcap: C2 runner-01-model-0000000001: REGRESSION System buffer (buffer_depth)" in worse.stderr
    assert "20 of 29 configurations are worse than C1" in (tmp_path / "fleet.md").read_text()
    smallest = compare("--fail-if-worse", "5", "--reference", "runner-02-model-0000000002")
    assert smallest.returncode == 0, smallest.stderr
    assert "no configuration is worse than C3" in smallest.stdout
    assert compare("--reference", "C99").returncode == 2
