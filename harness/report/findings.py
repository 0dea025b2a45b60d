"""The report's lead: the questions the seed's claims raise, each answered in a sentence with its
numbers and its confidence, or "not detectable" with the reason.

- Is there a queue limit, and is it 256? How deep is the buffer, and is it ~16,500?
- What callback cost keeps up with what rate?
- Where was loss seen: before event generation or in delivery (the BFE store's count, wfp only)?
- Which event types arrive (allow visibility), and which template conditions work (the matrix)?
A dead subscription (no events, or the canary after a trial never arrived) comes first.
"""
from __future__ import annotations


import pandas as pd

from harness.judge.spread import Reading, readings
from harness.report.page import fmt
from harness.results.catalog import BY_KEY, ndr_key
from harness.results.records import Estimate, RunSummary
from harness.results.runs import Run
COUNT_HEADER = ["trial", "experiment", "sent", "recorded by the system", "delivered", "loss at", "subscription"]


def _confidence(reading) -> str:
    if reading is None or reading.value is None:
        return ""
    if reading.inconclusive:
        return f"low confidence ({reading.inconclusive})"
    spread = reading.spread_text()
    return f"measured spread {spread}" if spread else "one reading, no spread measured"


def _compare(key: str, what: str, e: Estimate | None, reading: Reading | None) -> str:
    """The estimate beside the field notes' claim (results/catalog.py), within the claim's tolerance."""
    if e is None:
        return f"{what}: not detectable: this run did not measure it."
    if e.value is None:
        return f"{what}: not detectable: {str(e.reason or 'no reason given').removeprefix('not detectable: ')}."
    kind = BY_KEY[key]
    value, note = e.value, kind.field_note
    agrees = abs(value - note) <= kind.field_note_tolerance * note
    return (f"{what}: {fmt(value)} events, {'consistent with' if agrees else 'unlike'} the field notes' "
            f"{note:,}; {_confidence(reading)}.")


def finding_lines(run: Run) -> list[str]:
    summary = run.summary
    est = summary.estimates
    experiments = summary.experiments
    trials = run.trials()
    found = readings(summary, trials if not trials.empty else None)
    out: list[str] = []
    if "subscription" in trials:
        dead = trials[trials["subscription"].notna() & (trials["subscription"] != "alive")]
        if len(dead):
            first = dead.iloc[0]
            out.append(f"The subscription failed in {len(dead)} trial(s), first in trial {int(first['trial'])}: "
                       f"{first['subscription']}. Its experiment stopped there; no capacity is reported for it.")
    out.append(_compare("queue_limit", "Queue limit", est.get("queue_limit"), found.get("queue_limit")))
    out.append(_compare("buffer_depth", "System buffer", est.get("buffer_depth"), found.get("buffer_depth")))
    ndr = est.ndr
    if ndr:
        parts = []
        for r in sorted(ndr, key=lambda r: r.callback_cost_us):
            rate = r.rate_per_s
            conf = _confidence(found.get(ndr_key(r.callback_cost_us)))
            parts.append(f"a {r.callback_cost_us:g} µs callback keeps up with {fmt(rate)}/s ({conf})" if rate
                         else f"a {r.callback_cost_us:g} µs callback: not detectable ({r.extra.get('reason') or r.status})")
        out.append("Callback cost and rate: " + "; ".join(parts) + ".")
    else:
        out.append("Callback cost and rate: not detectable: no sustained-rate search ran.")
    out.append(_loss_line(trials))
    delivery = _delivery_line(trials)
    if delivery:
        out.append(delivery)
    allow = experiments.allow_visibility
    out.append(f"Event types: {allow.fact}." if allow is not None and allow.fact else
               "Event types: not detectable: the allow-visibility experiment runs on the wfp backend only.")
    matrix = experiments.template_matrix
    out.append(f"Template conditions: {matrix.summary}." if matrix is not None and matrix.summary else
               "Template conditions: not detectable: the condition matrix runs on the wfp backend only.")
    return out


def _delivery_line(trials: pd.DataFrame) -> str | None:
    """On how many threads callbacks came, and whether they ran at the same time (undocumented on
    Windows; wfp only). Measured in inline trials only (in copy mode the work's end is the worker's),
    and it shows where a callback works or waits (as a held one does) while another runs."""
    if "callback_threads" not in trials or trials["callback_threads"].isna().all():
        return None
    threads = int(trials["callback_threads"].max())
    measured = (pd.to_numeric(trials["concurrent_callbacks"], errors="coerce").dropna()
                if "concurrent_callbacks" in trials else pd.Series(dtype=float))
    if measured.empty:
        return f"Delivery: callbacks came on up to {threads} thread(s); whether they ran at the same time: not measured."
    overlapped = int((measured > 0).sum())
    if not overlapped:
        return (f"Delivery: callbacks came on up to {threads} thread(s); in none of {len(measured)} inline trials "
                f"did one begin while another thread's ran: a held callback held the subscription.")
    return (f"Delivery: callbacks came on up to {threads} threads and ran at the same time in {overlapped} of "
            f"{len(measured)} inline trials (up to {int(measured.max())} callbacks began while another thread's ran): "
            f"a held callback did not hold the others, so a held burst's capacity includes the batches in flight on them.")


def _loss_line(trials: pd.DataFrame) -> str:
    if "loss_at" not in trials:
        return ("Where loss happens: not detectable: only the wfp backend has an independent count (the BFE's own "
                "net-event store).")
    judged = trials[trials["loss_at"].notna()]
    small = int(judged["loss_at"].str.startswith("unknown (store too small").sum())
    generation = int(judged["loss_at"].str.contains("generation").sum())
    delivery = int(judged["loss_at"].str.contains("delivery").sum())
    clean = int((judged["loss_at"] == "none").sum())
    return (f"Where loss happens (sent vs recorded by the system vs delivered, {len(judged)} trials): in delivery in "
            f"{delivery}, before event generation in {generation}, none in {clean}"
            + (f"; {small} trial(s) larger than the store, not judged" if small else "") + ".")


def count_rows(run: Run, limit: int = 60) -> list[list[str]]:
    """Per trial: sent, recorded by the system, delivered, where the loss was (wfp only)."""
    trials = run.trials()
    if "recorded" not in trials:
        return []
    rows = []
    for _, t in trials.head(limit).iterrows():
        recorded = "" if pd.isna(t.get("recorded")) else fmt(int(t["recorded"]))
        if t.get("store_too_small") in (True, "True"):
            recorded += " (store too small)"
        rows.append([str(int(t["trial"])), str(t["experiment"]), fmt(int(t["count"])) if "count" in t else "",
                     recorded, fmt(int(t["delivered"])) if "delivered" in t else "", str(t.get("loss_at", "")),
                     str(t.get("subscription", ""))])
    return rows


MATRIX_HEADER = ["condition", "event member", "documented", "accepted", "filters", "duplicate refused"]


def matrix_rows(summary: RunSummary) -> list[list[str]]:
    matrix = summary.experiments.template_matrix
    if matrix is None:
        return []

    def yes(v, detail=""):
        return "" if v is None else ("yes" if v else "no") + (f" ({detail})" if detail else "")

    rows = []
    for r in matrix.rows:
        accepted = r.error if r.accepted is False else yes(r.accepted)
        filters = yes(r.filters, f"{r.arrived} of {r.offered}, {r.expected} expected"
                      if r.offered is not None else "") or (r.note or "")
        rows.append([r.field, r.member or "", yes(r.documented), accepted or (r.note or ""), filters,
                     yes(r.duplicate_refused)])
    return rows
