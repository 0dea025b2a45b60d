"""--require ESTIMATE,...: a run that did not measure what CI insists on is red. The judgement is a
pure function of the summary (tests marked windows run in the Windows job too); the option runs
through `pytest scenarios/` on the model, as the workflow uses it."""
import pytest

from harness.judge import require
from harness.results.records import RunSummary
from session_runs import run, scenario_cmd, small_model_args

NAMES = "burst_capacity,queue_limit,buffer_depth"


def summary(checks=(), **estimates) -> RunSummary:
    base = {"burst_capacity": {"value": 2113}, "queue_limit": {"value": 64}, "buffer_depth": {"value": 2000, "capacity": 2113}}
    base.update(estimates)
    return RunSummary.from_json({"platform": "model", "config_id": "box-model-0", "checks": list(checks),
                                 "estimates": {k: v for k, v in base.items() if v is not None}})


@pytest.mark.windows
def test_names_are_checked_when_the_option_is_read():
    assert require.parse(" burst_capacity, queue_limit ,buffer_depth,queue_limit") == ["burst_capacity", "queue_limit",
                                                                                       "buffer_depth"]
    assert require.parse("ndr,ndr@20us,ndr@0.5us") == ["ndr", "ndr@20us", "ndr@0.5us"]
    assert require.parse(None) == []
    with pytest.raises(ValueError, match=r"^--require: unknown estimate 'burst' \(known: burst_capacity, "):
        require.parse("burst_capacity,burst")
    with pytest.raises(ValueError, match="at least one"):
        require.parse(" , ")


@pytest.mark.windows
def test_each_unmet_estimate_is_named_with_why():
    s = summary(queue_limit={"value": None, "reason": "not detectable: no gap between callbacks stands out"},
                buffer_depth=None,
                checks=[{"name": "plateau agrees with burst capacity", "passed": True, "verdict": "inconclusive",
                         "message": "burst capacity 2113 (search) vs plateau 2001 (load 6 during 2 trials)"}])
    unmet, _ = require.judge(s, require.parse(NAMES))
    assert [(u.name, u.why) for u in unmet] == [
        ("burst_capacity", "inconclusive: burst capacity 2113 (search) vs plateau 2001 (load 6 during 2 trials)"),
        ("queue_limit", "not detectable: no gap between callbacks stands out"),
        ("buffer_depth", "missing: no scenario measured it (not selected, or the run stopped before it)")]
    lines = require.lines(s, require.parse(NAMES))
    assert lines[0].startswith("REQUIRED NOT MET: burst_capacity (inconclusive: burst capacity 2113") and not require.met(lines)


@pytest.mark.windows
def test_an_inconclusive_ndr_is_said_and_fails_only_when_required():
    ndr = {"callback_cost_us": 20.0, "rate_per_s": 40000.0, "status": "inconclusive",
           "status_reasons": ["the generator missed its offered load"]}
    s = summary(ndr=[ndr])
    lines = require.lines(s, require.parse(NAMES))
    assert lines == ["required: burst_capacity, queue_limit, buffer_depth: all measured conclusively",
                     "not required, inconclusive: the generator missed its offered load: ndr@20us"]
    assert require.met(lines)
    assert not require.met(require.lines(s, ["ndr"])) and not require.met(require.lines(s, ["ndr@20us"]))
    assert require.lines(summary(), ["ndr"])[0] == "REQUIRED NOT MET: ndr (missing: no scenario measured it (not selected, or the run stopped before it))"
    assert require.lines(None, ["queue_limit"]) == ["REQUIRED NOT MET: queue_limit (missing: nothing was measured)"]


@pytest.mark.subprocess
def test_a_model_run_fails_when_a_required_estimate_is_missing_or_inconclusive_and_passes_otherwise(tmp_path):
    model = small_model_args(tmp_path)
    done = run(scenario_cmd(tmp_path / "all", *model, "--require", NAMES,
                            "-k", "burst_capacity or queue_limit or system_buffer or backlog"), tmp_path / "live")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "required: burst_capacity, queue_limit, buffer_depth: all measured conclusively" in done.stdout
    headline = next((tmp_path / "all").glob("*/*/headline.md")).read_text()
    assert "- required: burst_capacity, queue_limit, buffer_depth: all measured conclusively" in headline

    only_burst = run(scenario_cmd(tmp_path / "burst", *model, "--require", NAMES, "-k", "burst_capacity_is_bounded"),
                     tmp_path / "live")
    assert only_burst.returncode == 1, only_burst.stdout[-3000:]
    assert ("REQUIRED NOT MET: queue_limit (missing: no scenario measured it (not selected, or the run stopped before "
            "it)); buffer_depth (missing: ") in only_burst.stdout

    # no batch turnaround: no gap to see the queue by; the scenario is inconclusive (a skip, green) ...
    flat = (*model, "--model-param", "batch_turnaround_us=0", "-k", "queue_limit")
    green = run(scenario_cmd(tmp_path / "flat", *flat), tmp_path / "live")
    assert green.returncode == 0 and "1 skipped" in green.stdout, green.stdout[-3000:]
    # ... unless it is required
    red = run(scenario_cmd(tmp_path / "flat2", *flat, "--require", "queue_limit"), tmp_path / "live")
    assert red.returncode == 1 and "REQUIRED NOT MET: queue_limit (not detectable: " in red.stdout, red.stdout[-3000:]
    summary_md = next((tmp_path / "flat2").glob("*/*/headline.md")).read_text()
    assert "- REQUIRED NOT MET: queue_limit (not detectable: " in summary_md


@pytest.mark.subprocess
def test_an_unknown_name_is_one_line_and_exit_2_before_anything_opens(tmp_path):
    done = run(scenario_cmd(tmp_path / "r", "--require", "burst_capacity,queue"), tmp_path / "live")
    said = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(said) == 1, said
    assert said[0].startswith("wfpcap: --require: unknown estimate 'queue' (known: burst_capacity, ")
    assert not (tmp_path / "r").exists()  # no run folder: nothing was opened


def test_every_check_named_for_an_estimate_is_a_check_a_scenario_records():
    """--require reads a scenario's verdict on an estimate by the check's name: a check renamed in
    scenarios/ would otherwise leave the estimate looking conclusive."""
    import re
    from pathlib import Path
    from harness.judge.require import CHECKS_ON, _checks_on
    sources = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "scenarios").glob("*.py"))
    named = {name for names in CHECKS_ON.values() for name in names}
    named |= {template.replace("20", "{cost_us:g}") for template in _checks_on("ndr@20us")}
    for name in named:
        assert f'"{name}"' in sources or f'f"{name}"' in sources, name
    assert re.search(r'f"NDR \{cost_us:g\} us <= 1/cost"', sources) and 'f"mu explains NDR {cost_us:g} us"' in sources
