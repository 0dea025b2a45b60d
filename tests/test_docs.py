"""The commands of README.md and docs/*.md run as documented, so they cannot go stale.

A command block is a fenced block of `sh` (or bash, console, powershell). Each one is preceded by
a marker line, which GitHub does not render:
    <!-- runnable -->                  run it; it must exit 0
    <!-- runnable exit=1 -->           run it; it must exit 1
    <!-- runnable skip="reason" -->    not run here (it needs Windows, root, a fresh machine ...)
Runnable blocks run on the model with bash -e, one after another, in a folder of their own that
links the checkout's scenarios/, tests/ and benchmarks/, with a live-run registry of their own.
The README's `pytest scenarios/` is run once and its run folder is shared: `<config-id>` and
`<timestamp>` in a block name that run. Beside the blocks: every link between the pages resolves,
and every file of the repository a page names exists."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_LANGS = {"sh", "bash", "shell", "console", "powershell", "pwsh", "ps1"}
RUNS_HERE = {"sh", "bash", "shell"}
MARKER = re.compile(r'^<!-- runnable(?: exit=(?P<exit>\d+))?(?: skip="(?P<skip>[^"]+)")? -->$')
FENCE = re.compile(r"^```(\S*)")
SHARED = "pytest scenarios/"  # the README's measure command: run once, its folder shared
LINKED = ("scenarios", "tests", "benchmarks", "pyproject.toml")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    body: str
    marker: str | None  # the marker line, or None
    exit: int = 0
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every command block of a page, with the marker line before it (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        lang = fence[1].lower()
        if lang in COMMAND_LANGS:
            before = lines[i - 1].strip() if i else ""
            marker = MARKER.match(before)
            found.append(Block(str(path.relative_to(ROOT)), i + 1, lang, "\n".join(lines[i + 1:end]),
                               before if before.startswith("<!-- runnable") else None,
                               int(marker["exit"] or 0) if marker else 0, marker["skip"] if marker else None))
        i = end + 1
    return found


BLOCKS = [b for page in PAGES for b in blocks(page)]


def test_every_command_block_is_marked_runnable_or_skipped_with_a_reason():
    unmarked = [b.id for b in BLOCKS if b.marker is None]
    malformed = [f"{b.id}: {b.marker}" for b in BLOCKS if b.marker is not None and not MARKER.match(b.marker)]
    elsewhere = [b.id for b in BLOCKS if b.lang not in RUNS_HERE and b.marker and b.skip is None]
    assert unmarked == [], "add <!-- runnable --> or <!-- runnable skip=\"why\" --> before these blocks"
    assert malformed == []
    assert elsewhere == [], "only sh blocks run here; the others need a skip reason"
    assert any(b.body == SHARED and b.skip is None for b in BLOCKS if b.page == "README.md")


@dataclass
class Workspace:
    path: Path
    env: dict[str, str]
    measured: subprocess.CompletedProcess
    run_dir: Path

    def run(self, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.path, env=self.env,
                              capture_output=True, text=True, timeout=900)

    def fill(self, script: str) -> str:
        return script.replace("<config-id>", self.run_dir.parent.name).replace("<timestamp>", self.run_dir.name)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """A user's checkout as the blocks see it, and the README's `pytest scenarios/` run once in it."""
    path = tmp_path_factory.mktemp("docs")
    for name in LINKED:
        (path / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items()
           if k not in ("WFPCAP_FWPUCLNT", "WFPCAP_HOLD_AT", "WFPCAP_CALLBACK", "WFPCAP_STATE_DIR")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               WFPCAP_LIVE_DIR=str(path / ".live"), PYTHONUNBUFFERED="1")
    ws = Workspace(path, env, None, path)  # type: ignore[arg-type]
    ws.measured = ws.run(SHARED)
    report = re.search(r"^wfpcap report: (.+)$", ws.measured.stdout, re.M)
    assert report, ws.measured.stdout[-3000:] + ws.measured.stderr[-3000:]
    ws.run_dir = (path / report[1]).parent
    return ws


@pytest.mark.subprocess
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in RUNS_HERE or b.skip], ids=lambda b: b.id)
def test_the_command_block_exits_as_documented(block, workspace):
    if block.skip:
        pytest.skip(block.skip)
    if block.body == SHARED:
        done = workspace.measured
        assert (workspace.path / re.search(r"^wfpcap report: (.+)$", done.stdout, re.M)[1]).is_file()
    else:
        done = workspace.run(workspace.fill(block.body))
    assert done.returncode == block.exit, f"{block.id}\n{block.body}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_skipped_blocks_name_files_that_exist():
    """A block that is not run here still cannot name a script that is gone."""
    missing = [(b.id, p) for b in BLOCKS for p in re.findall(r"\b((?:benchmarks|tests|scenarios)/[\w./-]+\.\w+)", b.body)
               if not (ROOT / p).exists()]
    assert missing == []


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_the_pages_resolve():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, fragment = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            if not linked.exists():
                broken.append((page.name, target))
            elif fragment and linked.suffix == ".md":
                headings = re.findall(r"^#{1,6} (.+)$", linked.read_text(encoding="utf-8"), re.M)
                if fragment not in {anchor(h) for h in headings}:
                    broken.append((page.name, target))
    assert broken == []


def test_the_files_a_page_names_exist():
    named = re.compile(r"`((?:harness|tests|scenarios|benchmarks|docs|\.github|\.ci)/[\w./-]*[\w/])`")
    missing = [(page.name, path) for page in PAGES for path in named.findall(page.read_text(encoding="utf-8"))
               if not (ROOT / path).exists()]
    assert missing == []


def test_the_readme_is_read_in_five_minutes():
    """Issue 20: what it answers, a picture, the two commands, what the report holds, links; the
    manual lives in docs/."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move the detail to docs/"
