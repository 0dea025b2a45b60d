"""Reading stored run files that may come from anywhere (another machine, an older harness, a
cut copy, a hand edit): summary.json and trials.csv are checked against what the report, the
comparison and a resumed run read from them. A file that does not fit raises StoredFileError,
one line that names the file and what is wrong; nothing downstream sees a half-valid file.

A summary is read into a RunSummary (results/records.py) whatever its format: format 1 (no
"format" key; the loss-only NDR search's first_lossy_rate_per_s, the buffer's expectation under
system_buffer) reads as it always did."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd

from harness.results.catalog import KEYS
from harness.results.records import FORMAT_VERSION, STATES, RunSummary


class StoredFileError(ValueError):
    pass


NUMBER = {"type": "number"}
NUMBER_OR_NULL = {"type": ["number", "null"]}
ESTIMATE = {"type": "object", "properties": {
    "value": NUMBER_OR_NULL, "method": {"type": "string"}, "detectable": {"type": "boolean"},
    "reason": {"type": ["string", "null"]}}}
NDR_ROW = {"type": "object", "required": ["callback_cost_us"], "properties": {
    "callback_cost_us": NUMBER, "rate_per_s": NUMBER_OR_NULL, "callback_rate_per_s": NUMBER_OR_NULL,
    "first_overloaded_rate_per_s": NUMBER_OR_NULL, "first_lossy_rate_per_s": NUMBER_OR_NULL, "trial_duration_s": NUMBER_OR_NULL,
    "unresolvable_overload_per_s": NUMBER_OR_NULL, "resolution_per_s": NUMBER_OR_NULL,
    "converged": {"type": "boolean"}}}
LATENCY = {"type": "object", "additionalProperties": NUMBER_OR_NULL}
MODE = {"type": "object", "required": ["loss_ratio", "latency_to_callback_us", "latency_to_work_done_us"],
        "properties": {"loss_ratio": NUMBER, "latency_to_callback_us": LATENCY, "latency_to_work_done_us": LATENCY}}
SUMMARY_SCHEMA = {
    "type": "object",
    "required": ["platform", "config_id", "fingerprint", "estimates", "checks", "experiments", "trials"],
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "platform": {"type": "string"},
        "config_id": {"type": "string", "minLength": 1},
        "trials": {"type": "integer", "minimum": 0},
        "run": {"type": "object", "required": ["status"], "properties": {
            "status": {"enum": list(STATES)}, "detail": {"type": "string"},
            "interrupted_at": {"type": ["object", "null"]},
            "scenarios": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}},
        "fingerprint": {"type": "object", "required": ["stable", "volatile"], "properties": {
            "stable": {"type": "object", "required": ["platform"], "properties": {
                "platform": {"type": "object"}}},
            "volatile": {"type": "object"},
            "measured": {"type": "object"}}},
        "estimates": {"type": "object", "properties": {
            "ndr": {"type": "array", "items": NDR_ROW},
            **{k: ESTIMATE for k in KEYS}}},
        "checks": {"type": "array", "items": {"type": "object", "required": ["name", "passed"], "properties": {
            "name": {"type": "string"}, "passed": {"type": "boolean"}, "message": {"type": "string"}}}},
        "experiments": {"type": "object", "properties": {
            "drain": {"type": "object", "required": ["trial"], "properties": {
                "trial": {"type": "integer", "minimum": 0}, "t_release_ns": NUMBER_OR_NULL}},
            "inline_copy": {"type": "object", "required": ["inline", "copy"],
                            "properties": {"inline": MODE, "copy": MODE}},
            "expected": {"type": "object", "properties": {
                k: NUMBER_OR_NULL for k in ("queue_limit", "buffer_depth", "buffer_depth_tolerance", "system_buffer",
                                            "system_buffer_tolerance")}}}},
        "ground_truth": {"type": "object"},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SUMMARY_SCHEMA)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_summary(path: Path | str) -> RunSummary:
    """A run's summary.json, checked; StoredFileError (one line, naming the file) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoredFileError(f"{path.parent} is not a run folder (no summary.json)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoredFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        summary = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise StoredFileError(f"{path} is not valid JSON: {str(exc)[:120]}") from None
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(summary))
    if error is not None:
        where = error.json_path if error.json_path != "$" else "the top level"
        raise StoredFileError(f"{path} is not a run summary: {where}: {_short(error.message)}")
    version = summary.get("format", 1)
    if version > FORMAT_VERSION:
        raise StoredFileError(f"{path} is a format {version} summary; this harness reads formats 1..{FORMAT_VERSION} "
                              "(upgrade wfp-capacity-harness)")
    return RunSummary.from_json({**summary, "format": version})


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# columns that the report and the experiments compute with: they must be numbers where present
NUMERIC = ("trial", "count", "expected", "delivered", "lost", "loss_ratio", "offered_rate_per_s",
           "search", "search_cost_us", "cost_us", "send_span_s", "t_release_ns")
REQUIRED = ("trial", "experiment", "count", "expected", "delivered", "lost", "loss_ratio")


def _parse_cell(text: str) -> Any:
    """A trials.csv cell back to the value that was written (see store.cell)."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_trial_rows(path: Path | str) -> list[dict[str, Any]]:
    """trials.csv as a list of rows with their values typed back; StoredFileError if it is not
    the harness's trial table (not CSV, ragged, required columns missing or not numbers)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoredFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise StoredFileError(f"{path} is not a trials table (CSV): {exc}") from None
    if not table:
        return []
    header, body = table[0], table[1:]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise StoredFileError(f"{path} is not a trials table: no column {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise StoredFileError(f"{path} is not a trials table: a column name repeats")
    rows = []
    for number, fields in enumerate(body, start=2):
        if len(fields) != len(header):
            raise StoredFileError(f"{path} line {number}: {len(fields)} fields, the header has {len(header)}")
        row = {k: _parse_cell(v) for k, v in zip(header, fields)}
        for k in NUMERIC:
            v = row.get(k)
            if v is not None and (isinstance(v, (bool, str))):
                raise StoredFileError(f"{path} line {number}: {k} is not a number: {fields[header.index(k)]!r}")
        if not isinstance(row["trial"], int) or row["trial"] != len(rows):
            raise StoredFileError(f"{path} line {number}: trial {row['trial']!r} out of order (expected {len(rows)})")
        rows.append(row)
    return rows


def read_trials(path: Path | str) -> pd.DataFrame:
    """trials.csv as a frame for the report (checked as read_trial_rows); empty if absent."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame()
    rows = read_trial_rows(path)
    if not rows:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise StoredFileError(f"{path} is not a trials table (CSV): {_short(str(exc))}") from None
