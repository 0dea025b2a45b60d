"""Scenario verdicts that hold on a noisy machine: pass, fail, or inconclusive.

A check compares a measured value with what is expected, within a tolerance taken from the measured
variability (a confidence interval, the spread between repetitions), never from a fixed guess. When
that spread is itself too wide to decide, or the trials behind the value saw interference that
explains a miss, the verdict is "inconclusive" with the spread: reported, and not a failure.
"""
from __future__ import annotations

from typing import Any

from harness.results.records import FAIL, INCONCLUSIVE, PASS, Verdict

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "Verdict", "interval_check", "within"]


def within(value: float | None, low: float | None, high: float | None) -> bool:
    return value is not None and low is not None and high is not None and low <= value <= high


def interval_check(measured: float | None, low: float | None, high: float | None, *, max_width: float,
                   interference: list[str], what: str, unit: str = "") -> Verdict:
    """`measured` must fall inside [low, high] (the prediction with its measured spread).
    Inconclusive, not failed, when the prediction is wider than `max_width` (relative to its middle)
    or the check missed while interference was seen."""
    expected = f"{low:.4g} .. {high:.4g}{unit}" if low is not None and high is not None else "not predictable"
    spread: dict[str, Any] = {"low": low, "high": high, "interference": interference}
    if measured is None or low is None or high is None:
        return Verdict(INCONCLUSIVE, measured, expected, f"{what}: nothing to compare ({expected})", spread)
    middle = (low + high) / 2
    width = (high - low) / middle if middle else float("inf")
    spread["relative_width"] = round(width, 4)
    if within(measured, low, high):
        return Verdict(PASS, measured, expected, f"{what}: {measured:.4g}{unit} within {expected}", spread)
    if width > max_width:
        return Verdict(INCONCLUSIVE, measured, expected,
                       f"{what}: {measured:.4g}{unit} outside {expected}, but the prediction spans "
                       f"{width:.0%} (more than {max_width:.0%}): too noisy to decide", spread)
    if interference:
        return Verdict(INCONCLUSIVE, measured, expected,
                       f"{what}: {measured:.4g}{unit} outside {expected} while the machine interfered "
                       f"({'; '.join(interference)})", spread)
    return Verdict(FAIL, measured, expected, f"{what}: {measured:.4g}{unit} outside {expected}", spread)


def headroom_verdict(headroom: float | None, first_lossy: float | None, status: str, reasons: list[str],
                     required: float | None, sentence: str) -> Verdict:
    """The agent's gate: pass when the headroom reaches `required`, fail when it surely does not.
    Inconclusive (a skip, never a failure) when the search says its own number cannot be trusted,
    except where even its lower bound suffices: a generator-limited headroom of at least the
    requirement passes. Without a requirement the measurement passes as recorded."""
    spread = {"status": status, "reasons": reasons, "first_lossy_scale": first_lossy}
    need = f">= {required:g}x" if required is not None else "a measured headroom"
    if required is None:
        status_now = PASS if status == "conclusive" else INCONCLUSIVE
        return Verdict(status_now, headroom, need, f"headroom: {sentence} (no required headroom given)", spread)
    if status == "generator-limited" and headroom is not None and headroom >= required:
        return Verdict(PASS, headroom, need, f"headroom at least {headroom:.3g}x >= {required:g}x: {sentence}", spread)
    if status != "conclusive":
        return Verdict(INCONCLUSIVE, headroom, need, f"headroom {status}: {sentence}", spread)
    if headroom is not None and headroom >= required:
        return Verdict(PASS, headroom, need, f"headroom {headroom:.3g}x >= {required:g}x: {sentence}", spread)
    shown = "none" if headroom is None else f"{headroom:.3g}x"
    return Verdict(FAIL, headroom, need, f"headroom {shown} < required {required:g}x: {sentence}", spread)


def replay_verdict(lost: int, expected: int, trusted: bool, untrusted_reason: str, interference: list[str],
                   scale: float, first_loss_s: float | None) -> Verdict:
    """The replay at the agent's scale loses nothing: fail on a loss, unless the sender missed the
    schedule (evidence of nothing) or the machine interfered while it lost (inconclusive)."""
    spread = {"interference": interference, "trusted": trusted}
    what = f"replay at {scale:g}x"
    if not trusted:
        return Verdict(INCONCLUSIVE, lost, 0, f"{what}: the sender missed the schedule ({untrusted_reason})", spread)
    if lost == 0:
        return Verdict(PASS, 0, 0, f"{what}: {expected:,} events, none lost", spread)
    message = (f"{what}: {lost:,} of {expected:,} events lost ({lost / max(expected, 1):.2%}), the first "
               f"{first_loss_s:.3g} s in" if first_loss_s is not None else f"{what}: {lost:,} events lost")
    if interference:
        return Verdict(INCONCLUSIVE, lost, 0, f"{message}, while the machine interfered ({'; '.join(interference)})", spread)
    return Verdict(FAIL, lost, 0, message, spread)
