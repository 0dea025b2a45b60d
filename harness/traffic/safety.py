"""Where test traffic may go: loopback, or addresses inside a namespace the harness created."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


class UnsafeDestination(ValueError):
    pass


def check_destinations(addresses: Iterable[str], own_namespace_addresses: Iterable[str] = ()) -> None:
    allowed = {ipaddress.IPv4Address(a) for a in own_namespace_addresses}
    for text in addresses:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            raise UnsafeDestination(f"refusing to send to {text!r}: not an IPv4 address") from None
        if address not in LOOPBACK and address not in allowed:
            raise UnsafeDestination(f"refusing to send to {address}: test traffic goes only to loopback "
                                    "or to addresses inside a namespace the harness created")
