"""Which platforms this machine can run, for the contract tests."""
from __future__ import annotations

import pytest

from harness.platforms.model import ModelPlatform


def nflog_reason() -> str | None:
    from harness.platforms.nflog.platform import available
    return available()


def fake_wfp_library(max_subscribe: int = 4) -> str:
    from fake_fwpuclnt.build import build, compiler
    if compiler() is None:
        pytest.skip("no C compiler to build the fake fwpuclnt")
    return str(build(max_subscribe))


def make(name: str, **config):
    if name == "model":
        return ModelPlatform()
    if name == "wfp":
        import ctypes
        from harness.platforms.wfp.platform import WfpPlatform
        path = fake_wfp_library()
        fake = ctypes.CDLL(path)
        fake.FakeConfigure(config.get("queue_limit", 256), config.get("system_buffer", 4000),
                           config.get("turnaround_us", 100))
        return WfpPlatform(path)
    if name == "nflog":
        reason = nflog_reason()
        if reason:
            pytest.skip(reason)
        from harness.platforms.nflog.platform import NflogConfig, NflogPlatform
        return NflogPlatform(NflogConfig(**config))
    raise ValueError(name)


needs_nflog = pytest.mark.skipif(nflog_reason() is not None, reason=str(nflog_reason()))
