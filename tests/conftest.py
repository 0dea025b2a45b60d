import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)  # tests/test_tiers.py runs small suites of its own in process

sys.path.insert(0, str(Path(__file__).parent))
import budget  # noqa: E402
import tiers  # noqa: E402

# Many tests run `pytest scenarios/` in a child process, as a user would. The scenarios have no use
# for hypothesis' pytest plugin, whose import costs each child about 2 s of CPU (of ~6 s to start).
os.environ["PYTEST_ADDOPTS"] = " ".join(filter(None, [os.environ.get("PYTEST_ADDOPTS"), "-p no:hypothesispytest"]))


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    """The fake fwpuclnt, reset; a state directory of the test's own; nothing may be left behind."""
    from platforms import fake_controls, fake_wfp_library, object_counts, reset_fake
    monkeypatch.setenv("WFPCAP_STATE_DIR", str(tmp_path / "state"))
    path = fake_wfp_library()
    dll = fake_controls(path)
    reset_fake(dll)
    yield path, dll
    reset_fake(dll)
    assert object_counts(dll) == [0, 0, 0, 0], "sessions, filters, sublayers, subscriptions left behind"
    assert dll.FakeOutstandingAllocations() == 0, "memory from the API not freed with FwpmFreeMemory0"
    assert dll.FakeOpenEventHandles() == 0, "kernel events (a held native callback's release) not closed"
    assert dll.FakeOpenThreadHandles() == 0, "thread handles (the native self-test's) not closed"


@pytest.fixture()
def alone(tmp_path, monkeypatch):
    """This process's view of other harness runs, cut off from the machine's: a registry of the
    test's own and no namespaces, so that a neighbour's run (another suite on a shared runner, the
    other xdist worker) is not counted where a test counts runs."""
    from harness import live_runs
    monkeypatch.setenv("WFPCAP_LIVE_DIR", str(tmp_path / "live"))
    monkeypatch.setattr(live_runs, "NETNS_DIR", tmp_path / "no-netns")
    return tmp_path / "live"


class ScapyWouldAskTheNetwork(BaseException):
    """Not an Exception: scapy catches those around its ARP lookup and falls back to broadcast."""


@pytest.fixture(autouse=True, scope="session")
def _scapy_never_resolves_addresses_on_the_network():
    """A packet built with Ether() and no destination makes scapy send ARP requests on the machine's
    interface (traffic outside loopback and the harness's namespaces) and wait 2 s for each
    unanswered one; the tests build frames with captures.ether() instead, and this fails one that
    does not."""
    import scapy.layers.inet6
    import scapy.layers.l2

    def refuse(*args, **kwargs):
        raise ScapyWouldAskTheNetwork("scapy was about to send an ARP/ND request to fill in a MAC address: "
                                      "build the frame with captures.ether() (both addresses given)")
    saved = scapy.layers.l2.srp1, scapy.layers.inet6.srp1
    scapy.layers.l2.srp1 = scapy.layers.inet6.srp1 = refuse
    yield
    scapy.layers.l2.srp1, scapy.layers.inet6.srp1 = saved


@pytest.fixture(autouse=True)
def _tier_tripwires(request, monkeypatch):
    """What a test did not declare fails it where it is first done (tests/tiers.py)."""
    tiers.install_tripwires(request.node, monkeypatch)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true",
                     help="also run the slow tests (the whole scenario suite against the fake fwpuclnt)")
    budget.addoption(parser)


def pytest_configure(config):
    budget.configure(config)


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns "auto" into a number of workers
def pytest_cmdline_main(config):
    tiers.spread_over_workers(config, Path(__file__).parent)


@pytest.hookimpl(optionalhook=True)  # xdist's, on the controller
def pytest_xdist_make_scheduler(config, log):
    return tiers.scheduler(config, log)


def pytest_collection_modifyitems(config, items):
    tiers.mark(items)
    tiers.skip_unavailable(items)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
