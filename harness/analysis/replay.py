"""What a replayed trace did to the subscriber, from a trial's records alone: loss and when it
began, the backlog against the queue and buffer, latency from event to callback, repeats, and a
native subscriber library's measured cost per event. Frames in, columns and small frames out."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.backlog import backlog_over_time, downsample_max
from harness.analysis.loss import LossSummary
from harness.platforms.base import TrialResult
from harness.results.records import TrialRow

TIMELINE_BINS = 400  # bins of the loss timeline over the replay


def _percentiles_us(ns: np.ndarray) -> dict[str, float | None]:
    if len(ns) == 0:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(ns, [50, 99])
    return {"p50": round(float(p50) / 1e3, 3), "p99": round(float(p99) / 1e3, 3), "max": round(float(ns.max()) / 1e3, 3)}


def event_latency_ns(delivered: pd.DataFrame) -> np.ndarray:
    """From the platform's own stamp of each event to its callback (the model stamps an event as it is sent)."""
    return delivered["t_callback_ns"].to_numpy() - delivered["t_event_ns"].to_numpy()


def backlog_frame(result: TrialResult) -> pd.DataFrame:
    """Backlog over time from the first send (s), at most a few thousand points with the peaks kept:
    sent minus called back from the records (lost events left out), and on the model the queue and
    buffer it really held (`truth`)."""
    sent, delivered = result.sent, result.delivered
    t0 = int(sent["t_send_ns"].min())
    expected = sent[sent["expected"]] if "expected" in sent else sent
    b = backlog_over_time(expected, delivered.drop_duplicates("seq"))
    t, v = downsample_max(b["t_ns"].to_numpy(), b["backlog"].to_numpy())
    out = pd.DataFrame({"t_s": (np.asarray(t) - t0) / 1e9, "backlog": v})
    series = (result.ground_truth or {}).get("series")
    if series is not None and len(series["t_ns"]):
        held = np.asarray(series["next_queue"]) + np.asarray(series["buffer"])
        tt, hv = downsample_max(np.asarray(series["t_ns"]), held)
        truth = pd.DataFrame({"t_s": (np.asarray(tt) - t0) / 1e9, "queued": hv})
        out = pd.concat([out, truth], ignore_index=True).sort_values("t_s", kind="stable")
    return out.reset_index(drop=True)


def peak_backlog(frame: pd.DataFrame) -> int | None:
    """The most events waiting at once: the model's queue and buffer where known, else the records'."""
    column = "queued" if "queued" in frame and frame["queued"].notna().any() else "backlog"
    values = frame[column].dropna()
    return int(values.max()) if len(values) else None


def loss_timeline(result: TrialResult, loss: LossSummary, bins: int = TIMELINE_BINS) -> pd.DataFrame:
    """Events delivered and lost per bin of send time (s from the first send)."""
    sent = result.sent
    t_send = sent["t_send_ns"].to_numpy()
    t0, t1 = int(t_send.min()), int(t_send.max())
    edges = np.linspace(t0, max(t1, t0 + 1), bins + 1)
    expected = sent["expected"].to_numpy() if "expected" in sent else np.ones(len(sent), bool)
    lost = np.isin(sent["seq"].to_numpy(), loss.lost_seq) & expected
    lost_n = np.histogram(t_send[lost], edges)[0]
    sent_n = np.histogram(t_send[expected], edges)[0]
    return pd.DataFrame({"t_s": (edges[:-1] - t0) / 1e9, "events": sent_n, "lost": lost_n})


def library_cost_ns(result: TrialResult) -> np.ndarray:
    """A native subscriber library's time per event (wfp: `user_ns`, between the harness's stamps)."""
    if "user_ns" not in result.delivered:
        return np.zeros(0, dtype=np.int64)
    return result.delivered["user_ns"].dropna().to_numpy().astype(np.int64)


def histogram_frame(ns: np.ndarray, bins: int = 60) -> pd.DataFrame:
    """Costs (us) as a histogram: bin start, count (log-spaced when they span a decade or more)."""
    us = np.asarray(ns, dtype=float) / 1e3
    if len(us) == 0:
        return pd.DataFrame({"us": [], "count": []})
    low, high = max(us.min(), 1e-3), max(us.max(), 1e-3)
    edges = np.geomspace(low, high * 1.0001, bins + 1) if high / low >= 10 else np.linspace(us.min(), us.max() + 1e-9, bins + 1)
    counts = np.histogram(np.clip(us, edges[0], edges[-1]), edges)[0]
    return pd.DataFrame({"us": edges[:-1], "count": counts})


def replay_columns(result: TrialResult, loss: LossSummary) -> TrialRow:
    """The trial row's columns of a replay (kept so that a resumed run has them)."""
    schedule = result.spec.traffic.schedule
    lat = _percentiles_us(event_latency_ns(result.delivered.drop_duplicates("seq")))
    out: dict[str, Any] = {
        "replay_scale": schedule.scale if schedule is not None else None,
        "replay_digest": schedule.digest[:16] if schedule is not None else None,
        "trace_events": schedule.trace_events if schedule is not None else None,
        "repeat_events": loss.duplicates,
        **{f"event_latency_{k}_us": v for k, v in lat.items()},
    }
    cost = library_cost_ns(result)
    if len(cost):
        p50, p99 = np.percentile(cost, [50, 99])
        out.update(library_cost_p50_us=round(float(p50) / 1e3, 3), library_cost_p99_us=round(float(p99) / 1e3, 3))
    telemetry = result.telemetry or {}
    if telemetry.get("function_errors") is not None:
        out["function_errors"] = telemetry["function_errors"]
    return out
