"""Which hosts are this machine's own, and which addresses are private networks'."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where a notification must not go unless the clinic allows it (contract §14, "Notifications"):
# private and link-local networks, shared address space (carrier-grade NAT), IPv6 unique-local
# and link-local, and "this network" / the unspecified address, which Linux connects to the
# machine itself by another name than loopback.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; not 0.0.0.0, ::, or any other name."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def literal(host: str) -> IPAddress | None:
    """The address `host` is written as (`[::1]` too), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_private(address: IPAddress) -> bool:
    """Whether `address` lies in a private or link-local network (`PRIVATE_NETWORKS`),
    looking through an IPv4-mapped (`::ffff:10.0.0.5`) or IPv4-compatible IPv6 form. Loopback
    is not private here: it is this machine, allowed for development."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or _ipv4_compatible(address)
        if inner is not None:
            address = inner
    if address.is_loopback:
        return False
    return any(address.version == n.version and address in n for n in PRIVATE_NETWORKS)


def _ipv4_compatible(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a deprecated IPv4-compatible form (`::10.0.0.5`), if it is one
    (not `::` nor `::1`, which are IPv6's own)."""
    value = int(address)
    if value >> 32 == 0 and value > 1:
        return ipaddress.IPv4Address(value)
    return None
