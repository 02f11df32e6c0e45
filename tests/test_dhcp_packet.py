"""DHCP packets: the documented BSDP vectors, a malformed corpus and properties of parse/build.

Every datagram here is written byte by byte from the annotated hex of
docs/protocols/bsdp.md §8 (client MAC 00:16:cb:12:34:56, client IP
192.0.2.50, server IP 192.0.2.10), checked there with tshark 4.0.17; none is
produced by our encoder. The BOOTP header layout is RFC 951/2131
(docs/protocols/bsdp.md §2), the options RFC 2132 (docs/protocols/bsdp.md §3).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.dhcpwire.packet import (
    DhcpPacket,
    build_packet,
    option_space,
    parse_packet,
    peek_message_type,
)
from netboot.errors import MalformedPacket

CLIENT_MAC = bytes.fromhex("0016cb123456")
CHADDR = CLIENT_MAC + bytes(10)
CLIENT_CLASS = b"AAPLBSDPC/i386/MacBookPro11,1"
SERVER_NAME = b"netboot-srv"
BOOTER = b"/private/tftpboot/NetBoot/NetBootSP0/HighSierra.nbi/i386/booter"
ROOT_PATH = b"http://192.0.2.10/NetBoot/NetBootSP0/HighSierra.nbi/NetBoot.dmg"


def h(text: str) -> bytes:
    """Bytes from the spaced hex of docs/protocols/bsdp.md §8."""
    return bytes.fromhex(text)


def bootp_header(
    *,
    op: str,
    xid: str,
    siaddr: str = "00 00 00 00",
    sname: bytes = b"",
    file: bytes = b"",
) -> bytes:
    """Offsets 0-239 of every packet in docs/protocols/bsdp.md §8 (only these fields differ)."""
    return b"".join(
        [
            h(op),  # 0 op: 01 BOOTREQUEST, 02 BOOTREPLY
            h("01"),  # 1 htype: Ethernet
            h("06"),  # 2 hlen: 6-byte MAC
            h("00"),  # 3 hops
            h(xid),  # 4 xid
            h("00 00"),  # 8 secs
            h("00 00"),  # 10 flags
            h("c0 00 02 32"),  # 12 ciaddr: 192.0.2.50, the client's own address
            h("00 00 00 00"),  # 16 yiaddr: BSDP never allocates
            h(siaddr),  # 20 siaddr
            h("00 00 00 00"),  # 24 giaddr
            h("00 16 cb 12 34 56"),  # 28 chaddr: 00:16:cb:12:34:56
            bytes(10),  # 34 chaddr padding to 16 bytes
            sname.ljust(64, b"\x00"),  # 44 sname, NUL-padded
            file.ljust(128, b"\x00"),  # 108 file, NUL-padded
            h("63 82 53 63"),  # 236 magic cookie
        ]
    )


@dataclass(frozen=True)
class Vector:
    """A datagram, the packet it parses to, and a cut-short twin that must not parse."""

    datagram: bytes
    packet: DhcpPacket
    unpadded: bytes
    """The datagram up to and including END."""

    @property
    def truncated(self) -> bytes:
        """END dropped and the last option cut by one byte: its length runs past the end."""
        return self.unpadded[:-2]


def vector(unpadded: bytes, packet: DhcpPacket, size: int) -> Vector:
    return Vector(unpadded.ljust(size, b"\x00"), packet, unpadded)


# 8.1 INFORM[LIST] from the client: 300 bytes.
INFORM_LIST = vector(
    b"".join(
        [
            bootp_header(op="01", xid="12 34 56 78"),
            h("35 01 08"),  # 53 DHCP message type: 8 INFORM
            h("37 02 3c 2b"),  # 55 parameter request list: 60, 43
            h("39 02 05 dc"),  # 57 max DHCP message size: 1500
            h("3c 1d"),  # 60 vendor class, 29 bytes
            CLIENT_CLASS,  # "AAPLBSDPC/i386/MacBookPro11,1"
            h("2b 0f"),  # 43 vendor specific, 15 bytes
            h("01 01 01"),  # BSDP 1 message type: LIST
            h("02 02 01 01"),  # BSDP 2 version: 1.1
            h("05 02 03 e8"),  # BSDP 5 reply port: 1000
            h("0c 02 20 00"),  # BSDP 12 max message size: 8192
            h("ff"),  # end
        ]
    ),
    DhcpPacket(
        op=1,
        xid=0x12345678,
        chaddr=CHADDR,
        ciaddr="192.0.2.50",
        options=(
            (53, h("08")),
            (55, h("3c 2b")),
            (57, h("05 dc")),
            (60, CLIENT_CLASS),
            (43, h("01 01 01 02 02 01 01 05 02 03 e8 0c 02 20 00")),
        ),
    ),
    300,
)

# 8.2 ACK[LIST] from the server, two images: 312 bytes, no padding needed.
ACK_LIST = vector(
    b"".join(
        [
            bootp_header(op="02", xid="12 34 56 78", siaddr="c0 00 02 0a"),
            h("35 01 05"),  # 53 DHCP message type: 5 ACK
            h("36 04 c0 00 02 0a"),  # 54 server identifier: 192.0.2.10
            h("3c 09"),  # 60 vendor class, 9 bytes
            b"AAPLBSDPC",  # the server form
            h("2b 31"),  # 43 vendor specific, 49 bytes
            h("01 01 01"),  # BSDP 1 message type: LIST
            h("04 02 80 00"),  # BSDP 4 server priority: 32768
            h("07 04 01 00 00 01"),  # BSDP 7 default image: 0x01000001
            h("09 22"),  # BSDP 9 image list, 34 bytes
            h("01 00 00 01"),  # image id 0x01000001 (Mac OS X, index 1)
            h("0b"),  # name length 11
            b"High Sierra",  # name
            h("81 00 10 00"),  # image id 0x81001000 (install, Mac OS X, index 4096)
            h("0d"),  # name length 13
            b"Install macOS",  # name
            h("ff"),  # end
        ]
    ),
    DhcpPacket(
        op=2,
        xid=0x12345678,
        chaddr=CHADDR,
        ciaddr="192.0.2.50",
        siaddr="192.0.2.10",
        options=(
            (53, h("05")),
            (54, h("c0 00 02 0a")),
            (60, b"AAPLBSDPC"),
            (
                43,
                h("01 01 01 04 02 80 00 07 04 01 00 00 01 09 22")
                + h("01 00 00 01 0b")
                + b"High Sierra"
                + h("81 00 10 00 0d")
                + b"Install macOS",
            ),
        ),
    ),
    312,
)

# 8.3 INFORM[SELECT] from the client: 308 bytes.
INFORM_SELECT = vector(
    b"".join(
        [
            bootp_header(op="01", xid="12 34 56 79"),
            h("35 01 08"),  # 53 DHCP message type: 8 INFORM
            h("37 02 3c 2b"),  # 55 parameter request list: 60, 43
            h("39 02 05 dc"),  # 57 max DHCP message size: 1500
            h("3c 1d"),  # 60 vendor class, 29 bytes
            CLIENT_CLASS,  # "AAPLBSDPC/i386/MacBookPro11,1"
            h("2b 17"),  # 43 vendor specific, 23 bytes
            h("01 01 02"),  # BSDP 1 message type: SELECT
            h("02 02 01 01"),  # BSDP 2 version: 1.1
            h("05 02 03 e8"),  # BSDP 5 reply port: 1000
            h("03 04 c0 00 02 0a"),  # BSDP 3 server identifier: 192.0.2.10
            h("08 04 01 00 00 01"),  # BSDP 8 selected image: 0x01000001
            h("ff"),  # end
        ]
    ),
    DhcpPacket(
        op=1,
        xid=0x12345679,
        chaddr=CHADDR,
        ciaddr="192.0.2.50",
        options=(
            (53, h("08")),
            (55, h("3c 2b")),
            (57, h("05 dc")),
            (60, CLIENT_CLASS),
            (43, h("01 01 02 02 02 01 01 05 02 03 e8 03 04 c0 00 02 0a 08 04 01 00 00 01")),
        ),
    ),
    308,
)

# 8.4 ACK[SELECT] for an HTTP image: 349 bytes.
ACK_SELECT = vector(
    b"".join(
        [
            bootp_header(
                op="02",
                xid="12 34 56 79",
                siaddr="c0 00 02 0a",  # the TFTP server for the booter
                sname=SERVER_NAME,
                file=BOOTER,
            ),
            h("35 01 05"),  # 53 DHCP message type: 5 ACK
            h("36 04 c0 00 02 0a"),  # 54 server identifier: 192.0.2.10
            h("3c 09"),  # 60 vendor class, 9 bytes
            b"AAPLBSDPC",  # the server form
            h("11 3f"),  # 17 root path, 63 bytes
            ROOT_PATH,  # "http://192.0.2.10/NetBoot/NetBootSP0/HighSierra.nbi/NetBoot.dmg"
            h("2b 15"),  # 43 vendor specific, 21 bytes
            h("01 01 02"),  # BSDP 1 message type: SELECT
            h("08 04 01 00 00 01"),  # BSDP 8 selected image: 0x01000001
            h("82 0a"),  # BSDP 130 machine name, 10 bytes
            b"NetBoot001",  # the name
            h("ff"),  # end
        ]
    ),
    DhcpPacket(
        op=2,
        xid=0x12345679,
        chaddr=CHADDR,
        ciaddr="192.0.2.50",
        siaddr="192.0.2.10",
        sname=SERVER_NAME,
        file=BOOTER,
        options=(
            (53, h("05")),
            (54, h("c0 00 02 0a")),
            (60, b"AAPLBSDPC"),
            (17, ROOT_PATH),
            (43, h("01 01 02 08 04 01 00 00 01 82 0a") + b"NetBoot001"),
        ),
    ),
    349,
)

# 8.5 ACK[FAILED]: 266 bytes of content, padded with zeros to 300. §8.5 gives the
# options, sname and siaddr; the rest of the header answers 8.3 (xid 0x12345679).
ACK_FAILED = vector(
    b"".join(
        [
            bootp_header(op="02", xid="12 34 56 79", siaddr="c0 00 02 0a", sname=SERVER_NAME),
            h("35 01 05"),  # 53 DHCP message type: 5 ACK
            h("36 04 c0 00 02 0a"),  # 54 server identifier: 192.0.2.10
            h("3c 09"),  # 60 vendor class, 9 bytes
            b"AAPLBSDPC",  # the server form
            h("2b 03"),  # 43 vendor specific, 3 bytes
            h("01 01 03"),  # BSDP 1 message type: FAILED
            h("ff"),  # end
        ]
    ),
    DhcpPacket(
        op=2,
        xid=0x12345679,
        chaddr=CHADDR,
        ciaddr="192.0.2.50",
        siaddr="192.0.2.10",
        sname=SERVER_NAME,
        options=(
            (53, h("05")),
            (54, h("c0 00 02 0a")),
            (60, b"AAPLBSDPC"),
            (43, h("01 01 03")),
        ),
    ),
    300,
)

VECTORS = {
    "8.1 INFORM[LIST]": INFORM_LIST,
    "8.2 ACK[LIST]": ACK_LIST,
    "8.3 INFORM[SELECT]": INFORM_SELECT,
    "8.4 ACK[SELECT]": ACK_SELECT,
    "8.5 ACK[FAILED]": ACK_FAILED,
}
all_vectors = pytest.mark.parametrize("vec", VECTORS.values(), ids=VECTORS.keys())


def raises_malformed(datagram: bytes) -> MalformedPacket:
    """parse_packet must raise exactly MalformedPacket (not a subclass, not anything else)."""
    with pytest.raises(MalformedPacket) as caught:
        parse_packet(datagram)
    assert type(caught.value) is MalformedPacket
    return caught.value


# -- the vectors ---------------------------------------------------------------------


def test_vectors_have_the_documented_sizes() -> None:
    sizes = {name: len(vec.datagram) for name, vec in VECTORS.items()}
    assert sizes == {
        "8.1 INFORM[LIST]": 300,
        "8.2 ACK[LIST]": 312,
        "8.3 INFORM[SELECT]": 308,
        "8.4 ACK[SELECT]": 349,
        "8.5 ACK[FAILED]": 300,
    }
    # Spot checks against the offsets of docs/protocols/bsdp.md §8.
    assert INFORM_LIST.datagram[0xEC:0xF0] == h("63 82 53 63")
    assert INFORM_LIST.datagram[0x11A:0x11C] == h("2b 0f")
    assert INFORM_LIST.datagram[0x12B] == 0xFF
    assert ACK_LIST.datagram[0x113:0x115] == h("09 22")
    assert ACK_LIST.datagram[0x137] == 0xFF
    assert INFORM_SELECT.datagram[0x12D:0x133] == h("08 04 01 00 00 01")


@all_vectors
def test_vector_parses_to_its_fields_and_options(vec: Vector) -> None:
    assert parse_packet(vec.datagram) == vec.packet


@all_vectors
def test_vector_without_its_zero_padding_parses_the_same(vec: Vector) -> None:
    assert parse_packet(vec.unpadded) == vec.packet


@all_vectors
def test_vector_builds_back_to_the_same_bytes(vec: Vector) -> None:
    assert build_packet(parse_packet(vec.datagram)) == vec.datagram


@all_vectors
def test_vector_packet_builds_to_the_documented_bytes(vec: Vector) -> None:
    assert build_packet(vec.packet) == vec.datagram


@all_vectors
def test_truncated_twin_is_malformed(vec: Vector) -> None:
    raises_malformed(vec.truncated)


def test_accessors_on_the_inform_list() -> None:
    packet = parse_packet(INFORM_LIST.datagram)
    assert packet.mac == "00:16:cb:12:34:56"
    assert packet.message_type == 8
    assert packet.option(60) == CLIENT_CLASS
    assert packet.option(17) is None
    assert packet.all_of(43) == [h("01 01 01 02 02 01 01 05 02 03 e8 0c 02 20 00")]


def test_ack_select_keeps_sname_file_and_root_path() -> None:
    packet = parse_packet(ACK_SELECT.datagram)
    assert packet.sname == b"netboot-srv"
    assert packet.file == b"/private/tftpboot/NetBoot/NetBootSP0/HighSierra.nbi/i386/booter"
    assert packet.option(17) == ROOT_PATH
    assert packet.message_type == 5


def test_repeated_option_43_keeps_every_instance_in_order() -> None:
    # 8.2's option 43 split in two instances, as a server does with a long list.
    first = h("01 01 01 04 02 80 00 07 04 01 00 00 01 09 10 01 00 00 01 0b") + b"High Sierra"
    second = h("09 12 81 00 10 00 0d") + b"Install macOS"
    datagram = b"".join(
        [
            bootp_header(op="02", xid="12 34 56 78", siaddr="c0 00 02 0a"),
            h("35 01 05"),  # 53 ACK
            h("2b 1f"),  # 43, first instance: 31 bytes
            first,
            h("36 04 c0 00 02 0a"),  # 54 between the instances
            h("2b 14"),  # 43, second instance: 20 bytes
            second,
            h("ff"),  # end
        ]
    )
    packet = parse_packet(datagram)
    assert packet.all_of(43) == [first, second]
    assert packet.option(43) == first
    assert [code for code, _ in packet.options] == [53, 43, 54, 43]
    assert build_packet(packet) == datagram.ljust(300, b"\x00")


def test_pad_options_are_left_out() -> None:
    datagram = bootp_header(op="01", xid="00 00 00 01") + h("00 00 35 01 08 00 ff")
    assert parse_packet(datagram).options == ((53, h("08")),)


def test_option_space_is_the_documented_one() -> None:
    # docs/protocols/bsdp.md §4.4: size - 28 (IP+UDP) - 236 (BOOTP) - 4 (cookie).
    assert option_space(576) == 308
    assert option_space(1500) == 1232
    assert option_space(8192) == 7924


def test_bytes_after_end_are_not_options() -> None:
    # A valid 8.5 reply whose vendor area carries junk after END instead of zero padding.
    junk_option = ACK_FAILED.unpadded + h("0c 03 61 62 63")  # looks like option 12 "abc"
    assert parse_packet(junk_option) == ACK_FAILED.packet
    cut_junk = ACK_FAILED.unpadded + h("2b 05 01")  # looks like a truncated option 43
    assert parse_packet(cut_junk) == ACK_FAILED.packet


# -- malformed corpus ----------------------------------------------------------------


def _with_options(options: str, op: str = "01") -> bytes:
    return bootp_header(op=op, xid="12 34 56 78") + h(options)


def _random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


MALFORMED = {
    "empty": b"",
    "one byte": h("01"),
    "header only, no cookie": INFORM_LIST.datagram[:236],
    "239 bytes, cookie cut": INFORM_LIST.datagram[:239],
    "no magic cookie": INFORM_LIST.datagram[:236] + bytes(4) + INFORM_LIST.datagram[240:],
    "wrong magic cookie": INFORM_LIST.datagram[:236]
    + h("63 82 53 64")
    + INFORM_LIST.datagram[240:],
    "option code without length": _with_options("35 01 08 3c"),
    "option length past the end": _with_options("35 01 08 2b 0f 01 01 01"),
    "option length past the end, no END": _with_options("2b 05 01"),
    "zero-length message type": _with_options("35 00 ff"),
    "BOOTP op 0": h("00") + INFORM_LIST.datagram[1:],
    "BOOTP op 3": h("03") + INFORM_LIST.datagram[1:],
    "BOOTP op 255": h("ff") + ACK_LIST.datagram[1:],
    "random 300 bytes": _random_bytes(1, 300),
    "random 576 bytes": _random_bytes(2, 576),
    "random header, cookie, random options": (
        _random_bytes(3, 236) + h("63 82 53 63") + h("35 01") + _random_bytes(4, 1)
    ),
}


@pytest.mark.parametrize("datagram", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_datagram_raises_malformed_packet(datagram: bytes) -> None:
    raises_malformed(datagram)


def test_malformed_reasons_name_the_fault() -> None:
    assert "too short" in str(raises_malformed(b"\x01" * 100))
    assert "cookie" in str(raises_malformed(MALFORMED["no magic cookie"]))
    assert "truncated" in str(raises_malformed(MALFORMED["option length past the end"]))
    assert "op 3" in str(raises_malformed(MALFORMED["BOOTP op 3"]))


# -- build refuses what does not fit -------------------------------------------------


def test_build_accepts_fields_at_their_limits() -> None:
    packet = replace(
        ACK_FAILED.packet,
        sname=b"s" * 63,
        file=b"f" * 127,
        options=((43, b"\x01" * 255),),
    )
    assert parse_packet(build_packet(packet)) == packet


@pytest.mark.parametrize(
    "change",
    [
        {"sname": b"s" * 64},
        {"file": b"f" * 128},
        {"options": ((53, h("05")), (43, b"\x01" * 256))},
        {"ciaddr": "192.0.2.300"},
        {"yiaddr": "not an address"},
        {"siaddr": "2001:db8::1"},
        {"giaddr": ""},
    ],
    ids=["sname 64", "file 128", "option 256", "ciaddr", "yiaddr", "siaddr v6", "giaddr empty"],
)
def test_build_refuses_what_does_not_fit(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_packet(replace(ACK_FAILED.packet, **change))  # type: ignore[arg-type]


# -- properties ----------------------------------------------------------------------

HEADER = bootp_header(op="01", xid="12 34 56 78")

# Codes whose values scapy keeps as opaque bytes, and typed codes at their proper sizes.
opaque_option = st.tuples(
    st.sampled_from([12, 17, 43, 60, 61, 66, 77, 93, 97, 175, 200, 224, 250]),
    st.binary(max_size=255),
)
typed_option = st.one_of(
    st.tuples(st.just(53), st.binary(min_size=1, max_size=1)),
    st.tuples(st.sampled_from([1, 3, 50, 54]), st.binary(min_size=4, max_size=4)),
    st.tuples(st.just(55), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just(57), st.binary(min_size=2, max_size=2)),
    st.tuples(st.just(51), st.binary(min_size=4, max_size=4)),
)
ipv4 = st.ip_addresses(v=4).map(str)
no_trailing_nul = st.binary(max_size=63).map(lambda raw: raw.rstrip(b"\x00"))

packets = st.builds(
    DhcpPacket,
    op=st.sampled_from([1, 2]),
    xid=st.integers(0, 2**32 - 1),
    chaddr=st.binary(min_size=16, max_size=16),
    htype=st.integers(0, 255),
    hlen=st.integers(0, 255),
    hops=st.integers(0, 255),
    secs=st.integers(0, 2**16 - 1),
    flags=st.integers(0, 2**16 - 1),
    ciaddr=ipv4,
    yiaddr=ipv4,
    siaddr=ipv4,
    giaddr=ipv4,
    sname=no_trailing_nul,
    file=st.binary(max_size=127).map(lambda raw: raw.rstrip(b"\x00")),
    options=st.lists(st.one_of(opaque_option, typed_option), max_size=6).map(tuple),
)


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_parse_of_any_bytes_raises_only_malformed_packet(datagram: bytes) -> None:
    try:
        packet = parse_packet(datagram)
    except MalformedPacket:
        return
    assert packet.op in (1, 2)


@settings(max_examples=300)
@given(
    op=st.one_of(st.sampled_from([h("01"), h("02")]), st.binary(min_size=1, max_size=1)),
    rest=st.binary(min_size=235, max_size=235),
    options=st.binary(max_size=300),
)
def test_parse_after_a_cookie_raises_only_malformed_packet(
    op: bytes, rest: bytes, options: bytes
) -> None:
    datagram = op + rest + h("63 82 53 63") + options
    try:
        packet = parse_packet(datagram)
    except MalformedPacket:
        return
    assert all(0 < code < 255 and len(value) <= 255 for code, value in packet.options)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_valid_header_with_random_options_raises_only_malformed_packet(options: bytes) -> None:
    try:
        packet = parse_packet(HEADER + options)
    except MalformedPacket:
        return
    assert packet.xid == 0x12345678
    assert packet.mac == "00:16:cb:12:34:56"


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(1, 254), st.binary(max_size=255)), max_size=6))
def test_well_formed_options_come_back_unchanged_or_are_refused(
    options: list[tuple[int, bytes]],
) -> None:
    # scapy re-encodes each option it dissected; it must never alter one silently.
    wire = b"".join(bytes((code, len(value))) + value for code, value in options)
    try:
        packet = parse_packet(HEADER + wire + h("ff"))
    except MalformedPacket:
        return
    assert packet.options == tuple(options)


@settings(max_examples=200)
@given(packets)
def test_parse_of_build_is_the_packet(packet: DhcpPacket) -> None:
    datagram = build_packet(packet)
    assert len(datagram) >= 300
    assert parse_packet(datagram) == packet


@given(
    st.lists(
        st.tuples(st.integers(1, 254), st.binary(max_size=8)).filter(lambda o: o[0] != 53),
        max_size=4,
    ),
    st.integers(0, 255),
    st.booleans(),
)
def test_peeking_the_message_type_agrees_with_dissecting(
    others: list[tuple[int, bytes]], message: int, first: bool
) -> None:
    """The peek knows option 53 when it comes first and says "dissect to know" otherwise."""
    options = [(53, bytes((message,))), *others] if first else [*others, (53, bytes((message,)))]
    datagram = build_packet(DhcpPacket(op=1, xid=1, chaddr=CHADDR, options=tuple(options)))
    peeked = peek_message_type(datagram)
    if first or not others:
        assert peeked == parse_packet(datagram).message_type == message
    else:
        assert peeked is None
    assert peek_message_type(datagram[:242]) is None  # too short to hold it
