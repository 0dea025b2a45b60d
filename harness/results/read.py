"""Reading stored run files that may come from anywhere (another machine, an older harness, a
cut copy, a hand edit): summary.json and trials.csv are checked against what the report, the
comparison and a resumed run read from them. A file that does not fit raises StoredFileError,
one line that names the file and what is wrong; nothing downstream sees a half-valid file.

A summary is read into a RunSummary (results/records.py) whatever its format: format 1 (no
"format" key; the loss-only NDR search's first_lossy_rate_per_s, the buffer's expectation under
system_buffer) reads as it always did.

One reader per kind of file: summary.json, trials.csv, a baseline JSON, an events frame
(events/*.csv.gz), and JSON given by a user (--expect). Each caps the size it reads, refuses
numbers that are not finite (NaN, Infinity, 1e400) and keys given twice, and names the file in
every message."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd

from harness.results import catalog
from harness.results.catalog import KEYS
from harness.results.records import FORMAT_VERSION, STATES, TWIN_FORMAT, RunSummary, Twin


class StoredFileError(ValueError):
    pass


MAX_JSON_BYTES = 64 << 20      # a summary of thousands of trials is a few MB
MAX_TABLE_BYTES = 1 << 30      # trials.csv and an events frame (compressed on disk)
MAX_INT = 2**63                # integers beyond int64 are no measurement (and overflow floats)


def read_text(path: Path | str, limit: int, error: type[ValueError] = StoredFileError) -> str:
    """A text file of at most `limit` bytes (read with the limit, so /dev/zero is refused too)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path} is larger than {limit >> 20} MB: not a file the harness wrote")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(int(text)) > MAX_INT:
        raise ValueError(f"{text[:24]} is beyond any measurement")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice")
        out[key] = value
    return out


def parse_json(text: str, what: str, error: type[ValueError] = StoredFileError) -> Any:
    """Strict JSON: no NaN or Infinity, no number that is not finite as a float, no key twice."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int,
                          object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON: {_short(str(exc))}") from None


def read_json(path: Path | str, limit: int = MAX_JSON_BYTES, error: type[ValueError] = StoredFileError) -> Any:
    return parse_json(read_text(path, limit, error), str(path), error)


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
    raise ValueError(f"{name} is not a number JSON allows")


def read_summary(path: Path | str) -> RunSummary:
    """A run's summary.json, checked; StoredFileError (one line, naming the file) otherwise."""
    path = Path(path)
    if not path.exists():
        raise StoredFileError(f"{path.parent} is not a run folder (no summary.json)")
    summary = read_json(path)
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
REQUIRED = ("trial", "experiment", "count", "expected", "delivered", "lost", "loss_ratio", "pacing",
            "offered_rate_per_s", "templated")  # every row the store writes has these


def _parse_cell(text: str) -> Any:
    """A trials.csv cell back to the value that was written (see store.cell); the store writes a
    number that is not finite as an empty cell, so "nan" or "inf" is not a cell it wrote."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def read_trial_rows(path: Path | str) -> list[dict[str, Any]]:
    """trials.csv as a list of rows with their values typed back; StoredFileError if it is not
    the harness's trial table (not CSV, ragged, required columns missing or not numbers)."""
    path = Path(path)
    text = read_text(path, MAX_TABLE_BYTES)
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
        try:
            row = {k: _parse_cell(v) for k, v in zip(header, fields)}
        except ValueError as exc:
            raise StoredFileError(f"{path} line {number}: {exc}") from None
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


def read_events(path: Path | str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A frame the harness kept (events/*.csv.gz): sent or delivered events, a backlog trace.
    `columns` must be there and numeric. StoredFileError naming the file otherwise."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise StoredFileError(f"{path} does not exist") from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise StoredFileError(f"{path} is not an events frame the harness wrote: {_short(str(exc))}") from None
    for column in columns:
        if column not in frame or not pd.api.types.is_numeric_dtype(frame[column]):
            raise StoredFileError(f"{path} is not an events frame the harness wrote: no numeric column {column}")
    return frame


READING = {"type": "object", "required": ["key", "title", "unit", "value", "low", "high"], "properties": {
    "key": {"type": "string"}, "title": {"type": "string"}, "unit": {"type": "string"},
    "better": {"enum": ["higher", None]}, "value": NUMBER_OR_NULL, "low": NUMBER_OR_NULL, "high": NUMBER_OR_NULL,
    "note": {"type": "string"}, "inconclusive": {"type": "string"}}, "additionalProperties": False}
BASELINE_SCHEMA = {"type": "object", "required": ["schema", "config_id", "platform", "runs", "estimates"], "properties": {
    "schema": {"const": "wfpcap-baseline/1"}, "config_id": {"type": "string"}, "platform": {"type": "string"},
    "runs": {"type": "array", "items": {"type": "string"}}, "source": {"type": "string"},
    "saved_utc": {"type": "string"}, "estimates": {"type": "object", "additionalProperties": READING}}}
_BASELINE = jsonschema.Draft202012Validator(BASELINE_SCHEMA)


def read_baseline(path: Path | str) -> dict[str, Any]:
    """A baseline JSON (`wfpcap baseline save`), checked whole: its shape, and each estimate's
    numbers in range (a count or a rate above 0, low <= value <= high). StoredFileError naming the
    file and the estimate otherwise."""
    path = Path(path)
    data = read_json(path, 16 << 20)
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA["properties"]["schema"]["const"]:
        raise StoredFileError(f"{path} is not a baseline file (schema wfpcap-baseline/1); write one with "
                              "`wfpcap baseline save`")
    error = jsonschema.exceptions.best_match(_BASELINE.iter_errors(data))
    if error is not None:
        where = error.json_path if error.json_path != "$" else "the top level"
        raise StoredFileError(f"baseline {path} is damaged: {where}: {_short(error.message)}")
    for key, r in data["estimates"].items():
        if r["key"] != key:
            raise StoredFileError(f"baseline {path} is damaged: $.estimates.{key} holds the reading of {r['key']}")
        value, low, high = r["value"], r["low"], r["high"]
        if value is None:
            continue
        kind = catalog.kind_of(key) if catalog.known(key) else None
        in_range = kind.in_range(value) if kind else value >= 0
        if not in_range or low is None or high is None or not low <= value <= high:
            least = "above 0" if kind is None or kind.positive else "0 or more"
            raise StoredFileError(f"baseline {path}: {key} must be {least} and within its spread "
                                  f"(low <= value <= high), got {low} <= {value} <= {high}")
    return data


PARAMETER = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string"}, "value": NUMBER_OR_NULL, "low": NUMBER_OR_NULL, "high": NUMBER_OR_NULL}}
TWIN_SCHEMA = {
    "type": "object",
    "required": ["run", "config_id", "platform", "format", "parameters", "predictions", "verdict"],
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "parameters": {"type": "array", "items": PARAMETER},
        "model_params": {"type": ["object", "null"]},
        "predictions": {"type": "array", "items": {"type": "object", "required": ["trial", "what"]}},
        "verdict": {"type": "string"},
    },
}
_TWIN_VALIDATOR = jsonschema.Draft202012Validator(TWIN_SCHEMA)


def read_twin(path: Path | str) -> Twin | None:
    """A run's twin.json (harness/twin/), checked; None when the run has none; StoredFileError
    (one line naming the file) when it is not a twin record."""
    path = Path(path)
    if not path.exists():
        return None
    data = read_json(path)
    error = jsonschema.exceptions.best_match(_TWIN_VALIDATOR.iter_errors(data))
    if error is not None:
        where = error.json_path if error.json_path != "$" else "the top level"
        raise StoredFileError(f"{path} is not a twin record: {where}: {_short(error.message)}")
    if data["format"] > TWIN_FORMAT:
        raise StoredFileError(f"{path} is a format {data['format']} twin; this harness reads formats 1..{TWIN_FORMAT} "
                              "(upgrade wfp-capacity-harness)")
    return Twin.from_json(data)
