"""The regression gate: --baseline, `wfpcap baseline save`, `wfpcap compare --fail-if-worse`."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from cli_runs import wfpcap
from harness.judge import baseline
from harness.judge.spread import Reading, readings
from harness.results.records import RunSummary
from platforms import needs_nflog
from stored_runs import set_status

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = "queue_limit_matches or ndr_below_callback_rate and 20us"  # measures the buffer, checks only the queue


def summary_of(estimates):
    """A run's summary holding just these estimates, as summary.json writes them."""
    return RunSummary.from_json({"platform": "model", "config_id": "x", "estimates": estimates})


def reading(value, low=None, high=None, key="buffer_depth"):
    return Reading(key, "System buffer", "events", "higher", value, value if low is None else low,
                   value if high is None else high)


def test_worse_beyond_threshold_and_spread_is_a_regression():
    base = {"buffer_depth": reading(16500, 16400, 16600)}
    for now, outcome in ((reading(14850, 14800, 14900), "regression"),
                         (reading(14850, 14700, 16450), "within spread"),  # the spreads overlap
                         (reading(16000), "ok"),                            # 3 % worse: inside the threshold
                         (reading(18500, 18400, 18600), "better"),
                         (Reading("buffer_depth", "System buffer", "events", "higher", None, None, None,
                                  "not detectable: needs queue_limit"), "inconclusive")):
        (v,) = baseline.judge(base, {"buffer_depth": now}, 5.0)
        assert v.outcome == outcome, (now, v.message())
        assert v.failed == (outcome == "regression")
    (v,) = baseline.judge(base, {}, 5.0)
    assert v.outcome == "not measured" and not v.failed
    first = Reading("first_batch", "First batch", "events", None, 21, 21, 21)
    assert baseline.judge({"first_batch": first}, {"first_batch": replace(first, value=5, low=5, high=5)},
                          5.0)[0].outcome == "not gated"
    with pytest.raises(ValueError, match="percentage"):
        baseline.judge(base, base, 150)


def test_regression_message_names_the_estimate_both_values_and_the_threshold():
    (v,) = baseline.judge({"buffer_depth": reading(16500)}, {"buffer_depth": reading(14850)}, 5.0)
    text = v.message()
    assert text.startswith("REGRESSION System buffer (buffer_depth)")
    assert "14,850" in text and "16,500" in text and "-10.0%" in text and "threshold 5%" in text


def pytest_scenarios(tmp_path, reports, *extra, backend="model", model=("system_buffer=3000",)):
    # on the model, a 3,000-event buffer keeps the NDR trials short (they are sized from the capacity)
    params = [x for m in model for x in ("--model-param", m)] if backend == "model" else []
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "-q", "-p", "no:cacheprovider",
           "--report-dir", str(reports), "--machine-label", "gate", "--backend", backend, "-k", SCENARIOS,
           *params, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)


def newest_run(reports: Path) -> Path:
    return max(reports.glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime).parent


def baseline_run(tmp_path, backend="model"):
    p = pytest_scenarios(tmp_path, tmp_path / "base", backend=backend)
    run = newest_run(tmp_path / "base")
    set_status(run, "complete")  # the scenario session would mark a full suite complete
    return p, run


@pytest.mark.subprocess
def test_baseline_gate_on_the_model(tmp_path):
    p, run = baseline_run(tmp_path)
    assert p.returncode == 0, p.stdout[-2000:]
    saved = tmp_path / "baseline.json"
    cli = wfpcap("baseline", "save", run.parent, "--out", saved)
    assert cli.returncode == 0, cli.stderr
    assert set(json.loads(saved.read_text())["estimates"]) >= {"buffer_depth", "ndr@20us", "burst_capacity"}

    same = pytest_scenarios(tmp_path, tmp_path / "same", "--baseline", str(run))
    assert same.returncode == 0, same.stdout[-3000:]
    assert "no regression in" in same.stdout

    # 10 % less buffer, and the dispatcher's own cost per callback from 2 to 4.4 us, so that a 20 us
    # callback is served 10 % slower: both regressions are named, with both values and the threshold
    worse = pytest_scenarios(tmp_path, tmp_path / "worse", "--baseline", str(saved),
                             model=("system_buffer=2700", "per_event_overhead_us=4.4"))
    assert worse.returncode == 1, worse.stdout[-3000:]  # only the gate can fail: the queue check passes
    lines = worse.stdout.splitlines()
    buffer = next(x for x in lines if "REGRESSION System buffer (buffer_depth)" in x)
    assert "2,700 events now, baseline 3,000" in buffer and "-10.0%" in buffer and "threshold 5%" in buffer
    ndr = next(x for x in lines if "REGRESSION NDR @ 20 µs (ndr@20us)" in x)
    assert "events/s now, baseline 4" in ndr and "threshold 5%" in ndr
    gate = json.loads((newest_run(tmp_path / "worse") / "summary.json").read_text())["experiments"]["baseline"]
    assert set(gate["regressions"]) == {"buffer_depth", "burst_capacity", "ndr@20us"}
    assert "REGRESSION System buffer" in (newest_run(tmp_path / "worse") / "report.html").read_text()


@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.subprocess
@needs_nflog
def test_baseline_gate_passes_an_identical_nflog_configuration_run_again(tmp_path):
    p, run = baseline_run(tmp_path, "nflog")
    again = pytest_scenarios(tmp_path, tmp_path / "again", "--baseline", str(run), backend="nflog")
    assert "baseline: " in again.stdout, again.stdout[-3000:]
    assert "REGRESSION" not in again.stdout, again.stdout[-3000:]
    gate = json.loads((newest_run(tmp_path / "again") / "summary.json").read_text())["experiments"]["baseline"]
    assert gate["regressions"] == []


@pytest.mark.subprocess
def test_bad_baseline_is_one_clear_line(tmp_path):
    run = tmp_path / "cfg" / "20260101T000000Z"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "platform": "model", "config_id": "cfg", "trials": 0, "run": {"status": "interrupted", "detail": "SIGINT"},
        "fingerprint": {"stable": {"platform": {"platform": "model"}}, "volatile": {}},
        "estimates": {}, "checks": [], "experiments": {}}))
    for target in (tmp_path / "missing", run):
        p = pytest_scenarios(tmp_path, tmp_path / "r", "--baseline", str(target))
        assert p.returncode == 2, p.stdout[-2000:]
        assert "Traceback" not in p.stdout + p.stderr
        assert "wfpcap: " in p.stdout + p.stderr
    cli = wfpcap("baseline", "save", run, "--out", tmp_path / "b")
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1
    assert "not a complete run (interrupted: SIGINT)" in cli.stderr


def test_an_ndr_the_generator_could_not_offer_is_inconclusive():
    import pandas as pd
    row = {"callback_cost_us": 20.0, "rate_per_s": 7500.0, "first_lossy_rate_per_s": 12500.0, "resolution_per_s": 5000.0}
    trials = pd.DataFrame({"experiment": "sustained", "search_cost_us": 20.0,
                           "offered_rate_per_s": [100000.0, 50000.0, 25000.0, 12500.0, 7500.0],
                           "lost": [500, 300, 0, 100, 0], "gen_trusted": [False, True, True, True, True]})
    templated = pd.concat([trials.assign(templated=False), pd.DataFrame([  # a template's search: not this NDR
        {"experiment": "sustained", "search_cost_us": 20.0, "offered_rate_per_s": 80000.0, "lost": 0,
         "gen_trusted": True, "templated": True}])], ignore_index=True)
    assert readings(summary_of({"ndr": [row]}), templated)["ndr@20us"].high == 25000.0
    trusted = readings(summary_of({"ndr": [row]}), trials)["ndr@20us"]
    assert (trusted.low, trusted.high, trusted.inconclusive) == (7500.0, 25000.0, "")  # 25,000 passed once
    trials.loc[4, "gen_trusted"] = False
    doubtful = readings(summary_of({"ndr": [row]}), trials)["ndr@20us"]
    assert doubtful.inconclusive == "the generator missed its offered load in 1 of 2 deciding trials"
    base = readings(summary_of({"ndr": [dict(row, rate_per_s=50000.0, first_lossy_rate_per_s=52000.0)]}))
    (v,) = baseline.judge(base, {"ndr@20us": doubtful}, 5.0)
    assert v.outcome == "inconclusive" and not v.failed and "not judged" in v.message()


def test_ndr_rows_with_a_status_and_a_relative_spread():
    row = {"callback_cost_us": 100.0, "rate_per_s": 9000.0, "first_overloaded_rate_per_s": 9200.0,
           "status": "conclusive", "spread": 0.04}
    r = readings(summary_of({"ndr": [row]}))["ndr@100us"]
    assert (r.low, r.high, r.inconclusive) == (pytest.approx(8640.0), pytest.approx(9360.0), "")
    varied = readings(summary_of({"ndr": [dict(row, status="inconclusive", spread=0.09,
                                                  status_reasons=["mu varied 9.0% (more than 5.0%)"])]}))
    assert varied["ndr@100us"].inconclusive == "" and varied["ndr@100us"].low == pytest.approx(8190.0)
    doubtful = readings(summary_of({"ndr": [dict(row, status="inconclusive",
                                                    status_reasons=["not confirmed by loss: lost at 9000/s"])]}))
    assert doubtful["ndr@100us"].inconclusive == "not confirmed by loss: lost at 9000/s"


def test_a_stored_capacity_of_an_unexpected_shape_is_ignored_not_a_crash():
    """A stored summary is input (hypothesis found `searches: true` crashing the reading)."""
    for searches in (True, 3, None, "1053", {"a": 1}):
        r = readings(summary_of({"burst_capacity": {"value": 1053, "searches": searches},
                                    "plateau": "not a dict", "buffer_depth": 7}))["burst_capacity"]
        assert (r.value, r.low, r.high) == (1053.0, 1053.0, 1053.0)
    r = readings(summary_of({"burst_capacity": {"value": 1053, "searches": [1000, 1100]}}))["burst_capacity"]
    assert (r.low, r.high) == (1000.0, 1100.0)
