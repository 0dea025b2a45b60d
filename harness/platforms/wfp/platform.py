"""The `wfp` platform: Windows Filtering Platform net events through fwpuclnt.

open:  the net-event options are read (a state file left by a killed run is acted on first, see
       options.py), event collection is turned on only if it was off; a dynamic session owns an
       own sublayer and the blocking filter; the census records who else subscribes; the sender
       process starts and reports its image.
trial: install the filter for the spec, subscribe (highest FwpmNetEventSubscribeN, template if
       any), have the sender process send the traffic (one remote port per packet, which numbers
       it; a fresh local port per trial; receivers on the destination ports for inbound layers),
       release a held callback, drain until the harness's own events stop, unsubscribe from
       this thread. GC, switch interval and the copy worker are restored whatever ends the trial.
Traffic: UDP sendto on loopback (default), or the same packets compiled by scapy through a
send-only raw socket; always from the sender process (harness.traffic.sender_process).
"""
from __future__ import annotations

import ipaddress
import platform as pyplatform
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from harness.platforms.base import DELIVERED_COLUMNS, SENT_COLUMNS, Capabilities, PlatformUnavailable, TrialResult, frame
from harness.platforms.wfp.api import Library, WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.constants import DIRECTIONS, INBOUND_LAYERS, events_per_packet
from harness.platforms.wfp.engine import FilterSession, census
from harness.platforms.wfp.event_store import count_trial, loss_stage
from harness.platforms.wfp.options import EngineOptions
from harness.platforms.wfp.recorder import send_datagrams
from harness.platforms.wfp.sockets import LoopbackSockets
from harness.platforms.wfp.event_rows import FOREIGN, MINE, OTHER_TYPE
from harness.platforms.wfp.native import choose_callback
from harness.platforms.wfp.subscription import Subscription
from harness.platforms.wfp.kernel32 import Kernel32
from harness.results.records import DeliveryFacts, ProbeCase
from harness.spec import FilterSpec, TrafficSpec, TrialSpec
from harness.subscriber import Callback, Release
from harness.subscriber_code import load_library
from harness.traffic.plan import TrafficPlan, plan_traffic
from harness.traffic.safety import check_destinations
from harness.traffic.sender_process import KINDS, SenderError, SenderProcess

ERROR_ACCESS_DENIED = 5
Send = Callable[[], tuple[np.ndarray, dict[str, Any]]]


def event_clock_step_ns(t_event_ns: np.ndarray) -> int | None:
    """The smallest non-zero gap between event timestamps: an upper bound on the resolution of the
    clock Windows stamps net events with (undocumented; FILETIME itself counts 100 ns). No estimator
    uses event times, but a reader comparing them with callback times needs to know."""
    gaps = np.diff(np.unique(np.asarray(t_event_ns, dtype=np.int64)))
    return int(gaps.min()) if len(gaps) else None


def concurrent_callbacks(t_callback_ns: np.ndarray, t_done_ns: np.ndarray, thread: np.ndarray) -> int:
    """Callbacks that began while a callback on another thread had not yet returned. Whether Windows
    runs one subscription's callbacks at the same time is undocumented; if it does, a held callback
    does not hold the others, and a held burst's capacity includes the batches in flight on them."""
    if len(t_callback_ns) < 2:
        return 0
    order = np.argsort(t_callback_ns, kind="stable")
    start, done, threads = t_callback_ns[order], t_done_ns[order], thread[order]
    latest = np.maximum.accumulate(done)  # the latest return so far ...
    holder = np.maximum.accumulate(np.where(done == latest, np.arange(len(done)), 0))  # ... and whose
    overlapping = (start[1:] < latest[:-1]) & (threads[holder[:-1]] != threads[1:])
    return int(overlapping.sum())


def without_listener(plan: TrafficPlan, refused: list) -> TrafficPlan:
    """The plan with packets to a destination where no receiver could listen (a Windows excluded
    port range) no longer expected: an inbound layer classifies a datagram only where a socket
    listens, so their silence is no loss."""
    if not refused:
        return plan
    pairs = np.asarray(refused, dtype=np.int64).reshape(-1, 2)
    keys = plan.remote_v4.astype(np.int64) << 16 | plan.remote_port.astype(np.int64)
    listened = ~np.isin(keys, pairs[:, 0] << 16 | pairs[:, 1])
    return replace(plan, expected=plan.expected & listened, listened=listened)


KEYWORDS = K["FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS"]


class WfpPlatform:
    name = "wfp"
    capabilities = Capabilities(allow_events=False, templates=True, census=True, hold=True,
                                kernel_timestamps=True, copy_mode=True, ground_truth=False, virtual_time=False)

    def __init__(self, library: str | None = None, sender: str = "udp", subscriber_lib: str | None = None) -> None:
        """`subscriber_lib`: PATH:SYMBOL, the user's native subscriber (harness/subscriber_code.py),
        loaded now, before any subscription, and called by the native callback for every event of
        the harness's filter with a 4 KiB context of its own (zeroed, kept for the run)."""
        if sender not in KINDS:
            raise ValueError(f"wfp sender must be udp or raw, got {sender!r}")
        self.lib = Library(library)
        self.kernel32 = Kernel32(self.lib.override)
        # inline subscribers run natively (native.py) where it compiles; compiled now, not in a trial
        self.native, self.native_unavailable = choose_callback(self.lib.override)
        self.user = load_library(subscriber_lib) if subscriber_lib else None
        if self.user is not None and not self.native:
            raise PlatformUnavailable(f"--subscriber-lib needs the native callback, which cannot run here: "
                                      f"{self.native_unavailable}")
        self.user_context = np.zeros(512, dtype=np.int64)  # the library's own state, for the run
        self.sender_kind = sender
        self.sender: SenderProcess | None = None
        self.options: EngineOptions | None = None
        self.filters: FilterSession | None = None
        self._trials = 0
        self._store_floor_ns = 0  # unix ns: events of earlier traffic (calibration, canaries) are older
        self._seen = {"trials": 0, "callback_threads_max": 0, "concurrent_callbacks_max": 0, "foreign_events": 0, "events_per_tuple_max": 0,
                      "failed_unsubscribes": 0, "leaked_subscriptions": 0}
        self._leaked: list[Subscription] = []  # unsubscribe failed: retried before every later trial
        try:
            self.options = EngineOptions(self.lib)
            self.options.ensure(K["FWPM_ENGINE_COLLECT_NET_EVENTS"], 1)
            self.filters = FilterSession(self.lib)
            self.census = census(self.lib, self.options.session)
            self._start_sender()
            self._max_rate: float | None = None  # calibrated on first use (the run is on disk by then)
        except BaseException as exc:
            cleanup = ""
            try:
                self.close()
            except Exception as failed:  # noqa: BLE001 - said beside the first error, never instead of it
                cleanup = f" (cleaning up also failed: {failed})"
                exc.add_note(cleanup.strip(" ()"))
            if isinstance(exc, WfpError) and exc.code == ERROR_ACCESS_DENIED:
                raise PlatformUnavailable(f"{exc}: WFP sessions, filters and subscriptions need an elevated "
                                          f"process (an administrator prompt){cleanup}") from None
            raise

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "WfpPlatform":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_sender(self) -> None:
        self.sender = SenderProcess(LoopbackSockets(self.lib.override))
        self.image = self.sender.info["image"]  # GetModuleFileNameW(NULL) in the sender: its app id

    def close(self) -> None:
        try:
            if self.sender is not None:
                self.sender.close()
                self.sender = None
        finally:
            try:
                if self.filters is not None:
                    self.filters.close()
                    self.filters = None
            finally:
                if self.options is not None:
                    self.options.close()
                    self.options = None

    # -- what it is --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, "windows": f"{pyplatform.system()} {pyplatform.version()}",
                "library": self.lib.path, "subscribe_version": self.lib.subscribe_version,
                "event_struct": f"FWPM_NET_EVENT{self.lib.subscribe_version + 1}",
                "net_event_options": self.options.describe() if self.options else {},
                "sender": self.sender_kind, "callback": "native (inline subscribers)" if self.native else "python",
                **({"subscriber_library": self.user.describe()} if self.user else {})}

    @property
    def subscriber_library(self) -> dict[str, str] | None:
        """The user's native subscriber: path, symbol, SHA-256 (None without one)."""
        return self.user.describe() if self.user else None

    def measured(self) -> dict[str, Any]:
        return {"max_send_rate_per_s": round(self.max_send_rate_per_s(), -2),
                "existing_subscriptions": self.census["subscriptions"],
                "existing_subscription_keys": self.census["session_keys"],
                "sender_image": self.image,
                "restored_options": self.options.restored if self.options else {},
                "native_callback_unavailable": self.native_unavailable or None}

    def observed(self) -> DeliveryFacts:
        """What the trials so far saw of undocumented delivery: how many callback threads, how many
        events per tuple, how many drops of other filters."""
        return DeliveryFacts(**self._seen)

    def max_send_rate_per_s(self) -> float:
        if self._max_rate is None:
            self._max_rate = self._calibrate()
        return self._max_rate

    def _calibrate(self) -> float:
        spec = TrialSpec(TrafficSpec(count=5000))
        self.filters.install(spec.filter, self.image)
        try:
            return self._send(spec)[1]["achieved_rate_per_s"]
        finally:
            self._store_floor_ns = self.kernel32.precise_unix_ns()  # not a trial's: out of the next count

    # -- trials ------------------------------------------------------------------------------
    def _send(self, spec: TrialSpec, again: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
        if self.sender is None or not self.sender.proc.is_alive():
            self._start_sender()
        timeout = 60 + 3 * (spec.traffic.duration_s or 1.0)
        try:
            if again:
                return self.sender.again(timeout)
            self._trials += 1
            return self.sender.send(spec, self.sender_kind, self._trials & 0xFFFF, timeout,
                                    receivers=spec.filter.layer in INBOUND_LAYERS)
        except SenderError:
            raise
        except BaseException:  # Ctrl-C or a stuck sender: stop it now; the next trial starts another
            self.sender.kill()
            raise

    def run_trial(self, spec: TrialSpec) -> TrialResult:
        return self._trial(spec, lambda: self._send(spec))

    def probe(self, layer: str, sender: str, count: int = 50) -> ProbeCase:
        """Does a block at `layer` of traffic from `sender` produce events here? One small trial,
        then the same packets again from the same socket (is a blocked tuple classified again?).
        Whatever happens, the case ends as a result; an error is named in it."""
        result = ProbeCase(layer, sender, count)
        spec = TrialSpec(TrafficSpec(count=count), filter=FilterSpec(layer=layer), drain_quiet_s=0.5)
        previous = self.sender_kind
        try:
            self.sender_kind = sender
            first = self.run_trial(spec)
            repeat = self._trial(spec, lambda: self._send(spec, again=True))
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        finally:
            self.sender_kind = previous
        t = first.telemetry
        return ProbeCase(layer, sender, count, first.delivered_count, None, repeat.delivered_count,
                         first.generator.get("send_errors", 0), first.generator.get("send_error_kinds", {}),
                         first.generator.get("receivers", 0), t["layer_ids"], t["directions"], t["callback_threads"],
                         t["foreign_events"])

    def _retry_unsubscribes(self) -> None:
        """A subscription whose unsubscribe failed still gets every event of the (reused) filter:
        try again before each trial, and say how many are still live (observed())."""
        for subscription in list(self._leaked):
            try:
                subscription.close()
                self._leaked.remove(subscription)
            except WfpError:
                pass
        self._seen["leaked_subscriptions"] = len(self._leaked)

    def _trial(self, spec: TrialSpec, send: Send) -> TrialResult:
        check_destinations(spec.traffic.remote_addresses)
        self._retry_unsubscribes()
        floor_ns = self._store_floor_ns
        filter_id = self.filters.install(spec.filter, self.image)
        plan = plan_traffic(spec)
        inbound = spec.filter.layer in INBOUND_LAYERS
        release = Release()
        unix_minus_perf = self.kernel32.unix_minus_perf_ns()  # event FILETIMEs -> perf_counter time
        count = spec.traffic.count
        # with the allow keyword set (by another tool), every ALE authorization a packet passes before
        # the layer that blocks it can be an allow event too: rows for them, on every layer
        allows = bool(self.options.session.get_option(KEYWORDS) & K["FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW"])
        own = count * events_per_packet(spec.filter.layer, allows)
        user = None
        if self.user is not None:
            if spec.subscriber.mode != "inline" or spec.subscriber.function is not None:
                raise ValueError("--subscriber-lib runs in the native callback: an inline subscriber without a "
                                 "Python function")
            user = (self.user.address, self.user_context.ctypes.data)
        with Callback(spec.subscriber, count + 64, release, spec.traffic.seed) as callback:
            # rows for other filters' events too (a runner has drops of its own)
            subscription = Subscription(self.lib, self.filters.session, spec.template, inbound, filter_id,
                                        callback, capacity=own + count // 4 + 4096, native=self.native, user=user)
            try:
                sent_at, report = send()
                plan = without_listener(plan, report.pop("refused_receivers", []))
                if spec.subscriber.hold:
                    time.sleep(spec.settle_s)
                t_release = time.perf_counter_ns()
                release.set()
                self._drain(callback, spec)
                t_drained_ns = self.kernel32.precise_unix_ns()
                health = self._health(callback, spec, plan)
            finally:
                release.set()
                try:
                    subscription.close()  # from this thread, never from the callback's
                except WfpError:
                    self._seen["failed_unsubscribes"] += 1
                    self._leaked.append(subscription)
                    self._seen["leaked_subscriptions"] = len(self._leaked)
                    raise
            c = callback.finish()
            c["work"] = callback.work[:len(c["key"])]
        result = self._result(spec, plan, sent_at, report, c, subscription, filter_id, unix_minus_perf,
                              t_release if spec.subscriber.hold else None, callback.overflow)
        if callback.function is not None:  # the user's Python subscriber: what it raised
            result.telemetry["function_errors"] = callback.function_errors
            result.telemetry["first_function_error"] = callback.first_function_error
        if health.get("canary_s") is not None and result.telemetry.get("stranger_events"):
            result.telemetry["stranger_events"] -= 1  # the canary: the harness's filter, another socket
        t_first_ns = int(sent_at.min()) + unix_minus_perf if len(sent_at) else t_drained_ns
        # the send times are the sender's, a few ms off the events' stamps (paced trials: ~2 ms
        # early seen on the fake): a margin, but never back to earlier traffic of the filter
        start_ns = max(t_first_ns - 100_000_000, floor_ns)
        self._store_floor_ns = self.kernel32.precise_unix_ns()  # this trial's canary has arrived or timed out
        self._count(result, plan, filter_id, start_ns, t_drained_ns, inbound, health)
        return result

    # -- subscription health and the independent count -----------------------------------------
    CANARY_TIMEOUT_S = 2.0

    def _health(self, callback: Callback, spec: TrialSpec, plan) -> dict[str, Any]:
        """Is the subscription alive after the trial? One canary datagram of the harness's filter,
        to a tuple the template lets through, sent once the drain is quiet, must arrive within
        2 s (TinyWall saw a subscription die silently after BFE trouble: a dead one delivers
        nothing more, and says nothing)."""
        delivered = callback.n
        through = np.flatnonzero(plan.expected)
        if not len(through):  # the template lets nothing of this trial through: nothing to judge by
            return {"subscription": "alive", "canary_s": None, "canary": "not sent: the template matches no packet"}
        arrived = lambda: callback.n > delivered  # noqa: E731 (the trial's own events have stopped)
        inbound = spec.filter.layer in INBOUND_LAYERS
        first = int(through[0])
        address = str(ipaddress.IPv4Address(int(plan.remote_v4[first])))
        start = time.monotonic()
        try:
            send_datagrams([("127.0.0.1", address, int(plan.remote_port[first]))], listen=inbound)
        except OSError as exc:  # no verdict from the canary; the trial itself stands
            return {"subscription": "alive" if delivered or not spec.traffic.count else
                    "delivered nothing (dead or ineffective)", "canary_s": None, "canary": f"not sent: {exc}"}
        while not arrived() and time.monotonic() - start < self.CANARY_TIMEOUT_S:
            time.sleep(0.002)
        canary_s = round(time.monotonic() - start, 4) if arrived() else None
        if spec.traffic.count and delivered == 0:
            state = "delivered nothing (dead or ineffective)"
        elif canary_s is not None:
            state = "alive"
        else:
            state = (f"died during the trial: {delivered} events delivered, then not the canary within "
                     f"{self.CANARY_TIMEOUT_S:g} s")
        return {"subscription": state, "canary_s": canary_s}

    def _count(self, result: TrialResult, plan, filter_id: int, start_ns: int, end_ns: int, inbound: bool,
               health: dict[str, Any]) -> None:
        """sent, recorded by the system (its net-event store), delivered to the subscriber; where
        the loss happened. Into the telemetry and the trial's row."""
        spec = result.spec
        sent = spec.traffic.count
        seqs = result.delivered["seq"].to_numpy()
        delivered = int(len(np.unique(seqs[(seqs >= 0) & (seqs < sent)])))
        # the store records every packet a filter saw (a template only narrows the subscription),
        # but an inbound layer sees none where no receiver could listen
        listened = plan.listened if plan.listened is not None else np.ones(sent, dtype=bool)
        try:
            count = count_trial(self.lib, self.filters.session, filter_id, start_ns, end_ns, spec.filter.remote_prefix,
                                inbound, plan.decode, listened)
        except (WfpError, RuntimeError) as exc:
            count = {"recorded": None, "recorded_packets": None, "store_too_small": False, "store_error": str(exc)}
        # a trace with events per flow makes one event per flow: its first packet's
        events = spec.traffic.schedule.events if spec.traffic.schedule is not None else True
        count["loss_at"] = loss_stage(int((listened & events).sum()), count["recorded_packets"], delivered,
                                      count["store_too_small"])
        t = result.telemetry
        columns = {**health, **count, "delivered_packets": delivered,
                   # events that were not the trial's own took places in the same queue and buffer
                   "intf_shared_events": t["shared_events"],
                   "intf_shared_share": round(t["shared_events"] / max(len(result.delivered), 1), 4),
                   "callback_threads": result.telemetry["callback_threads"],
                   "concurrent_callbacks": result.telemetry["concurrent_callbacks"]}
        result.telemetry.update(columns)
        result.telemetry["row_columns"] = columns

    def _result(self, spec, plan, sent_at, report, c, subscription, filter_id, unix_minus_perf, t_release,
                overflow) -> TrialResult:
        sent = frame(SENT_COLUMNS, seq=plan.seq, t_send_ns=sent_at, remote_port=plan.remote_port)
        sent["expected"] = plan.expected
        d = subscription.decoded()  # every raw row, in bulk
        counts = subscription.counts(d)
        rows = c["key"]
        served = d.kind[rows] == MINE  # the subscriber ran for these; an incomplete one is counted apart
        # the harness's filter blocks its port range for every process: a packet another program sent
        # there is an event of ours too, but not from the trial's socket, and would read as a sequence number
        stranger = served & (d.peer_port[rows] != report["local_port"])  # every send reports its port
        served &= ~stranger
        rows = rows[served]
        delivered = frame(DELIVERED_COLUMNS, seq=plan.decode(d.remote_v4[rows], d.port[rows]),
                          t_event_ns=d.unix_ns[rows] - unix_minus_perf, t_callback_ns=c["t_callback"][served],
                          t_done_ns=c["t_done"][served], thread=subscription.raw.thread[rows])
        if self.user is not None:  # the user's library, per event, between the two stamps (less the drawn work)
            took = (c["t_done"] - c["t_callback"] - c["work"]).astype(float)
            if spec.subscriber.hold and len(took):
                took[0] = np.nan  # the first callback waited for the release
            delivered["user_ns"] = took[served]
        # events not the trial's own while its own came (not those of the hold's settle, the quiet
        # drain or the canary): they took places in the same queue and buffer
        others = (d.kind == OTHER_TYPE) | (d.kind == FOREIGN)
        others[c["key"][stranger]] = True
        own_ns = d.unix_ns[rows]
        shared = int((others & (d.unix_ns >= own_ns.min()) & (d.unix_ns <= own_ns.max())).sum()) if len(rows) else 0
        per_tuple = np.unique(delivered["seq"].to_numpy(), return_counts=True)[1]
        directions = np.unique(d.direction[rows], return_counts=True)
        telemetry = {
            "subscribe_version": subscription.version, "filter_id": filter_id,
            "other_event_types": counts["other_events"],
            "incomplete_events": counts["incomplete_events"],
            "stranger_events": int(stranger.sum()),  # the harness's filter, another socket's packets
            "shared_events": shared,
            "foreign_events": sum(counts["foreign"].values()), "foreign_filter_ids": sorted(counts["foreign"])[:20],
            "callback_threads": counts["callback_threads"],
            "callback_path": subscription.path,  # native or python (copy mode, WFPCAP_CALLBACK=python)
            # inline only (in copy mode t_done is the worker's); a zero-work callback's t_done is its
            # start, so overlaps are seen where a callback worked or was held
            "concurrent_callbacks": concurrent_callbacks(delivered["t_callback_ns"].to_numpy(),
                                                         delivered["t_done_ns"].to_numpy(), delivered["thread"].to_numpy())
            if spec.subscriber.mode == "inline" else None,
            "events_per_tuple_max": int(per_tuple.max()) if len(per_tuple) else 0,
            "layer_ids": sorted({int(x) for x in np.unique(d.layer_id[rows])}),
            "loopback_events": int(d.loopback[rows].sum()),
            "directions": {DIRECTIONS.get(int(k), str(int(k))): int(n) for k, n in zip(*directions)},
            "not_recorded": overflow + subscription.not_copied,
            "event_clock_step_ns": event_clock_step_ns(delivered["t_event_ns"].to_numpy()),
        }
        seen = self._seen
        seen["trials"] += 1
        seen["callback_threads_max"] = max(seen["callback_threads_max"], telemetry["callback_threads"])
        seen["concurrent_callbacks_max"] = max(seen["concurrent_callbacks_max"], telemetry["concurrent_callbacks"] or 0)
        seen["foreign_events"] += telemetry["foreign_events"]
        seen["events_per_tuple_max"] = max(seen["events_per_tuple_max"], telemetry["events_per_tuple_max"])
        step = telemetry["event_clock_step_ns"]
        if step is not None:
            seen["event_clock_step_ns"] = min(step, seen.get("event_clock_step_ns") or step)
        return TrialResult(spec=spec, sent=sent, delivered=delivered, t_release_ns=t_release,
                           telemetry=telemetry, generator=report)

    @staticmethod
    def _drain(callback: Callback, spec: TrialSpec) -> None:
        """Until none of the harness's own events arrived for drain_quiet_s (RFC 2544's residual
        wait), or the timeout. Other filters' drops do not count: they never stop on a runner."""
        deadline = time.monotonic() + spec.drain_timeout_s
        seen, quiet_since = callback.n, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(min(0.02, spec.drain_quiet_s / 4))
            if callback.n != seen:
                seen, quiet_since = callback.n, time.monotonic()
            elif time.monotonic() - quiet_since >= spec.drain_quiet_s:
                return
