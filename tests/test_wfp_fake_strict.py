"""The fake fwpuclnt is held to Windows' behaviour, not to the harness's convenience: it classifies
real packets, makes no inbound event without a listener, makes foreign drops, refuses what Windows
refuses and hangs where Windows hangs. These tests use the API directly, with plain sockets."""
import ctypes
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.platforms.wfp import abi
from harness.platforms.wfp.api import HANDLE, Library, WfpError, callback_type
from harness.platforms.wfp.constants import CONSTANTS as K
from harness.platforms.wfp.constants import GUIDS
from harness.platforms.wfp.engine import Conditions, FilterSession, Session
from harness.spec import FilterSpec
from netns import NetNamespace
from platforms import capture_stats, object_counts
from tiers import needs

ROOT = Path(__file__).resolve().parents[1]
INBOUND = ("INBOUND_TRANSPORT_V4", "ALE_AUTH_RECV_ACCEPT_V4")
FOREIGN_FILTER = 0xF00D


class Events:
    """A raw subscription that keeps (thread, event fields) of every CLASSIFY_DROP."""

    def __init__(self, lib, session, template=None, on_event=None):
        self.got, self.lib, self.session = [], lib, session
        self.on_event = on_event
        self._cb = callback_type(lib.subscribe_version)(self._event)
        sub = abi.FWPM_NET_EVENT_SUBSCRIPTION0(enumTemplate=template)
        self.handle = HANDLE()
        rc = lib.subscribe_fn(session.handle, ctypes.byref(sub), self._cb, None, ctypes.byref(self.handle))
        if rc:
            raise WfpError("FwpmNetEventSubscribe", rc)

    def _event(self, context, event):
        e = event.contents
        h, d = e.header, e.classifyDrop.contents
        self.got.append((threading.get_ident(), d.filterId, d.layerId, h.localAddrV4, h.remoteAddrV4, h.localPort,
                         h.remotePort, d.msFwpDirection, bytes(h.appId.data[:h.appId.size]) if h.appId.size else b""))
        if self.on_event:
            self.on_event()

    def wait(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # and nothing more arrives
        return self.got

    def close(self):
        self.lib.call("FwpmNetEventUnsubscribe0", self.session.handle, self.handle)


def send(sock, ports, address="127.0.0.1"):
    for p in ports:
        sock.sendto(b"12345678", (address, p))


@pytest.fixture()
@needs("root")
def ns():
    namespace = NetNamespace()
    yield namespace
    namespace.close()


def udp(ns, port=0, address="127.0.0.1"):
    with ns:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, port))
    return s


def filters(path, ns, spec):
    with ns:  # the first session opens the capture in this namespace
        lib = Library(path)
        fs = FilterSession(lib)
    return lib, fs, fs.install(spec)


@pytest.mark.parametrize("layer", ["ALE_AUTH_CONNECT_V4", "OUTBOUND_TRANSPORT_V4", *INBOUND])
def test_real_packets_are_classified_and_inbound_needs_a_listener(fake, ns, layer):
    path, dll = fake
    lib, fs, fid = filters(path, ns, FilterSpec(layer=layer))
    events = Events(lib, fs.session)
    sender = udp(ns)
    sport = sender.getsockname()[1]
    send(sender, range(20000, 20050))
    if layer in INBOUND:
        assert events.wait(50, timeout=0.5) == []  # no listener: the discard path, no inbound layer
        listeners = [udp(ns, port, "0.0.0.0") for port in range(20000, 20050)]
        send(sender, range(20000, 20050))
    got = events.wait(50)
    events.close()
    fs.close()
    if layer in INBOUND:
        for s in listeners:
            s.close()
    sender.close()
    assert len(got) == 50 and {g[1] for g in got} == {fid}
    assert {g[2] for g in got} == {K[f"FWPS_LAYER_{layer}"]}
    local_port, remote_port = (5, 6) if layer not in INBOUND else (6, 5)
    assert [g[remote_port] for g in got] == list(range(20000, 20050))  # the destination, in order
    assert {g[local_port] for g in got} == {sport}
    assert {g[7] for g in got} == {0x3900 if layer in INBOUND else 0x3901}
    state, packets, drops = capture_stats(dll)
    assert state == 1 and packets >= 100 and drops == 0


def test_a_packet_dropped_on_the_way_out_never_arrives(fake, ns):
    path, dll = fake
    lib, fs, out_id = filters(path, ns, FilterSpec(layer="ALE_AUTH_CONNECT_V4"))
    with ns:
        inbound = FilterSession(lib)
    in_id = inbound.install(FilterSpec(layer="INBOUND_TRANSPORT_V4"))
    events = Events(lib, fs.session)
    listeners = [udp(ns, port, "0.0.0.0") for port in range(20000, 20010)]
    sender = udp(ns)
    send(sender, range(20000, 20010))
    got = events.wait(20, timeout=1.0)
    events.close()
    inbound.close()
    fs.close()
    for s in listeners + [sender]:
        s.close()
    assert [g[1] for g in got] == [out_id] * 10 and in_id not in {g[1] for g in got}


def test_the_machines_own_traffic_is_never_captured(fake):
    path, dll = fake
    s = Session(Library(path), dynamic=True, name="host")  # opened outside any test namespace
    state, _, _ = capture_stats(dll)
    s.close()
    assert state == -1


def test_foreign_drops_arrive_interleaved_with_ours(fake, ns):
    path, dll = fake
    lib, fs, fid = filters(path, ns, FilterSpec())
    dll.FakeSetForeignRate(400.0)
    events = Events(lib, fs.session)
    sender = udp(ns)
    for _ in range(10):
        send(sender, range(20000, 20010))
        time.sleep(0.03)
    got = events.wait(10_000, timeout=0.5)
    dll.FakeSetForeignRate(0.0)
    events.close()
    fs.close()
    sender.close()
    by_filter = [g[1] for g in got]
    assert by_filter.count(fid) == 100 and by_filter.count(FOREIGN_FILTER) >= 40
    first_foreign, last_foreign = by_filter.index(FOREIGN_FILTER), len(by_filter) - 1 - by_filter[::-1].index(FOREIGN_FILTER)
    assert fid in by_filter[first_foreign:last_foreign]  # interleaved, not before or after ours
    assert any(20000 <= g[6] <= 60000 for g in got if g[1] == FOREIGN_FILTER)  # on ports the harness uses too


def test_a_caller_without_administrator_rights_is_refused(fake):
    path, dll = fake
    dll.FakeSetElevated(0)
    lib = Library(path)
    plain = Session(lib, dynamic=False, name="user")
    assert plain.get_option(K["FWPM_ENGINE_COLLECT_NET_EVENTS"]) in (0, 1)  # reading is allowed
    with pytest.raises(WfpError, match="ERROR_ACCESS_DENIED"):
        plain.set_option(K["FWPM_ENGINE_COLLECT_NET_EVENTS"], 1)
    with pytest.raises(WfpError, match="ERROR_ACCESS_DENIED"):
        FilterSession(lib)
    with pytest.raises(WfpError, match="ERROR_ACCESS_DENIED"):
        Events(lib, plain)
    plain.close()
    assert object_counts(dll)[0] == 0  # the refused FilterSession closed its session


def add_filter(lib, session, layer, conditions):
    arr, n = conditions.array()
    f = abi.FWPM_FILTER0()
    name = ctypes.create_unicode_buffer("test")
    f.displayData.name = ctypes.cast(name, ctypes.c_void_p)
    f.layerKey = abi.GUID.from_text(GUIDS[f"FWPM_LAYER_{layer}"])
    f.numFilterConditions = n
    f.filterCondition = ctypes.cast(arr, ctypes.POINTER(abi.FWPM_FILTER_CONDITION0))
    f.action.type = K["FWP_ACTION_BLOCK"]
    fid = ctypes.c_uint64()
    lib.call("FwpmFilterAdd0", session.handle, ctypes.byref(f), None, ctypes.byref(fid))
    return fid.value


def app_id(lib, path):
    blob = ctypes.POINTER(abi.FWP_BYTE_BLOB)()
    lib.call("FwpmGetAppIdFromFileName0", path, ctypes.byref(blob))
    return blob


def test_a_condition_the_layer_does_not_have_is_refused(fake):
    path, _ = fake
    lib = Library(path)
    s = Session(lib, dynamic=True, name="conditions")
    blob = app_id(lib, os.path.realpath(sys.executable))
    try:
        c = Conditions()
        c.blob("FWPM_CONDITION_ALE_APP_ID", blob)
        with pytest.raises(WfpError, match="FWP_E_CONDITION_NOT_FOUND"):
            add_filter(lib, s, "OUTBOUND_TRANSPORT_V4", c)
        add_filter(lib, s, "ALE_AUTH_CONNECT_V4", c)  # an ALE layer has it
        t = Conditions()
        t.uint("FWPM_CONDITION_NET_EVENT_TYPE", "FWP_UINT32", 3)  # a template field, not a filter field
        with pytest.raises(WfpError, match="FWP_E_CONDITION_NOT_FOUND"):
            add_filter(lib, s, "ALE_AUTH_CONNECT_V4", t)
    finally:
        lib.free(blob)
        s.close()


def test_app_ids_are_file_names_without_resolving_links(fake, tmp_path):
    path, _ = fake
    lib = Library(path)
    link = tmp_path / "python"
    link.symlink_to(os.path.realpath(sys.executable))
    ids = []
    for name in (str(link), os.path.realpath(sys.executable)):
        blob = app_id(lib, name)
        ids.append(bytes(blob.contents.data[:blob.contents.size]))
        lib.free(blob)
    assert ids[0] != ids[1]
    assert ids[1] == ("\\device\\harddiskvolume1" + os.path.realpath(sys.executable).replace("/", "\\")).lower()\
        .encode("utf-16-le") + b"\0\0"
    with pytest.raises(WfpError, match="0x00000002"):  # ERROR_FILE_NOT_FOUND
        app_id(lib, str(tmp_path / "missing.exe"))


def test_the_app_id_condition_matches_the_image_that_sends(fake, ns, tmp_path):
    path, _ = fake
    with ns:
        lib = Library(path)
        s = Session(lib, dynamic=True, name="app ids")
    ours = app_id(lib, os.path.realpath(sys.executable))
    link = tmp_path / "python"
    link.symlink_to(os.path.realpath(sys.executable))
    launcher = app_id(lib, str(link))
    events = Events(lib, s)
    try:
        for blob in (launcher, ours):
            c = Conditions()
            c.port_range("FWPM_CONDITION_IP_REMOTE_PORT", 20000, 20099)
            c.blob("FWPM_CONDITION_ALE_APP_ID", blob)
            fid = add_filter(lib, s, "ALE_AUTH_CONNECT_V4", c)
            sender = udp(ns)
            send(sender, range(20000, 20005))
            got = events.wait(5, timeout=0.5 if blob is launcher else 5.0)
            sender.close()
            lib.call("FwpmFilterDeleteById0", s.handle, fid)
            if blob is launcher:
                assert got == []  # a symlink's app id is not the running image's
        assert len(got) == 5 and {g[8] for g in got} == {bytes(ours.contents.data[:ours.contents.size])}
    finally:
        events.close()
        lib.free(ours)
        lib.free(launcher)
        s.close()


@pytest.mark.parametrize("reclassify", [1, 0])
def test_reclassifying_a_blocked_tuple_is_configurable(fake, ns, reclassify):
    path, dll = fake
    dll.FakeConfigureDelivery(1, reclassify, 0)
    lib, fs, _ = filters(path, ns, FilterSpec(remote_port_low=20000, remote_port_high=20009))
    with ns:
        transport = FilterSession(lib)
    transport.install(FilterSpec(layer="OUTBOUND_TRANSPORT_V4", remote_port_low=30000, remote_port_high=30009))
    events = Events(lib, fs.session)
    sender = udp(ns)
    for _ in range(2):  # the same ten tuples twice, at each layer
        send(sender, range(20000, 20010))
        send(sender, range(30000, 30010))
    got = events.wait(40, timeout=1.0)
    events.close()
    transport.close()
    fs.close()
    sender.close()
    at_connect = sum(g[2] == 48 for g in got)
    assert at_connect == (20 if reclassify else 10)  # the undocumented part: both ways
    assert sum(g[2] == 16 for g in got) == 20        # transport layers classify every packet


# Whether Windows runs one subscription's callbacks at the same time is undocumented: the fake
# takes turns on its delivery threads, or runs them at once, so that the harness is tested under both.
@pytest.mark.parametrize("concurrent", [0, 1])
def test_delivery_on_several_threads_takes_turns_or_runs_at_once(fake, ns, concurrent):
    path, dll = fake
    dll.FakeConfigure(16, 2000, 100)
    dll.FakeConfigureDelivery(3, 1, 0)
    dll.FakeSetConcurrentDelivery(concurrent)
    lib, fs, _ = filters(path, ns, FilterSpec())
    inside = [0]
    overlaps = []

    def slow():
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.0005)  # lets go of the GIL: another delivery thread may enter meanwhile
        inside[0] -= 1

    events = Events(lib, fs.session, on_event=slow)
    sender = udp(ns)
    send(sender, range(20000, 20200))
    got = events.wait(200)
    events.close()
    fs.close()
    sender.close()
    assert len(got) == 200 and len({g[0] for g in got}) == 3  # on three threads
    assert (max(overlaps) >= 2) == bool(concurrent)  # one callback at a time, or several at once


HANG = textwrap.dedent("""
    import ctypes, sys, time
    sys.path.insert(0, "tests")
    from harness.platforms.wfp.api import Library
    from harness.platforms.wfp.engine import FilterSession
    from harness.spec import FilterSpec
    from test_wfp_fake_strict import Events
    lib = Library(sys.argv[1])
    fs = FilterSession(lib)
    fs.install(FilterSpec())
    holder = []
    def unsubscribe_here():
        print("in callback", flush=True)
        lib.call("FwpmNetEventUnsubscribe0", fs.session.handle, holder[0].handle)
        print("returned", flush=True)
    holder.append(Events(lib, fs.session, on_event=unsubscribe_here))
    ctypes.CDLL(sys.argv[1]).FakeInjectUdp(0x7F000001, 20000, 40000)
    time.sleep(30)
""")


@pytest.mark.subprocess
def test_unsubscribing_from_the_callback_hangs_like_windows(fake):
    path, _ = fake
    child = subprocess.Popen([sys.executable, "-c", HANG, path], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "in callback"
        time.sleep(2.0)
        assert child.poll() is None  # still inside FwpmNetEventUnsubscribe0
    finally:
        child.kill()
        out = child.communicate()[0]
    assert "returned" not in out


def test_kernel32_stand_ins(fake):
    path, _ = fake
    dll = ctypes.CDLL(path)
    dll.GetModuleFileNameW.argtypes = [ctypes.c_void_p, ctypes.c_wchar_p, ctypes.c_uint32]
    buf = ctypes.create_unicode_buffer(512)
    n = dll.GetModuleFileNameW(None, buf, 512)
    assert buf.value == os.path.realpath("/proc/self/exe") and n == len(buf.value)
    small = ctypes.create_unicode_buffer(8)
    assert dll.GetModuleFileNameW(None, small, 8) == 8 and small.value == buf.value[:7]  # truncated, as Windows
    ft = abi.FILETIME()
    before = time.time_ns()
    dll.GetSystemTimePreciseAsFileTime(ctypes.byref(ft))
    ticks = (ft.dwHighDateTime << 32) | ft.dwLowDateTime
    assert abs((ticks - 116444736000000000) * 100 - before) < 50_000_000


@pytest.mark.subprocess
def test_options_persist_across_processes_like_across_reboots(fake, tmp_path):
    path, _ = fake
    store = tmp_path / "options"
    script = textwrap.dedent("""
        import sys
        from harness.platforms.wfp.api import Library
        from harness.platforms.wfp.engine import Session
        s = Session(Library(sys.argv[1]), dynamic=False, name="options")
        print(s.get_option(0), flush=True)
        if len(sys.argv) > 2:
            s.set_option(0, int(sys.argv[2]))
        s.close()
    """)
    env = {**os.environ, "WFPCAP_FAKE_OPTIONS_FILE": str(store)}
    run = lambda *a: subprocess.run([sys.executable, "-c", script, path, *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, cwd=ROOT, check=True).stdout.strip()
    assert run("0") == "1"   # the default: collection on
    assert run() == "0"      # what the last process set


def test_the_next_call_can_be_made_to_fail(fake):
    path, dll = fake
    dll.FakeFailNext(b"FwpmFilterAdd0", 0x80320012)
    lib = Library(path)
    fs = FilterSession(lib)
    with pytest.raises(WfpError, match="FWP_E_TIMEOUT"):
        fs.install(FilterSpec())
    fs.install(FilterSpec())  # only the next call
    fs.close()


def test_every_event_made_is_logged(fake):
    path, dll = fake
    lib = Library(path)
    fs = FilterSession(lib)
    fid = fs.install(FilterSpec())
    before = dll.FakeGeneratedEvents()
    for port in (20000, 20001, 20002):
        dll.FakeInjectUdp(0x7F000001, port, 40000)
    fs.close()
    assert dll.FakeGeneratedEvents() - before == 3
    out = [ctypes.c_uint64(), ctypes.c_uint16(), ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint16(),
           ctypes.c_uint16(), ctypes.c_uint64()]
    dll.FakeLoggedEvent.argtypes = [ctypes.c_uint64] + [ctypes.c_void_p] * 7
    assert dll.FakeLoggedEvent(before + 2, *[ctypes.byref(o) for o in out])
    assert (out[0].value, out[1].value, out[5].value) == (fid, 48, 20002)
