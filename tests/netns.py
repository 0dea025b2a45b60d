"""Network namespaces for the tests that send real traffic to the fake fwpuclnt.

`fresh_netns()` moves the calling thread into a new network namespace with its loopback up and
back afterwards (`NetNamespace` when a test needs to enter the same one again). What is opened inside (the fake's capture, the sender process and its sockets)
stays in that namespace for its whole life, so no host traffic reaches the fake and no test
traffic reaches the host; the namespace goes away with the last of them.
`in_fresh_netns(cmd)` does the same for a subprocess (util-linux unshare, iproute2 ip).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import socket
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def reason() -> str | None:
    """None if namespaces can be made here, else why not."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "a network namespace for real test traffic needs root"
    return None


needs_netns = pytest.mark.skipif(reason() is not None, reason=str(reason()))


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNET)")


class NetNamespace:
    """A new network namespace with its loopback up; `with ns:` puts the calling thread in it."""

    def __init__(self) -> None:
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            if _libc().unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            try:
                _loopback_up()
                self.fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            finally:
                _setns(original)
        finally:
            os.close(original)
        self._back: list[int] = []

    def __enter__(self) -> "NetNamespace":
        self._back.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY))
        _setns(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        back = self._back.pop()
        try:
            _setns(back)
        finally:
            os.close(back)

    def close(self) -> None:
        os.close(self.fd)
        self.fd = -1


@contextmanager
def fresh_netns() -> Iterator[NetNamespace]:
    ns = NetNamespace()
    try:
        with ns:
            yield ns
    finally:
        ns.close()


def in_fresh_netns(cmd: list[str]) -> list[str]:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs the {tool} command")
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
