"""What a real-time result may do on a busy machine: a drain estimate is the true value, or withheld
while its trial names the interference that hid it (load may take the batches away, never give a
wrong number); a trial that missed a promise of the path must name the interference it saw."""
from __future__ import annotations

from typing import Any

from harness.results.records import Estimate
from harness.analysis.sustained import analyse_sustained
from harness.interference import Probe, flags
from harness.platforms.base import Platform, TrialResult
from harness.results.store import ResultStore
from harness.spec import TrialSpec


def watched(platform: Platform, spec: TrialSpec) -> tuple[TrialResult, list[str]]:
    """Run a trial and say what interference it saw (harness/interference.py); none in virtual time."""
    if platform.capabilities.virtual_time:
        return platform.run_trial(spec), []
    probe = Probe()
    probe.begin()
    result = platform.run_trial(spec)
    seen: dict[str, Any] = {**probe.end(), **{f"gen_{k}": v for k, v in (result.generator or {}).items()},
                            **analyse_sustained(result, None, 0.01)}
    return result, flags(seen)


def drain_interference(store: ResultStore) -> str:
    """The interference the drain trial recorded, in words ('' when none was seen)."""
    row = next(r for r in reversed(store.rows) if r["experiment"] == "drain")
    return str(row.get("interference") or "")


def assert_recovered_or_withheld(estimate: Estimate, truth: int, store: ResultStore) -> None:
    noise = drain_interference(store)
    if estimate.detectable:
        assert estimate.value == truth, (estimate.to_dict(), noise)
    else:  # withheld: only a trial that saw interference may withhold it
        assert noise, f"withheld on a quiet machine: {estimate.to_dict()}"
        print(f"withheld under interference ({noise}): {estimate.reason}")
