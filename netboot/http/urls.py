"""The one way we write the base of an HTTP URL that points at this server.

BSDP root paths, the UEFI HTTP-boot and iPXE-script URLs in DHCP answers, and
the file URLs inside iPXE scripts all start with it, so they agree on the
host and on whether the port is written (never for 80, which EFI booters and
old Macs take as implied).

An IPv6 host is written in brackets (`http://[fd4e:4254:0:1::1]:8080`). Which
IPv6 address a URL names is `url_host`'s decision (docs/protocols/dhcpv6.md §16):
never a link-local one with a zone, as no boot client reads our zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv6Address, IPv6Interface


def http_base(host: str, port: int) -> str:
    """`http://host` or `http://host:port`; `host` is an IP literal or a name."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}" if port == 80 else f"http://{shown}:{port}"


def url_host(arrival: str, interface_addresses: Sequence[IPv6Interface] = ()) -> str:
    """The host our URLs name for a client whose request arrived on `arrival` (our
    address, as the socket names it; a link-local one with its `%zone`).

    IPv4 and routable IPv6 addresses name themselves. A link-local arrival names
    the first routable (global or ULA) address of the interface it came in on,
    from `interface_addresses`; without one, the link-local address without its
    zone: iPXE takes a zone-less link-local address as one on the device it
    booted from, while a zone must be iPXE's own device name (`net0`), never
    ours (docs/protocols/dhcpv6.md §16).
    """
    if ":" not in arrival:
        return arrival
    address = IPv6Address(arrival.partition("%")[0])
    if not address.is_link_local:
        return str(address)
    routable = [a.ip for a in interface_addresses if not a.ip.is_link_local]
    return str(routable[0]) if routable else str(address)
