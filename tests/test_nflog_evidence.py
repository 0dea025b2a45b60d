"""No estimate of a report rests on a trial whose generator missed its load (real kernel, nflog)."""
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from harness.campaign import PROFILES, Campaign, load_expectations, platform_expectations
from platforms import make, needs_nflog

pytestmark = needs_nflog


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


def test_no_estimate_of_an_nflog_report_rests_on_an_untrusted_trial(tmp_path):
    quick = PROFILES["quick"]
    with make("nflog") as platform:
        # ask the first trial of the search for 20 x what this generator can do: it misses its load,
        # for real, and the search must lower its ceiling instead of counting it
        profile = replace(quick, ndr_realtime=replace(quick.ndr_realtime, max_rate_per_s=20 * platform.max_send_rate_per_s()))
        expectations = load_expectations(None, platform_expectations(platform))
        campaign = Campaign.open(platform, str(tmp_path), "quick", expectations, "evidence")
        campaign.profile = profile
        campaign.drain()
        row = campaign.ndr(100.0)
        campaign.onset()
        campaign.inline_copy(1.2e6 / quick.inline_copy_work_us, 0.5)
        run = campaign.store.path
    checked, untrusted = check_report(run)
    assert untrusted >= 1 and row["untrusted_trials"], "the over-asked first trial should have been refused"
    assert checked >= 8
    assert row["generator_limit_per_s"] or row["first_overloaded_rate_per_s"]
