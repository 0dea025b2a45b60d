"""What this machine is and what it is doing, read from the operating system in one place:
/proc on Linux, kernel32 on Windows (through the wfp platform's bindings, the only ctypes there
is). The fingerprint, the interference probe around each trial and the live-run registry read
the machine here."""
from __future__ import annotations

import math
import os
import platform as pyplatform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

PROC = Path("/proc")


@dataclass(frozen=True)
class CpuSample:
    t: float
    total: int          # jiffies over all CPUs: user..steal
    idle: int           # idle + iowait
    steal: int
    own_s: float        # CPU seconds of this process and its live children
    procs_running: int | None


def _cpu_line(proc: Path) -> tuple[int, int, int, int | None] | None:
    try:
        text = (proc / "stat").read_text()
    except OSError:
        return None
    total = idle = steal = 0
    running = None
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:9]]  # user nice system idle iowait irq softirq steal
            v += [0] * (8 - len(v))
            total, idle, steal = sum(v), v[3] + v[4], v[7]
        elif line.startswith("procs_running"):
            running = int(line.split()[1])
    return total, idle, steal, running


def _children(proc: Path) -> list[int]:
    pids: list[int] = []
    for task in (proc / "self" / "task").glob("*/children"):
        try:
            pids += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return pids


def _process_cpu_s(proc: Path, pid: int, tick: float) -> float:
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


def sample(proc: Path = PROC) -> CpuSample | None:
    line = _cpu_line(proc)
    if line is None:
        return None
    tick = float(os.sysconf("SC_CLK_TCK"))
    t = os.times()
    own = t.user + t.system + sum(_process_cpu_s(proc, pid, tick) for pid in _children(proc))
    return CpuSample(time.monotonic(), *line[:3], own, line[3])


REFERENCE_LOOPS = 20_000  # about a millisecond of interpreter work: short beside any trial


def cpu_reference_ns(repeats: int = 5) -> float:
    """Nanoseconds per iteration of a fixed pure-Python loop, the fastest of `repeats` (the
    fastest is the CPU's speed; the slower ones are preemption, which the other figures report)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter_ns()
        x = 0
        for i in range(REFERENCE_LOOPS):
            x += i & 7
        best = min(best, (time.perf_counter_ns() - start) / REFERENCE_LOOPS)
    return best


def load1(exact: bool = False) -> float | None:
    """The 1-minute load average (rounded to 2 places unless `exact`); None where there is none."""
    try:
        load = os.getloadavg()[0]
        return load if exact else round(load, 2)
    except (OSError, AttributeError):
        return None


def uptime_s() -> float | None:
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


PROCESSOR_KEY = r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"


def windows_processor_name(registry: ModuleType | None = None) -> str | None:
    """ProcessorNameString of the first processor (HKLM\\HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0),
    spaces collapsed (some machines pad it), or None. The model ("Intel(R) Xeon(R) Platinum 8370C CPU @
    2.80GHz"), where platform.processor() on Windows gives only the family ("Intel64 Family 6 Model 106
    Stepping 6, GenuineIntel"), the same for different models. `registry`: the winreg module (a stand-in
    with the same functions in the tests)."""
    if registry is None:
        import winreg as registry  # Windows only
    try:
        with registry.OpenKey(registry.HKEY_LOCAL_MACHINE, PROCESSOR_KEY) as key:
            value, _kind = registry.QueryValueEx(key, "ProcessorNameString")
    except OSError:
        return None
    return " ".join(str(value).split()) or None


def _linux_model_name(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def cpu_model(platform: str | None = None, registry: ModuleType | None = None) -> str:
    """The CPU model, so that two VM types are two configurations and one VM type is one: Windows'
    registry (windows_processor_name), /proc/cpuinfo's model name elsewhere; platform.processor() or
    the architecture where neither can be read."""
    on_windows = (platform or sys.platform) == "win32"
    name = windows_processor_name(registry) if on_windows else _linux_model_name()
    return name or pyplatform.processor() or pyplatform.machine()


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _kernel32() -> Any:
    from harness.platforms.wfp.kernel32 import Kernel32  # kernel32 on Windows; the tests' fake elsewhere
    return Kernel32()


def process_start(pid: int) -> str | None:
    """The process's start time (Linux: clock ticks since boot; Windows: its creation FILETIME),
    so that a reused pid is not taken for the same run."""
    if sys.platform == "win32":
        try:
            return _kernel32().process(pid)[1]
        except OSError:
            return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int, start: str | None = None) -> bool:
    if sys.platform.startswith("linux"):
        now = process_start(pid)
        return now is not None and (start is None or now == start)
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        try:
            running, created = _kernel32().process(pid)
        except OSError:
            return True  # cannot tell: rather warn of a run that has ended than miss a live one
        return running and (start is None or created is None or created == start)
    try:
        os.kill(pid, 0)  # POSIX only: on Windows os.kill would terminate the process
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
