"""The per-packet plan of a trial: sequence, remote port, remote address, and whether the
subscription template lets its event through. Shared by every platform so that they all
send, and account for, the same packets.

Every packet of a trial gets its own (remote address, remote port) tuple, because WFP's ALE
layers classify only the first packet of a tuple and because the tuple is all a WFP event says
about which packet it was: port = low + seq % ports; once the ports are used up, the address
moves on by one in its third octet (127.0.0.1, 127.0.1.1, ... all loopback), so
seq = (third-octet step) * ports + (port - low).

A trace whose events are one per flow (`--trace-events flows`, the ALE layers' rule) gives every
packet of a flow its flow's tuple instead: WFP's ALE layers classify a flow by its first packet,
so the flow's packets must look like one flow to them. The tuple then numbers the flow, and
`decode` answers with the sequence number of the flow's first packet: the packet whose event it
is. Every platform and the accounting read events through it (an ALE layer that classifies a
blocked flow's later packets again makes more events of that flow: they decode to the same
packet and are counted as repeats, never as other packets).

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
    event_seq: np.ndarray | None = None  # tuple number -> the packet whose event it is (None: the same number)

    def decode(self, remote_v4, port):
        """The sequence number of the packet an event reports by its remote tuple (scalars or
        arrays); with events per flow, the flow's first packet; -1 for a tuple of no flow."""
        tuple_number = self.decode_tuple(remote_v4, port)
        if self.event_seq is None:
            return tuple_number
        known = (tuple_number >= 0) & (tuple_number < len(self.event_seq))
        seq = np.where(known, self.event_seq[np.clip(tuple_number, 0, max(len(self.event_seq) - 1, 0))], -1)
        return int(seq) if np.ndim(seq) == 0 else seq

    def event_of(self, seq: np.ndarray) -> np.ndarray:
        """For packets a platform names by their own sequence number (nflog reads it from the
        payload): the packet whose event each one is (with events per flow, its flow's first)."""
        seq = np.asarray(seq, dtype=np.int64)
        if self.event_seq is None or not len(self.seq):
            return seq
        known = (seq >= 0) & (seq < len(self.seq))
        flow_first = self.event_seq[self.tuple_number]
        return np.where(known, flow_first[np.clip(seq, 0, len(self.seq) - 1)], -1)

    @property
    def tuple_number(self) -> np.ndarray:
        """Each packet's tuple, numbered as decode() counts (its own, or its flow's)."""
        return self.decode_tuple(self.remote_v4, self.remote_port)

    def decode_tuple(self, remote_v4, port):
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
    per_flow = t.schedule is not None and t.schedule.trace_events == "flows"
    # the tuple a packet goes to: its own, or its flow's (flows are numbered by first packet)
    tuple_number = t.schedule.flow if per_flow else seq
    port = f.remote_port_low + tuple_number % f.port_count
    bases = np.asarray([int(ipaddress.IPv4Address(a)) for a in t.remote_addresses], dtype=np.int64)
    if len({(b >> WRAP_SHIFT) & 0xFF for b in bases.tolist()}) > 1:
        raise ValueError("mixed traffic addresses must share their third octet (it numbers the port wraps): "
                         + ", ".join(t.remote_addresses))
    wraps = tuple_number // f.port_count
    base = bases[tuple_number % len(bases)]
    if len(seq) and ((base >> WRAP_SHIFT) & 0xFF).max() + wraps.max() > 255:
        what = f"{int(tuple_number.max()) + 1} flows" if per_flow else f"{t.count} packets"
        raise ValueError(f"a trial of {what} needs more remote tuples than the filter's "
                         f"{f.port_count} ports x the loopback addresses above {t.remote_addresses[0]}")
    remote = base + (wraps << WRAP_SHIFT)
    network = ipaddress.IPv4Network(f.remote_prefix)
    first, last = int(network.network_address), int(network.broadcast_address)
    if len(seq) and (remote.min() < first or remote.max() > last):
        raise ValueError(f"a trial of {t.count} packets runs out of addresses inside the filter's {network}")
    expected = template_mask(spec, port, remote)
    event_seq = None
    if t.schedule is not None:  # a trace: only the packets that its layer turns into events
        expected &= t.schedule.events
        if per_flow:  # flow k's event is its first packet's
            event_seq = np.flatnonzero(t.schedule.events).astype(np.int64)
    return TrafficPlan(seq, port, remote, expected, f.remote_port_low, f.port_count, event_seq=event_seq)


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
