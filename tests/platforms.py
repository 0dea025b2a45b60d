"""Which platforms this machine can run, for the contract tests."""
from __future__ import annotations

import pytest

from harness.platforms.model import ModelPlatform


def nflog_reason() -> str | None:
    from harness.platforms.nflog.platform import available
    return available()


def make(name: str, **config):
    if name == "model":
        return ModelPlatform()
    if name == "nflog":
        reason = nflog_reason()
        if reason:
            pytest.skip(reason)
        from harness.platforms.nflog.platform import NflogConfig, NflogPlatform
        return NflogPlatform(NflogConfig(**config))
    raise ValueError(name)


needs_nflog = pytest.mark.skipif(nflog_reason() is not None, reason=str(nflog_reason()))
