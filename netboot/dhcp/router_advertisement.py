"""The Router Advertisement that ends iPXE's IPv6 wait on an IPv4-only lab net.

iPXE (with IPv6 compiled in, as QEMU's ROMs and `ipxe.efi` have it) solicits
a router at start and waits for an answer before it boots: about 13 s on the
ROMs Debian ships (docs/protocols/pxe.md §6.3). Any Router Advertisement stops the wait;
one with router lifetime 0, M = O = 0 and no prefix tells it "IPv6: nothing
to configure" and it boots on over IPv4 at once. The daemon sends it only
when told to (`[dhcp] answer_router_solicitations`): on a network with real
IPv6 routers it would be noise.

On an IPv6 lab net served by our DHCPv6 (`[dhcp6] router_advertisements`),
the RA is the other kind, `managed_advertisement`: the pool's /64 as an
on-link prefix that hosts must not autoconfigure from (L = 1, A = 0), M = 1
(addresses from DHCPv6) and O = 1 (other configuration from DHCPv6), with
the router lifetime `[dhcp6] router_lifetime` says (1800 s by default: EDK2's
PXEv6 waits 10 s for a route to its boot server unless a default router is
known). It goes out periodically, after a faster initial burst, and in answer
to solicitations (docs/protocols/dhcpv6.md §13).

Only the ICMPv6 message is built here; the kernel adds the IPv6 header and
the checksum (RFC 3542: it must for ICMPv6 raw sockets).
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Network

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
SOURCE_LINK_LAYER_ADDRESS = 1
PREFIX_INFORMATION = 3
MANAGED_FLAG = 0x80
"""M: addresses are available from DHCPv6 (RFC 4861 4.2)."""
OTHER_FLAG = 0x40
"""O: other configuration (DNS, boot options) is available from DHCPv6."""
ON_LINK_FLAG = 0x80
"""L of a prefix-information option: addresses in the prefix are on this link."""
AUTONOMOUS_FLAG = 0x40
"""A: hosts may form addresses in the prefix themselves (SLAAC); we leave it clear."""
PREFIX_VALID_LIFETIME = 2592000
"""Seconds the on-link prefix stays valid: RFC 4861 6.2.1's AdvValidLifetime default."""
PREFIX_PREFERRED_LIFETIME = 604800
"""RFC 4861 6.2.1's AdvPreferredLifetime default."""
MIN_INTERVAL = 10.0
MAX_INTERVAL = 30.0
"""Seconds between two unsolicited RAs, drawn uniformly (RFC 4861 6.2.4; a lab wants
them far more often than the 200-600 s defaults, so a guest that just started does
not wait long)."""
MAX_INITIAL_INTERVAL = 16.0
INITIAL_ADVERTISEMENTS = 3
"""RFC 4861 6.2.4: the first 3 unsolicited RAs come at most 16 s apart."""
MIN_DELAY_BETWEEN_RAS = 3.0
"""RFC 4861 6.2.6: multicast RAs on one interface at least 3 s apart, answers included."""
MAX_ROUTER_LIFETIME = 9000
"""RFC 4861 §6.2.1: AdvDefaultLifetime is at most 9000 seconds."""
HOP_LIMIT = 255
"""RFC 4861 6.1: hosts drop an RA whose hop limit is not 255 (it was forwarded)."""


def lifetime_zero_advertisement(mac: bytes) -> bytes:
    """RA: no hop limit advice, M = O = 0, router lifetime 0, no prefix; our MAC."""
    if len(mac) != 6:
        raise ValueError("a link-layer address is 6 bytes")
    header = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 0, 0, 0, 0, 0)
    return header + bytes((SOURCE_LINK_LAYER_ADDRESS, 1)) + mac


def managed_advertisement(mac: bytes, prefix: IPv6Network, router_lifetime: int = 0) -> bytes:
    """RA: M = O = 1, `router_lifetime` seconds, `prefix` on-link and not for SLAAC; our MAC."""
    if len(mac) != 6:
        raise ValueError("a link-layer address is 6 bytes")
    if not 0 <= router_lifetime <= MAX_ROUTER_LIFETIME:
        raise ValueError(f"router lifetime {router_lifetime} is not 0..{MAX_ROUTER_LIFETIME}")
    header = struct.pack(
        "!BBHBBHII",
        ROUTER_ADVERTISEMENT,
        0,
        0,
        0,
        MANAGED_FLAG | OTHER_FLAG,
        router_lifetime,
        0,
        0,
    )
    prefix_information = struct.pack(
        "!BBBBII4x16s",
        PREFIX_INFORMATION,
        4,  # length in units of 8 bytes
        prefix.prefixlen,
        ON_LINK_FLAG,
        PREFIX_VALID_LIFETIME,
        PREFIX_PREFERRED_LIFETIME,
        prefix.network_address.packed,
    )
    return header + bytes((SOURCE_LINK_LAYER_ADDRESS, 1)) + mac + prefix_information


def unsolicited_delay(sent: int, draw: float) -> float:
    """Seconds until the next unsolicited RA, after `sent` of them; `draw` in [0, 1).

    Uniform between the intervals, so the RAs of several servers do not lock
    into step; the first `INITIAL_ADVERTISEMENTS` wait at most 16 s.
    """
    delay = MIN_INTERVAL + (MAX_INTERVAL - MIN_INTERVAL) * draw
    return min(delay, MAX_INITIAL_INTERVAL) if sent < INITIAL_ADVERTISEMENTS else delay


def solicited_send_time(now: float, last_multicast: float | None) -> float:
    """When the answer to a solicitation heard at `now` may go to all nodes (RFC 4861 6.2.6)."""
    if last_multicast is None:
        return now
    return max(now, last_multicast + MIN_DELAY_BETWEEN_RAS)


def is_router_solicitation(message: bytes) -> bool:
    """An RS as RFC 4861 6.1.1 accepts it: type 133, code 0, at least 8 bytes."""
    return len(message) >= 8 and message[0] == ROUTER_SOLICITATION and message[1] == 0
