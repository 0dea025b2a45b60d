"""The Windows-only loading lines, run on Linux: with sys.platform reading "win32", the wfp backend
loads fwpuclnt.dll, kernel32, shell32 and advapi32 through ctypes.WinDLL (kernel32, shell32 and
advapi32 with use_last_error, which GetLastError-style error reporting needs) and declares its
callbacks with WINFUNCTYPE. Here WinDLL is a CDLL of the fake that records what was asked for, and
WINFUNCTYPE is CFUNCTYPE (on x64 the one calling convention). Runs in a child process: the
platform name cannot be changed back once modules have read it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from platforms import fake_wfp_library

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import ctypes as C, json, os, sys
fake = sys.argv[1]
asked = []

class WinDLL(C.CDLL):
    def __init__(self, name, use_last_error=False, **kw):
        asked.append([name, use_last_error])
        super().__init__(fake, use_last_error=use_last_error, **kw)

C.WinDLL, C.WINFUNCTYPE = WinDLL, C.CFUNCTYPE
import numpy, pandas  # they read the platform name at import: imported as on Linux
os.environ.pop("WFPCAP_FWPUCLNT", None)
sys.platform = "win32"
from harness.platforms.wfp import abi, admin_services, api, kernel32
from harness.platforms.select import resolve
lib = api.Library()
override = api.Library(fake)
sysinfo, kernel = admin_services.AdminServices(), kernel32.Kernel32()
print(json.dumps({"asked": asked, "functype": abi.FUNCTYPE is C.WINFUNCTYPE, "raw_callback": api.RAW_CALLBACK.__name__,
                  "version": lib.subscribe_version, "path": lib.path, "override": override.override,
                  "elevated": sysinfo.elevated(), "bfe": sysinfo.service_state(), "windows": kernel.windows,
                  "unix_ns": kernel.precise_unix_ns(), "default": resolve("auto")}))
"""


@pytest.mark.subprocess
def test_windows_branches_load_the_windows_libraries_the_windows_way():
    fake = fake_wfp_library()
    done = subprocess.run([sys.executable, "-c", CHILD, fake], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    asked = {name: use_last_error for name, use_last_error in out["asked"]}
    assert asked == {"fwpuclnt.dll": False, fake: False, "shell32": True, "advapi32": True, "kernel32": True}, out["asked"]
    assert out["functype"], "callbacks must be declared with WINFUNCTYPE on Windows"
    assert (out["path"], out["override"], out["windows"], out["default"]) == ("fwpuclnt.dll", fake, True, "wfp")
    assert out["version"] == 4 and out["bfe"] == "running" and out["unix_ns"] > 1.7e18
