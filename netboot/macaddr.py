"""Ethernet (MAC) addresses as written by admins and as carried in chaddr.

NBImageInfo.plist lists MACs as text; Apple's bootpd parses them with
ether_aton(3), so `0:1b:63:a:b:c` (leading zeros dropped) is as valid as
`00:1b:63:0a:0b:0c`. We accept exactly what ether_aton accepts (six groups of one
or two hex digits separated by colons) and keep one canonical form, lower-case and
zero-padded, so comparisons with a client's chaddr are plain string equality.
"""

from __future__ import annotations

import re
from typing import NewType

MacAddress = NewType("MacAddress", str)
"""A MAC in canonical form: `aa:bb:cc:dd:ee:ff`."""

_ETHER_ATON = re.compile(r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}")


def parse_mac(text: str) -> MacAddress:
    """Return the canonical form of `text`, or raise ValueError saying why not."""
    if not _ETHER_ATON.fullmatch(text):
        raise ValueError(f"{text!r} is not a MAC address (six hex octets separated by ':')")
    return MacAddress(":".join(f"{int(octet, 16):02x}" for octet in text.split(":")))


def mac_from_bytes(raw: bytes) -> MacAddress:
    """Canonical form of a 6-byte hardware address (a DHCP chaddr prefix)."""
    if len(raw) != 6:
        raise ValueError(f"a MAC address is 6 bytes, got {len(raw)}")
    return MacAddress(raw.hex(":"))
