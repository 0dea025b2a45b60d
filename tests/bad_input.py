"""Bad input files refused in one line: the check every reader's table of bad files shares."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.inputs import BadInput


def refused(read: Callable[[Path], object], path: Path, text: str | None, line: str) -> str:
    """Write `text` to `path` (None: leave it missing), read it, and expect one line matching `line`."""
    if text is not None:
        path.write_text(text)
    with pytest.raises(BadInput, match=line) as exc:
        read(path)
    assert "\n" not in str(exc.value)
    return str(exc.value)
