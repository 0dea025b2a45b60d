"""Does any estimate of a stored run rest on a trial whose generator missed its load? (issue 9:
no estimate rests on an untrusted trial; used for nflog and for the fake fwpuclnt.) And what a run
of the scenarios against the fake fwpuclnt's defaults must show (check_fake_run; .ci/run calls it
on the run it made: python tests/evidence.py REPORT_DIR)."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

FAKE_QUEUE, FAKE_BUFFER = 256, 16_500  # the fake's defaults (tests/fake_fwpuclnt)


def evidence_lists(node, path="") -> list[tuple[str, list[int]]]:
    """Every `rests_on` list anywhere in a summary, with where it was found."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "rests_on":
                found.append((path, list(value)))
            else:
                found += evidence_lists(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += evidence_lists(value, f"{path}[{i}]")
    return found


def check_report(run: Path) -> tuple[int, int]:
    """Every estimate with a value names the trials it rests on, and every one of those trials was
    trusted. Returns (evidence lists checked, untrusted trials in the run)."""
    summary = json.loads((run / "summary.json").read_text())
    trials = pd.read_csv(run / "trials.csv").set_index("trial")
    trusted = trials["trusted"].astype(str).eq("True")  # every trial records it (experiments/trial.py)
    for name, estimate in summary["estimates"].items():
        for e in estimate if isinstance(estimate, list) else [estimate]:
            if e.get("value", e.get("rate_per_s")) is not None:
                assert "rests_on" in e, f"estimate {name} does not name the trials it rests on: {e}"
    lists = evidence_lists(summary["estimates"]) + evidence_lists(summary["experiments"])
    for where, ids in lists:
        bad = [i for i in ids if not trusted.get(i, False)]
        assert not bad, f"{where} rests on untrusted trial(s) {bad}: {trials.loc[bad, 'untrusted_reason'].tolist()}"
    return len(lists), int((~trusted).sum())


def check_over_asked_campaign(platform, folder: Path) -> dict:
    """A quick campaign's sustained part whose NDR search first asks for 20 x what the generator
    can do: that trial misses its load, for real, and the search must lower its ceiling instead of
    counting it. Then no estimate of the report may rest on an untrusted trial. Returns the NDR row."""
    from harness.campaign import PROFILES, Campaign, load_expectations, platform_expectations
    quick = PROFILES["quick"]
    profile = replace(quick, ndr_realtime=replace(quick.ndr_realtime, max_rate_per_s=20 * platform.max_send_rate_per_s()))
    campaign = Campaign.open(platform, str(folder), "quick", load_expectations(None, platform_expectations(platform)),
                             "evidence")
    campaign.profile = profile
    campaign.drain()
    row = campaign.ndr(100.0)
    campaign.onset()
    campaign.inline_copy(2e6 / quick.inline_copy_work_us, 0.5)
    checked, untrusted = check_report(campaign.store.path)
    assert untrusted >= 1 and row.untrusted_trials, "the over-asked first trial should have been refused"
    assert checked >= 8
    assert row.generator_limit_per_s or row.first_overloaded_rate_per_s
    assert row.rate_per_s is None or row.rate_per_s <= 1e6 / 100.0  # never above what the callback allows
    return row


def check_fake_run(run: Path) -> dict:
    """The fake's queue and buffer recovered exactly, burst capacity = first batch + Q + B, every NDR
    at most what its callback cost allows, no estimate on an untrusted trial. Returns the estimates."""
    summary = json.loads((run / "summary.json").read_text())
    e = summary["estimates"]
    assert (e["queue_limit"]["value"], e["buffer_depth"]["value"]) == (FAKE_QUEUE, FAKE_BUFFER), e
    # the first batch is what arrives within the dispatch latency: a few events, trial by trial
    assert abs(e["burst_capacity"]["value"] - (e["first_batch"]["value"] + FAKE_QUEUE + FAKE_BUFFER)) <= 2, e
    assert e["ndr"], "no NDR measured"
    for row in e["ndr"]:  # the harness never serves faster than the callback's own cost allows
        assert row["rate_per_s"] is None or row["rate_per_s"] <= 1e6 / row["callback_cost_us"], row
    check_report(run)
    return e


if __name__ == "__main__":
    runs = sorted(Path(sys.argv[1]).glob("*/*/summary.json"))
    if not runs:
        sys.exit(f"evidence: no run under {sys.argv[1]}")
    check_fake_run(runs[-1].parent)
    print(f"evidence: {runs[-1].parent}: queue {FAKE_QUEUE}, buffer {FAKE_BUFFER}, capacity = first batch + Q + B, "
          "NDR <= 1/cost, no estimate on an untrusted trial")
