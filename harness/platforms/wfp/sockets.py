"""How the wfp platform's sender process makes its sockets: plain loopback sockets made in the
child (Windows has no fork to hand them over), one sendto per packet. The child reports its own
image (GetModuleFileNameW(NULL)): the app id that WFP sees for its packets. The native send loop
and the pinning call ws2_32 and kernel32 (native_send.py, threads.py)."""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.platforms.wfp.kernel32 import Kernel32
from harness.traffic.packets import PacketBatch
from harness.traffic.sender_process import SendtoSender

if TYPE_CHECKING:  # imported when called: numba and the thread calls are the sender process's
    from harness.platforms.wfp.native_send import Ws2Binding
    from harness.platforms.wfp.threads import WindowsThreads


@dataclass(frozen=True)
class LoopbackSockets:
    library: str | None = None  # off Windows: the library that stands in for kernel32 (the fake)

    def enter(self) -> dict[str, Any]:
        return {"image": Kernel32(self.library).module_file_name()}

    def udp(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        return s

    def raw(self) -> socket.socket:
        """Send only: IPPROTO_RAW with IP_HDRINCL (administrator). Never SIO_RCVALL, which is what
        scapy's native Windows socket turns on to receive: a promiscuous capture of the runner."""
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        return s

    def sender(self, sock: socket.socket, kind: str, packets: PacketBatch) -> SendtoSender:
        return SendtoSender(sock, kind, packets)

    def native(self) -> Ws2Binding:
        from harness.platforms.wfp.native_send import Ws2Binding
        return Ws2Binding(self.library)

    def threads(self) -> WindowsThreads:
        from harness.platforms.wfp.threads import WindowsThreads
        return WindowsThreads(self.library)
