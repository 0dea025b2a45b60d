"""Which machine configuration a result belongs to (asv's machine.json, pyperf's metadata).

The stable part (hardware, OS, Python, platform settings) is hashed into the config id that names
the report folder. Volatile facts (load, uptime) and what the platform measured when it opened
(generator rate, other subscribers) are stored with each run but never hashed: two runs of one
configuration must land in one folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform as pyplatform
import socket
import sys
import time
from typing import Any

import harness


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return pyplatform.processor() or pyplatform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _volatile() -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        out["load_avg_1min"] = os.getloadavg()[0]
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/uptime") as f:
            out["uptime_s"] = float(f.read().split()[0])
    except OSError:
        pass
    return out


def fingerprint(platform_settings: dict[str, Any], machine_label: str | None = None,
                measured: dict[str, Any] | None = None) -> dict[str, Any]:
    stable = {
        "machine": machine_label or socket.gethostname(),
        "os": f"{pyplatform.system()} {pyplatform.release()}",
        "os_version": pyplatform.version(),
        "arch": pyplatform.machine(),
        "cpu": _cpu_model(),
        "num_cpu": os.cpu_count(),
        "ram_bytes": _memory_bytes(),
        "python": f"{pyplatform.python_implementation()} {pyplatform.python_version()}",
        "harness_version": harness.__version__,
        "platform": platform_settings,
    }
    return {"stable": stable, "measured": dict(measured or {}), "volatile": _volatile(),
            "python_executable": sys.executable}


def config_id(fp: dict[str, Any]) -> str:
    """Machine label + platform name + a hash of the stable part: readable and unique."""
    stable = fp["stable"]
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:10]
    label = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(stable["machine"]))[:40]
    return f"{label}-{stable['platform'].get('platform', 'unknown')}-{digest}"
