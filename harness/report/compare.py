"""Several machine configurations side by side (`wfpcap compare`): for each configuration its
latest complete run, the headline numbers, and the differences to a reference configuration
judged like the baseline gate (worse beyond the threshold and outside the measured spread)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.report import page
from harness.report.baseline import DEFAULT_THRESHOLD_PCT, Verdict, judge
from harness.report.runs import Run, config_folders, is_run, latest_complete, load_run
from harness.report.spread import Reading, readings

MAIN_KEYS = ("burst_capacity", "queue_limit", "buffer_depth")


@dataclass
class Entry:
    label: str          # C1, C2, ... (short names for plots and tables)
    run: Run
    readings: dict[str, Reading]
    skipped: list[Run]  # newer runs that are not complete

    @property
    def config_id(self) -> str:
        return str(self.run.summary["config_id"])

    def stable(self, key: str) -> str:
        return str(((self.run.summary.get("fingerprint") or {}).get("stable") or {}).get(key, "?"))


@dataclass
class Fleet:
    entries: list[Entry]
    left_out: list[tuple[Path, str]]   # configuration folders without a complete run, and why
    reference: Entry
    threshold_pct: float

    def keys(self) -> list[str]:
        keys = [k for k in MAIN_KEYS if any(k in e.readings for e in self.entries)]
        ndr = {k for e in self.entries for k in e.readings if k.startswith("ndr@")}
        return keys + sorted(ndr, key=lambda k: float(k[4:-2]))

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
                runs.append(latest_complete(config))
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


def cell(reading: Reading | None) -> str:
    if reading is None:
        return "-"
    return "n/d" if reading.value is None else page.fmt(round(reading.value))


def numeric(text: str) -> tuple[str, str]:
    return text, "num"


def difference_cell(verdict: Verdict | None) -> tuple[str, str]:
    """Text and css class of one difference to the reference."""
    if verdict is None or verdict.change is None:
        return ("-" if verdict is None or verdict.outcome == "not measured" else "n/d", "num same")
    text = f"{verdict.change:+.1%}"
    if verdict.outcome == "inconclusive":
        return text + " (inconclusive)", "num same"
    if verdict.outcome == "regression":
        return text + " worse", "num bad"
    if verdict.outcome == "better":
        return text + " better", "num good"
    return text + (" (in spread)" if verdict.outcome == "within spread" else ""), "num same"


def headline_rows(fleet: Fleet) -> list[list[str]]:
    keys = fleet.keys()
    return [[e.label, (e.config_id, "id"), e.stable("machine"), e.run.summary.get("platform", "?"),
             (e.run.started[:16].replace("T", " "), "id"), *[numeric(cell(e.readings.get(k))) for k in keys]]
            for e in fleet.entries]


def headline_header(fleet: Fleet) -> list[str]:
    return ["#", "configuration", "machine", "platform", "run", *[fleet.title(k) for k in fleet.keys()]]


def difference_rows(fleet: Fleet) -> list[list]:
    keys = fleet.keys()
    rows = []
    for e in fleet.entries:
        if e is fleet.reference:
            continue
        diff = fleet.differences(e)
        rows.append([e.label, (e.config_id, "id"), *[difference_cell(diff.get(k)) for k in keys]])
    return rows


def summary_lines(fleet: Fleet) -> list[str]:
    lines = [f"{len(fleet.entries)} configurations compared, reference {fleet.reference.label} "
             f"({fleet.reference.config_id}); worse means beyond {fleet.threshold_pct:g} % and outside the "
             "measured spread"]
    worse = list(dict.fromkeys(e.label for e, _ in fleet.regressions()))
    lines.append(f"{len(worse)} of {len(fleet.entries) - 1} configurations are worse than {fleet.reference.label} in "
                 f"at least one estimate: {', '.join(worse)} (see the differences)" if worse
                 else f"no configuration is worse than {fleet.reference.label}")
    if fleet.left_out:
        lines.append(f"left out, no complete run: {', '.join(path.name for path, _ in fleet.left_out)}")
    return lines


def regression_lines(fleet: Fleet) -> list[str]:
    return [f"{e.label} {e.config_id}: {v.message()}" for e, v in fleet.regressions()]


def markdown(fleet: Fleet) -> str:
    """For a CI job summary: no images, two tables."""
    out = ["## Capacity across configurations", "", *[f"- {line}" for line in summary_lines(fleet)], "",
           "### Headline", "", *page.md_table(headline_header(fleet), headline_rows(fleet))]
    if len(fleet.entries) > 1:
        out += ["", f"### Differences to {fleet.reference.label}", "",
                *page.md_table(["#", "configuration", *[fleet.title(k) for k in fleet.keys()]],
                               difference_rows(fleet))]
    return "\n".join(out) + "\n"
