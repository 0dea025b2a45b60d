"""Regenerate the table of today's figures in docs/benchmarks.md from the benchmarks' own output.

    python benchmarks/figures.py                # run the benchmarks below, rewrite the table
    python benchmarks/figures.py --keep DIR     # and keep each one's output in DIR
    python benchmarks/figures.py --from DIR     # run nothing: read the outputs an earlier --keep saved
    python benchmarks/figures.py --only bench_replay,bench_headroom   # those anew, the other rows kept

The benchmarks run one after another, each in a process of its own, as printed in docs/benchmarks.md.
Those that need root run only as root; without root their rows say so. The 1-minute load average is
read before and after each, and the table shows it beside each figure, under a line that says when
and on what (CPU, cores, kernel, Python) the figures were taken: on a shared machine the load is
what other work was doing meanwhile. Only the lines between the page's markers are rewritten; a
benchmark whose output no longer has the line a row reads is an error naming that benchmark, so a
changed output cannot leave an old figure standing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"

Row = tuple[str, str]  # (what, figure)


def _find(pattern: str, text: str, name: str) -> re.Match:
    found = re.search(pattern, text, re.M)
    if found is None:
        raise ValueError(f"{name}: its output has no line matching {pattern!r}; update benchmarks/figures.py")
    return found


def _some(rows: list[Row], name: str, what: str) -> list[Row]:
    """The rows a parser found; none means the benchmark's output changed under it."""
    if not rows:
        raise ValueError(f"{name}: no {what} in its output; update benchmarks/figures.py")
    return rows


def model_rows(out: str) -> list[Row]:
    rows = []
    for label in ("17k held burst + drain", "sustained, light load", "sustained, overloaded"):
        m = _find(rf"^{re.escape(label)}\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)x", out, "bench_model")
        rows.append((f"model, {label} ({m[1]} events)", f"{m[2]} simulated events/s ({m[4]}x the naive reference's {m[3]})"))
    m = _find(r"^quick campaign .*?: ([\d,]+) events in ([\d.]+) s = ([\d,]+) ev/s", out, "bench_model")
    rows.append(("model, the whole quick campaign", f"{m[3]} events/s end to end ({m[1]} events in {m[2]} s)"))
    m = _find(r"^render full report .*median ([\d.]+) s", out, "bench_model")
    rows.append(("render a full report (plots, HTML, Markdown)", f"{m[1]} s"))
    return rows


def trace_read_rows(out: str) -> list[Row]:
    rows = []
    for m in re.finditer(r"^((?:chunked|scapy)[^\n]*?)\s{2,}([\d,]+)\s+([\d.]+)\s+([\d,]+)\s+[\d.]+ / [\d.]+\s*$", out, re.M):
        rows.append((f"read a capture: {m[1]}", f"{m[4]} packets/s ({m[2]} packets in {m[3]} s)"))
    if not rows:
        _find(r"^chunked pcap reader", out, "bench_trace_read")
    m = _find(r"^first call in a process .*?: ([\d.]+) s", out, "bench_trace_read")
    rows.append(("read a capture: first call in a process (loads the compiled walk)", f"+{m[1]} s"))
    return rows


def callback_floor_rows(out: str) -> list[Row]:
    m = _find(r"median of (\d+) runs; load [\d.]+; (.*)$", out, "bench_callback_floor")  # called from a C thread
    rows = []
    for line in out.splitlines():
        cell = re.match(r"^(\S.*?)\s{2,}(\d+)\s+(?:[+-]\d+)?\s+\d", line)
        if cell and not line.startswith("layer"):
            rows.append((f"wfp callback, {cell[1]}", f"{int(cell[2]):,} ns per call"))
    if not rows:
        raise ValueError("bench_callback_floor: no layer lines in its output; update benchmarks/figures.py")
    rows[-1] = (rows[-1][0] + f" ({m[2].split(' at ')[0]})", rows[-1][1])
    return rows


def scenarios_rows(out: str) -> list[Row]:
    m = _find(r"^(\w+): (\d+) runs, wall median ([\d.]+) s \(min ([\d.]+), max ([\d.]+)\); budget (\d+) s; failed runs (\d+)",
              out, "bench_scenarios")
    backend = m[1]
    rows = [(f"`pytest scenarios/ --backend {backend}`, {m[2]} runs",
             f"wall median {m[3]} s ({m[4]}-{m[5]} s; budget {m[6]} s); {m[7]} failed")]
    if backend == "model":  # virtual time: the same NDRs every run, and in the model's own rows
        return rows
    for c in re.finditer(r"^  ([\d.]+) us: NDR median ([\d,]+)/s over (\d+) runs, mu median ([\d,]+)/s; statuses ([^;]+);",
                         out, re.M):
        rows.append((f"{backend}: NDR at {c[1]} µs, {c[3]} runs", f"median {c[2]}/s, μ {c[4]}/s; {c[5]}"))
    return rows


def replay_rows(out: str) -> list[Row]:
    rows = []
    rate = None
    for line in out.splitlines():
        head = re.match(r"^([\d,]+) events/s for ([\d.]+) s, medians of (\d+):", line)
        if head:
            rate = head[1]
            continue
        m = re.match(r"^  (\S.*?)\s+lateness p50\s+([\d.]+) us\s+p99\s+([\d.]+) us\s+max\s+([\d.]+) us\s+kept (\d+/\d+)", line)
        if m and rate:
            rows.append((f"sender lateness against the schedule, {rate} events/s: {m[1]}",
                         f"p50 {float(m[2]):,.1f} µs, p99 {float(m[3]):,.1f} µs, max {float(m[4]):,.0f} µs; kept {m[5]}"))
    return _some(rows, "bench_replay", "lateness lines")


def headroom_rows(out: str) -> list[Row]:
    rows = [(m[1], m[2]) for m in re.finditer(r"^- (.+?): (.+)$", out, re.M)]
    return _some(rows, "bench_headroom", "'- what: figure' lines")


def predict_rows(out: str) -> list[Row]:
    m = _find(r"^load average ([\d.]+) on", out, "bench_predict")
    rows = []
    fit = _find(r"^wfpcap twin \(fit \+ held-out check, once per run\)\s+([\d.]+)s\s+([\d.]+)s", out, "bench_predict")
    rows.append(("`wfpcap twin` on a model run (fit + held-out check)", f"{fit[1]} s wall, {fit[2]} s CPU"))
    for q in re.finditer(r"^wfpcap predict: (.+?)\s{2,}([\d.]+)s\s+([\d.]+)s", out, re.M):
        rows.append((f"`wfpcap predict`: {q[1]}", f"{q[2]} s wall, {q[3]} s CPU (median of 3)"))
    s = _find(r"^slowest what-if ([\d.]+) s wall, ([\d.]+) s CPU \(goal < (\d+) s\): (.*)$", out, "bench_predict")
    rows.append(("`wfpcap predict`, the slowest what-if", f"{s[1]} s wall, {s[2]} s CPU (goal < {s[3]} s: {s[4]}); "
                 f"load {m[1]} as it began"))
    return rows


def test_suite_rows(out: str) -> list[Row]:
    rows = [(f"the harness's tests: {r[1]} run {r[2]} (`pytest {'tests/ -m unit' if r[1] == 'unit' else 'tests/'}`)",
             f"{r[3]} s wall, {r[4]} s CPU, load {r[5]} → {r[6]}: {r[7]}")
            for r in re.finditer(r"^  (\w+)\s+run (\d+): wall\s+([\d.]+) s, CPU\s+([\d.]+) s, load1 ([\d.]+) -> ([\d.]+): (.*)$",
                                 out, re.M)]
    for m in re.finditer(r"^(\w+): pytest .*?: median wall ([\d.]+) s of (\d+) \(budget (\d+) s: (\w+)\)", out, re.M):
        rows.append((f"the harness's tests: {m[1]}, median of {m[3]}", f"{m[2]} s (budget {m[4]} s: {m[5]})"))
    return _some(rows, "bench_test_suite", "test-suite runs")


def twin_accuracy_rows(out: str) -> list[Row]:
    runs = _find(r"^== all runs \((\d+);", out, "bench_twin_accuracy")
    backend = _find(r"^run 1: .*?-(\w+)-[0-9a-f]{10}/", out, "bench_twin_accuracy")[1]
    rows = []
    for v in re.finditer(r"^  (field notes' model|\+ [^\n]+?)\s{2,}within (\d+)/(\d+); loss error mean ([\d.]+)% points "
                         r"\(median [\d.]+%, max ([\d.]+)%\); lossy trials within (\d+)/(\d+), their loss error mean "
                         r"([\d.]+)% points(?:; given their own stalls within (\d+)/(\d+))?", out, re.M):
        given = f"; given each trial's own stalls {v[9]}/{v[10]} within" if v[9] else ""
        rows.append((f"twin held-out, {backend}, {runs[1]} runs: {v[1]}",
                     f"{v[2]}/{v[3]} within the tolerance (lossy {v[6]}/{v[7]}); loss error mean {v[4]} pp "
                     f"(lossy trials {v[8]} pp, max {v[5]} pp){given}"))
    return _some(rows, "bench_twin_accuracy", "summary lines")


def sender_rows(out: str) -> list[Row]:
    m = _find(r"^burst into the NFLOG rule, ([\d,]+) packets", out, "bench_sender")
    rows = []
    for kind in ("udp", "raw"):
        b = _find(rf"^  {kind}  C sendmmsg\s+([\d,]+)/s \| native loop\s+([\d,]+)/s x([\d.]+) \| "
                  r"Python loop\s+([\d,]+)/s x([\d.]+)", out, "bench_sender")
        rows.append((f"sender, burst of {m[1]} {'UDP' if kind == 'udp' else 'raw'} packets into the NFLOG rule",
                     f"native loop {b[2]}/s, Python loop {b[4]}/s: x{b[3]} and x{b[5]} of the C sendmmsg sender's "
                     f"{b[1]}/s (median of the rounds' ratios)"))
    cell = r"(\w+) p50\s+([\d.]+) p99\s+([\d.]+) max\s+([\d.]+) \(call p99\s+([\d.]+)\)"
    for label in ("constant 10,000/s", "constant 50,000/s", "trace shape"):
        line = _find(rf"^  ({re.escape(label)}.*?)\s{{2,}}{cell} \| {cell}", out, "bench_sender")
        what = line[1].replace("trace shape", "a trace's shape,").replace("(70 us in bursts)", "(70 µs gaps in bursts)")
        figure = "; ".join(f"{'native' if line[i] == 'native' else 'Python'} loop p50 / p99 / max "
                           f"{float(line[i + 1]):,.1f} / {float(line[i + 2]):,.1f} / {float(line[i + 3]):,.0f} µs"
                           for i in (2, 7))
        rows.append((f"sender lateness, {what}", figure))
    m = _find(r"^subscriber parse rate: ([\d,]+) events/s", out, "bench_sender")
    rows.append(("NFLOG parser, real kernel datagrams", f"{m[1]} events/s"))
    return rows


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]
    rows: Callable[[str], list[Row]]
    root: bool = False

    @property
    def command(self) -> str:
        return ("sudo " if self.root else "") + "python " + " ".join(self.args)


BENCHMARKS = (
    Bench("bench_model", ("benchmarks/bench_model.py",), model_rows),
    Bench("bench_trace_read", ("benchmarks/bench_trace_read.py",), trace_read_rows),
    Bench("bench_callback_floor", ("benchmarks/bench_callback_floor.py",), callback_floor_rows),
    Bench("bench_sender", ("benchmarks/bench_sender.py",), sender_rows, root=True),
    Bench("bench_scenarios_model", ("benchmarks/bench_scenarios.py", "--backend", "model", "--runs", "3"), scenarios_rows),
    Bench("bench_scenarios_nflog", ("benchmarks/bench_scenarios.py", "--backend", "nflog", "--runs", "3"), scenarios_rows,
          root=True),
    Bench("bench_replay", ("benchmarks/bench_replay.py",), replay_rows, root=True),
    Bench("bench_headroom", ("benchmarks/bench_headroom.py",), headroom_rows),
    Bench("bench_headroom_real", ("benchmarks/bench_headroom.py", "--platforms", "nflog,wfp", "--repeat", "2"),
          headroom_rows, root=True),
    Bench("bench_predict", ("benchmarks/bench_predict.py",), predict_rows),
    Bench("bench_test_suite", ("benchmarks/bench_test_suite.py",), test_suite_rows, root=True),
    Bench("bench_twin_accuracy_nflog", ("benchmarks/bench_twin_accuracy.py", "--backend", "nflog", "--runs", "3"),
          twin_accuracy_rows, root=True),
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"{platform.python_implementation()} {platform.python_version()}")


def run_all(benches: tuple[Bench, ...], keep: Path | None) -> dict:
    """Run each benchmark; return what the table needs (and what --keep saves)."""
    taken: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": machine(), "runs": {}}
    for bench in benches:
        if bench.root and os.geteuid() != 0:
            taken["runs"][bench.name] = {"skipped": "needs root"}
            continue
        print(f"figures: {bench.command}", file=sys.stderr, flush=True)
        before, start = os.getloadavg()[0], time.monotonic()
        done = subprocess.run([sys.executable, *bench.args], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"figures: {bench.command} exited {done.returncode}:\n{done.stderr[-2000:]}")
        taken["runs"][bench.name] = {"load_before": before, "load_after": os.getloadavg()[0],
                                     "seconds": time.monotonic() - start, "output": done.stdout}
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{bench.name}.txt").write_text(done.stdout)
            kept = {name: {k: v for k, v in run.items() if k != "output"} for name, run in taken["runs"].items()}
            (keep / "figures.json").write_text(json.dumps({**taken, "runs": kept}, indent=1))
    return taken


def table(taken: dict, benches: tuple[Bench, ...]) -> str:
    lines = [f"Taken {taken['date']} by `python benchmarks/figures.py`,", f"on {taken['machine']}.",
             "*Load* is the 1-minute load average before and after each benchmark: above the number of cores,",
             "other work was waiting for a CPU, and the figures are that machine state's, not the harness's best.",
             "", "| benchmark | measured | figure | load |", "|---|---|---|---|"]
    for bench in benches:
        run = taken["runs"].get(bench.name)
        if run is None:
            continue
        if "skipped" in run:
            lines.append(f"| `{bench.command}` | | not run ({run['skipped']}) | |")
            continue
        load = f"{run['load_before']:.1f} → {run['load_after']:.1f}"
        for what, figure in bench.rows(run["output"]):
            lines.append(f"| `{Path(bench.args[0]).name}` | {what} | {figure} | {load} |")
    return "\n".join(lines)


def merge(page: Path, taken: dict, only: set[str], benches: tuple[Bench, ...]) -> str:
    """The table with the rows of the benchmarks in `only` taken anew, the others' rows as the page
    has them (rows are told apart by the benchmark's file; benchmarks sharing a file are rerun together)."""
    text = page.read_text()
    old = text.split(BEGIN, 1)[1].split(END, 1)[0] if BEGIN in text and END in text else ""
    old_rows = [line for line in old.splitlines() if line.startswith("| `")]
    fresh = {b.name: table(taken, (b,)).splitlines() for b in benches if b.name in only}
    head = [line for line in table(taken, ()).splitlines()]
    head[0] = head[0].rstrip(",") + f" (`--only {','.join(sorted(only))}`; the other rows as taken before),"
    rerun = {Path(b.args[0]).name for b in benches if b.name in only}
    rows = []
    for bench in benches:
        if bench.name in fresh:
            rows += [r for r in fresh[bench.name] if r.startswith("| `")]
        elif Path(bench.args[0]).name not in rerun:
            cell = f"| `{Path(bench.args[0]).name}` |"
            rows += [r for r in old_rows if r.startswith(cell) and r not in rows]
    return "\n".join(head + rows)


def rewrite(page: Path, body: str) -> None:
    text = page.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"figures: {page} needs one {BEGIN} line followed by one {END} line")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    page.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, help="keep each benchmark's output (and figures.json) in this folder")
    ap.add_argument("--from", dest="source", type=Path, help="read the outputs that --keep saved instead of running")
    ap.add_argument("--page", type=Path, default=PAGE)
    ap.add_argument("--only", help="comma-separated benchmark names: run only these; keep the page's other rows")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else set()
    unknown = sorted(only - {b.name for b in BENCHMARKS})
    if unknown:
        raise SystemExit(f"figures: --only: unknown benchmark {unknown[0]} (known: {', '.join(b.name for b in BENCHMARKS)})")
    benches = tuple(b for b in BENCHMARKS if not only or b.name in only)
    if args.source is not None:
        taken = json.loads((args.source / "figures.json").read_text())
        for name, run in taken["runs"].items():
            if "skipped" not in run:
                run["output"] = (args.source / f"{name}.txt").read_text()
    else:
        taken = run_all(benches, args.keep)
    body = merge(args.page, taken, only, BENCHMARKS) if only else table(taken, benches)
    rewrite(args.page, body)
    print(body)


if __name__ == "__main__":
    main()
