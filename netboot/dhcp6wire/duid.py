"""DUIDs, the DHCPv6 identity of a client or server (RFC 8415 §11, RFC 6355).

Options 1 (CLIENTID) and 2 (SERVERID) carry one. Leases are keyed by the
whole DUID; the catalog's assignment by MAC can only use the two types that
carry a link-layer address (LL and LLT) with Ethernet's hardware type, which
`Duid.mac` gives. Other types (EN, UUID, types this code does not know) are
kept whole so they still identify the client (docs/protocols/dhcpv6.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass

from netboot.dhcp6wire.fields import pack_uint
from netboot.dhcp6wire.options import HARDWARE_TYPE_ETHERNET, DuidType
from netboot.errors import MalformedPacket
from netboot.macaddr import MacAddress, mac_from_bytes

MAX_DUID_BODY = 128
"""RFC 8415 §11.1: 1 to 128 octets after the 2-byte type code."""
UUID_SIZE = 16

_FIXED: dict[int, int] = {DuidType.LLT: 6, DuidType.EN: 4, DuidType.LL: 2, DuidType.UUID: UUID_SIZE}
"""Bytes of fixed fields after the type code: LLT hardware type and time, EN
enterprise number, LL hardware type, the UUID itself."""


@dataclass(frozen=True, slots=True)
class Duid:
    """One DUID, split into the fields its type defines.

    `identifier` is the link-layer address (LL, LLT), the vendor's identifier
    (EN), the 16-byte UUID, or for an unknown type everything after its code.
    """

    duid_type: int
    identifier: bytes
    hardware_type: int | None = None
    """LL and LLT: the IANA hardware type of `identifier`."""
    time: int | None = None
    """LLT: seconds since 2000-01-01 UTC, modulo 2^32, when it was made."""
    enterprise_number: int | None = None
    """EN: the vendor's IANA enterprise number."""

    @property
    def mac(self) -> MacAddress | None:
        """The Ethernet MAC in a DUID-LL or DUID-LLT, else None."""
        if (
            self.duid_type in (DuidType.LL, DuidType.LLT)
            and self.hardware_type == HARDWARE_TYPE_ETHERNET
            and len(self.identifier) == 6
        ):
            return mac_from_bytes(self.identifier)
        return None


def parse_duid(raw: bytes, option: str = "DUID") -> Duid:
    """Decode a DUID (the value of option 1 or 2); `option` names it in errors."""
    if len(raw) < 3:
        raise MalformedPacket(f"{option}: {len(raw)} bytes is too short for a DUID")
    if len(raw) - 2 > MAX_DUID_BODY:
        raise MalformedPacket(f"{option}: {len(raw)} bytes, over 2 + {MAX_DUID_BODY}")
    duid_type = int.from_bytes(raw[:2], "big")
    fixed = _FIXED.get(duid_type)
    if fixed is not None and len(raw) < 2 + fixed:
        raise MalformedPacket(
            f"{option}: DUID type {duid_type} ({DuidType(duid_type).name}) of {len(raw)} bytes,"
            f" its fixed fields need {2 + fixed}"
        )
    if duid_type == DuidType.LLT:
        return Duid(
            duid_type,
            raw[8:],
            hardware_type=int.from_bytes(raw[2:4], "big"),
            time=int.from_bytes(raw[4:8], "big"),
        )
    if duid_type == DuidType.EN:
        return Duid(duid_type, raw[6:], enterprise_number=int.from_bytes(raw[2:6], "big"))
    if duid_type == DuidType.LL:
        return Duid(duid_type, raw[4:], hardware_type=int.from_bytes(raw[2:4], "big"))
    if duid_type == DuidType.UUID and len(raw) != 2 + UUID_SIZE:
        raise MalformedPacket(f"{option}: DUID-UUID of {len(raw)} bytes, not {2 + UUID_SIZE}")
    return Duid(duid_type, raw[2:])


def build_duid(duid: Duid) -> bytes:
    """Encode a DUID; refuses one whose type's fields are missing or do not fit."""
    header = pack_uint(duid.duid_type, 2, "DUID type")
    if duid.duid_type in (DuidType.LL, DuidType.LLT):
        if duid.hardware_type is None:
            raise ValueError(f"DUID type {duid.duid_type} needs a hardware type")
        header += pack_uint(duid.hardware_type, 2, "DUID hardware type")
        if duid.duid_type == DuidType.LLT:
            if duid.time is None:
                raise ValueError("DUID-LLT needs a time")
            header += pack_uint(duid.time, 4, "DUID-LLT time")
    elif duid.duid_type == DuidType.EN:
        if duid.enterprise_number is None:
            raise ValueError("DUID-EN needs an enterprise number")
        header += pack_uint(duid.enterprise_number, 4, "DUID-EN enterprise number")
    elif duid.duid_type == DuidType.UUID and len(duid.identifier) != UUID_SIZE:
        raise ValueError(f"a DUID-UUID is {UUID_SIZE} bytes, got {len(duid.identifier)}")
    encoded = header + duid.identifier
    if not 3 <= len(encoded) <= 2 + MAX_DUID_BODY:
        raise ValueError(f"a DUID of {len(encoded)} bytes is outside 3..{2 + MAX_DUID_BODY}")
    return encoded
