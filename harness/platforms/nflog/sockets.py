"""How the nflog platform's sender process makes its sockets: inside the run's network namespace
(entered in the child), batched with sendmmsg, by the native send loop (native_send.py) or the
Python one (MmsgSender); pinned and prioritised with Linux's own calls."""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.platforms.nflog.mmsg import MmsgSender
from harness.traffic.cores import LinuxThreads
from harness.traffic.packets import PacketBatch

if TYPE_CHECKING:  # imported when called, in the sender process
    from harness.platforms.nflog.native_send import LibcBinding

SNDBUF = 4 << 20


@dataclass(frozen=True)
class NamespaceSockets:
    namespace: str

    def enter(self) -> dict[str, Any]:
        from pyroute2 import netns
        netns.setns(self.namespace, flags=0)  # this thread, and every socket it makes from now on
        return {}

    def udp(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        s.bind(("127.0.0.1", 0))
        return s

    def raw(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        return s

    def sender(self, sock: socket.socket, kind: str, packets: PacketBatch) -> MmsgSender:
        return MmsgSender(sock, kind, packets)

    def native(self) -> LibcBinding:
        from harness.platforms.nflog.native_send import LibcBinding
        return LibcBinding()

    def threads(self) -> LinuxThreads:
        return LinuxThreads()
