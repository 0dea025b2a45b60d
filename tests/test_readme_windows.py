"""A Windows newcomer's first ten minutes: README's Windows section opens with a block of PowerShell
that needs no POSIX command, no activation and no [dev], and its links into docs/windows.md resolve."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def windows_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Running on Windows\n", 1)[1].split("\n## ", 1)[0]


def test_the_windows_section_opens_with_a_powershell_block_of_the_first_commands():
    section = windows_section()
    before, fence, rest = section.partition("```powershell\n")
    assert fence and "```" not in before  # the first block of the section
    block = rest.split("```", 1)[0].splitlines()
    assert block == ["py -3.12 -m venv .venv", ".venv\\Scripts\\python -m pip install -e .", ".venv\\Scripts\\wfpcap doctor",
                     ".venv\\Scripts\\python -m pytest scenarios/"]
    posix = re.compile(r"python3|\bsource\b|^\. |bin/activate|Activate\.ps1|\bsudo\b|\bexport\b|&&|\[dev\]")
    assert [line for line in block if posix.search(line)] == []
    block_and_notes = section.split("holds the rest of the Windows manual")[0]
    for said in ("elevated PowerShell", "64-bit", "3.11, 3.12 or 3.13", "report.html", "docs/windows.md#when-the-doctor-fails"):
        assert said in block_and_notes, said


def test_the_links_into_the_windows_manual_resolve():
    manual = (ROOT / "docs" / "windows.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^## (.+)$", manual, re.M)}
    links = re.findall(r"\(docs/windows\.md#([a-z0-9-]+)\)", (ROOT / "README.md").read_text())
    assert links and set(links) <= anchors, (links, anchors)
