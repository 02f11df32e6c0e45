"""The addresses of the network interfaces the daemon is told to serve on.

Services that must answer from the right source address (TFTP transfer ports,
DHCP server identifiers) bind per address rather than to 0.0.0.0. The list
comes from iproute2's JSON output, which every Debian system has.

TFTP and HTTP listen on both families (`listen_addresses`): every IPv4 and
every IPv6 address of the served interfaces, link-local ones with their zone
(`fe80::1%nb0`, which Python's socket layer resolves to the interface's
index when binding), or the two wildcards `""` (0.0.0.0) and `::`.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import subprocess
from ipaddress import IPv4Interface, IPv6Interface
from typing import Any

from netboot.macaddr import MacAddress, mac_from_bytes

IPV6_ANY = "::"


def _addr_info(interface: str, family: str) -> list[dict[str, Any]]:
    """iproute2's `addr_info` entries of one family (`-4` or `-6`) on `interface`."""
    done = subprocess.run(
        ["ip", "-j", family, "addr", "show", "dev", interface],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(f"cannot list addresses of {interface}: {done.stderr.strip()}")
    return [info for link in json.loads(done.stdout or "[]") for info in link.get("addr_info", [])]


def ipv4_addresses(interface: str) -> list[IPv4Interface]:
    """The IPv4 addresses (with prefix) configured on `interface`, in order."""
    return [
        IPv4Interface(f"{info['local']}/{info['prefixlen']}")
        for info in _addr_info(interface, "-4")
        if info.get("family") == "inet"
    ]


def ipv6_addresses(interface: str) -> list[IPv6Interface]:
    """The IPv6 addresses (with prefix) on `interface`, link-local included, in order.

    An address whose duplicate address detection failed is left out (the
    kernel never sends from it); a tentative one stays, as it is usable in the
    second a client takes to fetch a URL naming it. The DHCPv6 service names
    the first non-link-local one in boot URLs, else the link-local one.
    Without a zone: the interface is the one asked about (`scoped` adds it
    where a socket needs it).
    """
    return [
        IPv6Interface(f"{info['local']}/{info['prefixlen']}")
        for info in _addr_info(interface, "-6")
        if info.get("family") == "inet6" and not info.get("dadfailed")
    ]


def scoped(address: IPv6Interface, interface: str) -> str:
    """The address as a socket takes it: a link-local one with `%interface`."""
    ip = address.ip
    return f"{ip}%{interface}" if ip.is_link_local else str(ip)


def listen_addresses(interfaces: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """What TFTP and HTTP listen on, both families: every IPv4 address of the named
    interfaces, and every IPv6 one (link-local with its zone), or the two wildcards.

    Returns (addresses, interfaces that have no IPv6 address) so that the
    caller can say so: an interface without IPv6 is served over IPv4 alone.
    Raises OSError when the named interfaces have no address of either family.
    """
    if not interfaces:
        return ["", IPV6_ANY], []
    ipv4 = [str(a.ip) for name in interfaces for a in ipv4_addresses(name)]
    ipv6: list[str] = []
    without_ipv6 = []
    for name in interfaces:
        found = [scoped(address, name) for address in ipv6_addresses(name)]
        ipv6 += found
        if not found:
            without_ipv6.append(name)
    if not ipv4 and not ipv6:
        raise OSError(f"no IPv4 or IPv6 address on {', '.join(interfaces)}")
    return ipv4 + ipv6, without_ipv6


def interface_networks(interfaces: tuple[str, ...]) -> list[tuple[str, IPv4Interface]]:
    """(name, address/prefix) of the named interfaces, or of every interface."""
    names = list(interfaces) or [name for _, name in socket.if_nameindex()]
    return [(name, address) for name in names for address in ipv4_addresses(name)]


def ipv6_networks(interfaces: tuple[str, ...]) -> list[tuple[str, IPv6Interface]]:
    """(name, address/prefix) of the IPv6 addresses of the named interfaces, or of all."""
    names = list(interfaces) or [name for _, name in socket.if_nameindex()]
    return [(name, address) for name in names for address in ipv6_addresses(name)]


SIOCGIFHWADDR = 0x8927
IFREQ = struct.Struct("16sH6s")
"""The head of `struct ifreq` as SIOCGIFHWADDR fills it: name, sa_family, the address."""


def interface_mac(interface: str) -> bytes:
    """The interface's link-layer address, asked of the kernel in the caller's network
    namespace (/sys shows the namespace it was mounted in, which may be another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = interface.encode()[:15].ljust(IFREQ.size + 16, b"\0")
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, request)
    _, _, mac = IFREQ.unpack_from(reply)
    return bytes(mac)


def first_hardware_address(interfaces: tuple[str, ...]) -> MacAddress:
    """The MAC of the first named interface, or of the first interface that has one: what
    our DHCPv6 DUID-LL is made of, so it stays the same across restarts."""
    for name in interfaces or tuple(name for _, name in socket.if_nameindex()):
        mac = interface_mac(name)
        if any(mac):
            return mac_from_bytes(mac)
    raise OSError(f"no interface with a hardware address among {', '.join(interfaces) or 'all'}")
