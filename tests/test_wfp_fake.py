"""The whole wfp backend on Linux, against the fake fwpuclnt built from tests/fake_fwpuclnt: the
API calls with injected packets, the platform with real ones in a test namespace."""
import ctypes
import ipaddress
import os
import sys
import threading
import time

import pytest

from harness.experiments.burst import BurstConfig, search_burst_capacity
from harness.experiments.drain import measure_drain
from harness.platforms.wfp.api import Library, WfpError
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.engine import Conditions, FilterSession, Session
from harness.platforms.wfp.event_rows import MINE
from harness.platforms.wfp.subscription import Subscription
from harness.results.fingerprint import fingerprint
from harness.results.store import ResultStore
from harness.spec import Condition, FilterSpec, SubscriberSpec, TemplateSpec, TrafficSpec, TrialSpec
from under_load import assert_recovered_or_withheld
from platforms import fake_controls, fake_wfp_library, open_wfp, reset_fake

COLLECT = K["FWPM_ENGINE_COLLECT_NET_EVENTS"]
IMAGE = os.path.realpath(sys.executable)  # what injected packets come from


def set_collect(path, value):
    s = Session(Library(path), dynamic=False, name="test")
    s.set_option(COLLECT, value)
    s.close()


@pytest.mark.root
@pytest.mark.realtime
def test_options_read_changed_only_when_needed_and_restored(fake):
    path, dll = fake
    set_collect(path, 0)  # a machine where someone turned net events off
    with open_wfp(path) as p:
        assert p.describe()["net_event_options"]["collect_net_events"] == 0  # as found
        assert dll.FakeOption(COLLECT) == 1  # on while the harness runs
    assert dll.FakeOption(COLLECT) == 0  # and put back
    set_collect(path, 1)
    with open_wfp(path):
        pass
    assert dll.FakeOption(COLLECT) == 1


@pytest.mark.root
@pytest.mark.realtime
def test_options_are_restored_when_a_trial_raises(fake):
    path, dll = fake
    set_collect(path, 0)
    with pytest.raises(ValueError, match="refusing to send to 10.1.2.3"):
        with open_wfp(path) as p:
            p.run_trial(TrialSpec(TrafficSpec(count=10, remote_addresses=("10.1.2.3",)),
                                  filter=FilterSpec(remote_prefix="10.0.0.0/8")))
    assert dll.FakeOption(COLLECT) == 0
    set_collect(path, 1)


def test_option_rules_of_the_api(fake):
    path, _ = fake
    lib = Library(path)
    dynamic = Session(lib, dynamic=True, name="d")
    with pytest.raises(WfpError) as err:
        dynamic.set_option(COLLECT, 1)
    assert err.value.name == "FWP_E_DYNAMIC_SESSION_IN_PROGRESS"
    dynamic.close()
    plain = Session(lib, dynamic=False, name="p")
    lib.call("FwpmTransactionBegin0", plain.handle, 0)
    with pytest.raises(WfpError, match="FWP_E_TXN_IN_PROGRESS"):
        plain.set_option(COLLECT, 1)
    lib.call("FwpmTransactionAbort0", plain.handle)
    plain.close()


def test_dynamic_session_takes_its_filter_along(fake):
    path, dll = fake
    lib = Library(path)
    fs = FilterSession(lib)
    fs.install(FilterSpec(layer="ALE_AUTH_CONNECT_V4", match_own_process=True), IMAGE)
    counts = [ctypes.c_int() for _ in range(4)]
    dll.FakeObjectCounts(*[ctypes.byref(c) for c in counts])
    assert (counts[1].value, counts[2].value) == (1, 1)
    assert dll.FakeInjectUdp(0x7F000001, 20001, 40000) == 1   # blocked
    assert dll.FakeInjectUdp(0x7F000001, 19999, 40000) == 0   # outside the port range
    fs.close()  # the fixture checks that nothing is left


@pytest.mark.parametrize("max_subscribe", [4, 2, 0])
def test_injected_drops_decode_exactly(fake, max_subscribe):
    path = fake_wfp_library(max_subscribe)
    dll = fake_controls(path)
    reset_fake(dll)
    lib = Library(path)
    assert lib.subscribe_version == max_subscribe
    fs = FilterSession(lib)
    filter_id = fs.install(FilterSpec(remote_prefix="127.0.0.0/8"))
    got = []
    sub = Subscription(lib, fs.session, None, False, filter_id, got.append)
    before = time.time_ns()
    for k, address in enumerate(("127.0.0.1", "127.0.0.9", "127.1.2.3")):
        dll.FakeInjectUdp(int(ipaddress.IPv4Address(address)), 20000 + 7 * k, 40000)
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    after = time.time_ns()
    sub.close()
    fs.close()
    d = sub.decoded()  # the raw rows the callback copied, decoded in bulk
    assert got == [0, 1, 2] and d.kind.tolist() == [MINE] * 3
    assert d.port.tolist() == [20000, 20007, 20014]
    assert [str(ipaddress.IPv4Address(a)) for a in d.remote_v4.tolist()] == ["127.0.0.1", "127.0.0.9", "127.1.2.3"]
    assert all(before - 1_000 <= t <= after for t in d.unix_ns.tolist())    # FILETIME decoded to the right instant
    assert set(d.layer_id.tolist()) == {K["FWPS_LAYER_ALE_AUTH_CONNECT_V4"]}
    assert set(d.filter_id.tolist()) == {filter_id}
    assert set(zip(d.loopback.tolist(), d.direction.tolist())) == {(1, 0x3901)}  # loopback, outbound (msFwpDirection)


@pytest.mark.root
@pytest.mark.realtime
def test_template_reduces_and_duplicates_are_refused_before_the_call(fake):
    path, dll = fake
    with open_wfp(path) as p:
        spec = TrialSpec(TrafficSpec(count=400, remote_addresses=("127.0.0.1", "127.0.0.2")), SubscriberSpec(),
                         template=TemplateSpec((Condition("remote_address", "127.0.0.2"),
                                                Condition("net_event_type", 3),
                                                Condition("remote_port", 20000, 20199))),
                         drain_quiet_s=0.2)
        r = p.run_trial(spec)
        assert sorted(r.delivered["seq"]) == list(range(1, 200, 2))
        calls = dll.FakeSubscribeCalls()
        with pytest.raises(ValueError, match="duplicate condition FWPM_CONDITION_IP_REMOTE_PORT"):
            c = Conditions()
            c.port_range("FWPM_CONDITION_IP_REMOTE_PORT", 1, 2)
            c.port_range("FWPM_CONDITION_IP_REMOTE_PORT", 5, 9)
            c.array()
        assert dll.FakeSubscribeCalls() == calls
    # and the library itself refuses one, as WFP does, when the check is bypassed
    lib = Library(path)
    s = Session(lib, dynamic=True, name="raw")
    from harness.platforms.wfp import abi
    arr = (abi.FWPM_FILTER_CONDITION0 * 2)()
    for i in range(2):
        arr[i].fieldKey = abi.GUID.from_text("206e9996-490e-40cf-b831-b38641eb6fcb")
        arr[i].conditionValue.type = K["FWP_UINT32"]
    tmpl = abi.FWPM_NET_EVENT_ENUM_TEMPLATE0(numFilterConditions=2)
    tmpl.filterCondition = ctypes.cast(arr, ctypes.POINTER(abi.FWPM_FILTER_CONDITION0))
    sub = abi.FWPM_NET_EVENT_SUBSCRIPTION0(enumTemplate=ctypes.pointer(tmpl))
    from harness.platforms.wfp.api import HANDLE, callback_type
    cb = callback_type(lib.subscribe_version)(lambda c, e: None)
    h = HANDLE()
    rc = lib.subscribe_fn(s.handle, ctypes.byref(sub), cb, None, ctypes.byref(h))
    assert WfpError("FwpmNetEventSubscribe4", rc).name == "FWP_E_DUPLICATE_CONDITION"
    s.close()


def blocking_filter(path):
    lib = Library(path)
    fs = FilterSession(lib)
    return lib, fs, fs.install(FilterSpec())


def test_unsubscribe_while_held_returns_only_after_release(fake):
    path, dll = fake
    lib, fs, fid = blocking_filter(path)
    release, entered = threading.Event(), threading.Event()

    def held(*args):
        entered.set()
        release.wait()

    sub = Subscription(lib, fs.session, None, False, fid, held)
    dll.FakeInjectUdp(0x7F000001, 20000, 40000)
    assert entered.wait(5)
    done = threading.Event()
    closer = threading.Thread(target=lambda: (sub.close(), done.set()))
    closer.start()
    assert not done.wait(0.3)       # Unsubscribe waits for the running callback...
    release.set()
    assert done.wait(5)             # ...and returns once it has, without a deadlock
    closer.join()
    fs.close()


def test_unsubscribe_from_the_callback_is_refused(fake):
    path, dll = fake
    lib, fs, fid = blocking_filter(path)
    errors = []

    def on_drop(*args):
        try:
            sub.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    sub = Subscription(lib, fs.session, None, False, fid, on_drop)
    dll.FakeInjectUdp(0x7F000001, 20000, 40000)
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert errors and "never call it from there" in errors[0]
    sub.close()
    fs.close()


def test_a_thread_that_reuses_a_retired_delivery_threads_id_may_unsubscribe(fake):
    """Refusing Unsubscribe on delivery threads must not refuse a thread that only got the id of
    one that ended (glibc gives a new thread the last one's stack, so its id)."""
    path, dll = fake
    dll.FakeSetFreshThreads(1)  # the batch's thread ends after it
    lib, fs, fid = blocking_filter(path)
    delivered_on = []
    sub = Subscription(lib, fs.session, None, False, fid, lambda row: delivered_on.append(threading.get_ident()))
    dll.FakeInjectUdp(0x7F000001, 20000, 40000)
    deadline = time.monotonic() + 5
    while dll.FakeDelivered(sub.events) < 1 and time.monotonic() < deadline:  # the batch's thread has ended
        time.sleep(0.01)
    outcome = []

    def close() -> None:
        try:
            sub.close()
            outcome.append(("closed", threading.get_ident()))
        except RuntimeError as exc:
            outcome.append((str(exc), threading.get_ident()))

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(5)
    fs.close()
    assert outcome, "close() did not return"
    if outcome[0][1] != delivered_on[0]:
        pytest.skip("the closer got a new thread id (not glibc?): the defect cannot show here")
    assert outcome[0][0] == "closed"


@pytest.mark.root
@pytest.mark.realtime
def test_census_sees_other_subscribers(fake):
    path, dll = fake
    dll.FakeSetForeignSubscriptions(2)
    with open_wfp(path) as p:
        assert p.measured()["existing_subscriptions"] == 2
    dll.FakeSetForeignSubscriptions(0)


@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("queue_limit,system_buffer", [(128, 3000), (256, 6000)])
def test_burst_experiment_recovers_the_fake_dispatcher(fake, tmp_path, queue_limit, system_buffer):
    path, dll = fake
    dll.FakeConfigure(queue_limit, system_buffer, 300)
    with open_wfp(path) as p:
        store = ResultStore(tmp_path, fingerprint(p.describe()), p.name)
        base = TrialSpec(TrafficSpec(count=1), SubscriberSpec(cost_us=5.0), drain_quiet_s=0.3)
        burst = search_burst_capacity(p, base, store, BurstConfig(start=512, sweep=()))
        drain = measure_drain(p, base, store, int(burst.capacity.value * 1.25) + 1, burst.capacity)
    assert_recovered_or_withheld(drain.queue_limit, queue_limit, store)
    assert_recovered_or_withheld(drain.buffer_depth, system_buffer, store)


@pytest.mark.root
@pytest.mark.realtime
@pytest.mark.parametrize("latency_us,first_batch", [(0, 1), (1_000_000, 64)])
def test_an_idle_dispatchers_first_batch_is_what_arrives_within_its_latency(fake, latency_us, first_batch):
    path, dll = fake
    dll.FakeConfigure(64, 1000, 100)
    dll.FakeSetDispatchLatency(latency_us)  # by the packets' times, whenever the capture hands them over
    with open_wfp(path) as p:
        r = p.run_trial(TrialSpec(TrafficSpec(count=3000), SubscriberSpec(hold=True), drain_quiet_s=0.3))
    assert r.delivered_count == first_batch + 64 + 1000
