"""Which cores the sender and the subscriber run on, and the sender's priority.

On a busy machine a neighbour that takes the sender's core for a millisecond makes a millisecond of
lateness, and a sender spinning on the subscriber's core slows the very callbacks being measured.
So, where the process may use two cores or more, the sender process takes the last one (core 0
usually carries more of the machine's interrupts and housekeeping) at a raised priority, and the
harness process (the subscriber, its reader threads, and on Windows WFP's delivery threads, which
run in it) keeps to the others until the sender goes. The OS calls are a platform's
(`ThreadControl`: here for Linux, harness/platforms/wfp/threads.py for Windows).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Protocol

NICE = -20  # SCHED_OTHER's highest: a neighbour still runs, but rarely (a real-time class could starve the softirq work of the sender's own packets)


class ThreadControl(Protocol):
    def allowed(self) -> set[int]:
        """The cores this process may run on."""
        ...

    def pin_process(self, cpus: set[int]) -> None:
        """Every thread of this process, and those it starts later, onto `cpus`."""
        ...

    def raise_priority(self) -> str:
        """Raise the calling thread's priority; what it is now (OSError if not allowed)."""
        ...


@dataclass(frozen=True)
class CoreSplit:
    sender: frozenset[int]
    subscriber: frozenset[int]
    why_not: str = ""  # why nothing is pinned (then both are empty)


def split(allowed: set[int]) -> CoreSplit:
    if len(allowed) < 2:
        return CoreSplit(frozenset(), frozenset(), f"not pinned: this process may use {len(allowed)} core")
    last = max(allowed)
    return CoreSplit(frozenset({last}), frozenset(allowed - {last}))


def cpus_text(cpus: frozenset[int] | set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def pin_sender(control: ThreadControl | None, cores: CoreSplit) -> dict[str, str]:
    """In the sender process, on the thread that sends: the whole process onto its core (it is the
    sender's alone; on Windows a thread's mask must lie inside its process's, which a sender started
    by an already pinned harness process inherits), the thread's priority raised; as the trial's
    report states them."""
    if control is None:
        return {"sender_cpus": "not pinned: this platform offers no thread control", "sender_priority": "unchanged"}
    out = {"sender_cpus": cores.why_not or cpus_text(cores.sender)}
    if not cores.why_not:
        try:
            control.pin_process(set(cores.sender))
        except OSError as exc:
            out["sender_cpus"] = f"not pinned: {exc}"
    try:
        out["sender_priority"] = control.raise_priority()
    except OSError as exc:
        out["sender_priority"] = f"unchanged: {exc}"
    return out


AUTOGROUPS = "/proc/sys/kernel/sched_autogroup_enabled"


class LinuxThreads:
    """sched_setaffinity and the nice value, which Linux keeps per thread. With autogroups on (the
    default of most distributions), the scheduler first shares a core between sessions, and a
    thread's nice value counts only inside its own: a nice -20 sender beside another session's
    busy process still saw 45-400 stalls over 1 ms in 3 s on the project's VM. So the sender
    process starts a session of its own (it ignores Ctrl-C and watches its parent anyway) and
    gives that session's autogroup the same nice value: 0-5 such stalls."""

    def allowed(self) -> set[int]:
        return set(os.sched_getaffinity(0))

    def pin_process(self, cpus: set[int]) -> None:
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except ProcessLookupError:  # a thread that ended meanwhile
                pass

    def raise_priority(self) -> str:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)  # Linux: the calling thread only
        said = f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
        try:
            with open(AUTOGROUPS) as f:
                if f.read().strip() != "1":
                    return said
            if os.getsid(0) != os.getpid():
                os.setsid()
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(NICE))
            with open("/proc/self/autogroup") as f:  # "/autogroup-22 nice -20"
                return f"{said}, own autogroup at nice {f.read().split()[-1]}"
        except OSError as exc:
            return f"{said} (autogroup unchanged: {exc.strerror or exc})"


class _Held:
    """The harness process's cores before its first sender took one, while any sender holds it:
    a second sender process (two platforms, a benchmark's two loops) shares the first one's core
    and split, and the last to go gives the process its cores back."""

    lock = threading.Lock()
    before: set[int] | None = None
    holders = 0


def process_cores(control: ThreadControl) -> set[int]:
    """The cores this process may use, not counting what its senders keep it off."""
    with _Held.lock:
        return set(_Held.before) if _Held.before is not None else control.allowed()


class SubscriberCores:
    """The harness process (the subscriber's side) kept off the sender's core while the sender
    runs; `release` gives it back every core it had (once no other sender holds it)."""

    def __init__(self, control: ThreadControl | None, cores: CoreSplit) -> None:
        self.control, self._holding = control, False
        if control is None or cores.why_not:
            self.text = cores.why_not or "not pinned: this platform offers no thread control"
            return
        with _Held.lock:
            try:
                before = _Held.before if _Held.before is not None else control.allowed()
                control.pin_process(set(cores.subscriber))
            except OSError as exc:
                self.text = f"not pinned: {exc}"
                return
            _Held.before, _Held.holders = before, _Held.holders + 1
        self._holding, self.text = True, cpus_text(cores.subscriber)

    def release(self) -> None:
        if not self._holding:
            return
        self._holding = False
        with _Held.lock:
            _Held.holders -= 1
            if _Held.holders:
                return
            before, _Held.before = _Held.before, None
            try:
                self.control.pin_process(before)
            except OSError:  # the process goes on where it is; nothing else depends on it
                pass
