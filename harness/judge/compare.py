"""Several machine configurations side by side (`wfpcap compare`): for each configuration its
latest complete run, the headline numbers, and the differences to a reference configuration
judged like the baseline gate (worse beyond the threshold and outside the measured spread)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.judge.baseline import DEFAULT_THRESHOLD_PCT, Verdict, judge
from harness.results import catalog
from harness.results.runs import Run, config_folders, is_run, latest_complete, load_run, scan
from harness.judge.spread import Reading, readings

@dataclass
class Entry:
    label: str          # C1, C2, ... (short names for plots and tables)
    run: Run
    readings: dict[str, Reading]
    skipped: list[Run]  # newer runs that are not complete

    @property
    def config_id(self) -> str:
        return self.run.summary.config_id

    def stable(self, key: str) -> str:
        return str(self.run.summary.fingerprint.stable.get(key, "?"))


@dataclass
class Fleet:
    entries: list[Entry]
    left_out: list[tuple[Path, str]]   # configuration folders without a complete run, and why
    reference: Entry
    threshold_pct: float

    def keys(self) -> list[str]:
        """The gated estimates (results/catalog.py) any configuration measured, the NDRs by cost."""
        return catalog.sort_keys({k for e in self.entries for k in e.readings if catalog.kind_of(k).gated})

    def title(self, key: str) -> str:
        return next(e.readings[key].title for e in self.entries if key in e.readings)

    def differences(self, entry: Entry) -> dict[str, Verdict]:
        keys = self.keys()
        reference = {k: r for k, r in self.reference.readings.items() if k in keys}
        return {v.key: v for v in judge(reference, entry.readings, self.threshold_pct)}

    def regressions(self) -> list[tuple[Entry, Verdict]]:
        return [(e, v) for e in self.entries if e is not self.reference
                for v in self.differences(e).values() if v.failed]


def collect(paths: list[Path], reference: str | None = None,
            threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> Fleet:
    """Run folders as given; configuration folders (or a root of them): their latest complete run."""
    runs: list[tuple[Run, list[Run]]] = []
    left_out: list[tuple[Path, str]] = []
    for path in paths:
        if is_run(path):
            runs.append((load_run(path), []))
            continue
        for config in config_folders(path):
            try:
                found, broken = scan(config)
                left_out += [(d.path, f"damaged: {d.reason}") for d in broken]
                runs.append(latest_complete(config, found))
            except ValueError as exc:
                left_out.append((config, str(exc)))
    if not runs:
        raise ValueError("nothing to compare: no complete run" + (f" ({left_out[0][1]})" if left_out else ""))
    entries = [Entry(f"C{k}", run, readings(run.summary, run.trials()), skipped)
               for k, (run, skipped) in enumerate(runs, start=1)]
    ref = entries[0]
    if reference:
        hits = [e for e in entries if reference in (e.label, e.config_id)] or \
               [e for e in entries if reference in e.config_id]
        if len(hits) != 1:
            raise ValueError(f"--reference {reference!r} matches {len(hits)} configurations; "
                             f"give a label (C1..C{len(entries)}) or a config id")
        ref = hits[0]
    judge({}, {}, threshold_pct)  # validates the threshold once, with one clear message
    return Fleet(entries, left_out, ref, threshold_pct)
