"""The harness's own network namespaces: created per run, named so that a later run can find
and remove one that a killed run left behind, and only its own (wfpcap-<pid>-<tag> whose pid is
gone). Removing the namespace removes its nftables rules and NFLOG instances with it."""
from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import time

from pyroute2 import netns as pr_netns

PREFIX = "wfpcap-"
NAME_RE = re.compile(r"^wfpcap-(\d+)-[0-9a-f]{6}$")


class CommandFailed(RuntimeError):
    pass


def run(cmd: list[str], stdin: str | None = None) -> str:
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise CommandFailed(f"{cmd[0]} is not installed") from None
    if p.returncode != 0:
        raise CommandFailed(f"{' '.join(cmd[:4])}...: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ours() -> list[str]:
    return [n for n in pr_netns.listnetns() if NAME_RE.match(n)]


def remove_stale() -> list[str]:
    """Remove namespaces of harness runs whose process no longer exists; return their names."""
    removed = []
    for name in ours():
        pid = int(NAME_RE.match(name).group(1))
        if pid != os.getpid() and not _alive(pid):
            remove(name)
            removed.append(name)
    return removed


def create() -> str:
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
    except CommandFailed:
        remove(name)
        raise
    return name


def remove(name: str) -> None:
    if not NAME_RE.match(name):
        raise ValueError(f"refusing to remove namespace {name!r}: not one of the harness's")
    try:
        run(["ip", "netns", "del", name])
    except CommandFailed:
        if name in pr_netns.listnetns():
            raise


def socket_in(name: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that lives in the namespace (created by a short-lived child that entered it).
    flags=0: never create the namespace (pyroute2's default O_CREAT would quietly make a new,
    empty one, loopback down, whenever the name is briefly not visible)."""
    for attempt in range(50):
        try:
            return pr_netns.create_socket(name, family, kind, proto, flags=0)
        except FileNotFoundError:
            # another run's `ip netns add` remounts /run/netns, hiding names for a moment
            if attempt == 49:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def nft(name: str, script: str) -> str:
    return run(["ip", "netns", "exec", name, "nft", "-f", "-"], stdin=script)
