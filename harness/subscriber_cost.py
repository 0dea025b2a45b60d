"""A subscriber's per-event cost as a distribution the user measured (`--subscriber-cost FILE`).

The file holds costs in microseconds, either one value a line (samples, e.g. from ETW or the
agent's own logs) or a histogram CSV of `bin,count` lines (the bin is the cost that its events
took). An optional first line of names (`cost_us`, `bin,count`) and `#` comments are allowed.
Per-event work is drawn from it by inverse CDF with a generator of its own seed, so that event k
costs the same on the model, nflog and wfp, and in every trial of a search (common random
numbers: two scales of a headroom search differ only in the traffic). It replaces the constant
cost or the gamma of SubscriberSpec where given.

Refused with one line (BadInput): a missing or unreadable file, a file over MAX_FILE_BYTES, an
empty one, a value that is not a number, negative, not finite or over MAX_COST_US, a count that
is not a whole number >= 0.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from harness.inputs import BadInput, finite_float

MAX_FILE_BYTES = 64 << 20  # ~6 M samples: far more than a distribution needs; larger is refused
MAX_COST_US = 1_000_000.0  # as `wfpcap model --cost-us`: one second per event


class CostDistribution:
    """Costs in ns with their probabilities (sorted, unique), a seed, and where they came from.

    Compared, hashed and pickled by content (a few kB), so a frozen SubscriberSpec can carry it."""

    __slots__ = ("values_ns", "cdf", "seed", "source", "sha256", "kind", "samples")

    def __init__(self, values_us: np.ndarray, weights: np.ndarray, seed: int = 0, source: str = "values",
                 sha256: str | None = None, kind: str = "samples") -> None:
        values = np.asarray(values_us, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        if len(values) == 0 or w.sum() <= 0:
            raise BadInput(f"cost file {source} holds no costs")
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > MAX_COST_US:
            raise BadInput(f"costs of {source} must be finite and within 0..{MAX_COST_US:g} us")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise BadInput(f"cost distribution seed must be a whole number >= 0, got {seed!r}")
        ns = np.rint(values * 1000).astype(np.int64)
        unique, inverse = np.unique(ns, return_inverse=True)
        totals = np.bincount(inverse.reshape(-1), weights=w, minlength=len(unique))
        keep = totals > 0
        self.values_ns = unique[keep]
        cdf = np.cumsum(totals[keep]) / totals.sum()
        cdf[-1] = 1.0
        self.cdf = cdf
        self.samples = int(round(w.sum()))
        self.seed, self.source, self.sha256, self.kind = seed, source, sha256, kind
        self.values_ns.flags.writeable = False
        self.cdf.flags.writeable = False

    def draw(self, n: int) -> np.ndarray:
        """int64 ns of work for events 0..n-1: the same sequence for the same seed, whatever n
        (a longer draw extends a shorter one)."""
        u = np.random.default_rng(self.seed).random(n)
        return self.values_ns[np.searchsorted(self.cdf, u, side="right")]

    def with_seed(self, seed: int) -> "CostDistribution":
        out = object.__new__(CostDistribution)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name))
        out.seed = seed
        return out

    def quantile_us(self, q: float) -> float:
        """The cost at probability q (the inverse CDF the draws use)."""
        return float(self.values_ns[min(np.searchsorted(self.cdf, q, side="left"), len(self.cdf) - 1)]) / 1000

    @property
    def mean_us(self) -> float:
        p = np.diff(np.concatenate(([0.0], self.cdf)))
        return float((self.values_ns * p).sum()) / 1000

    def describe(self) -> dict[str, Any]:
        """For the report: where it came from and its shape."""
        return {"source": self.source, "sha256": self.sha256, "kind": self.kind, "samples": self.samples,
                "seed": self.seed, "mean_us": round(self.mean_us, 3), "p50_us": self.quantile_us(0.5),
                "p99_us": self.quantile_us(0.99), "max_us": float(self.values_ns[-1]) / 1000}

    def _key(self) -> tuple:
        return self.values_ns.tobytes(), self.cdf.tobytes(), self.seed, self.source, self.sha256, self.kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CostDistribution) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"CostDistribution({self.kind} of {self.source}: mean {self.mean_us:g} us, seed {self.seed})"


def _number(text: str, what: str, path: str | Path, line: int) -> float:
    try:
        return finite_float(text)
    except ValueError as exc:
        raise BadInput(f"cost file {path} line {line}: {what} {text!r} is {exc}") from None


def read_cost_file(path: str | Path, seed: int = 0) -> CostDistribution:
    """The --subscriber-cost file: samples (one value a line) or a histogram CSV (bin,count)."""
    try:
        size = os.path.getsize(path)
        text = Path(path).read_bytes() if size <= MAX_FILE_BYTES else b""
    except OSError as exc:
        raise BadInput(f"cannot read cost file {path}: {exc.strerror or exc}") from None
    if size > MAX_FILE_BYTES:
        raise BadInput(f"cost file {path} is {size:,} bytes; at most {MAX_FILE_BYTES:,} "
                       "(a histogram CSV of bin,count says the same in a few lines)")
    try:
        lines = text.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise BadInput(f"cost file {path} is not text (UTF-8)") from None
    values: list[float] = []
    counts: list[float] = []
    histogram: bool | None = None
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if histogram is None:
            histogram = len(fields) > 1
            if not _looks_numeric(fields[0]):  # a first line of names
                continue
        if len(fields) != (2 if histogram else 1):
            form = "bin,count" if histogram else "one value"
            raise BadInput(f"cost file {path} line {number}: {len(fields)} fields where the file has {form} a line")
        cost = _number(fields[0], "cost", path, number)
        if cost < 0:
            raise BadInput(f"cost file {path} line {number}: cost {fields[0]} us is negative")
        if cost > MAX_COST_US:
            raise BadInput(f"cost file {path} line {number}: cost {fields[0]} us is over {MAX_COST_US:g} us")
        count = 1.0
        if histogram:
            count = _number(fields[1], "count", path, number)
            if count < 0 or not count.is_integer():
                raise BadInput(f"cost file {path} line {number}: count {fields[1]} must be a whole number >= 0")
        values.append(cost)
        counts.append(count)
    if not values or sum(counts) == 0:
        raise BadInput(f"cost file {path} holds no costs (an empty distribution)")
    digest = hashlib.sha256(text).hexdigest()
    return CostDistribution(np.asarray(values), np.asarray(counts), seed, str(path), digest,
                            "histogram" if histogram else "samples")


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
