"""TFTP datagrams: byte vectors, round trips and a malformed corpus for netboot.tftp.wire.

Vectors are written from RFC 1350 (RRQ, WRQ, DATA, ACK, ERROR), RFC 2347
(options, OACK) and what firmware is known to send: OVMF's first read asks
`blksize=1468, windowsize=4, tsize=0`, and EDK2 abandons a tsize probe with
ERROR 8 "User aborted the transfer" (MdeModulePkg Mtftp4, REQUEST_DENIED).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketACK, TftpPacketDAT

from netboot.errors import MalformedPacket
from netboot.tftp.wire import (
    MAX_BLOCK_PAYLOAD,
    Ack,
    Data,
    Error,
    ErrorCode,
    OptionAck,
    Packet,
    ReadRequest,
    WriteRequest,
    build,
    parse,
)


@dataclass(frozen=True)
class Vector:
    """A datagram, the packet it decodes to, and a cut-short copy that must not decode."""

    datagram: bytes
    packet: Packet
    truncated: bytes
    canonical: bool = True
    """True when build(packet) gives exactly `datagram` back."""


RRQ_PLAIN = Vector(
    datagram=b"".join(
        [
            b"\x00\x01",  # opcode: RRQ
            b"Alpha.nbi/i386/booter",  # file name
            b"\x00",  # end of file name
            b"octet",  # mode
            b"\x00",  # end of mode
        ]
    ),
    packet=ReadRequest("Alpha.nbi/i386/booter", "octet", {}),
    truncated=b"\x00\x01Alpha.nbi/i386/booter\x00octet",
)

RRQ_OVMF = Vector(
    datagram=b"".join(
        [
            b"\x00\x01",  # opcode: RRQ
            b"ipxe.efi",  # file name
            b"\x00",
            b"octet",  # mode
            b"\x00",
            b"blksize",  # option name (RFC 2348)
            b"\x00",
            b"1468",  # value: fits an MTU of 1500
            b"\x00",
            b"windowsize",  # option name (RFC 7440)
            b"\x00",
            b"4",  # value
            b"\x00",
            b"tsize",  # option name (RFC 2349)
            b"\x00",
            b"0",  # value: 0 asks the server for the size
            b"\x00",
        ]
    ),
    packet=ReadRequest("ipxe.efi", "octet", {"blksize": "1468", "windowsize": "4", "tsize": "0"}),
    truncated=b"\x00\x01ipxe.efi\x00octet\x00blksize\x001468\x00windowsize\x004\x00tsize\x000",
)

RRQ_MIXED_CASE = Vector(
    datagram=b"".join(
        [
            b"\x00\x01",  # opcode: RRQ
            b"Kernel",  # file name: case is kept
            b"\x00",
            b"OCTET",  # mode: case-insensitive, lower-cased
            b"\x00",
            b"BlkSize",  # option name: case-insensitive (RFC 2347), lower-cased
            b"\x00",
            b"512",
            b"\x00",
            b"TSIZE",  # option name
            b"\x00",
            b"0",
            b"\x00",
        ]
    ),
    packet=ReadRequest("Kernel", "octet", {"blksize": "512", "tsize": "0"}),
    truncated=b"\x00\x01Kernel\x00OCTET\x00BlkSize\x00512\x00TSIZE\x00",
    canonical=False,
)

RRQ_NETASCII = Vector(
    datagram=b"".join(
        [
            b"\x00\x01",  # opcode: RRQ
            b"readme.txt",  # file name
            b"\x00",
            b"netascii",  # mode
            b"\x00",
        ]
    ),
    packet=ReadRequest("readme.txt", "netascii", {}),
    truncated=b"\x00\x01readme.txt\x00netascii",
    canonical=False,  # see test_netascii_requests_can_be_built
)

WRQ = Vector(
    datagram=b"".join(
        [
            b"\x00\x02",  # opcode: WRQ
            b"upload.bin",  # file name
            b"\x00",
            b"octet",  # mode
            b"\x00",
            b"blksize",  # option name
            b"\x00",
            b"1024",  # value
            b"\x00",
        ]
    ),
    packet=WriteRequest("upload.bin", "octet", {"blksize": "1024"}),
    truncated=b"\x00\x02upload.bin\x00octet\x00blksize\x001024",
)

DATA_EMPTY = Vector(
    datagram=b"".join(
        [
            b"\x00\x03",  # opcode: DATA
            b"\x00\x01",  # block 1
            # no payload: a zero-byte file, or the end of a multiple of blksize
        ]
    ),
    packet=Data(1, b""),
    truncated=b"\x00\x03\x00",
)

DATA_FULL = Vector(
    datagram=b"".join(
        [
            b"\x00\x03",  # opcode: DATA
            b"\x00\x02",  # block 2
            bytes(range(256)) * 2,  # payload: exactly 512 bytes, so more follows
        ]
    ),
    packet=Data(2, bytes(range(256)) * 2),
    truncated=b"\x00\x03\x00",
)

DATA_LAST_BLOCK_NUMBER = Vector(
    datagram=b"".join(
        [
            b"\x00\x03",  # opcode: DATA
            b"\xff\xff",  # block 65535: the next one is 0 (rollover)
            b"tail",  # payload
        ]
    ),
    packet=Data(65535, b"tail"),
    truncated=b"\x00\x03\xff",
)

ACK_ZERO = Vector(
    datagram=b"".join(
        [
            b"\x00\x04",  # opcode: ACK
            b"\x00\x00",  # block 0: accepts the OACK
        ]
    ),
    packet=Ack(0),
    truncated=b"\x00\x04\x00",
)

ACK_HIGH = Vector(
    datagram=b"".join(
        [
            b"\x00\x04",  # opcode: ACK
            b"\xfe\xdc",  # block 0xfedc, big-endian
        ]
    ),
    packet=Ack(0xFEDC),
    truncated=b"\x00\x04\xfe",
)

ERROR_EDK2_ABORT = Vector(
    datagram=b"".join(
        [
            b"\x00\x05",  # opcode: ERROR
            b"\x00\x08",  # code 8: option negotiation / request denied
            b"User aborted the transfer",  # message, as EDK2 words it
            b"\x00",  # end of message
        ]
    ),
    packet=Error(ErrorCode.OPTION_NEGOTIATION, "User aborted the transfer"),
    truncated=b"\x00\x05\x00\x08User aborted the transfer",
)

ERROR_NOT_FOUND = Vector(
    datagram=b"".join(
        [
            b"\x00\x05",  # opcode: ERROR
            b"\x00\x01",  # code 1: file not found
            b"",  # empty message
            b"\x00",  # end of message
        ]
    ),
    packet=Error(ErrorCode.FILE_NOT_FOUND, ""),
    truncated=b"\x00\x05\x00",
)

ERROR_WITHOUT_MESSAGE = Vector(
    datagram=b"".join(
        [
            b"\x00\x05",  # opcode: ERROR
            b"\x00\x02",  # code 2: access violation
            # no message and no NUL: some clients send this, it is accepted
        ]
    ),
    packet=Error(ErrorCode.ACCESS_VIOLATION, ""),
    truncated=b"\x00\x05\x00",
    canonical=False,  # built with its NUL, like ERROR_NOT_FOUND
)

OACK = Vector(
    datagram=b"".join(
        [
            b"\x00\x06",  # opcode: OACK
            b"blksize",  # option name
            b"\x00",
            b"1468",  # granted value
            b"\x00",
            b"tsize",  # option name
            b"\x00",
            b"14680064",  # the file's size
            b"\x00",
            b"windowsize",  # option name
            b"\x00",
            b"4",  # granted value
            b"\x00",
        ]
    ),
    packet=OptionAck({"blksize": "1468", "tsize": "14680064", "windowsize": "4"}),
    truncated=b"\x00\x06blksize\x001468\x00tsize\x0014680064\x00windowsize\x004",
)

VECTORS = {
    "rrq-plain": RRQ_PLAIN,
    "rrq-ovmf": RRQ_OVMF,
    "rrq-mixed-case": RRQ_MIXED_CASE,
    "rrq-netascii": RRQ_NETASCII,
    "wrq": WRQ,
    "data-empty": DATA_EMPTY,
    "data-512": DATA_FULL,
    "data-block-65535": DATA_LAST_BLOCK_NUMBER,
    "ack-0": ACK_ZERO,
    "ack-high": ACK_HIGH,
    "error-edk2-abort": ERROR_EDK2_ABORT,
    "error-empty-message": ERROR_NOT_FOUND,
    "error-4-bytes": ERROR_WITHOUT_MESSAGE,
    "oack": OACK,
}
CANONICAL = {name: v for name, v in VECTORS.items() if v.canonical}


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_vector_parses_to_its_packet(vector: Vector) -> None:
    assert parse(vector.datagram) == vector.packet


@pytest.mark.parametrize("vector", CANONICAL.values(), ids=CANONICAL.keys())
def test_vector_is_what_its_packet_builds(vector: Vector) -> None:
    assert build(vector.packet) == vector.datagram


@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_truncated_vector_is_malformed(vector: Vector) -> None:
    with pytest.raises(MalformedPacket):
        parse(vector.truncated)


def test_mixed_case_request_builds_in_lower_case() -> None:
    assert build(RRQ_MIXED_CASE.packet) == (
        b"\x00\x01Kernel\x00octet\x00blksize\x00512\x00tsize\x000\x00"
    )


def test_four_byte_error_builds_with_an_empty_message() -> None:
    assert build(ERROR_WITHOUT_MESSAGE.packet) == b"\x00\x05\x00\x02\x00"


def test_largest_data_block_round_trips() -> None:
    payload = bytes(range(256)) * (MAX_BLOCK_PAYLOAD // 256) + bytes(MAX_BLOCK_PAYLOAD % 256)
    datagram = build(Data(7, payload))
    assert len(datagram) == 4 + MAX_BLOCK_PAYLOAD
    assert parse(datagram) == Data(7, payload)


def test_block_numbers_are_sent_modulo_65536() -> None:
    assert build(Data(65536, b"x")) == b"\x00\x03\x00\x00x"
    assert build(Data(65537 + 65536, b"")) == b"\x00\x03\x00\x01"
    assert build(Ack(65536 + 3)) == b"\x00\x04\x00\x03"


def test_error_message_of_our_own_replaces_tftpys_table() -> None:
    assert build(Error(ErrorCode.FILE_NOT_FOUND, "no booter here")) == (
        b"\x00\x05\x00\x01no booter here\x00"
    )
    assert build(Error(ErrorCode.NOT_DEFINED, "")) == b"\x00\x05\x00\x00\x00"


@pytest.mark.parametrize("kind", [ReadRequest, WriteRequest])
def test_non_octet_requests_are_refused_by_the_encoder(
    kind: type[ReadRequest] | type[WriteRequest],
) -> None:
    # tftpy encodes octet requests only; we never need to send another kind.
    with pytest.raises(ValueError, match="tftpy encodes octet only"):
        build(kind("readme.txt", "netascii", {}))


# --- malformed corpus ---------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "one-byte": b"\x00",
    "opcode-only": b"\x00\x01",
    "three-bytes": b"\x00\x04\x00",
    "opcode-0": b"\x00\x00\x00\x01",
    "opcode-7": b"\x00\x07\x00\x01",
    "opcode-255": b"\x00\xff\x00\x01",
    "opcode-256": b"\x01\x00\x00\x01",
    "rrq-without-nuls": b"\x00\x01Alpha.nbi/i386/booter",
    "rrq-without-mode": b"\x00\x01Alpha.nbi/i386/booter\x00",
    "rrq-mode-not-terminated": b"\x00\x01booter\x00octet",
    "rrq-option-without-value": b"\x00\x01booter\x00octet\x00blksize\x00",
    "rrq-three-option-strings": b"\x00\x01booter\x00octet\x00blksize\x00512\x00tsize\x00",
    "rrq-option-value-not-terminated": b"\x00\x01booter\x00octet\x00blksize\x00512",
    "rrq-empty-option-value": b"\x00\x01booter\x00octet\x00blksize\x00\x00",
    "rrq-unknown-mode": b"\x00\x01booter\x00binary\x00",
    "rrq-empty-mode": b"\x00\x01booter\x00\x00",
    "rrq-non-ascii-name": b"\x00\x01caf\xc3\xa9\x00octet\x00",
    "rrq-high-byte-name": b"\x00\x01\xff\xfe\x00octet\x00",
    "rrq-non-ascii-mode": b"\x00\x01booter\x00oct\xe9t\x00",
    "rrq-non-ascii-option": b"\x00\x01booter\x00octet\x00bl\xffksize\x00512\x00",
    "rrq-empty-name": b"\x00\x01\x00octet\x00",
    "wrq-empty-name": b"\x00\x02\x00octet\x00",
    "wrq-unknown-mode": b"\x00\x02upload\x00image\x00",
    "ack-with-trailing-bytes": b"\x00\x04\x00\x01\x00",
    "ack-with-payload": b"\x00\x04\x00\x01garbage",
    "error-without-nul": b"\x00\x05\x00\x01File not found",
    "error-one-byte-message": b"\x00\x05\x00\x01x",
    "data-over-65464": b"\x00\x03\x00\x01" + bytes(MAX_BLOCK_PAYLOAD + 1),
    "oack-not-terminated": b"\x00\x06blksize\x001468",
    "oack-name-only": b"\x00\x06blksize\x00",
    "oack-empty-name": b"\x00\x06\x00\x00",
    "oack-three-strings": b"\x00\x06blksize\x001468\x00tsize\x00",
    "oack-empty": b"\x00\x06",
}


@pytest.mark.parametrize("datagram", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_datagram_raises_malformed_packet(datagram: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse(datagram)


def test_malformed_packet_says_why() -> None:
    with pytest.raises(MalformedPacket, match="ACK is 5 bytes long"):
        parse(MALFORMED["ack-with-trailing-bytes"])
    with pytest.raises(MalformedPacket, match="unknown transfer mode 'binary'"):
        parse(MALFORMED["rrq-unknown-mode"])
    with pytest.raises(MalformedPacket, match="over 65464"):
        parse(MALFORMED["data-over-65464"])


# --- hypothesis ---------------------------------------------------------------------------

# Strings that survive the wire: ASCII without NUL (NUL ends every TFTP string).
wire_text = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=40
)
option_names = wire_text.map(str.lower)
options = st.dictionaries(option_names, wire_text, max_size=5)
blocks = st.integers(min_value=0, max_value=0xFFFF)


def packets() -> st.SearchStrategy[Packet]:
    return st.one_of(
        st.builds(ReadRequest, wire_text, st.just("octet"), options),
        st.builds(WriteRequest, wire_text, st.just("octet"), options),
        st.builds(Data, blocks, st.binary(max_size=1500)),
        st.builds(Ack, blocks),
        st.builds(
            Error,
            blocks,
            st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=80),
        ),
        st.builds(OptionAck, st.dictionaries(option_names, wire_text, min_size=1, max_size=5)),
    )


@settings(max_examples=200)
@given(packets())
def test_parse_of_build_is_the_packet(packet: Packet) -> None:
    assert parse(build(packet)) == packet


def _parse_or_malformed(datagram: bytes) -> None:
    try:
        parsed = parse(datagram)
    except MalformedPacket:
        return
    assert isinstance(parsed, ReadRequest | WriteRequest | Data | Ack | Error | OptionAck)


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_parse_of_any_bytes_raises_only_malformed_packet(datagram: bytes) -> None:
    _parse_or_malformed(datagram)


@settings(max_examples=200)
@given(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 255]), st.binary(max_size=600))
def test_parse_of_any_bytes_after_an_opcode_raises_only_malformed_packet(
    opcode: int, rest: bytes
) -> None:
    _parse_or_malformed(opcode.to_bytes(2, "big") + rest)


@settings(max_examples=200)
@given(
    st.sampled_from([b"\x00\x01", b"\x00\x02", b"\x00\x06"]),
    st.lists(
        st.one_of(
            st.sampled_from([b"octet", b"netascii", b"blksize", b"tsize", b"512", b""]),
            st.binary(max_size=12),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_parse_of_nul_separated_strings_raises_only_malformed_packet(
    opcode: bytes, strings: list[bytes], terminated: bool
) -> None:
    datagram = opcode + b"\x00".join(strings) + (b"\x00" if terminated else b"")
    _parse_or_malformed(datagram)


# DATA and ACK are coded with struct on the hot path; tftpy stays the reference.


@settings(max_examples=300)
@given(blocks, st.binary(max_size=1500))
def test_data_is_built_and_parsed_as_tftpy_does(block: int, payload: bytes) -> None:
    reference = TftpPacketDAT()
    reference.blocknumber = block
    reference.data = payload
    expected = bytes(reference.encode().buffer)
    assert build(Data(block, payload)) == expected
    decoded = TftpPacketFactory().parse(expected)
    assert parse(expected) == Data(decoded.blocknumber, decoded.data)


@settings(max_examples=300)
@given(blocks)
def test_ack_is_built_and_parsed_as_tftpy_does(block: int) -> None:
    reference = TftpPacketACK()
    reference.blocknumber = block
    expected = bytes(reference.encode().buffer)
    assert build(Ack(block)) == expected
    assert parse(expected) == Ack(TftpPacketFactory().parse(expected).blocknumber)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"\x00\x04\x00\x01\x00", "ACK is 5 bytes long, not 4"),
        (b"\x00\x03\x00\x01" + bytes(MAX_BLOCK_PAYLOAD + 1), "DATA carries 65465 bytes"),
    ],
)
def test_struct_coded_packets_are_still_validated(datagram: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        parse(datagram)


def test_an_empty_data_block_ends_a_transfer_and_parses() -> None:
    assert parse(b"\x00\x03\x12\x34") == Data(0x1234, b"")
