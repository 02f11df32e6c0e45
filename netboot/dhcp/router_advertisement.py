"""The Router Advertisement that ends iPXE's IPv6 wait on an IPv4-only lab net.

iPXE (with IPv6 compiled in, as QEMU's ROMs and `ipxe.efi` have it) solicits
a router at start and waits for an answer before it boots: about 13 s on the
ROMs Debian ships (docs/protocols/pxe.md §6.3). Any Router Advertisement stops the wait;
one with router lifetime 0, M = O = 0 and no prefix tells it "IPv6: nothing
to configure" and it boots on over IPv4 at once. The daemon sends it only
when told to (`[dhcp] answer_router_solicitations`): on a network with real
IPv6 routers it would be noise.

Only the ICMPv6 message is built here; the kernel adds the IPv6 header and
the checksum (RFC 3542: it must for ICMPv6 raw sockets).
"""

from __future__ import annotations

import struct

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
SOURCE_LINK_LAYER_ADDRESS = 1
HOP_LIMIT = 255
"""RFC 4861 6.1: hosts drop an RA whose hop limit is not 255 (it was forwarded)."""


def lifetime_zero_advertisement(mac: bytes) -> bytes:
    """RA: no hop limit advice, M = O = 0, router lifetime 0, no prefix; our MAC."""
    if len(mac) != 6:
        raise ValueError("a link-layer address is 6 bytes")
    header = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 0, 0, 0, 0, 0)
    return header + bytes((SOURCE_LINK_LAYER_ADDRESS, 1)) + mac


def is_router_solicitation(message: bytes) -> bool:
    """An RS as RFC 4861 6.1.1 accepts it: type 133, code 0, at least 8 bytes."""
    return len(message) >= 8 and message[0] == ROUTER_SOLICITATION and message[1] == 0
