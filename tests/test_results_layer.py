"""The results layer holds together: every estimate of the catalogue is known to every reader
(report, headline, history, comparison, baseline, the summary's schema); a run is drawn once;
nothing outside harness/results writes the summary."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from harness.agent import load_agent
from harness.campaign import Campaign, load_expectations
from harness.judge import baseline, compare, history
from harness.judge.spread import readings
from harness.platforms.model import ModelParams, ModelPlatform
from harness.report import headline
from harness.report.render import render
from harness.results import catalog, read
from harness.results.runs import load_run
from harness.spec import SubscriberSpec
from stored_runs import set_status

ROOT = Path(__file__).resolve().parents[1]
COSTS = (100.0,)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A model run that measured every estimate of the catalogue, complete, twice in one configuration."""
    root = tmp_path_factory.mktemp("reports")
    runs = []
    agent = replace(load_agent({"--traffic-shape": "on-off:mean=2000,burst=40000,length=0.1,duration=1"}, None),
                    subscriber=SubscriberSpec(cost_us=40.0))  # the headroom needs a trace and a subscriber
    for _ in range(2):
        c = Campaign.open(ModelPlatform(ModelParams(system_buffer=2000, queue_limit=64)), str(root), "quick",
                          load_expectations(None), "catalog", agent=agent)
        c.drain()
        for cost in COSTS:
            c.ndr(cost)
        c.headroom()
        set_status(c.store.path, "complete")
        runs.append(c.store.path)
    return runs[-1]


def every_key() -> list[str]:
    return [*catalog.KEYS, *(catalog.ndr_key(c) for c in COSTS)]


def test_the_run_measured_every_catalogued_estimate(measured):
    found = readings(load_run(measured).summary, load_run(measured).trials())
    assert sorted(found) == sorted(every_key())
    assert all(found[k].value is not None for k in found), {k: r.note for k, r in found.items() if r.value is None}


@pytest.mark.parametrize("kind", catalog.CATALOG, ids=lambda k: k.key)
def test_a_stored_estimate_is_read_only_when_it_has_the_shape_and_range_of_its_kind(measured, tmp_path, kind):
    """The summary's schema is the records' own (records.json_schema), its ranges the catalogue's."""
    import json
    import shutil
    for value, refused in (("many", "is not of type"), (-1, "is out of range"),
                           (None, None)):
        run = tmp_path / f"{value}" / "run"
        shutil.copytree(measured, run)
        summary = json.loads((run / "summary.json").read_text())
        summary["estimates"][kind.key]["value"] = value
        (run / "summary.json").write_text(json.dumps(summary))
        if refused is None:
            assert read.read_summary(run / "summary.json").estimates.get(kind.key).value is None
            continue
        with pytest.raises(read.StoredFileError, match=f"estimates.{kind.key}.*{refused}"):
            read.read_summary(run / "summary.json")


def test_report_and_headline_show_each_estimate(measured):
    report = render(measured)["md"].read_text()
    run = load_run(measured)
    lines = "\n".join(headline.lines(run.summary, None, run.trials()))
    table = report.split("## Headline estimates", 1)[1].split("\n## ", 1)[0]
    for key in every_key():
        kind = catalog.kind_of(key)
        title = kind.title if kind is not catalog.NDR else catalog.ndr_title(catalog.ndr_cost(key))
        assert title in lines, (key, lines)
        if kind is not catalog.NDR:
            assert f"| {kind.title} |" in table and kind.meaning in table, key
    assert "## Sustained rate per callback cost (NDR)" in report


def test_history_compare_and_baseline_track_each_gated_estimate(measured):
    gated = [k for k in every_key() if catalog.kind_of(k).gated]
    assert {"burst_capacity", "queue_limit", "buffer_depth"} <= set(gated)
    built = history.build(measured.parent)
    assert [s.key for s in built.series] == gated
    fleet = compare.collect([measured.parent])
    assert fleet.keys() == gated
    saved = baseline.load(measured.parent, last=2)
    assert set(saved.readings) == set(every_key())
    assert [k for k, r in saved.readings.items() if r.better] == gated


def test_a_key_missing_from_the_catalogue_is_missing_everywhere(measured, monkeypatch):
    """The readers take their keys from the catalogue, not a list of their own: without an entry,
    no reader shows the estimate (so a new entry is all they need)."""
    shrunk = tuple(k for k in catalog.CATALOG if k.key != "buffer_depth")
    monkeypatch.setattr(catalog, "CATALOG", shrunk)
    monkeypatch.setattr(catalog, "KEYS", tuple(k.key for k in shrunk))
    monkeypatch.setattr(catalog, "BY_KEY", {k.key: k for k in shrunk})
    monkeypatch.setattr(catalog, "GATED", tuple(k.key for k in shrunk if k.gated))
    with pytest.raises(KeyError, match="not an estimate of the catalogue"):
        load_run(measured).summary.estimates.set("buffer_depth", load_run(measured).summary.estimates.get("queue_limit"))
    run = load_run(measured)
    assert "buffer_depth" not in readings(run.summary, run.trials())
    assert "buffer_depth" not in compare.collect([measured.parent]).keys()
    assert "System buffer" not in "\n".join(headline.lines(run.summary, None, run.trials()))


def test_only_the_results_layer_writes_the_summary():
    """Experiments return records, the campaign hands them to the store: no module elsewhere
    touches the summary's sections or writes summary.json."""
    offenders = []
    for path in [*(ROOT / "harness").rglob("*.py"), *(ROOT / "scenarios").rglob("*.py")]:
        if "results" in path.relative_to(ROOT).parts:
            continue
        text = path.read_text()
        for pattern in (r"sections\[", r"\.write_summary\(", r"summary\.json\"\)\.write", r"\.experiments\.\w+ = ",
                        r"\.summary\.\w+ = ", r"fingerprint\.(volatile|measured|stable)\[.*\] = "):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert offenders == [], offenders


def test_a_run_with_a_baseline_is_drawn_once(tmp_path, monkeypatch, measured):
    """The baseline's verdict is in the summary before the report is drawn, so a run renders once."""
    import harness.report.render as render_module
    calls = []

    def counting(path, **kwargs):
        calls.append(Path(path))
        return render(path, **kwargs)

    monkeypatch.setattr(render_module, "render", counting)
    monkeypatch.setenv("WFPCAP_LIVE_DIR", str(tmp_path / "live"))
    monkeypatch.chdir(ROOT)
    code = pytest.main(["scenarios/", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--report-dir", str(tmp_path),
                        "--machine-label", "catalog", "--model-param", "system_buffer=2000", "--model-param",
                        "queue_limit=64", "-k", "burst_capacity_is_bounded", "--baseline", str(measured)])
    assert code == 0
    assert len(calls) == 1, calls
    summary = read.read_summary(calls[0] / "summary.json")
    assert summary.experiments.baseline is not None and summary.experiments.baseline.source == str(measured)
    assert "Baseline" in (calls[0] / "report.md").read_text()
