"""A net-event subscription: FwpmNetEventSubscribeN at the highest version the library exports,
an optional template, and a lean callback: per event it copies the raw event (and its drop data)
into preallocated rows (event_rows.py) and, for a drop of the harness's own filter, runs the subscriber;
the rows are decoded in bulk with numpy (`decoded()`). Two implementations fill the same rows:
- native (native.py, the default for an inline Callback): machine code, WFP's thread never enters
  Python;
- Python (`lean_callback`: WFPCAP_CALLBACK=python, a copy-mode Callback, or a plain function of the
  row): an inline Callback's serve() inside the same function, `serve(row)` otherwise.

Only the harness's own filter counts: every other CLASSIFY_DROP on the machine (a runner has
drops of its own) is counted apart, per filter, and never reaches the subscriber.
Unsubscribe waits for a running callback, so it is refused from the callback's threads; until
it has succeeded the ctypes callback is kept alive (api.UNTIL_UNSUBSCRIBED), because WFP may still
call it.

On the Python path each delivery thread keeps its Python thread state (one extra PyGILState_Ensure on its first
event, never released): otherwise ctypes makes and deletes a thread state at every call from a
thread Python did not start, which costs more than the rest of the callback. Whether a call runs on
a kept state is asked of the state itself (a threading.local lives as long as its thread state), not
of the thread id: WFP delivers on RPC threads, which come and go, and a new thread may get an old
one's id (on Linux it usually does). A kept state outlives its thread (it cannot be deleted from
another thread while it may still be the current one of a live thread): a few KiB per thread that
ever delivered.
"""
from __future__ import annotations

import ctypes as C
import threading
from typing import Callable

import numpy as np

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import HANDLE, RAW_CALLBACK, UNTIL_UNSUBSCRIBED, Library, WfpError
from harness.platforms.wfp.engine import Session, template_conditions
from harness.platforms.wfp.event_rows import CLASSIFY_DROP, FOREIGN, INCOMPLETE, MINE, OTHER_TYPE, Decoded, RawEvents, decode
from harness.platforms.wfp.native import Block, choose_callback, native_system
from harness.spec import TemplateSpec
from harness.subscriber import Callback

__all__ = ["DeliveryThreads", "Subscription", "keep_thread_state", "lean_callback"]

_ensure = C.pythonapi.PyGILState_Ensure


def keep_thread_state() -> None:
    """Called on a thread that Python did not start, from inside a ctypes callback: its thread state
    then outlives the callback, and the next calls on this thread reuse it."""
    _ensure()


class DeliveryThreads:
    """The threads that have called a subscription's callback, each on the thread state it keeps.
    `kept` is a threading.local: it lives exactly as long as the thread state that set it, so a new
    thread that reuses an old one's id is still seen as new. `count` counts threads (kept states):
    a thread that ended and one that took its id are two."""

    def __init__(self) -> None:
        self.kept = threading.local()
        self.count = 0

    def keep(self) -> int:
        """On a delivery thread's first event (inside the callback): keep its thread state; its id."""
        keep_thread_state()
        thread = self.kept.thread = threading.get_ident()
        self.count += 1
        return thread

    def in_callback(self) -> bool:
        """True on a thread that has delivered this subscription's events on its current thread
        state: a delivery thread runs Python only inside the callback. (A Python thread that called
        the callback directly, as tests do, counts too.)"""
        return hasattr(self.kept, "thread")


def lean_callback(raw: RawEvents, filter_id: int, subscriber: Callback | Callable[[int], None],
                  delivery: DeliveryThreads) -> Callable[[int | None, int | None], None]:
    """The per-event function, with everything it touches bound to locals: two copies, a few
    integer reads from the copied rows, no ctypes structure and no decoding. The subscriber runs for
    a drop of `filter_id`: an inline Callback inside this same function (its serve() made a
    second Python call per event, ~0.2-0.3 us: benchmarks/bench_callback_floor.py); a copy-mode
    Callback through its serve(row); a plain function as serve(row). `delivery` keeps the thread
    state of each thread that calls.

    A copy is `rows[a:b] = (c_char * size).from_address(p).raw`: half the time of a ctypes.memmove
    call (benchmarks/bench_callback_floor.py), since no foreign function is called, and the GIL is
    kept throughout (ctypes.memmove drops and retakes it: a handover to any other Python thread, say
    the copy worker, in the middle of every callback)."""
    next_row = raw.rows.__next__
    capacity = raw.capacity
    event_size, drop_size = raw.event_size, raw.drop_size
    event_bytes, drop_bytes = (C.c_char * event_size).from_address, (C.c_char * drop_size).from_address
    event_rows, drop_rows = memoryview(raw.events.view(np.uint8)), memoryview(raw.drops.view(np.uint8))
    words32, words64, drop_words64 = raw.words32, raw.words64, raw.drop_words64
    threads = memoryview(raw.thread)
    type_word, pointer_word, filter_word = raw.type_word, raw.pointer_word, raw.filter_word
    w32, w64, d64 = event_size // 4, event_size // 8, drop_size // 8

    inline = subscriber.inline_parts() if isinstance(subscriber, Callback) else None
    if inline is not None:
        serve = None  # run below, in this function
    else:
        serve = subscriber.serve if isinstance(subscriber, Callback) else subscriber
    clock, next_served, served_capacity, hold, release, t_cbs, keys, t_dones, works, progress = inline or (None,) * 10

    kept, keep = delivery.kept, delivery.keep

    def on_event(context: int | None, event: int | None) -> None:
        try:
            thread = kept.thread
        except AttributeError:  # a thread state ctypes made for this call alone: keep it
            thread = keep()
        if not event:
            return
        i = next_row()  # atomic under the GIL
        if i >= capacity:  # counted at unsubscribe (not_copied)
            return
        start = i * event_size
        event_rows[start:start + event_size] = event_bytes(event).raw
        threads[i] = thread
        if words32[i * w32 + type_word] != CLASSIFY_DROP:
            return
        drop = words64[i * w64 + pointer_word]
        if not drop:
            return
        start = i * drop_size
        drop_rows[start:start + drop_size] = drop_bytes(drop).raw
        if drop_words64[i * d64 + filter_word] != filter_id:
            return
        if serve is not None:
            serve(i)
            return
        # Callback.serve(i) in inline mode, inlined: the same statements
        t_cb = t = clock()
        j = next_served()
        if j >= served_capacity:  # counted by Callback.finish()
            return
        progress[0] = j + 1
        t_cbs[j] = t_cb
        keys[j] = i
        if j == 0 and hold:
            release.wait()
            t = clock()
        work = works[j]
        if work:
            deadline = t_cb + work
            while t < deadline:
                t = clock()
        t_dones[j] = t

    return on_event


class Subscription:
    """The subscriber `on_drop` (a Callback, or a function of the row) runs for each drop event of
    `filter_id`; the row indexes the raw rows (`raw`),
    of which `rows` have been filled; `decoded()` reads them. Events beyond `capacity` are counted
    in `not_copied`."""

    def __init__(self, lib: Library, session: Session, template: TemplateSpec | None, inbound: bool,
                 filter_id: int, on_drop: Callback | Callable[[int], None], capacity: int = 1 << 16,
                 native: bool | None = None, user: tuple[int, int] | None = None) -> None:
        self.lib, self.session, self.inbound, self.on_drop = lib, session, inbound, on_drop
        self.filter_id = filter_id
        self.version = lib.subscribe_version
        self.raw = RawEvents(self.version, capacity)
        if isinstance(on_drop, Callback):  # a user's Python subscriber reads the copied event
            on_drop.read_events_with(self.raw.event_bytes)
        # an inline Callback runs on the native path (native.py) unless told otherwise or it cannot compile
        parts = on_drop.native_parts() if isinstance(on_drop, Callback) and (
            choose_callback(lib.override)[0] if native is None else native) else None
        if user is not None and parts is None:
            raise ValueError("a native subscriber library runs in the native callback only (an inline Callback, "
                             "no Python function, WFPCAP_CALLBACK not python)")
        self.block: Block | None = None  # the native callback's context; None on the Python path
        self._filled: int | None = None  # rows, once no callback can run any more
        self._not_copied: int | None = None  # events beyond the capacity, likewise
        self._threads = DeliveryThreads()
        self._keep = []
        sub = abi.FWPM_NET_EVENT_SUBSCRIPTION0()
        sub.sessionKey = session.key
        if template is not None and template.conditions:
            arr, n = template_conditions(template, inbound).array()  # refuses duplicates before the call
            tmpl = abi.FWPM_NET_EVENT_ENUM_TEMPLATE0(numFilterConditions=n)
            tmpl.filterCondition = C.cast(arr, C.POINTER(abi.FWPM_FILTER_CONDITION0))
            self._keep += [arr, tmpl]
            sub.enumTemplate = C.pointer(tmpl)
        if parts is not None:
            system = native_system(lib.override)
            self._callback = system.callback
            self.block = Block(system, self.raw, filter_id, parts, user)
            context = self.block.context
        else:
            self._callback = RAW_CALLBACK(lean_callback(self.raw, filter_id, on_drop, self._threads))
            context = None
        self.events = HANDLE()
        # kept alive from before the call: an exception (Ctrl-C) just after it returned must not
        # let the rows and columns that WFP's threads write into be freed
        UNTIL_UNSUBSCRIBED.add(self)
        try:
            rc = lib.subscribe_fn(session.handle, C.byref(sub), self._callback, context, C.byref(self.events))
        except BaseException:
            if not self.events:  # not subscribed: nothing can call back
                UNTIL_UNSUBSCRIBED.discard(self)
                if self.block is not None:
                    self.block.close()
            raise
        if rc:
            UNTIL_UNSUBSCRIBED.discard(self)
            if self.block is not None:
                self.block.close()
            raise WfpError(f"FwpmNetEventSubscribe{self.version}", rc)

    @property
    def not_copied(self) -> int:
        """Events that found every row taken: what the row counter handed out beyond the capacity.
        Known once unsubscribed."""
        if self._not_copied is None:
            raise RuntimeError("Subscription.not_copied is counted at close()")
        return self._not_copied

    @property
    def rows(self) -> int:
        """Rows filled so far: a prefix, each row stamped with its thread (never 0) as it is copied;
        exact once unsubscribed."""
        if self._filled is not None:
            return self._filled
        return int(np.count_nonzero(self.raw.thread))

    def decoded(self) -> Decoded:
        return decode(self.raw, self.rows, self.inbound, self.filter_id)

    def counts(self, decoded: Decoded) -> dict:
        """Events that were not the harness's drops: of other types, incomplete, other filters'."""
        kind = decoded.kind
        foreign_ids, per_id = np.unique(decoded.filter_id[kind == FOREIGN], return_counts=True)
        return {"other_events": int((kind == OTHER_TYPE).sum()), "incomplete_events": int((kind == INCOMPLETE).sum()),
                "foreign": {int(f): int(c) for f, c in zip(foreign_ids, per_id)}, "callback_threads": self.callback_threads,
                "mine": int((kind == MINE).sum()), "not_copied": self.not_copied}

    @property
    def path(self) -> str:
        """Which callback WFP calls: native or python."""
        return "native" if self.block is not None else "python"

    @property
    def callback_threads(self) -> int:
        """Threads that called the callback. Python path: kept thread states (a thread that ended and
        a new one with its id: two). Native path: distinct thread ids among the copied rows, a lower
        bound (a thread that took an ended one's id counts once; Windows reuses thread ids soon)."""
        if self.block is not None:
            return int(np.unique(self.raw.thread[:self.rows]).size)
        return self._threads.count

    def release_held(self) -> None:
        """Let a held first callback return (the trial's release, set early: at exit, see api.close_at_exit)."""
        if isinstance(self.on_drop, Callback):
            self.on_drop.release.set()

    def close(self) -> None:
        if not self.events:
            return
        if self._threads.in_callback():
            raise RuntimeError("FwpmNetEventUnsubscribe0 waits for the running callback: never call it from there")
        self.lib.call("FwpmNetEventUnsubscribe0", self.session.handle, self.events)  # raises: still subscribed
        self.events = HANDLE()
        # rows asked for; no callback can ask any more (as Callback.finish)
        if self.block is not None:
            handed = self.block.handed
            self.block.close()
        else:
            handed = next(self.raw.rows)
        self._filled, self._not_copied = min(handed, self.raw.capacity), max(0, handed - self.raw.capacity)
        UNTIL_UNSUBSCRIBED.discard(self)
