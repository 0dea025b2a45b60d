"""Which platforms this machine can run, for the contract tests; the fake fwpuclnt's controls."""
from __future__ import annotations

import ctypes
import errno
import socket
from dataclasses import dataclass
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.platforms.model import ModelPlatform
from harness.platforms.wfp.sockets import LoopbackSockets
from harness.traffic.sender_process import bind_receiver
from netns import fresh_netns, reason as netns_reason


def nflog_reason() -> str | None:
    from harness.platforms.nflog.platform import available
    return available()


def fake_wfp_library(max_subscribe: int = 4) -> str:
    from fake_fwpuclnt.build import build, compiler
    if compiler() is None:
        pytest.skip("no C compiler to build the fake fwpuclnt")
    return str(build(max_subscribe))


def fake_controls(path: str) -> ctypes.CDLL:
    """The fake's test entry points with their prototypes."""
    dll = ctypes.CDLL(path)
    u32, u64, c_int = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int
    dll.FakeInjectUdp.argtypes = [u32, ctypes.c_uint16, ctypes.c_uint16]
    dll.FakeSetForeignRate.argtypes = [ctypes.c_double]
    dll.FakeFailNext.argtypes = [ctypes.c_char_p, u32]
    dll.FakeConfigureDelivery.argtypes = [u32, c_int, c_int]
    dll.FakeSetConcurrentDelivery.argtypes = [c_int]
    dll.FakeSetFreshThreads.argtypes = [c_int]
    dll.FakeGeneratedEvents.restype = u64
    dll.FakeLost.argtypes = [ctypes.c_void_p]
    dll.FakeLost.restype = u64
    dll.FakeDelivered.argtypes = [ctypes.c_void_p]
    dll.FakeDelivered.restype = u64
    dll.FakeCaptureStats.argtypes = [ctypes.POINTER(u64), ctypes.POINTER(u64), ctypes.POINTER(c_int)]
    dll.FakeSetStoreSize.argtypes = [u32]
    dll.FakeSetDeliverAtMost.argtypes = [ctypes.c_long]
    dll.FakeSetBfeState.argtypes = [u32]
    dll.FakeSetQpcFrequency.argtypes = [ctypes.c_int64]
    dll.FakeSetSessionRegistry.argtypes = [ctypes.c_char_p]
    dll.FakeSetSessionRules.argtypes = [c_int, c_int]
    dll.FakeSetSilentTemplates.argtypes = [c_int]
    dll.FakeSetAllowFromDefault.argtypes = [c_int]
    dll.FakeSetSubscribeWhileOff.argtypes = [c_int]
    return dll


def reset_fake(dll: ctypes.CDLL, queue_limit: int = 256, system_buffer: int = 2000, turnaround_us: int = 100) -> None:
    dll.FakeConfigure(queue_limit, system_buffer, turnaround_us)
    dll.FakeConfigureDelivery(1, 1, 0)
    dll.FakeSetConcurrentDelivery(0)
    dll.FakeSetFreshThreads(0)
    dll.FakeSetDispatchLatency(20)
    dll.FakeSetElevated(1)
    dll.FakeSetClockStep(1)
    dll.FakeSetForeignRate(0.0)
    dll.FakeSetForeignSubscriptions(0)
    dll.FakeResetOptions()
    dll.FakeSetStoreSize(100_000)
    dll.FakeSetDeliverAtMost(-1)
    dll.FakeSetQpcFrequency(10_000_000)
    dll.FakeSetBfeState(4)  # SERVICE_RUNNING
    dll.FakeSetAllowFromDefault(0)
    dll.FakeSetSilentTemplates(0)
    dll.FakeSetSubscribeWhileOff(0)


def capture_stats(dll: ctypes.CDLL) -> tuple[int, int, int]:
    """(state, packets, drops): state 1 = capturing real traffic in a test namespace."""
    packets, drops, error = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_int()
    state = dll.FakeCaptureStats(ctypes.byref(packets), ctypes.byref(drops), ctypes.byref(error))
    return state, packets.value, drops.value


def object_counts(dll: ctypes.CDLL) -> list[int]:
    """[sessions, filters, sublayers, subscriptions] alive in the fake."""
    counts = [ctypes.c_int() for _ in range(4)]
    dll.FakeObjectCounts(*[ctypes.byref(c) for c in counts])
    return [c.value for c in counts]


@contextmanager
def open_wfp(path: str, **kwargs) -> Iterator:
    """The wfp platform on the fake, used inside a fresh network namespace: its capture, sender
    process and sockets live there, so the real senders' packets are all the fake sees."""
    from harness.platforms.wfp.platform import WfpPlatform
    if netns_reason():
        pytest.skip(netns_reason())
    with fresh_netns():
        with WfpPlatform(path, **kwargs) as p:
            yield p


def make(name: str, **config):
    if name == "model":
        return ModelPlatform()
    if name == "wfp":
        path = fake_wfp_library()
        reset_fake(fake_controls(path), config.get("queue_limit", 256), config.get("system_buffer", 4000),
                   config.get("turnaround_us", 100))
        if netns_reason():
            pytest.skip(netns_reason())
        from harness.platforms.wfp.platform import WfpPlatform
        with fresh_netns():  # what it opens lives there; a restarted sender would not
            return WfpPlatform(path)
    if name == "nflog":
        reason = nflog_reason()
        if reason:
            pytest.skip(reason)
        from harness.platforms.nflog.platform import NflogConfig, NflogPlatform
        return NflogPlatform(NflogConfig(**config))
    raise ValueError(name)


needs_nflog = pytest.mark.skipif(nflog_reason() is not None, reason=str(nflog_reason()))


@dataclass(frozen=True)
class ExcludedPortSockets(LoopbackSockets):
    """The wfp sender's sockets, except that no receiver may listen on `excluded` ports: Windows
    refuses a bind in a range that Hyper-V, WSL2 or Docker excluded with WSAEACCES, which Linux never
    does. Made in the sender process, so it must pickle (it lives here, on the child's path)."""
    excluded: tuple[int, ...] = ()

    def receiver(self, address: str, port: int) -> socket.socket:
        if port in self.excluded:  # as Python on Windows raises it: errno EACCES, the WSA code in winerror
            refused = OSError(errno.EACCES, "An attempt was made to access a socket in a way forbidden by its access permissions")
            refused.winerror = 10013
            raise refused
        return bind_receiver(address, port)
