"""Compile the tests' native subscriber library (cached by source hash), as tests/fake_fwpuclnt is."""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).parent / "counting_subscriber.c"


def build(compiler: str) -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"wfpcap-counting-subscriber-{digest}.so"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp.so")
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp), str(SOURCE)],
                       check=True)
        tmp.replace(out)
    return out


def controls(path: Path) -> ctypes.CDLL:
    """The library's counters, from the same loaded copy the harness calls (dlopen shares it)."""
    dll = ctypes.CDLL(os.path.realpath(path))
    dll.set_spin_ns.argtypes = [ctypes.c_int64]
    for name in ("calls_seen", "udp_events_seen"):
        getattr(dll, name).restype = ctypes.c_int64
    return dll
