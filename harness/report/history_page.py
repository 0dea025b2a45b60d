"""The pages of `wfpcap history`: a trend plot per estimate, history.html and history.md in the
configuration folder (or --out), and the lines the command prints."""
from __future__ import annotations

from pathlib import Path

from harness.judge.history import History, Series
from harness.judge.spread import readings
from harness.files import write_atomic
from harness.report import page, plots


def step_rows(s: Series) -> list[list[str]]:
    return [[s.title, f"run {st.index + 1}", s.runs[st.index].name, page.fmt(st.before), page.fmt(st.after),
             f"{st.relative:+.1%}"] for st in s.steps]


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
    write_atomic(out / "history.md", markdown(history, figures))
    write_atomic(out / "history.html", html(history, figures))
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
    lines += [f"left out, damaged: {d.describe()}" for d in history.damaged]
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
        lines += ["## Step changes", "", *page.md_table(STEP_HEADER, [r for s in history.series for r in step_rows(s)]), ""]
    lines += ["## Runs", "", *page.md_table(_run_header(history), _run_rows(history)), ""]
    lines += [f"![{key}]({path.name})" for key, path in figures.items()]
    return "\n".join(lines) + "\n"


def html(history: History, figures: dict[str, Path]) -> str:
    parts = [f"<h1>History: {page.esc(history.config.name)}</h1>",
             '<div class="verdict' + (' fail' if history.steps else '') + '" id="verdict">'
             + "".join(f"<p>{page.esc(line)}</p>" for line in summary_lines(history)) + "</div>"]
    if history.steps:
        parts += ["<h2>Step changes</h2>", page.table(STEP_HEADER, [r for s in history.series for r in step_rows(s)],
                                                      "steps")]
    parts += ["<h2>Trends</h2>"] + [page.image(path, key) for key, path in figures.items()]
    parts += ["<h2>Runs</h2>", page.table(_run_header(history), _run_rows(history), "runs")]
    return page.document(f"History {history.config.name}", parts)
