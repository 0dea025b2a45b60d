"""Windows backend: WFP net events through ctypes over fwpuclnt.dll (or a compatible library)."""
