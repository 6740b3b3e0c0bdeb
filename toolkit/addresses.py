"""What a peer's address counts as, for limits and for what the customer is shown.

A *source* is the network its owner controls: an IPv4 address as it is, or
the /64 of an IPv6 address (one host is commonly given a whole /64, so
counting its addresses one by one would count nothing). An IPv4 client of a
dual-stack socket counts as its IPv4 address. Used by the agent's slow-down
of failed consent tries (toolkit.consent._sources) and the relay's limits
(toolkit.relay._limits) alike.
"""

from __future__ import annotations

import ipaddress

#: An IPv6 source is its network of this many bits.
IPV6_PREFIX = 64


def source_of(address: str | None) -> str:
    """What ``address`` counts as: itself (IPv4), or its /64 network (IPv6)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # without a zone (fe80::1%eth0)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


__all__ = ["IPV6_PREFIX", "source_of"]
