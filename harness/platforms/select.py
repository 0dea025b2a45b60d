"""Pick a platform by name: auto = wfp on Windows, model elsewhere."""
from __future__ import annotations

import sys

from harness.platforms.base import Platform, PlatformUnavailable
from harness.platforms.model import ModelParams, ModelPlatform

BACKENDS = ("auto", "model", "wfp", "nflog")


def resolve(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "wfp" if sys.platform == "win32" else "model"
    return name


def open_platform(name: str, model_params: ModelParams | None = None,
                  nflog_overrides: dict[str, str] | None = None, subscriber_lib: str | None = None) -> Platform:
    """`subscriber_lib`: the user's native subscriber, PATH:SYMBOL (wfp only: its native callback runs it)."""
    name = resolve(name)
    if subscriber_lib is not None and name != "wfp":
        raise PlatformUnavailable(f"--subscriber-lib runs in the wfp platform's native callback, not on {name}")
    if name == "model":
        return ModelPlatform(model_params)
    if name == "wfp":
        from harness.platforms.wfp.platform import WfpPlatform
        return WfpPlatform(subscriber_lib=subscriber_lib)  # fwpuclnt.dll, or the library named by WFPCAP_FWPUCLNT
    if name == "nflog":
        from harness.platforms.nflog.platform import NflogConfig, NflogPlatform
        return NflogPlatform(NflogConfig.from_overrides(nflog_overrides or {}))
    raise PlatformUnavailable(f"backend {name} is not available in this build of the harness")  # pragma: no cover
