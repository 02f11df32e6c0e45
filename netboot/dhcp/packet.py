"""DHCP packets as values, dissected and built by scapy; the only module importing it.

scapy 2.8 never raises while dissecting DHCP: a truncated option is left as raw
bytes at the end of the option list, and a packet cut before the magic cookie
comes back as a bare BOOTP layer. `parse_request` turns both into
`MalformedPacket`, and hands on every option as `(code, raw bytes)` in wire
order, re-encoded by scapy's own option field, so an option that appears
several times (BSDP's option 43) keeps all its instances.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from scapy.layers.dhcp import BOOTP, DHCP, DHCPOptionsField

from netboot.dhcp.options import BOOTREPLY, BOOTREQUEST, MAX_OPTION_LENGTH, MIN_REPLY_SIZE, Option
from netboot.errors import MalformedPacket
from netboot.macaddr import MacAddress, mac_from_bytes

MAGIC_COOKIE = b"\x63\x82\x53\x63"
HEADER_SIZE = 236
ZERO = "0.0.0.0"  # noqa: S104 - the unset address of a BOOTP field, not a bind
_options_field = DHCPOptionsField("options", b"")


@dataclass(frozen=True, slots=True)
class DhcpPacket:
    """One BOOTP/DHCP message (request or reply); addresses as dotted quads."""

    op: int
    xid: int
    chaddr: bytes
    """The 16-byte client hardware address field as sent."""
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: str = ZERO
    yiaddr: str = ZERO
    siaddr: str = ZERO
    giaddr: str = ZERO
    sname: bytes = b""
    file: bytes = b""
    options: tuple[tuple[int, bytes], ...] = field(default_factory=tuple)
    """Every option in wire order, pad and end left out."""

    @property
    def mac(self) -> MacAddress:
        return mac_from_bytes(self.chaddr[:6])

    def option(self, code: int) -> bytes | None:
        """The first instance of an option."""
        return next((value for number, value in self.options if number == code), None)

    def all_of(self, code: int) -> list[bytes]:
        """Every instance of an option, in order (the receiver concatenates them)."""
        return [value for number, value in self.options if number == code]

    @property
    def message_type(self) -> int | None:
        value = self.option(Option.MESSAGE_TYPE)
        return value[0] if value is not None and len(value) == 1 else None


def parse_packet(datagram: bytes) -> DhcpPacket:
    """Dissect a DHCP datagram; raises MalformedPacket, and nothing else, on garbage."""
    if len(datagram) < HEADER_SIZE + len(MAGIC_COOKIE):
        raise MalformedPacket(f"{len(datagram)} bytes is too short for a DHCP message")
    if datagram[HEADER_SIZE : HEADER_SIZE + 4] != MAGIC_COOKIE:
        raise MalformedPacket("no DHCP magic cookie")
    try:
        dissected = BOOTP(datagram)
    except Exception as error:  # noqa: BLE001 - scapy can raise anything on odd input
        raise MalformedPacket(f"undecodable BOOTP header: {error}") from None
    dhcp = dissected.getlayer(DHCP)
    if dhcp is None:
        raise MalformedPacket("no DHCP options after the magic cookie")
    options: list[tuple[int, bytes]] = []
    for item in dhcp.options:
        if item == "end":
            break  # RFC 2132 section 3.2: nothing after END is an option
        if item == "pad":
            continue
        if isinstance(item, bytes):
            raise MalformedPacket(f"truncated DHCP option at {item[:4].hex()}")
        encoded: bytes = _options_field.i2m(None, [item])  # type: ignore[no-untyped-call]
        if len(encoded) < 2 or len(encoded) != encoded[1] + 2:
            raise MalformedPacket(f"option {item[0]!r} does not re-encode")
        options.append((encoded[0], encoded[2:]))
    if dissected.op not in (BOOTREQUEST, BOOTREPLY):
        raise MalformedPacket(f"BOOTP op {dissected.op} is neither request nor reply")
    return DhcpPacket(
        op=dissected.op,
        xid=dissected.xid,
        chaddr=bytes(dissected.chaddr).ljust(16, b"\x00")[:16],
        htype=dissected.htype,
        hlen=dissected.hlen,
        hops=dissected.hops,
        secs=dissected.secs,
        flags=int(dissected.flags),
        ciaddr=dissected.ciaddr,
        yiaddr=dissected.yiaddr,
        siaddr=dissected.siaddr,
        giaddr=dissected.giaddr,
        sname=bytes(dissected.sname).rstrip(b"\x00"),
        file=bytes(dissected.file).rstrip(b"\x00"),
        options=tuple(options),
    )


def build_packet(packet: DhcpPacket, pad_to: int = MIN_REPLY_SIZE) -> bytes:
    """Encode a packet; refuses fields that do not fit instead of truncating them."""
    if len(packet.sname) > 63:
        raise ValueError(f"sname of {len(packet.sname)} bytes does not fit in 64 with its NUL")
    if len(packet.file) > 127:
        raise ValueError(f"file of {len(packet.file)} bytes does not fit in 128 with its NUL")
    for code, value in packet.options:
        if len(value) > MAX_OPTION_LENGTH:
            raise ValueError(f"option {code} is {len(value)} bytes, over 255")
    for address in (packet.ciaddr, packet.yiaddr, packet.siaddr, packet.giaddr):
        ipaddress.IPv4Address(address)
    header = BOOTP(
        op=packet.op,
        htype=packet.htype,
        hlen=packet.hlen,
        hops=packet.hops,
        xid=packet.xid,
        secs=packet.secs,
        flags=packet.flags,
        ciaddr=packet.ciaddr,
        yiaddr=packet.yiaddr,
        siaddr=packet.siaddr,
        giaddr=packet.giaddr,
        chaddr=packet.chaddr.ljust(16, b"\x00"),
        sname=packet.sname.ljust(64, b"\x00"),
        file=packet.file.ljust(128, b"\x00"),
        options=MAGIC_COOKIE,
    )
    options: list[object] = [(code, value) for code, value in packet.options]
    options.append("end")
    return bytes(header / DHCP(options=options)).ljust(pad_to, b"\x00")


def option_space(max_message_size: int) -> int:
    """Bytes of options (END included) that fit a message of this IP datagram size."""
    return max_message_size - 28 - HEADER_SIZE - len(MAGIC_COOKIE)


def encode_options(options: Sequence[tuple[int, bytes]]) -> int:
    """Bytes these options take on the wire (each code, length and value)."""
    return sum(2 + len(value) for _, value in options)
