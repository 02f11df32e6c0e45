"""The hand-written DHCP codec against scapy's, the oracle it replaced.

Same datagram in: the same values, or both refuse it. Same packet out:
identical bytes. Hypothesis builds the packets, mutates real ones and feeds
random bytes, around the edges that matter (options cut short, pads, END,
repeated options, non-DHCP ops).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import DHCPOptions

from netboot.dhcpwire.packet import MAGIC_COOKIE, DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket
from tests.scapy_codec import scapy_build, scapy_parse

addresses = st.tuples(*[st.integers(0, 255)] * 4).map(lambda o: ".".join(map(str, o)))
options = st.lists(
    st.tuples(st.integers(1, 254).filter(lambda code: code != 53), st.binary(max_size=40)),
    max_size=12,
)
packets = st.builds(
    DhcpPacket,
    op=st.sampled_from([1, 2]),
    xid=st.integers(0, 2**32 - 1),
    chaddr=st.binary(min_size=16, max_size=16),
    htype=st.integers(0, 255),
    hlen=st.integers(0, 255),
    hops=st.integers(0, 255),
    secs=st.integers(0, 65535),
    flags=st.integers(0, 65535),
    ciaddr=addresses,
    yiaddr=addresses,
    siaddr=addresses,
    giaddr=addresses,
    sname=st.binary(max_size=63).map(lambda b: b.rstrip(b"\x00")),
    file=st.binary(max_size=127).map(lambda b: b.rstrip(b"\x00")),
    options=options.map(tuple),
)


SCAPY_TYPED = frozenset(code for code, kind in DHCPOptions.items() if not isinstance(kind, str))
"""Options scapy decodes as a typed field rather than as bytes."""


def outcome(parse: object, datagram: bytes) -> object:
    try:
        return parse(datagram)  # type: ignore[operator]
    except MalformedPacket:
        return "malformed"


def agree(datagram: bytes) -> None:
    """Ours reads what scapy reads, identically, and refuses all scapy refuses but one kind.

    scapy types some options (54 is an address, 51 a 32-bit time) and refuses
    a packet when such a value has the wrong length; we hand options on as
    bytes and let the code that reads one judge its length. Option 53, which
    everything keys on, we check ourselves.
    """
    ours = outcome(parse_packet, datagram)
    try:
        theirs: object = scapy_parse(datagram)
    except MalformedPacket as error:
        if ours != "malformed":
            assert isinstance(ours, DhcpPacket)
            assert any(code in SCAPY_TYPED for code, _ in ours.options), (str(error), ours)
        return
    assert ours == theirs


@settings(max_examples=400, deadline=None)
@given(packets)
def test_both_codecs_build_the_same_bytes(packet: DhcpPacket) -> None:
    assert build_packet(packet) == scapy_build(packet)


@settings(max_examples=400, deadline=None)
@given(packets)
def test_a_built_packet_reads_back_as_itself(packet: DhcpPacket) -> None:
    assert parse_packet(build_packet(packet)) == packet


@settings(max_examples=400, deadline=None)
@given(packets, st.data())
def test_both_codecs_read_mutated_datagrams_alike(packet: DhcpPacket, data: st.DataObject) -> None:
    datagram = bytearray(build_packet(packet, pad_to=0))
    cut = data.draw(st.integers(236, len(datagram)), label="cut")
    datagram = datagram[:cut]
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if len(datagram) > 240:
            at = data.draw(st.integers(240, len(datagram) - 1), label="at")
            datagram[at] = data.draw(st.integers(0, 255), label="byte")
    agree(bytes(datagram))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=400), st.sampled_from([0, 1, 2, 3]))
def test_both_codecs_read_random_bytes_alike(tail: bytes, op: int) -> None:
    agree(bytes([op]) + bytes(235) + MAGIC_COOKIE + tail)


@pytest.mark.parametrize(
    "options_area",
    [
        b"\x35\x01\x01\xff",  # DISCOVER, END
        b"\x00\x00\x35\x01\x01\x00\xff\x35",  # pads, and a stray byte after END
        b"\x35\x01\x01",  # no END at all
        b"\x2b\x05\x01\x02",  # option cut short
        b"\x2b",  # a code without its length
        b"\x2b\x00\xff",  # a zero-length option
        b"\x2b\x02ab\x2b\x02cd\xff",  # one option twice: both kept, in order
    ],
)
def test_edge_cases_of_the_option_area(options_area: bytes) -> None:
    datagram = b"\x01\x01\x06\x00" + bytes(232) + MAGIC_COOKIE + options_area
    assert outcome(parse_packet, datagram) == outcome(scapy_parse, datagram)


def test_an_option_scapy_types_is_passed_on_as_bytes_whatever_its_length() -> None:
    datagram = b"\x01\x01\x06\x00" + bytes(232) + MAGIC_COOKIE + b"\x36\x03\x0a\x00\x00\xff"
    packet = parse_packet(datagram)
    assert packet.option(54) == b"\x0a\x00\x00"
    with pytest.raises(MalformedPacket):
        scapy_parse(datagram)


def test_a_bad_address_is_refused_not_zeroed() -> None:
    with pytest.raises(ValueError, match="IPv4"):
        build_packet(DhcpPacket(op=2, xid=1, chaddr=bytes(16), yiaddr="10.0.0"))
