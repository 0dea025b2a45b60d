"""`wfpcap doctor` on the fake: passes on a healthy configuration, and for each injected fault
fails naming the check; the scenario session stops at once with the failing line."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.platforms.wfp.doctor import _attempt, diagnose
from netns import fresh_netns, in_fresh_netns
from platforms import fake_wfp_library

ROOT = Path(__file__).resolve().parents[1]
ERROR_ACCESS_DENIED = 5
CHECKS = ["elevated", "Base Filtering Engine", "fwpuclnt", "native callback", "native send loop", "net-event options",
          "other subscriptions", "sublayer and filter", "canary event"]


def first_failure(path):
    with fresh_netns():  # the canary is a real packet; the fake sees it in this namespace
        d = diagnose(path)
    return d, (d.first_failure.name if d.first_failure else None)


@pytest.mark.root
def test_a_healthy_configuration_passes_every_check(fake):
    path, dll = fake
    dll.FakeSetForeignSubscriptions(2)
    d, failed = first_failure(path)
    assert failed is None and d.ok, d.lines()
    assert [c.name for c in d.checks] == CHECKS
    lines = d.lines()
    assert lines[-1] == "doctor: all 9 checks passed"
    assert "FwpmNetEventSubscribe4 (delivers FWPM_NET_EVENT5), FwpmNetEventEnum5 exported" in lines[2]
    assert lines[3].startswith("PASS  native callback: compiled: WFP's delivery threads never enter Python; "
                               "self-test: entered once from an OS thread (")
    assert lines[3].endswith(") with a synthetic FWPM_NET_EVENT5: its row is right")
    assert lines[4] == ("PASS  native send loop: compiled: ws2_32 sendto, one call per packet, a high resolution "
                        "timer for the coarse sleep")
    assert "2 other subscription(s): session keys" in lines[6]
    assert lines[8].startswith("PASS  canary event: event of filter ")


@pytest.mark.parametrize("fault, check", [
    ("non-elevated", "elevated"),
    ("bfe stopped", "Base Filtering Engine"),
    ("filter add refused", "sublayer and filter"),
    ("canary never arrives", "canary event"),
])
@pytest.mark.root
def test_each_fault_fails_naming_its_check(fake, fault, check):
    path, dll = fake
    if fault == "non-elevated":
        dll.FakeSetElevated(0)
    elif fault == "bfe stopped":
        dll.FakeSetBfeState(1)  # SERVICE_STOPPED
    elif fault == "filter add refused":
        dll.FakeFailNext(b"FwpmFilterAdd0", ERROR_ACCESS_DENIED)
    else:
        dll.FakeSetDeliverAtMost(0)  # the subscription is dead from the start
    d, failed = first_failure(path)
    assert failed == check, d.lines()
    assert d.lines()[-1].startswith(f"doctor: FAILED at '{check}': ")


@pytest.mark.root
def test_no_subscription_version_exported_fails_the_fwpuclnt_check(fake):
    d, failed = first_failure(fake_wfp_library(max_subscribe=-1))
    assert failed == "fwpuclnt" and "exports no FwpmNetEventSubscribeN" in d.first_failure.evidence
    assert [c.ok for c in d.checks[5:]] == [None] * 4  # the checks that need it say so, they do not crash


KILLED = textwrap.dedent("""
    import sys
    from harness.platforms.wfp.api import Library
    from harness.platforms.wfp.options import EngineOptions
    o = EngineOptions(Library(sys.argv[1]))
    o.ensure(1, 0x10)  # FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS += CLASSIFY_ALLOW, as the allow experiment does
    print("changed", flush=True)
    sys.stdin.read()
""")


@pytest.mark.root
@pytest.mark.subprocess
def test_options_left_changed_by_a_killed_run_are_restored_and_said(fake, tmp_path):
    path, _ = fake
    options = tmp_path / "bfe-options"
    options.write_text("1\n0\n0\n0\n0\n0\n")
    env = {**os.environ, "WFPCAP_FAKE_OPTIONS_FILE": str(options), "WFPCAP_STATE_DIR": str(tmp_path / "state")}
    killed = subprocess.Popen([sys.executable, "-c", KILLED, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT)
    assert killed.stdout.readline().strip() == "changed" and options.read_text().split()[1] == "16"
    killed.kill()  # TerminateProcess: no handler, no atexit
    killed.wait()
    doctor = [sys.executable, "-m", "harness.cli", "doctor", "--library", path, "--out", str(tmp_path / "doctor.txt")]
    first = subprocess.run(in_fresh_netns(doctor), capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert first.returncode == 1, first.stdout + first.stderr
    assert ("doctor: FAILED at 'net-event options': net_event_match_any_keywords left at 16 by a killed run, "
            "restored to 0") in first.stdout
    assert (tmp_path / "doctor.txt").read_text() == first.stdout
    assert options.read_text().split()[1] == "0"
    again = subprocess.run(in_fresh_netns(doctor), capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert again.returncode == 0 and again.stdout.strip().endswith("doctor: all 9 checks passed"), again.stdout


def test_the_doctor_says_which_callback_runs_and_a_fallback_passes(fake, monkeypatch):
    from harness.platforms.wfp.doctor import native_callback_check
    path, _ = fake
    monkeypatch.setenv("WFPCAP_CALLBACK", "python")
    ok, evidence = native_callback_check(path)
    assert ok and evidence.startswith("the Python callback runs (WFPCAP_CALLBACK=python): 2.4-3.4 us per event")
    monkeypatch.setenv("WFPCAP_CALLBACK", "fast")
    check = _attempt("native callback", lambda: native_callback_check(path))
    assert check.ok is False and "expected 'native' or 'python'" in check.evidence


@pytest.mark.root
def test_collection_left_off_by_another_tool_passes_and_is_put_back_after(fake, tmp_path):
    """System Informer's monitor sets FWPM_ENGINE_COLLECT_NET_EVENTS to 0 when it exits. The run
    turns collection on (and back off at its end); the doctor does the same for its canary instead
    of failing a machine the run would measure."""
    from harness.platforms.wfp.api import Library
    from harness.platforms.wfp.engine import Session
    from harness.platforms.wfp.options import STATE_FILE, state_dir
    path, dll = fake
    with fresh_netns():
        other_tool = Session(Library(path), dynamic=False, name="another tool")
        other_tool.set_option(0, 0)  # FWPM_ENGINE_COLLECT_NET_EVENTS
        other_tool.close()
        d = diagnose(path)
    assert d.ok, d.lines()
    options = next(c for c in d.checks if c.name == "net-event options")
    assert options.evidence.startswith("as found: collect_net_events=0, net_event_match_any_keywords=0; "
                                       "collection off: the run turns it on (so did the doctor, for the canary; "
                                       "put back after)"), options.evidence
    assert dll.FakeOption(0) == 0 and not (state_dir() / STATE_FILE).exists()


def test_the_fake_refuses_subscribing_and_enumerating_while_collection_is_off(fake):
    """Windows documents FWP_E_NET_EVENTS_DISABLED for FwpmNetEventEnumN; a subscription would
    never get an event, and is refused the same way."""
    from harness.platforms.wfp.api import Library, WfpError
    from harness.platforms.wfp.engine import Session
    from harness.platforms.wfp.event_store import enumerate_store
    from harness.platforms.wfp.recorder import Recorder
    path, dll = fake
    lib = Library(path)
    session = Session(lib, dynamic=False, name="test")
    try:
        session.set_option(0, 0)
        with pytest.raises(WfpError, match="FWP_E_NET_EVENTS_DISABLED"):
            Recorder(lib, session)
        with pytest.raises(WfpError, match="FwpmNetEventEnum5 failed: FWP_E_NET_EVENTS_DISABLED"):
            enumerate_store(lib, session, 0, 2**62, None, lambda e: None)
        session.set_option(0, 1)
        Recorder(lib, session).close()
    finally:
        session.close()


def test_the_fake_can_accept_a_subscription_while_collection_is_off_and_keep_it_silent(fake):
    """Microsoft Learn documents FWP_E_NET_EVENTS_DISABLED for FwpmNetEventEnumN, not for
    FwpmNetEventSubscribeN: the fake goes the other way too. Accepted, the subscription gets nothing
    while collection is off and the events of its filter once it is on; enumerating is refused."""
    from harness.platforms.wfp.api import Library, WfpError
    from harness.platforms.wfp.engine import FilterSession, Session
    from harness.platforms.wfp.event_store import enumerate_store
    from harness.platforms.wfp.recorder import Recorder
    from harness.spec import FilterSpec
    path, dll = fake
    dll.FakeSetSubscribeWhileOff(1)
    lib = Library(path)
    options, filters = Session(lib, dynamic=False, name="test"), FilterSession(lib)
    try:
        own = filters.install(FilterSpec())
        options.set_option(0, 0)
        with Recorder(lib, filters.session) as rec:
            assert dll.FakeInjectUdp(0x7F000001, 20000, 40000) == 1  # blocked, and no event made of it
            rec.settle(0.2)
            assert rec.seen == []
            with pytest.raises(WfpError, match="FWP_E_NET_EVENTS_DISABLED"):
                enumerate_store(lib, options, 0, 2**62, None, lambda e: None)
            options.set_option(0, 1)
            assert dll.FakeInjectUdp(0x7F000001, 20001, 40000) == 1
            assert rec.wait_for(lambda seen: any(s.filter_id == own for s in seen), 2.0) is not None
    finally:
        filters.close()
        options.close()


@pytest.mark.subprocess
def test_the_native_check_alone_for_the_diagnostics_bundle(fake, tmp_path):
    path, _ = fake
    out = tmp_path / "native.txt"
    cmd = [sys.executable, "-m", "harness.cli", "doctor", "--native", "--library", path, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "WFPCAP_CALLBACK": "native"})
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 2 and lines[-1] == "doctor: all 1 checks passed", done.stdout + done.stderr
    assert lines[0].startswith("PASS  native callback: compiled: ") and "self-test: entered once from an OS thread" in lines[0]
    assert out.read_text() == done.stdout


def test_the_doctor_says_which_send_loop_runs_and_a_fallback_passes(fake, monkeypatch):
    from harness.platforms.wfp.native_send import native_sender_check
    path, _ = fake
    monkeypatch.setenv("WFPCAP_SENDER", "python")
    assert native_sender_check(path) == (True, "the Python send loop runs (WFPCAP_SENDER=python): one sendto per "
                                               "packet from the interpreter")
    monkeypatch.setenv("WFPCAP_SENDER", "fast")
    check = _attempt("native send loop", lambda: native_sender_check(path))
    assert check.ok is False and check.evidence == "WFPCAP_SENDER='fast': expected 'native' or 'python'"
