"""`wfpcap doctor`: can this machine measure WFP net events? One line per check, pass or fail,
with the evidence; the first failing check is named. The scenario session runs the same checks
before anything else and stops at once when one fails (no hour of red tests).

Checks, in order: elevated; the Base Filtering Engine service running; fwpuclnt loaded and its
highest FwpmNetEventSubscribeN; which callback runs (the native one where it compiles, entered once
from a thread the operating system starts with a synthetic net event and its row checked; a
fallback to the Python callback passes, saying why and what it costs, unless WFPCAP_CALLBACK=native); the net-event options as found (restoring, and saying so, what a
killed earlier run left changed; collection, if another tool left it off, turned on for the canary as
the run turns it on, and put back at the end); other net-event subscriptions; a dynamic sublayer and filter can
be added; one canary packet makes one event of the harness's own filter within 2 s. Beside the
callback's check, the native send loop's (native_send.py: compiled against ws2_32 and kernel32).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.platforms.base import PlatformUnavailable
from harness.platforms.wfp.api import Library, WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.constants import INBOUND_LAYERS
from harness.platforms.wfp.engine import FilterSession, Session, census
from harness.platforms.wfp.native import choose_callback, self_test
from harness.platforms.wfp.native_send import native_sender_check
from harness.platforms.wfp.options import EngineOptions
from harness.platforms.wfp.recorder import Recorder, send_datagrams
from harness.platforms.wfp.admin_services import AdminServices
from harness.results.records import DoctorCheck, DoctorDiagnosis
from harness.spec import FilterSpec

CANARY_TIMEOUT_S = 2.0
COLLECT = K["FWPM_ENGINE_COLLECT_NET_EVENTS"]


def line(check: DoctorCheck) -> str:
    """A check as the doctor prints it: PASS, FAIL or SKIP (not run: a check it needs failed)."""
    return f"{'PASS' if check.ok else 'FAIL' if check.ok is False else 'SKIP'}  {check.name}: {check.evidence}"


@dataclass
class Diagnosis:
    """The checks in order; `record()` is what the run's summary keeps of them."""

    checks: list[DoctorCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def first_failure(self) -> DoctorCheck | None:
        return next((c for c in self.checks if c.ok is False), None)

    def lines(self) -> list[str]:
        failed = self.first_failure
        last = (f"doctor: all {len(self.checks)} checks passed" if failed is None
                else f"doctor: FAILED at '{failed.name}': {failed.evidence}")
        return [line(c) for c in self.checks] + [last]

    def record(self) -> DoctorDiagnosis:
        return DoctorDiagnosis(self.ok, list(self.checks))


def _attempt(name: str, step: Callable[[], tuple[bool, str]]) -> DoctorCheck:
    try:
        ok, evidence = step()
    except (WfpError, PlatformUnavailable, OSError, RuntimeError, ValueError) as exc:
        ok, evidence = False, str(exc)
    return DoctorCheck(name, ok, evidence)


def diagnose(library: str | None = None, spec: FilterSpec | None = None) -> Diagnosis:
    spec = spec or FilterSpec()
    checks: list[DoctorCheck] = []

    def system_check(name: str, ask: Callable[[AdminServices], tuple[bool, str]]) -> None:
        checks.append(_attempt(name, lambda: ask(AdminServices(library))))

    system_check("elevated", lambda s: (True, "IsUserAnAdmin: yes") if s.elevated() else
                 (False, "IsUserAnAdmin: no; WFP sessions, filters and subscriptions need an administrator prompt"))
    system_check("Base Filtering Engine", lambda s: ((state := s.service_state("BFE")) == "running",
                                                     f"service BFE {state}"))
    lib: list[Library] = []

    def load() -> tuple[bool, str]:
        lib.append(Library(library))
        v = lib[0].subscribe_version
        enum = f"FwpmNetEventEnum{v + 1} {'exported' if lib[0].enum_fn else 'MISSING (no independent count)'}"
        return True, f"{lib[0].path}: FwpmNetEventSubscribe{v} (delivers FWPM_NET_EVENT{v + 1}), {enum}"

    checks.append(_attempt("fwpuclnt", load))
    checks.append(_attempt("native callback", lambda: native_callback_check(
        library, lib[0].subscribe_version if lib else 4)))
    checks.append(_attempt("native send loop", lambda: native_sender_check(library)))
    later = ("net-event options", "other subscriptions", "sublayer and filter", "canary event")
    if not lib:
        return Diagnosis(checks + [DoctorCheck(n, None, "needs fwpuclnt") for n in later])
    lib_ = lib[0]

    held: list[EngineOptions] = []  # as the run holds them: collection turned on if it was off, put back at the end

    def options() -> tuple[bool, str]:
        held.append(EngineOptions(lib_))  # acts on a killed run's state file first, as a run does
        restored, found = held[0].restored, held[0].describe()
        text = ", ".join(f"{k}={v}" for k, v in found.items())
        if restored:
            said = "; ".join(f"{k} left at {v['left_by_run']} by a killed run, "
                             + (f"restored to {v['restored_to']}" if v["restored_to"] is not None
                                else f"changed since by someone else ({v['found_now']}), left alone")
                             + f" ({v['run']})" for k, v in restored.items())
            return False, f"{said}; now {text} (run the doctor again)"
        if not found["collect_net_events"]:  # another tool turned it off (System Informer's monitor does on exit)
            held[0].ensure(COLLECT, 1)
            return True, (f"as found: {text}; collection off: the run turns it on (so did the doctor, for the "
                          "canary; put back after); nothing left changed by a killed run")
        return True, f"as found: {text}; nothing left changed by a killed run"

    try:
        checks.append(_attempt("net-event options", options))
        checks += _engine_checks(lib_, spec)
    finally:
        for o in held:
            o.close()
    return Diagnosis(checks)


def _engine_checks(lib_: Library, spec: FilterSpec) -> list[DoctorCheck]:
    """Other subscriptions, a dynamic sublayer and filter, the canary event."""
    checks: list[DoctorCheck] = []
    session = Session(lib_, dynamic=False, name="wfpcap doctor")
    try:
        def others() -> tuple[bool, str]:
            c = census(lib_, session)
            keys = ", ".join(c["session_keys"][:10]) + (" ..." if len(c["session_keys"]) > 10 else "")
            return True, f"{c['subscriptions']} other subscription(s)" + (f": session keys {keys}" if keys else "")

        checks.append(_attempt("other subscriptions", others))
        filters: list[FilterSession] = []
        try:
            def add() -> tuple[bool, str]:
                filters.append(FilterSession(lib_))
                filter_id = filters[0].install(spec)
                return True, f"dynamic sublayer and a block filter at {spec.layer} added (filter id {filter_id})"

            checks.append(_attempt("sublayer and filter", add))
            if checks[-1].ok:
                checks.append(_attempt("canary event", lambda: canary(lib_, filters[0], spec)))
            else:
                checks.append(DoctorCheck("canary event", None, "needs a filter"))
        finally:
            for f in filters:
                f.close()
    finally:
        session.close()
    return checks


def diagnose_native(library: str | None = None) -> Diagnosis:
    """The native callback's check alone (`wfpcap doctor --native`: the CI diagnostics bundle runs it
    whatever happened before)."""
    version = 4
    try:
        version = Library(library).subscribe_version
    except PlatformUnavailable:
        pass  # the self-test needs no fwpuclnt: FWPM_NET_EVENT5, the newest
    return Diagnosis([_attempt("native callback", lambda: native_callback_check(library, version))])


def native_callback_check(library: str | None, version: int = 4) -> tuple[bool, str]:
    """Measurement works on either callback; the Python one costs 2.4-3.4 us per event, the native
    one ~0.1 us (docs/benchmarks.md). The native one is entered once from a thread the operating system starts
    (self_test): a runner's CI is the only place its Windows branch runs. WFPCAP_CALLBACK=native
    makes a fallback fail here, with its reason."""
    native, why = choose_callback(library)
    if native:
        return True, f"compiled: WFP's delivery threads never enter Python; self-test: {self_test(library, version)}"
    return True, f"the Python callback runs ({why}): 2.4-3.4 us per event, the native one ~0.1 us"


def canary(lib: Library, filters: FilterSession, spec: FilterSpec) -> tuple[bool, str]:
    """One datagram the filter blocks; its event must reach a fresh subscription within 2 s."""
    own = filters.filter_id
    with Recorder(lib, filters.session) as rec:
        send_datagrams([("127.0.0.1", "127.0.0.1", spec.remote_port_high)], listen=spec.layer in INBOUND_LAYERS)
        took = rec.wait_for(lambda seen: any(s.filter_id == own and s.type == K["FWPM_NET_EVENT_TYPE_CLASSIFY_DROP"]
                                             for s in seen), CANARY_TIMEOUT_S)
        others = sum(1 for s in rec.seen if s.filter_id != own)
    if took is None:
        return False, (f"no event of filter {own} within {CANARY_TIMEOUT_S:g} s ({others} event(s) of other "
                       "filters arrived): the subscription is dead or net events are not collected")
    return True, f"event of filter {own} after {took * 1000:.0f} ms ({others} event(s) of other filters)"
