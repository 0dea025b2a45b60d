"""The wfp platform's trials, each way they once went wrong reproduced on Linux (the probe's
senders, inbound listeners, whose events count, the classify cache, the app id, a killed run's
options, the event clock, both direction conventions, delivery threads): the whole backend against
the strict fake fwpuclnt, with the real sender process sending real packets in a test namespace."""
import gc
import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.loss import loss_by_sequence
from harness.platforms.base import PlatformUnavailable
from harness.platforms.wfp.api import Library, WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Session
from harness.platforms.wfp.options import STATE_FILE, EngineOptions, state_dir
from harness.spec import LAYERS, FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec
from netns import in_fresh_netns
from platforms import capture_stats, object_counts, open_wfp

ROOT = Path(__file__).resolve().parents[1]
COLLECT = K["FWPM_ENGINE_COLLECT_NET_EVENTS"]


def spec(count=300, layer="ALE_AUTH_CONNECT_V4", **subscriber):
    return TrialSpec(TrafficSpec(count=count), SubscriberSpec(**subscriber), filter=FilterSpec(layer=layer),
                     drain_quiet_s=0.3, drain_timeout_s=10.0)


# 1. The raw sender crashed and the probe caught only OSError; 2. inbound probes had no listener.
@pytest.mark.root
@pytest.mark.realtime
def test_every_probe_case_runs_through_the_real_senders_and_gets_its_events(fake):
    path, dll = fake
    with open_wfp(path) as p:
        results = [p.probe(layer, sender) for layer in LAYERS for sender in ("udp", "raw")]
    state, packets, drops = capture_stats(dll)
    assert [r.error for r in results] == [None] * 8, results
    assert [(r.layer, r.sender, r.events) for r in results] == \
        [(layer, sender, 50) for layer in LAYERS for sender in ("udp", "raw")]
    assert state == 1 and packets >= 8 * 50 and drops == 0  # real packets, each classified


@pytest.mark.root
@pytest.mark.realtime
def test_a_probe_case_that_fails_is_recorded_with_its_error_named(fake, monkeypatch):
    path, _ = fake
    with open_wfp(path) as p:
        def broken(*args, **kwargs):
            raise TypeError("'NoneType' object is not callable")
        monkeypatch.setattr(p, "run_trial", broken)
        result = p.probe("ALE_AUTH_CONNECT_V4", "raw")
    assert result.error == "TypeError: 'NoneType' object is not callable"
    assert (result.layer, result.sender, result.events) == ("ALE_AUTH_CONNECT_V4", "raw", 0)


@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("layer", ["INBOUND_TRANSPORT_V4", "ALE_AUTH_RECV_ACCEPT_V4"])
def test_inbound_trials_have_listeners_and_number_events_by_local_port(fake, layer):
    path, _ = fake
    with open_wfp(path) as p:
        r = p.run_trial(spec(300, layer))
    assert sorted(r.delivered["seq"]) == list(range(300))
    assert r.telemetry["layer_ids"] == [K[f"FWPS_LAYER_{layer}"]]
    assert r.telemetry["directions"] == {"in": 300}


# 3. Every CLASSIFY_DROP on the machine was counted as the harness's own, and kept the drain busy.
@pytest.mark.root
@pytest.mark.realtime
def test_only_the_harness_filters_events_count_and_the_drain_ends_on_its_own(fake):
    path, dll = fake
    with open_wfp(path) as p:
        dll.FakeSetForeignRate(300.0)
        started = time.monotonic()
        r = p.run_trial(spec(2000, hold=True, cost_us=20))
        elapsed = time.monotonic() - started
        dll.FakeSetForeignRate(0.0)
    loss = loss_by_sequence(r.sent, r.delivered)
    assert (loss.delivered, loss.lost, loss.duplicates, loss.unexpected) == (2000, 0, 0, 0)
    assert r.telemetry["foreign_events"] > 0 and r.telemetry["foreign_filter_ids"] == [0xF00D]
    assert elapsed < 5, f"the drain waited {elapsed:.1f} s for foreign events to stop"



# Another tool may have left FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW set (it persists across
# reboots; the harness leaves the keywords as found): then every permitted ALE authorization is an
# allow event, and a transport-layer trial's packets each make two events in the same queue.
@pytest.mark.root
@pytest.mark.realtime
def test_allow_events_left_on_by_another_tool_are_counted_and_flagged(fake):
    from harness.interference import flags
    path, dll = fake
    keywords = K["FWPM_ENGINE_NET_EVENT_MATCH_ANY_KEYWORDS"]
    # a buffer that holds the big trial's 24,000 events: what is checked is that every one has a row,
    # not how fast the fake's threads serve them on the one core this process keeps beside the sender's
    dll.FakeConfigure(256, 30_000, 100)
    with open_wfp(path) as p:
        admin = Session(Library(path), dynamic=False, name="another tool")  # in the trial's namespace
        admin.set_option(keywords, K["FWPM_NET_EVENT_KEYWORD_CLASSIFY_ALLOW"])
        try:
            blocked_at_connect = p.run_trial(spec(300))
            at_transport = p.run_trial(spec(300, "OUTBOUND_TRANSPORT_V4"))
            # twice as many events as packets: rows for both (they were N + N/4 + 4096: the trial's
            # own drops past them went unserved and were counted lost)
            big = p.run_trial(TrialSpec(TrafficSpec(count=12_000, pacing="constant", rate_per_s=40_000),
                                        SubscriberSpec(), filter=FilterSpec(layer="OUTBOUND_TRANSPORT_V4"),
                                        drain_quiet_s=0.3, drain_timeout_s=10.0))
        finally:
            admin.set_option(keywords, 0)
            admin.close()
    for r in (blocked_at_connect, at_transport):
        assert sorted(r.delivered["seq"]) == list(range(300))  # the trial's own events, all of them
    # blocked at ALE connect, nothing was authorized; blocked later, ALE permitted every new flow first
    assert blocked_at_connect.telemetry["row_columns"]["intf_shared_events"] == 0
    columns = at_transport.telemetry["row_columns"]
    # one allow per packet (each its own flow) while the trial's own came; the canary's, after them, is not counted
    assert at_transport.telemetry["other_event_types"] == 301 and columns["intf_shared_events"] == 300
    assert columns["intf_shared_share"] == 1.0
    assert any(f.startswith("300 events not the trial's own") for f in flags(columns))
    assert not flags(blocked_at_connect.telemetry["row_columns"])
    assert loss_by_sequence(big.sent, big.delivered).delivered == 12_000 and big.telemetry["not_recorded"] == 0


# Windows refuses a listener in an excluded port range (Hyper-V, WSL2, Docker reserve ranges in
# 20000-60000 on many machines) with WSAEACCES; an inbound layer never classifies a datagram to
# such a port, so its packets were counted lost, and the bind error ended the trial.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("first", [20010, 20000])  # in the middle; at the head, where a wrapped store's tail starts
def test_destinations_where_no_receiver_may_listen_are_not_expected(fake, monkeypatch, first):
    import harness.platforms.wfp.platform as wfp_platform
    from platforms import ExcludedPortSockets
    excluded = tuple(range(first, first + 10))
    monkeypatch.setattr(wfp_platform, "LoopbackSockets", lambda library: ExcludedPortSockets(library, excluded))
    path, _ = fake
    with open_wfp(path) as p:
        r = p.run_trial(spec(300, "INBOUND_TRANSPORT_V4"))
        probe = p.probe("INBOUND_TRANSPORT_V4", "udp", count=50)  # and its repeat, from the same receivers
    assert r.generator["receivers_refused"] == 10 and "refused_receivers" not in r.generator
    loss = loss_by_sequence(r.sent, r.delivered)
    assert (loss.expected, loss.delivered, loss.lost) == (290, 290, 0)  # no listener there: no event, no loss
    assert not set(r.delivered["seq"]) & {port - 20000 for port in excluded}
    # the store saw what the filter saw: nothing of the refused, all of the rest
    assert (r.telemetry["recorded_packets"], r.telemetry["loss_at"]) == (290, "none")
    assert (probe.events, probe.events_on_repeat) == (40, 40), probe


# Review of issue 7: the harness's filter blocks its port range for every process, so another
# program's packets to those ports were events of the harness's filter, read as sequence numbers.
@pytest.mark.root
@pytest.mark.realtime
def test_another_programs_packets_on_the_harness_filter_are_counted_apart(fake):
    path, _ = fake
    with open_wfp(path) as p:
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # inside the test's namespace

        def send_with_company():
            sent = p._send(spec(500))
            for port in range(20_000, 20_040):  # the trial's own first 40 destinations
                stranger.sendto(b"not the harness", ("127.0.0.1", port))
            return sent

        r = p._trial(spec(500), send_with_company)
        stranger.close()
    loss = loss_by_sequence(r.sent, r.delivered)
    assert (loss.delivered, loss.lost, loss.duplicates) == (500, 0, 0)
    assert r.telemetry["stranger_events"] == 40

# 4. A failing trial left GC off, the switch interval changed and the copy worker running.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("failure", ["subscribe", "send", "interrupt", "unsubscribe"])
def test_a_failing_trial_leaves_the_process_as_it_was(fake, monkeypatch, failure):
    path, dll = fake
    interval, collecting = sys.getswitchinterval(), gc.isenabled()
    expected = {"subscribe": WfpError, "send": OSError, "interrupt": KeyboardInterrupt, "unsubscribe": WfpError}
    with open_wfp(path) as p:
        if failure == "subscribe":
            dll.FakeFailNext(b"FwpmNetEventSubscribe", 0x80320012)
        elif failure == "unsubscribe":
            dll.FakeFailNext(b"FwpmNetEventUnsubscribe0", 0x80320012)
        else:
            def broken(*args, **kwargs):
                raise OSError(10055, "No buffer space") if failure == "send" else KeyboardInterrupt()
            monkeypatch.setattr(p.sender, "send", broken)
        with pytest.raises(expected[failure]):
            p.run_trial(spec(500, mode="copy", cost_us=50))
        assert (gc.isenabled(), sys.getswitchinterval()) == (collecting, interval)
        assert not [t for t in threading.enumerate() if t.name == "wfpcap-copy-worker"]
        if failure != "unsubscribe":
            assert object_counts(dll)[3] == 0  # no subscription left behind
        monkeypatch.undo()
        again = p.run_trial(spec(200))  # and the platform still measures
        assert again.delivered_count == 200


# 6. Every trial reused one socket: a classify cache of blocked tuples decided the next trial.
@pytest.mark.root
@pytest.mark.realtime
def test_a_classify_cache_cannot_decide_a_later_trial(fake):
    path, dll = fake
    dll.FakeConfigureDelivery(1, 0, 0)  # an ALE layer that does not classify a blocked tuple again
    with open_wfp(path) as p:
        first, second = p.run_trial(spec(500)), p.run_trial(spec(500))
    assert (first.delivered_count, second.delivered_count) == (500, 500)
    assert first.generator["local_port"] != second.generator["local_port"]


# 7. The app-id condition named sys.executable: in a venv, not the image that sends.
@pytest.mark.skipif(os.path.realpath(sys.executable) == sys.executable,
                    reason="sys.executable is the interpreter image itself here (not a venv link)")
@pytest.mark.root
@pytest.mark.realtime
def test_the_app_id_condition_matches_the_process_that_sends(fake):
    path, _ = fake
    with open_wfp(path) as p:
        r = p.run_trial(TrialSpec(TrafficSpec(count=300), filter=FilterSpec(match_own_process=True),
                                  drain_quiet_s=0.3))
    assert r.delivered_count == 300


# 8. A run killed on Windows runs no handler: the options it changed must be restored by the next start.
KILLED = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, "tests")
    from harness.platforms.wfp.platform import WfpPlatform
    p = WfpPlatform(sys.argv[1])
    print("open", flush=True)
    time.sleep(60)
""")
NEXT = textwrap.dedent("""
    import ctypes, json, sys
    from harness.platforms.wfp.platform import WfpPlatform
    with WfpPlatform(sys.argv[1]) as p:
        during = ctypes.CDLL(sys.argv[1]).FakeOption(0)
        restored = p.measured().get("restored_options")
    print(json.dumps({"during": during, "after": ctypes.CDLL(sys.argv[1]).FakeOption(0), "restored": restored}))
""")


@pytest.mark.root
@pytest.mark.subprocess
def test_a_killed_run_leaves_its_options_to_the_next_start(fake, tmp_path):
    path, _ = fake
    env = {**os.environ, "WFPCAP_FAKE_OPTIONS_FILE": str(tmp_path / "bfe-options"),
           "WFPCAP_STATE_DIR": str(tmp_path / "state")}
    (tmp_path / "bfe-options").write_text("0\n0\n0\n0\n0\n0\n")  # a machine with net-event collection off
    killed = subprocess.Popen(in_fresh_netns([sys.executable, "-c", KILLED, path]), stdout=subprocess.PIPE, text=True,
                              env=env, cwd=ROOT)
    assert killed.stdout.readline().strip() == "open"
    assert (tmp_path / "bfe-options").read_text().split()[0] == "1"  # turned on by the run...
    killed.kill()  # ...which is killed: no handler, no atexit (TerminateProcess on Windows)
    killed.wait()
    out = subprocess.run(in_fresh_netns([sys.executable, "-c", NEXT, path]), capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout)
    restored = seen["restored"]["collect_net_events"]
    assert (restored["left_by_run"], restored["restored_to"]) == (1, 0)
    assert restored["run"].startswith("pid ") and restored["run"].endswith(" has exited")  # how it was told dead
    assert (seen["during"], seen["after"]) == (1, 0)  # measured with collection on, then put back as found


# 9. The FILETIME offset came from time.time_ns(), 15.6 ms coarse on Windows with Python 3.11/3.12.
@pytest.mark.root
@pytest.mark.realtime
def test_event_times_do_not_inherit_a_coarse_clock(fake, monkeypatch):
    path, _ = fake
    with open_wfp(path) as p:
        real = time.time_ns
        monkeypatch.setattr(time, "time_ns", lambda: real() // 15_625_000 * 15_625_000 - 15_000_000)
        r = p.run_trial(TrialSpec(TrafficSpec(count=300, pacing="constant", rate_per_s=2000), drain_quiet_s=0.3))
    sent = r.sent.set_index("seq")["t_send_ns"]
    lag_us = (r.delivered["t_event_ns"].to_numpy() - sent.loc[r.delivered["seq"]].to_numpy()) / 1e3
    assert abs(np.median(lag_us)) < 1000, np.median(lag_us)  # classified as it was sent, not 15 ms off


# 10. Real Windows reports FWP_DIRECTION_OUTBOUND/INBOUND (0/1) as well as the MS_FWP values.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("layer,direction", [("ALE_AUTH_CONNECT_V4", "out"), ("INBOUND_TRANSPORT_V4", "in")])
def test_both_direction_conventions_are_read(fake, layer, direction):
    path, dll = fake
    dll.FakeConfigureDelivery(1, 1, 1)
    with open_wfp(path) as p:
        r = p.run_trial(spec(100, layer))
    assert r.telemetry["directions"] == {direction: 100}


# 11. The handle was cleared before FwpmNetEventUnsubscribe0: on failure the callback could be freed
# while the subscription still delivered into it.
FAILED_UNSUBSCRIBE = textwrap.dedent("""
    import ctypes, gc, sys
    sys.path.insert(0, "tests")
    from harness.platforms.wfp.api import WfpError
    from harness.platforms.wfp.platform import WfpPlatform
    from harness.spec import TrafficSpec, TrialSpec
    from platforms import fake_controls
    spec = TrialSpec(TrafficSpec(count=2000), drain_quiet_s=0.3)
    with WfpPlatform(sys.argv[1]) as p:
        fake_controls(sys.argv[1]).FakeFailNext(b"FwpmNetEventUnsubscribe0", 0x80320012)
        try:
            p.run_trial(spec)
        except WfpError as exc:
            print("failed:", exc.name, flush=True)
        print("leaked", p.observed().leaked_subscriptions, flush=True)
        gc.collect()
        for _ in range(3):  # unsubscribing the first is retried before the next trial
            print("delivered", p.run_trial(spec).delivered_count, "leaked", p.observed().leaked_subscriptions,
                  flush=True)
        fake_controls(sys.argv[1]).FakeFailNext(b"FwpmNetEventUnsubscribe0", 0x80320012)
        try:
            p.run_trial(spec)
        except WfpError as exc:
            print("failed again:", exc.name, "leaked", p.observed().leaked_subscriptions, flush=True)
    from harness.platforms.wfp import api
    gc.collect()  # the session closed with it still subscribed: its callback stays for good
    print("closed; kept", len(api.UNTIL_UNSUBSCRIBED), len(api.ORPHANED), flush=True)
""")


@pytest.mark.root
@pytest.mark.subprocess
def test_a_failed_unsubscribe_keeps_the_callback_alive(fake):
    path, _ = fake
    out = subprocess.run(in_fresh_netns([sys.executable, "-c", FAILED_UNSUBSCRIBE, path]), capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr[-2000:])
    assert out.stdout.split("\n")[:7] == ["failed: FWP_E_TIMEOUT", "leaked 1", "delivered 2000 leaked 0",
                                          "delivered 2000 leaked 0", "delivered 2000 leaked 0",
                                          "failed again: FWP_E_TIMEOUT leaked 1", "closed; kept 0 1"]


# The sender runs in a process of its own on Windows too (it competed with the callbacks for the GIL).
@pytest.mark.root
@pytest.mark.realtime
def test_the_sender_is_a_process_of_its_own(fake):
    path, _ = fake
    with open_wfp(path) as p:
        r = p.run_trial(spec(100))
    assert r.generator["sender_pid"] not in (os.getpid(), None)
    assert r.delivered_count == 100
    if importlib.util.find_spec("numba"):  # the Windows send loop, through the fake's ws2_32
        assert r.generator["sender_path"] == "native" and r.generator["sender_binding"] == "ws2_32 sendto"


def test_the_state_file_is_machine_wide_and_a_live_run_is_left_alone(fake, tmp_path):
    assert state_dir({"ProgramData": "C:\\ProgramData"}, "win32") == Path("C:\\ProgramData") / "wfpcap"
    assert state_dir({"WFPCAP_STATE_DIR": str(tmp_path)}, "win32") == tmp_path
    path, _ = fake
    lib = Library(path)
    collecting = Session(lib, dynamic=False, name="off")
    collecting.set_option(COLLECT, 0)
    running = EngineOptions(lib)       # a run that is alive and has changed the option
    running.ensure(COLLECT, 1)
    assert (state_dir() / STATE_FILE).exists()
    with pytest.raises(PlatformUnavailable, match=f"another wfpcap run \\(pid {os.getpid()}\\) holds"):
        EngineOptions(lib)
    running.close()                    # restores, and the state file goes with it
    assert collecting.get_option(COLLECT) == 0 and not (state_dir() / STATE_FILE).exists()
    collecting.set_option(COLLECT, 1)
    collecting.close()


# Where Windows is undocumented the fake goes both ways; the harness must be right under each.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("threads,concurrent", [(1, 0), (3, 0), (3, 1)])
def test_a_held_burst_is_measured_alike_on_one_or_several_delivery_threads(fake, threads, concurrent):
    path, dll = fake
    dll.FakeConfigure(64, 1000, 100)
    dll.FakeConfigureDelivery(threads, 1, 0)
    dll.FakeSetConcurrentDelivery(concurrent)
    # paced at the rate the Python sender's bursts reached here: a native burst (~250k/s) outruns two
    # 5 us callbacks on the one core this process keeps beside the sender's, and the buffer fills
    # whatever the delivery threads do; this test is about the threads, not the generator
    traffic = TrafficSpec(count=3000, pacing="constant", rate_per_s=40_000)
    # With concurrent delivery two threads drain 3,000 events during the send; a neighbour that
    # starves them overflows the buffer (a real loss, as Windows would have it), so that case
    # gets three tries: a defect loses every time, a busy machine not.
    for attempt in range(3 if concurrent else 1):
        with open_wfp(path) as p:
            r = p.run_trial(TrialSpec(traffic, SubscriberSpec(cost_us=5, hold=True), drain_quiet_s=0.3))
            seen = p.observed()
        loss = loss_by_sequence(r.sent, r.delivered)
        if loss.lost == 0:
            break
    first_batch = int((r.delivered["t_callback_ns"] <= r.t_release_ns + 1).sum())  # formed before the hold
    assert loss.lost_head == loss.lost_middle == 0 and loss.duplicates == 0
    if concurrent:  # the other pool threads went on: the hold bounded nothing
        assert loss.delivered == 3000
    else:  # the held batch is out of the queue; behind it the queue and the buffer
        assert 64 + 1000 < loss.delivered <= 64 + 64 + 1000
    assert loss.delivered + loss.lost == 3000
    in_order = r.delivered.sort_values("t_callback_ns")["seq"].to_numpy()
    assert concurrent or np.all(np.diff(in_order) > 0)  # FIFO when one callback runs at a time
    assert r.telemetry["callback_threads"] == threads and seen.callback_threads_max == threads
    # the held first callback had not returned when the other threads began theirs: seen and said
    assert (r.telemetry["concurrent_callbacks"] > 0) == bool(concurrent), r.telemetry["concurrent_callbacks"]
    assert (seen.concurrent_callbacks_max > 0) == bool(concurrent)
    assert r.telemetry["events_per_tuple_max"] == 1 and first_batch >= 1


@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("reclassify", [1, 0])
def test_the_probe_reports_whether_a_blocked_tuple_is_classified_again(fake, reclassify):
    path, dll = fake
    dll.FakeConfigureDelivery(1, reclassify, 0)
    with open_wfp(path) as p:
        connect = p.probe("ALE_AUTH_CONNECT_V4", "udp")
        transport = p.probe("OUTBOUND_TRANSPORT_V4", "udp")
    assert (connect.events, connect.events_on_repeat) == (50, 50 if reclassify else 0)
    assert (transport.events, transport.events_on_repeat) == (50, 50)  # per packet, always


# Review of issue 7: a user without administrator rights on a machine where net-event collection
# is off got a raw WfpError (the cleanup's own access-denied masked the first) and a state file.
@pytest.mark.root
@pytest.mark.realtime
def test_a_plain_user_on_a_machine_with_collection_off_is_told_to_elevate(fake):
    path, dll = fake
    collecting = Session(Library(path), dynamic=False, name="off")
    collecting.set_option(COLLECT, 0)
    collecting.close()
    dll.FakeSetElevated(0)
    with pytest.raises(PlatformUnavailable, match="need an elevated process"):
        with open_wfp(path):
            pass
    assert not (state_dir() / STATE_FILE).exists()  # nothing was changed: nothing to restore later
    assert dll.FakeOption(COLLECT) == 0
    dll.FakeSetElevated(1)


def test_an_option_changed_by_someone_else_during_the_run_is_left_as_they_set_it(fake):
    path, _ = fake
    lib = Library(path)
    admin = Session(lib, dynamic=False, name="someone else")
    admin.set_option(COLLECT, 0)
    options = EngineOptions(lib)
    options.ensure(COLLECT, 1)
    admin.set_option(COLLECT, 7)  # an administrator's tool changes it while the run measures
    options.close()
    assert admin.get_option(COLLECT) == 7 and not (state_dir() / STATE_FILE).exists()
    assert options.left_alone == {"collect_net_events": {"set_by_run": 1, "found_now": 7}}
    admin.set_option(COLLECT, 1)
    admin.close()


# Review of issue 7: how fine Windows stamps net events is undocumented; the fake stamped to the
# 100 ns and nothing said what a real machine does. Each trial now reports the clock's step.
@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("step_100ns", [1, 10_000])  # FILETIME's own 100 ns; a 1 ms tick
def test_each_trial_reports_the_step_of_the_event_clock(fake, step_100ns):
    path, dll = fake
    dll.FakeSetClockStep(step_100ns)
    with open_wfp(path) as p:
        r = p.run_trial(TrialSpec(TrafficSpec(count=2000, rate_per_s=20_000), drain_quiet_s=0.3))
        seen = p.observed()
    step = r.telemetry["event_clock_step_ns"]
    assert step % (100 * step_100ns) == 0 and seen.event_clock_step_ns == step
    assert step <= (100_000 if step_100ns == 1 else 2_000_000)  # 2,000 events over 0.1 s: steps are seen


def test_concurrent_callbacks_counts_only_overlap_across_threads():
    from harness.platforms.wfp.platform import concurrent_callbacks
    start = np.array([0, 10, 20, 30]); done = start + 5
    assert concurrent_callbacks(start, done, np.array([1, 2, 1, 2])) == 0      # taking turns
    assert concurrent_callbacks(start, done + 10, np.array([1, 1, 1, 1])) == 0  # one thread cannot overlap itself
    assert concurrent_callbacks(start, np.array([100, 15, 25, 35]), np.array([1, 2, 2, 2])) == 3  # held on thread 1
    assert concurrent_callbacks(np.array([0]), np.array([5]), np.array([1])) == 0
