"""The per-packet plan of a trial: sequence, remote port, remote address, and whether the
subscription template lets its event through. Shared by every platform so that they all
send, and account for, the same packets.

Every packet of a trial gets its own (remote address, remote port) tuple, because WFP's ALE
layers classify only the first packet of a tuple and because the tuple is all a WFP event says
about which packet it was: port = low + seq % ports; once the ports are used up, the address
moves on by one in its third octet (127.0.0.1, 127.0.1.1, ... all loopback), so
seq = (third-octet step) * ports + (port - low).

Mixed traffic (several base addresses, packet i on address i % n) keeps its mix at every trial
size: the step stays inside each base's /16, so a template that matches one base's /16 (say
127.1.0.0/16 of 127.1.0.1, 127.2.0.1, ...) matches the same share of every trial, however many
times the ports wrap.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

from harness.spec import PROTOCOLS, TrialSpec

CLASSIFY_DROP = 3  # FWPM_NET_EVENT_TYPE_CLASSIFY_DROP: what a blocking filter produces
WRAP_SHIFT = 8     # the address steps in its third octet each time the ports wrap


@dataclass(frozen=True)
class TrafficPlan:
    seq: np.ndarray             # int64, 0..count-1
    remote_port: np.ndarray     # int64
    remote_v4: np.ndarray       # int64 IPv4 address (host order)
    expected: np.ndarray        # bool: the subscriber should get this packet's event (template, listener)
    port_low: int
    port_count: int
    listened: np.ndarray | None = None  # bool: a receiver listened (inbound layers; None: every packet)

    def decode(self, remote_v4: int, port: int) -> int:
        """The sequence number of the packet an event reports by its remote tuple."""
        step = ((remote_v4 >> WRAP_SHIFT) & 0xFF) - ((int(self.remote_v4[0]) >> WRAP_SHIFT) & 0xFF) if len(self.remote_v4) else 0
        return step * self.port_count + (port - self.port_low)


def max_packets(spec: TrialSpec) -> int:
    """The most packets a trial can have: each its own remote tuple, the filter's ports times the
    addresses the port wraps step through (the third octet, up to 255)."""
    top = max((int(ipaddress.IPv4Address(a)) >> WRAP_SHIFT) & 0xFF for a in spec.traffic.remote_addresses)
    return (256 - top) * spec.filter.port_count


def plan_traffic(spec: TrialSpec) -> TrafficPlan:
    t, f = spec.traffic, spec.filter
    if t.count > max_packets(spec):  # before any array is made for it
        raise ValueError(f"a trial of {t.count} packets needs more remote tuples than the filter's "
                         f"{f.port_count} ports x the loopback addresses above {t.remote_addresses[0]} "
                         f"({max_packets(spec):,} at most)")
    seq = np.arange(t.count, dtype=np.int64)
    port = f.remote_port_low + seq % f.port_count
    bases = np.asarray([int(ipaddress.IPv4Address(a)) for a in t.remote_addresses], dtype=np.int64)
    if len({(b >> WRAP_SHIFT) & 0xFF for b in bases.tolist()}) > 1:
        raise ValueError("mixed traffic addresses must share their third octet (it numbers the port wraps): "
                         + ", ".join(t.remote_addresses))
    wraps = seq // f.port_count
    base = bases[seq % len(bases)]
    if len(seq) and ((base >> WRAP_SHIFT) & 0xFF).max() + wraps[-1] > 255:
        raise ValueError(f"a trial of {t.count} packets needs more remote tuples than the filter's "
                         f"{f.port_count} ports x the loopback addresses above {t.remote_addresses[0]}")
    remote = base + (wraps << WRAP_SHIFT)
    network = ipaddress.IPv4Network(f.remote_prefix)
    first, last = int(network.network_address), int(network.broadcast_address)
    if len(seq) and (remote.min() < first or remote.max() > last):
        raise ValueError(f"a trial of {t.count} packets runs out of addresses inside the filter's {network}")
    expected = template_mask(spec, port, remote)
    if t.schedule is not None:  # a trace: only the packets that its layer turns into events
        expected &= t.schedule.events
    return TrafficPlan(seq, port, remote, expected, f.remote_port_low, f.port_count)


def template_mask(spec: TrialSpec, port: np.ndarray, remote_v4: np.ndarray) -> np.ndarray:
    """Conditions AND'ed, as WFP evaluates a net-event template."""
    mask = np.ones(len(port), dtype=bool)
    if spec.template is None:
        return mask
    for c in spec.template.conditions:
        if c.field == "remote_port":
            high = c.high if c.high is not None else int(c.value)
            mask &= (port >= int(c.value)) & (port <= high)
        elif c.field == "remote_address":  # an address, or a prefix such as 127.1.0.0/16
            network = ipaddress.IPv4Network(str(c.value))
            netmask = int(network.netmask)
            mask &= (remote_v4 & netmask) == int(network.network_address)
        elif c.field == "protocol":
            value = PROTOCOLS.get(str(c.value), c.value)
            mask &= PROTOCOLS[spec.filter.protocol] == int(value)
        elif c.field == "net_event_type":
            mask &= int(c.value) == CLASSIFY_DROP
    return mask
