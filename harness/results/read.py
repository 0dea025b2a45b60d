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
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd

from harness.results import catalog
from harness.results.records import FORMAT_VERSION, STATES, TWIN_FORMAT, RunSummary, Twin, json_schema


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


NUMBER_OR_NULL = {"type": ["number", "null"]}


def _summary_schema() -> dict[str, Any]:
    """The records' own schema (records.json_schema), with what a reader needs on top: the keys every
    summary has, a status it knows, a platform's settings to resume from, counts that are counts."""
    schema = json_schema(RunSummary)
    schema["required"] = ["platform", "config_id", "fingerprint", "estimates", "checks", "experiments", "trials"]
    props = schema["properties"]
    props["format"] = {"type": "integer", "minimum": 1}
    props["config_id"] = {"type": "string", "minLength": 1}
    props["trials"] = {"type": "integer", "minimum": 0}
    props["run"]["anyOf"][0]["required"] = ["status"]
    props["run"]["anyOf"][0]["properties"]["status"] = {"enum": list(STATES)}
    fingerprint = props["fingerprint"]
    fingerprint["required"] = ["stable", "volatile"]
    fingerprint["properties"]["stable"] = {"type": "object", "required": ["platform"],
                                           "properties": {"platform": {"type": "object"}}}
    return schema


SUMMARY_SCHEMA = _summary_schema()
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
    try:
        read = RunSummary.from_json({**summary, "format": version})
    except ValueError as exc:  # a field given under its name and its older name both
        raise StoredFileError(f"{path} is not a run summary: {exc}") from None
    out_of_range = _out_of_range(read)
    if out_of_range:
        raise StoredFileError(f"{path} is not a run summary: {out_of_range}")
    return read


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.@-]+", re.ASCII)


def _out_of_range(summary: RunSummary) -> str:
    """An estimate outside the range of its kind (a capacity or a rate at or below 0), in words."""
    for key, e in summary.estimates.values.items():
        if e.value is not None and not catalog.BY_KEY[key].in_range(e.value):
            return f"$.estimates.{key}.value: {e.value} is out of range"
    for k, row in enumerate(summary.estimates.ndr):
        if row.callback_cost_us is None or row.callback_cost_us < 0:
            return f"$.estimates.ndr[{k}].callback_cost_us: {row.callback_cost_us} is out of range"
        for name in ("rate_per_s", "first_overloaded_rate_per_s", "mu_per_s", "resolution_per_s"):
            value = getattr(row, name)
            if value is not None and value <= 0 and not (name == "resolution_per_s" and value == 0):
                return f"$.estimates.ndr[{k}].{name}: {value} is out of range"
        for side, e in (row.slope_evidence or {}).items():
            if e is not None and e.offered_rate_per_s is not None and e.offered_rate_per_s <= 0:
                return f"$.estimates.ndr[{k}].slope_evidence.{side}.offered_rate_per_s: {e.offered_rate_per_s} is out of range"
        for side, name in (row.backlog_traces or {}).items():
            if not _PLAIN_NAME.fullmatch(name):  # a file of the run's events/ folder, never a path elsewhere
                return f"$.estimates.ndr[{k}].backlog_traces.{side}: {name!r} is not a file name of events/"
    return ""


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
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise ValueError(f"{text!r} is not a finite number")
    return text  # not a number as the store writes one (nor as pandas reads one)


_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


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
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise StoredFileError(f"{path} is larger than {MAX_TABLE_BYTES >> 20} MB: not a file the harness wrote")
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise StoredFileError(f"{path} does not exist") from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise StoredFileError(f"{path} is not an events frame the harness wrote: {_short(str(exc))}") from None
    for column in columns:
        if column not in frame or not pd.api.types.is_numeric_dtype(frame[column]):
            raise StoredFileError(f"{path} is not an events frame the harness wrote: no numeric column {column}")
        if not np.isfinite(frame[column].to_numpy(dtype=float)).all():  # an empty cell reads as NaN
            raise StoredFileError(f"{path} is not an events frame the harness wrote: column {column} has empty "
                                  "or non-finite cells")
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


# twin.json's schema is its record's own (records.json_schema), as for a summary
TWIN_SCHEMA = json_schema(Twin)
TWIN_SCHEMA["properties"]["format"]["minimum"] = 1
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
