"""The test tiers and the per-test budget hold: a test gets the marks of what it needs (from its
module, its decorators and its fixtures' @needs), `unit` when it needs nothing; a test that does
what its marks do not declare fails naming the mark; and --fail-slower-than fails the session
naming the test that took too long. Each is run on a small suite of its own, in this process."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import tiers

TESTS = Path(__file__).resolve().parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import pytest
import budget
import tiers

@pytest.fixture(autouse=True)
def _tier_tripwires(request, monkeypatch):
    tiers.install_tripwires(request.node, monkeypatch)

def pytest_addoption(parser):
    budget.addoption(parser)

def pytest_configure(config):
    for name, text in tiers.TIERS.items():
        config.addinivalue_line("markers", f"{{name}}: {{text}}")
    budget.configure(config)

def pytest_collection_modifyitems(config, items):
    tiers.mark(items)
"""

SUITE = """
import subprocess
import sys
import time

import pytest
from tiers import needs


@pytest.fixture
@needs("root")
def namespace():
    return "made"


@pytest.fixture
def through(namespace):  # a fixture that uses one that needs root
    return namespace


def test_pure():
    assert 1 + 1 == 2


def test_uses_root_through_a_fixture(through):
    assert through == "made"


@pytest.mark.subprocess
def test_declared_child():
    assert subprocess.run([sys.executable, "-c", "import harness"], cwd={root!r}).returncode == 0


def test_undeclared_child():
    subprocess.run([sys.executable, "-m", "pytest", "--version"])


def test_undeclared_root_tool():
    subprocess.run(["ip", "netns", "add", "x"])


def test_a_look_is_no_need():
    subprocess.run(["nft", "list", "tables"], capture_output=True)
    subprocess.run(["true"])


def test_sleeps():
    time.sleep(0.6)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE.format(root=str(TESTS.parent)))
    return pytester


def marks(result: pytest.RunResult) -> dict[str, set[str]]:
    return {r.nodeid.split("::")[-1]: {k for k in r.keywords if k in tiers.TIERS}
            for r in result.getreports("pytest_runtest_logreport") if r.when == "call"}


@pytest.mark.subprocess  # test_declared_child starts a Python child on the harness
def test_each_test_gets_the_marks_of_what_it_needs_and_undeclared_needs_fail(suite):
    result = suite.inline_run("-p", "no:cacheprovider", "-p", "no:randomly")
    got = marks(result)
    assert got["test_pure"] == {"unit"}
    assert got["test_uses_root_through_a_fixture"] == {"root"}  # through a fixture of a fixture
    assert got["test_declared_child"] == {"subprocess"}
    assert got["test_a_look_is_no_need"] == {"unit"}
    passed, _, failed = result.listoutcomes()
    assert {r.nodeid.split("::")[-1] for r in failed} == {"test_undeclared_child", "test_undeclared_root_tool"}
    said = {r.nodeid.split("::")[-1]: str(r.longrepr) for r in failed}
    assert "needs the `subprocess` mark" in said["test_undeclared_child"]
    assert "needs the `root` mark" in said["test_undeclared_root_tool"]


def test_only_unit_is_selected_by_m_unit(suite):
    result = suite.inline_run("-p", "no:cacheprovider", "-m", "unit", "--collect-only")
    names = sorted(i.name for i in result.getcalls("pytest_collection_finish")[0].session.items)
    assert names == ["test_a_look_is_no_need", "test_pure", "test_sleeps", "test_undeclared_child",
                     "test_undeclared_root_tool"]


def test_a_unit_mark_beside_a_need_is_refused(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.unit
        @pytest.mark.realtime
        def test_both():
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_both is marked unit but needs realtime" in result.stderr.str()


def test_a_test_over_the_budget_fails_the_session_naming_it(suite):
    over = suite.runpytest_inprocess("-p", "no:cacheprovider", "-k", "sleeps or pure", "--fail-slower-than", "0.3")
    assert over.ret == pytest.ExitCode.TESTS_FAILED
    over.stdout.fnmatch_lines(["*over the per-test budget of 0.3 s*", "*s call test_suite.py::test_sleeps"])
    assert "test_pure" not in over.stdout.str().split("over the per-test budget")[1]
    within = suite.runpytest_inprocess("-p", "no:cacheprovider", "-k", "sleeps or pure", "--fail-slower-than", "5")
    assert within.ret == pytest.ExitCode.OK and "over the per-test budget" not in within.stdout.str()


@pytest.mark.parametrize("command, need", [
    ([sys.executable, "-m", "pytest", "scenarios/"], {"subprocess"}),
    ([sys.executable, "-m", "harness", "report", "x"], {"subprocess"}),
    (["bash", "-e", "-c", "wfpcap compare all-reports --out fleet.md"], {"subprocess"}),
    (["unshare", "--net", "sh", "-c", "ip link set lo up"], {"root"}),
    (["nft", "-f", "-"], {"root"}),
    (["nft", "list", "tables"], set()),
    (["gcc", "-shared", "-o", "fake.so", "fake.c"], set()),
    ("git status", set()),
])
def test_what_starting_a_command_needs(command, need):
    assert tiers.child_needs(command) == need


def test_the_tiers_are_registered_with_strict_markers(pytestconfig):
    assert pytestconfig.inipath.name == "pyproject.toml" and "--strict-markers" in pytestconfig.getini("addopts")
    registered = {line.split(":")[0]: line.split(":", 1)[1].strip() for line in pytestconfig.getini("markers")}
    assert {name: registered.get(name) for name in tiers.TIERS} == tiers.TIERS


def test_the_modules_that_share_a_module_fixture_are_found(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "test_shares.py").write_text('@pytest.fixture(scope="module")\ndef run():\n    pass\n')
    (tmp_path / "sub" / "test_class.py").write_text("@pytest.fixture(autouse=True, scope='class')\ndef c():\n    pass\n")
    (tmp_path / "test_session.py").write_text('@pytest.fixture(scope="session")\ndef once_per_worker():\n    pass\n')
    (tmp_path / "test_plain.py").write_text("@pytest.fixture\ndef each():\n    pass\n")
    assert tiers.sharing_modules(tmp_path, [tmp_path]) == {"test_shares.py", "sub/test_class.py"}
    assert tiers.sharing_modules(tmp_path, [tmp_path / "test_plain.py"]) == set()
    # this suite's own: the twin's fits, the signal tests' campaign, not the stored-file fuzz tests'
    found = tiers.sharing_modules(TESTS.parent, [TESTS])
    assert {"tests/test_twin.py", "tests/test_nflog_signals.py"} <= found and "tests/test_stored_readers.py" not in found


@pytest.mark.parametrize("args, given, spread", [
    (["tests"], {}, True), ([], {}, True),  # a folder or the testpaths
    (["tests/test_tiers.py"], {}, False), (["tests::test_x"], {}, False),  # a file or a test: in process
    (["tests"], {"numprocesses": 0}, False), (["tests"], {"dist": "loadfile"}, False),
    (["tests"], {"usepdb": True}, False), (["tests"], {"collectonly": True}, False),
    (["scenarios"], {}, False)])  # `pytest scenarios/ --expect tests/x.json` loads this conftest too
def test_a_folder_runs_on_workers_and_a_file_in_process(monkeypatch, args, given, spread):
    from types import SimpleNamespace
    monkeypatch.chdir(TESTS.parent)
    option = SimpleNamespace(**{"numprocesses": None, "dist": "no", "usepdb": False, "collectonly": False, **given})
    config = SimpleNamespace(option=option, args=args or ["tests"], invocation_params=SimpleNamespace(dir=TESTS.parent),
                             pluginmanager=SimpleNamespace(hasplugin=lambda name: name == "xdist"))
    tiers.spread_over_workers(config, TESTS)
    assert (option.numprocesses, option.dist) == (("auto", "load") if spread else
                                                  (given.get("numprocesses"), given.get("dist", "no")))


SPREAD_CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import pytest
import tiers

@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    tiers.spread_over_workers(config, config.rootpath)

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return tiers.scheduler(config, log)
"""

SHARED_SUITE = """
import os
import time

import pytest


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    with open({builds!r}, "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
    return 1


@pytest.mark.parametrize("k", range(8))
def test_uses_the_module_fixture(shared, k):
    time.sleep(0.05)


@pytest.mark.parametrize("k", range(8))
def test_alone(k):
    time.sleep(0.05)
"""


@pytest.mark.subprocess
def test_a_folder_spreads_over_workers_and_a_module_fixture_is_built_once(pytester, tmp_path):
    """End to end, with xdist's real workers: spread test by test, each worker would build the fixture
    (xdist's loadgroup marks no longer group with pytest 9.2: this is what caught it)."""
    builds = tmp_path / "builds.txt"
    pytester.makeconftest(SPREAD_CONFTEST)
    pytester.makepyfile(test_shared=SHARED_SUITE.replace("{builds!r}", repr(str(builds))))
    result = pytester.runpytest_subprocess(str(pytester.path), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=16)
    assert "bringing up nodes" in result.stdout.str() or "workers" in result.stdout.str()
    assert builds.read_text().splitlines() and len(builds.read_text().splitlines()) == 1, builds.read_text()
