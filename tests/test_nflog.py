"""The nflog platform measures a real kernel buffer (run as root on Linux; skipped elsewhere)."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.analysis.loss import loss_by_sequence
from harness.experiments.burst import BurstConfig, search_burst_capacity
from harness.experiments.drain import measure_drain
from harness.experiments.search import NdrConfig
from harness.analysis.sustained import ndr_expected_range
from harness.experiments.ndr import search_ndr
from harness.experiments.trial import sustained_spec
from harness.results.fingerprint import fingerprint
from harness.results.store import ResultStore
from harness.spec import FilterSpec, SubscriberSpec, TrafficSpec, TrialSpec
from harness.traffic.safety import UnsafeDestination
from under_load import assert_recovered_or_withheld, watched
from platforms import make, needs_nflog

pytestmark = [needs_nflog, pytest.mark.root, pytest.mark.realtime]
BASE = TrialSpec(TrafficSpec(count=1), SubscriberSpec(cost_us=5.0), drain_quiet_s=0.3)


def store_for(platform, tmp_path):
    return ResultStore(tmp_path, fingerprint(platform.describe()), platform.name)


def capacity(rcvbuf, tmp_path):
    with make("nflog", qthresh=16, rcvbuf=rcvbuf) as p:
        out = search_burst_capacity(p, BASE, store_for(p, tmp_path / str(rcvbuf)), BurstConfig(start=256, sweep=()))
        return out.capacity.value, p.rcvbuf_effective


def test_doubling_the_receive_buffer_doubles_the_burst_capacity(tmp_path):
    small, small_buf = capacity(256 * 1024, tmp_path)
    large, large_buf = capacity(512 * 1024, tmp_path)
    assert large_buf == 2 * small_buf
    assert large / small == pytest.approx(2.0, rel=0.15), (small, large)


@pytest.mark.parametrize("qthresh", [16, 64])
def test_batch_estimate_equals_the_queue_threshold(tmp_path, qthresh):
    with make("nflog", qthresh=qthresh, timeout_cs=100) as p:
        store = store_for(p, tmp_path)
        burst = search_burst_capacity(p, BASE, store, BurstConfig(start=256, sweep=()))
        drain = measure_drain(p, BASE, store, int(burst.capacity.value * 1.25) + 1, burst.capacity)
        assert_recovered_or_withheld(drain.queue_limit, qthresh, store)


def test_sustained_search_holds_up_longer_and_breaks_above(tmp_path):
    # a 1 MiB effective buffer (~4,000 events) rides out the stalls of a shared machine: a loss means overload
    with make("nflog", qthresh=16, rcvbuf=1 << 19) as p:
        store = store_for(p, tmp_path)
        cap = search_burst_capacity(p, BASE, store, BurstConfig(start=1024, sweep=())).capacity.value
        config = NdrConfig(resolution=0.05, trial_s=0.25, max_trial_s=2.0, max_confirm_s=6.0,
                           max_confirmations=2, quiet_s=0.3)
        result = search_ndr(p, BASE, store, 50.0, cap, p.max_send_rate_per_s(), config)
        ndr = result.rate_per_s
        assert ndr, (result.status, result.status_reasons, result.confirmation, result.notes)
        assert ndr < 1e6 / 50.0 * 1.05
        # no faster than it was served (a confirmation that lost while the machine interfered stops at
        # what it served), but for what the buffer absorbs: a loss-free trial of T seconds
        # at a rate above mu proves only rate <= mu + capacity / T (a 5 % overshoot seen at load 1.5)
        assert ndr <= ndr_expected_range(result)[1], (ndr, result.mu_high_per_s, result.confirmation)
        longer = 2 * result.confirmation.duration_s
        keep, noise = watched(p, sustained_spec(BASE, 50.0, ndr, longer))
        lost = loss_by_sequence(keep.sent, keep.delivered).lost
        # it holds up within what the NDR claims: a loss-free confirmation of T seconds leaves an
        # overload of up to one search step + capacity/T unseen, which over 2T seconds loses up to
        # 2T x step + capacity (seen: 4,000 lost at load ~1); a stall longer than that says so
        step = result.resolution * ndr
        unseen = max(0.0, 2 * result.confirmation.duration_s * step + cap)
        assert lost <= unseen or noise, f"lost {lost} events at the NDR on a quiet machine (its bracket allows {unseen:.0f})"
        above = p.run_trial(sustained_spec(BASE, 50.0, 1.2 * ndr, longer))
        if loss_by_sequence(above.sent, above.delivered).lost == 0:
            # a search slowed by a neighbour finds too low an NDR: then it is not conclusive and names why
            assert result.status != "conclusive" and result.interference, (
                result.status, result.status_reasons, result.interference, result.rate_per_s, result.mu_per_s)
            print(f"no loss at 1.2 x NDR {ndr:.0f}/s; search {result.status}: {'; '.join(result.status_reasons)}")
        elif lost:
            print(f"lost {lost} at the NDR while {'; '.join(noise)}")


def test_refuses_traffic_outside_loopback():
    with make("nflog") as p:
        spec = TrialSpec(TrafficSpec(count=10, remote_addresses=("10.9.8.7",)), filter=FilterSpec(remote_prefix="10.0.0.0/8"))
        with pytest.raises(UnsafeDestination, match="refusing to send to 10.9.8.7"):
            p.run_trial(spec)


@pytest.mark.subprocess
def test_sigkill_mid_trial_leaves_nothing_once_the_next_run_starts(tmp_path):
    from harness.platforms.nflog import netns
    script = textwrap.dedent("""
        import sys
        from harness.platforms.nflog.platform import NflogPlatform
        from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
        p = NflogPlatform()
        print(p.namespace, flush=True)
        p.run_trial(TrialSpec(TrafficSpec(count=400000, pacing="constant", rate_per_s=20000),
                              SubscriberSpec(cost_us=100)))
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    name = child.stdout.readline().strip()
    assert name.startswith("wfpcap-")
    time.sleep(2.0)  # mid-trial: sending, subscriber busy, rule and group live
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert name in netns.ours()  # a killed run cannot clean up after itself...
    with make("nflog") as p:       # ...so the next run does, and only the dead run's namespace
        assert name in p.removed_stale
        assert name not in netns.ours()
        assert p.namespace in netns.ours()
    left = [n for n in netns.ours() if n.startswith(f"wfpcap-{child.pid}-")]
    assert left == []


@pytest.mark.subprocess
def test_ctrl_c_mid_trial_cleans_up_at_once():
    from harness.platforms.nflog import netns
    script = textwrap.dedent("""
        import faulthandler, signal
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # where it hangs, if it does
        from harness.platforms.nflog.platform import NflogPlatform
        from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec
        with NflogPlatform() as p:
            print(p.namespace, flush=True)
            p.run_trial(TrialSpec(TrafficSpec(count=600000, pacing="constant", rate_per_s=20000),
                                  SubscriberSpec(cost_us=100)))
    """)
    # Ctrl-C at its default in the child: a shell starts a background job (`pytest tests/ &`) with
    # SIGINT ignored, and an ignored signal is inherited across exec (seen: the child ran on 30 s)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[1],
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    name = child.stdout.readline().strip()
    time.sleep(1.5)
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    try:
        _, err = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # seen once in a plain `pytest tests/`: say where the child was
        child.send_signal(signal.SIGUSR1)
        time.sleep(1)
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"still running 30 s after SIGINT; its threads:\n{err[-6000:]}")
    assert time.monotonic() - started < 10        # not after the 30 s trial would have ended
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert name not in netns.ours()               # nothing left for the next run to clean


def test_a_socket_is_never_made_in_a_namespace_that_does_not_exist():
    # pyroute2 creates a missing namespace by default: a run whose namespace name was briefly not
    # visible got its sockets in a new, empty namespace ("Network is unreachable")
    import socket as pysocket
    from harness.platforms.nflog import netns
    name = f"wfpcap-{os.getpid()}-abcdef"
    assert name not in netns.ours()
    with pytest.raises(OSError):
        netns.socket_in(name, pysocket.AF_INET, pysocket.SOCK_DGRAM)
    assert name not in netns.ours()
