"""Registered network ranges (CIDR) and whether a request comes from one of them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadNetworkError(ValueError):
    pass


def parse_networks(ranges: Iterable[str]) -> list[str]:
    """Normalised CIDR strings; refuses host bits set and absurdly wide ranges."""
    out = []
    for text in ranges:
        try:
            net = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as exc:
            raise BadNetworkError(f"{text!r} is not a network range in CIDR form such as "
                             f"192.0.2.0/24 ({exc})") from None
        if net.prefixlen < (8 if net.version == 4 else 16):
            raise BadNetworkError(f"{text} is too wide to name one institution's networks "
                             f"(at most /8 for IPv4, /16 for IPv6)")
        out.append(str(net))
    return sorted(set(out))


def address_in(address: str | None, ranges: Iterable[str]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(r) for r in ranges)
