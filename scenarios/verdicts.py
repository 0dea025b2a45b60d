"""How a scenario ends on its verdict (harness/analysis/verdict.py): recorded in the report, then
pass, fail with the message, or skip as inconclusive with the spread that kept it from deciding."""
import pytest

from harness.analysis.verdict import INCONCLUSIVE, PASS, Verdict


def settle(campaign, name: str, verdict: Verdict) -> None:
    campaign.verdict(name, verdict)
    if verdict.status == INCONCLUSIVE:
        pytest.skip(f"inconclusive: {verdict.message}")
    assert verdict.status == PASS, verdict.message
