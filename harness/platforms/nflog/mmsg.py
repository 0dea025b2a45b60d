"""Batched sends with Linux sendmmsg(2): one system call for up to a few hundred packets.

Python's socket module has no sendmmsg, so the mmsghdr/iovec/sockaddr_in arrays are laid out
with numpy structured dtypes (x86-64/aarch64 LP64 layout) over the compiled packet rows, and the
call goes through ctypes."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket

import numpy as np

from harness.traffic.packets import SEQ_OFFSET, PacketBatch

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_libc.sendmmsg.restype = ctypes.c_int

SOCKADDR_IN = np.dtype([("family", "<u2"), ("port", ">u2"), ("addr", ">u4"), ("zero", "V8")])
IOVEC = np.dtype([("base", "<u8"), ("len", "<u8")])
MMSGHDR = np.dtype([("name", "<u8"), ("namelen", "<u4"), ("pad0", "<u4"), ("iov", "<u8"), ("iovlen", "<u8"),
                    ("control", "<u8"), ("controllen", "<u8"), ("flags", "<i4"), ("pad1", "<u4"),
                    ("len", "<u4"), ("pad2", "<u4")])
assert SOCKADDR_IN.itemsize == 16 and IOVEC.itemsize == 16 and MMSGHDR.itemsize == 64


class MmsgSender:
    """kind "udp": the payload through a plain UDP socket (kernel builds the headers);
    kind "raw": the whole scapy-built IP packet through a raw socket (IP_HDRINCL)."""

    def __init__(self, sock: socket.socket, kind: str, packets: PacketBatch) -> None:
        if kind not in ("udp", "raw"):
            raise ValueError(f"sender kind must be udp or raw, got {kind!r}")
        self.sock, self.fd = sock, sock.fileno()
        n = len(packets.dst)
        self.data = np.ascontiguousarray(packets.data)
        self.names = np.zeros(n, SOCKADDR_IN)
        self.names["family"] = socket.AF_INET
        self.names["addr"] = packets.dst
        self.names["port"] = packets.dport if kind == "udp" else 0
        skip = SEQ_OFFSET if kind == "udp" else 0
        self.iov = np.zeros(n, IOVEC)
        self.iov["base"] = self.data.ctypes.data + np.arange(n, dtype=np.uint64) * packets.length + skip
        self.iov["len"] = packets.length - skip
        self.msgs = np.zeros(n, MMSGHDR)
        self.msgs["name"] = self.names.ctypes.data + np.arange(n, dtype=np.uint64) * SOCKADDR_IN.itemsize
        self.msgs["namelen"] = SOCKADDR_IN.itemsize
        self.msgs["iov"] = self.iov.ctypes.data + np.arange(n, dtype=np.uint64) * IOVEC.itemsize
        self.msgs["iovlen"] = 1
        self._base = self.msgs.ctypes.data

    def send(self, first: int, last: int) -> int:
        went = _libc.sendmmsg(self.fd, self._base + first * MMSGHDR.itemsize, last - first, 0)
        if went < 0:
            err = ctypes.get_errno()
            if err in (11, 105):  # EAGAIN, ENOBUFS: the kernel is busy; the pacer tries again
                return 0
            raise OSError(err, os.strerror(err))
        return went
