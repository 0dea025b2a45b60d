"""Compile the fake fwpuclnt with the system C compiler (cached by source hash and variant)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SOURCES = sorted(HERE.glob("*.c"))
HEADERS = sorted(HERE.glob("*.h"))


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def build(max_subscribe: int = 4) -> Path:
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES + HEADERS)).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"wfpcap-fake-fwpuclnt-{digest}-s{max_subscribe}.so"
    if not out.exists():
        tmp = out.with_suffix(f".{__import__('os').getpid()}.tmp.so")
        subprocess.run([compiler() or "cc", "-shared", "-fPIC", "-O2", "-pthread", "-Wall", "-Wextra", "-Werror",
                        f"-DMAX_SUBSCRIBE={max_subscribe}", "-o", str(tmp), *map(str, SOURCES)], check=True)
        tmp.replace(out)
    return out
