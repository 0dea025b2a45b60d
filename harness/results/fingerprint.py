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

import harness
from harness.host import cpu_model, load1, memory_bytes, uptime_s
from harness.results.records import Facts, Fingerprint


def _volatile() -> Facts:
    out: Facts = {"timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for key, value in (("load_avg_1min", load1(exact=True)), ("uptime_s", uptime_s())):
        if value is not None:
            out[key] = value
    return out


def fingerprint(platform_settings: Facts, machine_label: str | None = None,
                measured: Facts | None = None) -> Fingerprint:
    stable = {
        "machine": machine_label or socket.gethostname(),
        "os": f"{pyplatform.system()} {pyplatform.release()}",
        "os_version": pyplatform.version(),
        "arch": pyplatform.machine(),
        "cpu": cpu_model(),
        "num_cpu": os.cpu_count(),
        "ram_bytes": memory_bytes(),
        "python": f"{pyplatform.python_implementation()} {pyplatform.python_version()}",
        "harness_version": harness.__version__,
        "platform": platform_settings,
    }
    return Fingerprint(stable, dict(measured or {}), _volatile(), sys.executable)


def config_id(fp: Fingerprint) -> str:
    """Machine label + platform name + a hash of the stable part: readable and unique."""
    stable = fp.stable
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:10]
    label = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(stable["machine"]))[:40]
    return f"{label}-{stable['platform'].get('platform', 'unknown')}-{digest}"
