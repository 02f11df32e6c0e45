"""Fixed-width unsigned fields, shared by every DHCPv6 builder.

`int.to_bytes` raises OverflowError on a value too wide; the builders promise
ValueError naming the field, like `netboot.dhcpwire.packet.build_packet`.
"""

from __future__ import annotations


def pack_uint(value: int, size: int, what: str) -> bytes:
    """`value` as `size` big-endian bytes, or ValueError naming `what`."""
    if not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{what} {value} does not fit {8 * size} unsigned bits")
    return value.to_bytes(size, "big")
