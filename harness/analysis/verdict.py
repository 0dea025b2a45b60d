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
