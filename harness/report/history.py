"""`wfpcap history CONFIG`: one machine configuration over time.

Every run of the folder is listed with its status; the complete ones form one series per
estimate (value and the run's own spread), in which step changes are detected (changepoint.py)
and named by the run where they happened. Writes a trend plot per estimate, history.html and
history.md into the configuration folder (or --out).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.report import page, plots
from harness.report.changepoint import Step, detect_steps
from harness.report.runs import Run, runs_of
from harness.report.spread import Reading, readings

TRACKED = ("burst_capacity", "queue_limit", "buffer_depth")  # plus every NDR cost


@dataclass
class Series:
    key: str
    title: str
    unit: str
    runs: list[Run] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def step_rows(self) -> list[list[str]]:
        return [[self.title, f"run {s.index + 1}", self.runs[s.index].name, page.fmt(s.before), page.fmt(s.after),
                 f"{s.relative:+.1%}"] for s in self.steps]


@dataclass
class History:
    config: Path
    runs: list[Run]
    series: list[Series]

    @property
    def complete(self) -> list[Run]:
        return [r for r in self.runs if r.complete]

    @property
    def steps(self) -> list[tuple[Series, Step]]:
        return [(s, step) for s in self.series for step in s.steps]


def build(config: Path) -> History:
    runs = runs_of(config)
    complete = [r for r in runs if r.complete]
    by_run = [readings(r.summary, r.trials()) for r in complete]
    keys = [k for k in TRACKED if any(k in rs for rs in by_run)]
    keys += sorted({k for rs in by_run for k in rs if k.startswith("ndr@")}, key=lambda k: float(k[4:-2]))
    series = []
    for key in keys:
        s = None
        for run, rs in zip(complete, by_run):
            reading = rs.get(key)
            if reading is None or reading.value is None or reading.inconclusive:
                continue  # listed in the run table, kept out of the series
            s = s or Series(key, reading.title, reading.unit)
            s.runs.append(run)
            s.readings.append(reading)
        if s:
            s.steps = detect_steps([r.value for r in s.readings], [r.half_width for r in s.readings])
            series.append(s)
    return History(config, runs, series)


def _levels(s: Series) -> list[tuple[int, int, float]]:
    bounds = [0] + [step.index for step in s.steps] + [len(s.readings)]
    values = [s.steps[0].before] + [step.after for step in s.steps] if s.steps else \
        [sorted(r.value for r in s.readings)[len(s.readings) // 2]]
    return [(bounds[k] + 1, bounds[k + 1], values[k]) for k in range(len(values))]


def write(history: History, out: Path | None = None) -> dict[str, Path]:
    out = out or history.config
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    for s in history.series:
        labels = [r.started[:16] for r in s.runs]
        figures[s.key] = plots.trend(labels, [r.value for r in s.readings], [r.low for r in s.readings],
                                     [r.high for r in s.readings], _levels(s), [st.index for st in s.steps],
                                     f"{s.title} over runs", s.unit, out / f"history-{s.key.replace('@', '-')}.png")
    (out / "history.md").write_text(markdown(history, figures), encoding="utf-8")
    (out / "history.html").write_text(html(history, figures), encoding="utf-8")
    return {"html": out / "history.html", "md": out / "history.md", **figures}


STEP_HEADER = ["estimate", "where", "run", "before", "after", "change"]


def _run_rows(history: History) -> list[list[str]]:
    keys = [s.key for s in history.series]
    rows = []
    for k, run in enumerate(history.runs, start=1):
        rs = readings(run.summary, run.trials())
        cells = []
        for key in keys:
            r = rs.get(key)
            text = "-" if r is None else (page.fmt(r.value) if r.value is not None else "n/d")
            cells.append(text + (f" ({r.spread_text()})" if r is not None and r.spread_text() else "")
                         + (" inconclusive" if r is not None and r.inconclusive else ""))
        rows.append([str(k), run.name, run.status_text, *cells])
    return rows


def _run_header(history: History) -> list[str]:
    return ["#", "run", "status", *[s.title for s in history.series]]


def summary_lines(history: History) -> list[str]:
    flagged = len(history.runs) - len(history.complete)
    lines = [f"{history.config.name}: {len(history.runs)} runs, {len(history.complete)} complete"
             + (f", {flagged} flagged and left out" if flagged else "")]
    if not history.steps:
        lines.append("no step change in any estimate")
    for s, step in history.steps:
        worse = s.readings[0].better == "higher" and step.after < step.before
        lines.append(f"step in {s.title}: {page.fmt(step.before)} -> {page.fmt(step.after)} ({step.relative:+.1%}"
                     f"{', worse' if worse else ''}) at run {step.index + 1} of {len(s.runs)}, {s.runs[step.index].name}")
    return lines


def markdown(history: History, figures: dict[str, Path]) -> str:
    lines = [f"# History: {history.config.name}", "", *[f"- {line}" for line in summary_lines(history)], ""]
    if history.steps:
        lines += ["## Step changes", "", *page.md_table(STEP_HEADER, [r for s in history.series for r in s.step_rows()]), ""]
    lines += ["## Runs", "", *page.md_table(_run_header(history), _run_rows(history)), ""]
    lines += [f"![{key}]({path.name})" for key, path in figures.items()]
    return "\n".join(lines) + "\n"


def html(history: History, figures: dict[str, Path]) -> str:
    parts = [f"<h1>History: {page.esc(history.config.name)}</h1>",
             '<div class="verdict' + (' fail' if history.steps else '') + '" id="verdict">'
             + "".join(f"<p>{page.esc(line)}</p>" for line in summary_lines(history)) + "</div>"]
    if history.steps:
        parts += ["<h2>Step changes</h2>", page.table(STEP_HEADER, [r for s in history.series for r in s.step_rows()],
                                                      "steps")]
    parts += ["<h2>Trends</h2>"] + [page.image(path, key) for key, path in figures.items()]
    parts += ["<h2>Runs</h2>", page.table(_run_header(history), _run_rows(history), "runs")]
    return page.document(f"History {history.config.name}", parts)
