"""The per-packet plan of a trial: sequence, remote port, remote address, and whether the
subscription template lets its event through. Shared by every platform so that they all
send, and account for, the same packets."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

from harness.spec import PROTOCOLS, TrialSpec

CLASSIFY_DROP = 3  # FWPM_NET_EVENT_TYPE_CLASSIFY_DROP: what a blocking filter produces


@dataclass(frozen=True)
class TrafficPlan:
    seq: np.ndarray             # int64, 0..count-1
    remote_port: np.ndarray     # int64
    address_index: np.ndarray   # int64 index into addresses
    addresses: tuple[str, ...]
    expected: np.ndarray        # bool: the template lets this packet's event through

    @property
    def expected_count(self) -> int:
        return int(self.expected.sum())


def plan_traffic(spec: TrialSpec) -> TrafficPlan:
    t, f = spec.traffic, spec.filter
    seq = np.arange(t.count, dtype=np.int64)
    port = f.remote_port_low + seq % f.port_count
    address_index = seq % len(t.remote_addresses)
    return TrafficPlan(seq, port, address_index, t.remote_addresses, template_mask(spec, port, address_index))


def template_mask(spec: TrialSpec, port: np.ndarray, address_index: np.ndarray) -> np.ndarray:
    """Conditions AND'ed, as WFP evaluates a net-event template."""
    mask = np.ones(len(port), dtype=bool)
    if spec.template is None:
        return mask
    addresses = [int(ipaddress.IPv4Address(a)) for a in spec.traffic.remote_addresses]
    for c in spec.template.conditions:
        if c.field == "remote_port":
            high = c.high if c.high is not None else int(c.value)
            mask &= (port >= int(c.value)) & (port <= high)
        elif c.field == "remote_address":
            wanted = int(ipaddress.IPv4Address(str(c.value)))
            mask &= np.asarray([a == wanted for a in addresses])[address_index]
        elif c.field == "protocol":
            value = PROTOCOLS.get(str(c.value), c.value)
            mask &= PROTOCOLS[spec.filter.protocol] == int(value)
        elif c.field == "net_event_type":
            mask &= int(c.value) == CLASSIFY_DROP
    return mask
