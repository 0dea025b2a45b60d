"""The CPU model in the configuration id: on Windows the registry's ProcessorNameString, so that two
VM types are two configurations and one VM type is one (platform.processor() there is the family).
The Windows branch runs here against a stand-in for winreg with its functions' signatures."""
import sys
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from harness import host
from harness.host import PROCESSOR_KEY, cpu_model, windows_processor_name
from harness.results import fingerprint

pytestmark = pytest.mark.windows

FAMILY = "Intel64 Family 6 Model 106 Stepping 6, GenuineIntel"  # what platform.processor() says on both


def registry(name: str | None):
    """winreg's OpenKey (a context manager) and QueryValueEx, over one processor's key."""
    @contextmanager
    def OpenKey(root, path):
        assert root == "HKLM" and path == PROCESSOR_KEY
        if name is None:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        yield "key"

    def QueryValueEx(key, value):
        assert (key, value) == ("key", "ProcessorNameString")
        return name, 1  # REG_SZ

    return SimpleNamespace(HKEY_LOCAL_MACHINE="HKLM", OpenKey=OpenKey, QueryValueEx=QueryValueEx)


def test_the_windows_model_comes_from_the_registry_not_the_family(monkeypatch):
    monkeypatch.setattr(host.pyplatform, "processor", lambda: FAMILY)
    ice_lake = registry("Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz   ")  # padded, as some machines have it
    assert cpu_model("win32", ice_lake) == "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz"
    assert cpu_model("win32", registry(None)) == FAMILY  # no key: the family, rather than nothing


def test_two_vm_types_are_two_configurations_and_one_is_one(monkeypatch):
    """Through the fingerprint, with the process on 'Windows': the registry's name is hashed."""
    monkeypatch.setattr(host.pyplatform, "processor", lambda: FAMILY)
    monkeypatch.setattr(sys, "platform", "win32")
    ids = {}
    for vm, name in [("a", "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz"), ("b", "AMD EPYC 7763 64-Core Processor"),
                     ("a2", "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz")]:
        monkeypatch.setitem(sys.modules, "winreg", registry(name))
        fp = fingerprint.fingerprint({"platform": "wfp"}, "runner")
        assert fp.stable["cpu"] == name
        ids[vm] = fingerprint.config_id(fp)
    assert ids["a"] == ids["a2"] != ids["b"]


@pytest.mark.skipif(sys.platform != "win32", reason="the real registry is Windows'")
def test_this_windows_machine_names_its_processor():
    name = windows_processor_name()
    assert name and "Family" not in name, name
