"""DHCP packets as values, and their wire codec.

Every option comes out as `(code, raw bytes)` in wire order, so an option
that appears several times (BSDP's option 43) keeps all its instances; a
truncated option, a missing magic cookie or an unknown op is a
`MalformedPacket`, never another exception.

The codec is written on `struct` rather than on scapy's BOOTP/DHCP layers,
which the daemon used first: dissecting and building through scapy cost about
0.6 ms per exchange and held BSDP to ~1,200 INFORM[LIST] answers a second on
one core. scapy stays the oracle: tests/test_dhcp_codec.py checks that both
read the same values and refusals, and build identical bytes.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from netboot.dhcpwire.options import (
    BOOTREPLY,
    BOOTREQUEST,
    MAX_OPTION_LENGTH,
    MIN_REPLY_SIZE,
    Option,
)
from netboot.errors import MalformedPacket
from netboot.macaddr import MacAddress, mac_from_bytes

MAGIC_COOKIE = b"\x63\x82\x53\x63"
HEADER_SIZE = 236
ZERO = "0.0.0.0"  # noqa: S104 - the unset address of a BOOTP field, not a bind


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
        for number, value in self.options:  # a loop: several times faster than next(genexpr)
            if number == code:
                return value
        return None

    def all_of(self, code: int) -> list[bytes]:
        """Every instance of an option, in order (the receiver concatenates them)."""
        return [value for number, value in self.options if number == code]

    @property
    def message_type(self) -> int | None:
        value = self.option(Option.MESSAGE_TYPE)
        return value[0] if value is not None and len(value) == 1 else None


_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s4s")


def parse_packet(datagram: bytes) -> DhcpPacket:
    """Dissect a DHCP datagram; raises MalformedPacket, and nothing else, on garbage."""
    if len(datagram) < HEADER_SIZE + len(MAGIC_COOKIE):
        raise MalformedPacket(f"{len(datagram)} bytes is too short for a DHCP message")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file, cookie) = _HEADER.unpack_from(datagram)  # fmt: skip
    if cookie != MAGIC_COOKIE:
        raise MalformedPacket("no DHCP magic cookie")
    options: list[tuple[int, bytes]] = []
    at, end = _HEADER.size, len(datagram)
    while at < end:
        code = datagram[at]
        if code == Option.END:
            break  # RFC 2132 section 3.2: nothing after END is an option
        if code == Option.PAD:
            at += 1
            continue
        if at + 2 > end or at + 2 + datagram[at + 1] > end:
            raise MalformedPacket(f"truncated DHCP option at {datagram[at : at + 4].hex()}")
        length = datagram[at + 1]
        options.append((code, datagram[at + 2 : at + 2 + length]))
        at += 2 + length
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise MalformedPacket(f"BOOTP op {op} is neither request nor reply")
    if end == _HEADER.size:
        raise MalformedPacket("no DHCP options after the magic cookie")
    for code, value in options:
        if code == Option.MESSAGE_TYPE and len(value) != 1:
            raise MalformedPacket(f"option 53 (message type) of {len(value)} bytes")
    return DhcpPacket(
        op=op,
        xid=xid,
        chaddr=chaddr,
        htype=htype,
        hlen=hlen,
        hops=hops,
        secs=secs,
        flags=flags,
        ciaddr=socket.inet_ntoa(ciaddr),
        yiaddr=socket.inet_ntoa(yiaddr),
        siaddr=socket.inet_ntoa(siaddr),
        giaddr=socket.inet_ntoa(giaddr),
        sname=sname.rstrip(b"\x00"),
        file=file.rstrip(b"\x00"),
        options=tuple(options),
    )


def peek_message_type(datagram: bytes) -> int | None:
    """Option 53 when it is the first option, as clients send it; None otherwise.

    For deciding what to drop before dissecting (a server shedding load reads
    thousands of datagrams it will not answer); None means "dissect to know",
    never "not DHCP", and nothing is checked beyond the three bytes read.
    """
    at = HEADER_SIZE + len(MAGIC_COOKIE)
    if len(datagram) > at + 2 and datagram[at] == Option.MESSAGE_TYPE and datagram[at + 1] == 1:
        return datagram[at + 2]
    return None


def build_packet(packet: DhcpPacket, pad_to: int = MIN_REPLY_SIZE) -> bytes:
    """Encode a packet; refuses fields that do not fit instead of truncating them."""
    if len(packet.sname) > 63:
        raise ValueError(f"sname of {len(packet.sname)} bytes does not fit in 64 with its NUL")
    if len(packet.file) > 127:
        raise ValueError(f"file of {len(packet.file)} bytes does not fit in 128 with its NUL")
    encoded = bytearray(
        _HEADER.pack(
            packet.op,
            packet.htype,
            packet.hlen,
            packet.hops,
            packet.xid,
            packet.secs,
            packet.flags,
            _packed(packet.ciaddr),
            _packed(packet.yiaddr),
            _packed(packet.siaddr),
            _packed(packet.giaddr),
            packet.chaddr[:16],
            packet.sname,
            packet.file,
            MAGIC_COOKIE,
        )
    )
    for code, value in packet.options:
        if len(value) > MAX_OPTION_LENGTH:
            raise ValueError(f"option {code} is {len(value)} bytes, over 255")
        encoded += bytes((code, len(value)))
        encoded += value
    encoded.append(Option.END)
    return bytes(encoded.ljust(pad_to, b"\x00"))


_ZERO_PACKED = bytes(4)


def _packed(address: str) -> bytes:
    """An address field; ValueError (not a silent 0.0.0.0) for anything else."""
    if address == ZERO:  # most of a reply's four address fields
        return _ZERO_PACKED
    try:
        return socket.inet_pton(socket.AF_INET, address)
    except OSError:
        raise ValueError(f"{address!r} is not a dotted-quad IPv4 address") from None


def option_space(max_message_size: int) -> int:
    """Bytes of options (END included) that fit a message of this IP datagram size."""
    return max_message_size - 28 - HEADER_SIZE - len(MAGIC_COOKIE)


def encode_options(options: Sequence[tuple[int, bytes]]) -> int:
    """Bytes these options take on the wire (each code, length and value)."""
    return sum(2 + len(value) for _, value in options)


def reply_to(
    request: DhcpPacket,
    options: Sequence[tuple[int, bytes]],
    *,
    yiaddr: str = ZERO,
    siaddr: str = ZERO,
    sname: bytes = b"",
    file: bytes = b"",
) -> DhcpPacket:
    """A BOOTREPLY to `request`: the fields RFC 2131 says to copy are copied.

    xid, chaddr and flags must match or iPXE and EDK2 drop the reply; giaddr
    is copied so a relay can pass it back; ciaddr too, as Apple and PXE 4011
    servers do.
    """
    return DhcpPacket(
        op=BOOTREPLY,
        xid=request.xid,
        chaddr=request.chaddr,
        htype=request.htype,
        hlen=request.hlen,
        flags=request.flags,
        ciaddr=request.ciaddr,
        yiaddr=yiaddr,
        siaddr=siaddr,
        giaddr=request.giaddr,
        sname=sname,
        file=file,
        options=tuple((int(code), value) for code, value in options),
    )


def max_reply_size(request: DhcpPacket) -> int:
    """The largest IP datagram the client takes: its option 57, else RFC 2131's 576."""
    raw = request.option(Option.MAX_MESSAGE_SIZE)
    size = int.from_bytes(raw, "big") if raw is not None and len(raw) == 2 else 0
    return min(max(size, 576), 1500)
