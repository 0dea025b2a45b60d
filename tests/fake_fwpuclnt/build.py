"""Compile the fake fwpuclnt with the system C compiler (cached by source hash and variant)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_fwpuclnt.c")


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def build(max_subscribe: int = 4) -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"wfpcap-fake-fwpuclnt-{digest}-s{max_subscribe}.so"
    if not out.exists():
        tmp = out.with_suffix(".tmp.so")
        subprocess.run([compiler() or "cc", "-shared", "-fPIC", "-O2", "-pthread", "-Wall", "-Werror",
                        f"-DMAX_SUBSCRIBE={max_subscribe}", "-o", str(tmp), str(SOURCE)], check=True)
        tmp.replace(out)
    return out
