"""The scapy codec the daemon used before `netboot.dhcpwire.packet` went hand-written.

scapy dissects and builds BOOTP/DHCP the way packet tools see it, so it is the
oracle the hand-written codec is checked against (tests/test_dhcp_codec.py):
the same datagram in gives the same values or the same refusal out, and the
same packet builds to identical bytes.
"""

from __future__ import annotations

import ipaddress

from scapy.layers.dhcp import BOOTP, DHCP, DHCPOptionsField

from netboot.dhcpwire.options import BOOTREPLY, BOOTREQUEST, MAX_OPTION_LENGTH, MIN_REPLY_SIZE
from netboot.dhcpwire.packet import HEADER_SIZE, MAGIC_COOKIE, DhcpPacket
from netboot.errors import MalformedPacket

_options_field = DHCPOptionsField("options", b"")


def scapy_parse(datagram: bytes) -> DhcpPacket:
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


def scapy_build(packet: DhcpPacket, pad_to: int = MIN_REPLY_SIZE) -> bytes:
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
