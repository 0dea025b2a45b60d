"""Soak: many trials on one open platform, recorded to a result store, as a long campaign does.
Prints resident memory, open file descriptors (and sockets among them) and threads at the start
(after a warm-up) and at the end, and anything the platform left behind after closing: harness
namespaces, nft tables, processes. Goal: growth < 10 %, nothing leaked.

    python benchmarks/soak.py                    # 500 trials on the model
    sudo python benchmarks/soak.py --nflog 500   # and 500 on nflog
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.experiments.trial import run_recorded  # noqa: E402
from harness.platforms.model import ModelPlatform  # noqa: E402
from harness.results.fingerprint import fingerprint  # noqa: E402
from harness.results.store import ResultStore  # noqa: E402
from harness.spec import SubscriberSpec, TrafficSpec, TrialSpec  # noqa: E402

WARMUP = 10


def resources() -> dict[str, int]:
    fds, sockets = [], 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            fds.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
    return {"rss_kib": rss, "fds": len(fds), "sockets": sockets, "threads": threading.active_count(),
            "children": len(_children())}


def _children() -> list[int]:
    """This process's children, except multiprocessing's resource tracker: once a sender process
    has been spawned it lives as long as the interpreter, whatever the platforms do."""
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1] == me and \
                        b"multiprocessing.resource_tracker" not in open(f"/proc/{entry}/cmdline", "rb").read():
                    out.append(int(entry))
            except (OSError, IndexError):
                pass
    return out


def leftovers() -> dict[str, Any]:
    """What a closed platform might leave on the machine."""
    out: dict[str, Any] = {"namespaces": sorted(n for n in os.listdir("/run/netns") if n.startswith(f"wfpcap-{os.getpid()}-"))
                           if os.path.isdir("/run/netns") else []}
    try:
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10).stdout
        out["nft_tables"] = [t for t in tables.splitlines() if "wfpcap" in t]
    except (OSError, subprocess.SubprocessError):
        out["nft_tables"] = []
    out["children"] = _children()
    return out


def specs() -> list[TrialSpec]:
    held = TrialSpec(TrafficSpec(count=1500), SubscriberSpec(cost_us=5.0, hold=True), drain_quiet_s=0.2)
    paced = TrialSpec(TrafficSpec(count=2000, pacing="constant", rate_per_s=20_000), SubscriberSpec(cost_us=20.0),
                      drain_quiet_s=0.2)
    return [held, paced]


def soak(open_platform: Callable[[], Any], trials: int, root: Path) -> dict[str, Any]:
    platform = open_platform()
    try:
        store = ResultStore(root, fingerprint(platform.describe(), "soak"), platform.name)
        kinds = specs()
        for i in range(trials):
            if i == WARMUP:
                start = resources()
            run_recorded(platform, kinds[i % 2], store, "soak")
        end = resources()
    finally:
        platform.close()
    growth = {k: (end[k] - start[k]) / start[k] if start[k] else float(end[k] != 0) for k in start}
    return {"platform": platform.name, "trials": trials, "start": start, "end": end, "growth": growth,
            "left": leftovers()}


def show(result: dict[str, Any]) -> None:
    s, e, g = result["start"], result["end"], result["growth"]
    print(f"{result['platform']}: {result['trials']} trials (start = after {WARMUP} warm-up trials)")
    for key in s:
        print(f"  {key:9s} start {s[key]:>9,}  end {e[key]:>9,}  growth {g[key]:+.1%}")
    print(f"  left behind after close: {result['left']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=int, default=500, help="trials on the model")
    p.add_argument("--nflog", type=int, default=0, help="trials on nflog (root)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            show(soak(ModelPlatform, args.model, Path(tmp) / "model"))
        if args.nflog:
            from harness.platforms.nflog.platform import NflogPlatform
            show(soak(NflogPlatform, args.nflog, Path(tmp) / "nflog"))


if __name__ == "__main__":
    main()
