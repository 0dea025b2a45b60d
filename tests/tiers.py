"""Test tiers: every test is marked with what it needs, so that `pytest tests/ -m unit` is the
inner loop and the rest runs where it can.

A test gets its marks from its module (`pytestmark`), its own decorators, and the fixtures it uses
(a fixture says what it needs with `@needs(...)`); a test that needs none of them is `unit`. A
mark cannot be forgotten: while a test runs, whatever it did not declare is a tripwire (a child run
of the harness or pytest, a namespace or a root-only command, a real platform opened, a browser),
and the test fails naming the mark it lacks. tests/test_tiers.py checks all of it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

# what each tier needs (pyproject.toml registers the same marks, with --strict-markers)
TIERS = {
    "unit": "needs nothing: pure, in process, no root, no real time (pytest tests/ -m unit: the inner loop)",
    "realtime": "runs trials in real time (a real platform: nflog, the wfp backend on the fake fwpuclnt)",
    "root": "needs root: network namespaces, nftables, mounts (skipped without it)",
    "browser": "opens pages in headless Chromium (skipped without chromium and chromedriver)",
    "subprocess": "runs the command line or pytest (scenarios/ or a script on the harness) in a child process",
}
NEEDS = ("realtime", "root", "browser", "subprocess")
ROOT_TOOLS = {"mount", "umount", "unshare", "ip", "nft", "tcpdump", "nsenter"}


class TierError(AssertionError):
    """A test did something its marks do not declare."""


def needs(*tiers: str) -> Callable:
    """For a fixture: every test that uses it, directly or through other fixtures, needs `tiers`.
    Put it under @pytest.fixture."""
    unknown = set(tiers) - set(NEEDS)
    if unknown:
        raise ValueError(f"unknown tiers {sorted(unknown)}; known: {', '.join(NEEDS)}")

    def mark(fixture: Callable) -> Callable:
        fixture.wfpcap_needs = tiers
        return fixture
    return mark


def declared(item: pytest.Item) -> set[str]:
    """The needs of a test: its marks (module, class, own) and those of the fixtures it uses."""
    found = {m.name for m in item.iter_markers() if m.name in NEEDS}
    for defs in getattr(item, "_fixtureinfo").name2fixturedefs.values():
        for d in defs:
            found |= set(getattr(d.func, "wfpcap_needs", ()))
    return found


def mark(items: Iterable[pytest.Item]) -> None:
    """Give each test the marks its fixtures imply, and `unit` to a test that needs nothing."""
    for item in items:
        found = declared(item)
        if item.get_closest_marker("unit") and found:
            raise pytest.UsageError(f"{item.nodeid} is marked unit but needs {', '.join(sorted(found))}")
        for name in sorted(found):
            if not item.get_closest_marker(name):
                item.add_marker(name)
        if not found:
            item.add_marker("unit")


def unavailable(tier: str) -> str | None:
    """Why this machine cannot run a tier's tests (None: it can)."""
    if tier == "root" and (not sys.platform.startswith("linux") or os.geteuid() != 0):
        return "needs root on Linux (network namespaces, nftables, mounts)"
    if tier == "browser":
        from browser import binaries
        if binaries() is None:
            return ("no Chromium with chromedriver on this machine (.ci/run installs Debian's chromium and "
                    "chromium-driver)")
    return None


SPREAD = "wfpcap_spread"  # set on the options when spread_over_workers chose the workers


def spread_over_workers(config: pytest.Config, tests: Path) -> None:
    """`pytest tests/` (a folder, or no path) runs on one worker per core (pytest-xdist, spread as
    `scheduler` says); naming a file or a test runs it in this process, as the inner loop wants.
    `-n`, `--dist`, `-p no:xdist`, --pdb and --collect-only are left as given. Only folders within
    `tests` count: pytest also loads this conftest for `pytest scenarios/ --expect tests/x.json`
    (an option's value it cannot yet tell from a path), and the scenarios never spread."""
    o = config.option
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return
    if o.numprocesses is not None or o.dist != "no" or o.usepdb or o.collectonly:
        return
    here = Path(config.invocation_params.dir)
    folders = [(here / arg).resolve() for arg in config.args if "::" not in arg]
    if len(folders) == len(config.args) and all(f.is_dir() and f.is_relative_to(tests.resolve()) for f in folders):
        o.numprocesses, o.dist = "auto", "load"
        setattr(o, SPREAD, True)


MODULE_FIXTURE = re.compile(r"@pytest\.fixture\([^)]*scope=[\"'](module|class|package)[\"']")


def sharing_modules(root: Path, paths: Iterable[Path]) -> set[str]:
    """The test modules under `paths` that define a fixture of module, class or package scope (their
    tests share it), named as node ids name them: relative to `root`."""
    found = set()
    for base in paths:
        for module in ([base] if base.is_file() else sorted(base.rglob("test_*.py"))):
            if module.is_relative_to(root) and MODULE_FIXTURE.search(module.read_text(encoding="utf-8")):
                found.add(module.relative_to(root).as_posix())
    return found


def scheduler(config: pytest.Config, log: Any) -> Any:
    """For xdist's pytest_xdist_make_scheduler, when spread_over_workers chose the workers: a
    module's tests stay on one worker where they share a module fixture, so that it is built once;
    every other test goes to whichever worker is free. (xdist's own `loadgroup` no longer groups
    with pytest 9.2: pytest-dev/pytest-xdist#1386; a scheduler needs no marks carried across.)"""
    if not getattr(config.option, SPREAD, False):
        return None
    from xdist.scheduler import LoadScopeScheduling

    here = config.invocation_params.dir
    together = sharing_modules(config.rootpath, [(here / a.split("::")[0]).resolve() for a in config.args])

    class ByModuleFixture(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in together else nodeid

    return ByModuleFixture(config, log)


def skip_unavailable(items: Iterable[pytest.Item]) -> None:
    reasons = {tier: unavailable(tier) for tier in ("root", "browser")}
    for item in items:
        for tier, reason in reasons.items():
            if reason and item.get_closest_marker(tier):
                item.add_marker(pytest.mark.skip(reason=f"{tier}: {reason}"))


# -- tripwires: what a test that did not declare a tier may not do ----------------------------
def _argv(args: object) -> list[str]:
    if isinstance(args, (str, bytes, os.PathLike)):
        return [os.fsdecode(args)]
    return [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in args]


def child_needs(args: object) -> set[str]:
    """What starting this command needs: a child run of the harness (the wfpcap command, a Python
    child on pytest or the harness) is `subprocess`; a root-only tool (also through unshare) is `root`."""
    argv = _argv(args)
    text = " ".join(argv)
    out = set()
    python_on_the_harness = sys.executable in text and ("pytest" in text or "harness" in text)
    if python_on_the_harness or re.search(r"(^|[\s;&|(])wfpcap\s", text):
        out.add("subprocess")
    listing = argv[1:2] == ["list"]  # `nft list tables`: a look that finds nothing without root, no need
    if os.path.basename(argv[0]) in ROOT_TOOLS and not listing:
        out.add("root")
    return out


def _refuse(nodeid: str, tier: str, what: str) -> TierError:
    return TierError(f"{nodeid} {what}, which needs the `{tier}` mark: add it (pytestmark, a decorator, or "
                     f"@needs on the fixture; tests/tiers.py)")


def install_tripwires(item: pytest.Item, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each undeclared need of `item` fail the test where it is first used."""
    have = {m.name for m in item.iter_markers() if m.name in NEEDS}
    missing = set(NEEDS) - have
    if not missing:
        return
    nodeid = item.nodeid

    popen_init = subprocess.Popen.__init__

    def guarded_popen(self, *args, **kwargs):
        command = args[0] if args else kwargs.get("args", ())
        for tier in sorted(child_needs(command) & missing):
            raise _refuse(nodeid, tier, f"starts {' '.join(_argv(command))[:120]!r}")
        return popen_init(self, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded_popen)

    def wire(module: str, attribute: str, tier: str, what: str) -> None:
        """`module.attribute` (a dotted attribute: Class.__init__) fails the test unless it declares `tier`."""
        if tier not in missing:
            return
        try:
            target = __import__(module, fromlist=["_"])
        except (ImportError, OSError, AttributeError):  # not on this platform (netns needs fcntl): nothing to guard
            return
        *owners, name = attribute.split(".")
        for owner in owners:
            target = getattr(target, owner)

        def tripped(*args, **kwargs):
            raise _refuse(nodeid, tier, what)
        monkeypatch.setattr(target, name, tripped)

    wire("netns", "NetNamespace.__init__", "root", "makes a network namespace")
    wire("harness.platforms.nflog.platform", "NflogPlatform.__init__", "root", "opens the nflog platform")
    wire("harness.platforms.nflog.platform", "NflogPlatform.__init__", "realtime", "opens the nflog platform")
    wire("harness.platforms.wfp.platform", "WfpPlatform.__init__", "realtime",
         "opens the wfp platform (a sender process, real-time trials)")
    wire("browser", "binaries", "browser", "looks for Chromium to open a page in")
