"""TFTP datagrams as typed values, encoded and decoded by tftpy's packet classes.

tftpy does the byte work for requests, OACK and ERROR; this wrapper owns
validation. DATA and ACK, every packet of a transfer after the first, are
coded here with one `struct` call each: through tftpy's classes they cost
4 us to parse and 1.4 us to build, a tenth of the server's whole time per
block in a boot storm. tests/test_tftp_wire.py checks both codings agree with
tftpy's byte for byte. tftpy 0.8 raises
`TftpException`, `struct.error` or `UnicodeDecodeError` depending on the fault,
truncates an ACK with trailing bytes and reads an ERROR without its NUL; here
every such datagram becomes one `MalformedPacket` with a reason, and every
other module in netboot imports these types instead of tftpy.

tftpy logs through the standard `logging` module, on every packet and at ERROR
level for each ERROR packet it decodes. A server must not print a line per
packet, so importing this module raises tftpy's logger above CRITICAL; our own
log lines (with the client and file) come from the services.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import (
    TftpPacketERR,
    TftpPacketOACK,
    TftpPacketRRQ,
    TftpPacketWRQ,
)
from tftpy.TftpShared import TftpException

from netboot.errors import MalformedPacket

logging.getLogger("tftpy").setLevel(logging.CRITICAL + 1)

MAX_BLOCK_PAYLOAD = 65464
"""The largest blksize RFC 2348 allows."""

MODES = ("octet", "netascii", "mail")


class ErrorCode(IntEnum):
    """ERROR packet codes (RFC 1350 section 5, RFC 2347 for 8)."""

    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TRANSFER_ID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_NEGOTIATION = 8


@dataclass(frozen=True, slots=True)
class ReadRequest:
    filename: str
    mode: str = "octet"
    options: Mapping[str, str] = field(default_factory=dict)
    """Option names lower-cased (RFC 2347 says they are case-insensitive)."""


@dataclass(frozen=True, slots=True)
class WriteRequest:
    filename: str
    mode: str = "octet"
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Data:
    block: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    block: int


@dataclass(frozen=True, slots=True)
class Error:
    code: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class OptionAck:
    options: Mapping[str, str]


Packet = ReadRequest | WriteRequest | Data | Ack | Error | OptionAck

_factory = TftpPacketFactory()
_HEADER = struct.Struct("!HH")
"""Opcode and block number: the whole of an ACK, the head of a DATA."""
_DATA = 3
_ACK = 4


def parse(datagram: bytes) -> Packet:
    """Decode one datagram; raises MalformedPacket (and nothing else) on garbage."""
    if len(datagram) < 4:
        raise MalformedPacket(f"{len(datagram)}-byte datagram is shorter than any TFTP packet")
    opcode, number = _HEADER.unpack_from(datagram)
    if opcode == _ACK:
        if len(datagram) != 4:
            raise MalformedPacket(f"ACK is {len(datagram)} bytes long, not 4")
        return Ack(number)
    if opcode == _DATA:
        if len(datagram) - 4 > MAX_BLOCK_PAYLOAD:
            raise MalformedPacket(f"DATA carries {len(datagram) - 4} bytes, over 65464")
        return Data(number, datagram[4:])
    try:
        decoded = _factory.parse(datagram)
    except (TftpException, struct.error, UnicodeDecodeError, ValueError, TypeError) as error:
        raise MalformedPacket(f"undecodable TFTP packet: {error}") from None
    if isinstance(decoded, TftpPacketRRQ | TftpPacketWRQ):
        return _request(decoded, datagram)
    if isinstance(decoded, TftpPacketERR):
        if len(datagram) > 4 and datagram[-1] != 0:
            raise MalformedPacket("ERROR message is not NUL-terminated")
        raw = decoded.errmsg or b""
        return Error(decoded.errorcode, raw.decode("ascii", "replace"))
    assert isinstance(decoded, TftpPacketOACK)
    if datagram[-1] != 0:
        raise MalformedPacket("OACK is not NUL-terminated")
    return OptionAck({str(k).lower(): str(v) for k, v in decoded.options.items()})


def _request(decoded: TftpPacketRRQ | TftpPacketWRQ, datagram: bytes) -> Packet:
    if datagram[-1] != 0:
        raise MalformedPacket("request does not end with a NUL")
    if not decoded.filename:
        raise MalformedPacket("request names no file")
    if decoded.mode not in MODES:
        raise MalformedPacket(f"unknown transfer mode {decoded.mode!r}")
    options = {str(k).lower(): str(v) for k, v in decoded.options.items()}
    kind = ReadRequest if isinstance(decoded, TftpPacketRRQ) else WriteRequest
    return kind(decoded.filename, decoded.mode, options)


def data_datagram(block: int, payload: bytes) -> bytes:
    """`build(Data(block, payload))` without the Data value: a sender's hot path."""
    return _HEADER.pack(_DATA, block & 0xFFFF) + payload


def build(packet: Packet) -> bytes:
    """Encode a packet: DATA and ACK here, the rest with tftpy's classes."""
    if isinstance(packet, Data):
        return data_datagram(packet.block, packet.payload)
    if isinstance(packet, Ack):
        return _HEADER.pack(_ACK, packet.block & 0xFFFF)
    if isinstance(packet, Error):
        error = TftpPacketERR()
        error.errorcode = packet.code
        # tftpy encodes the text of its own table for the code; give it ours.
        error.errmsgs = {packet.code: packet.message.encode("ascii", "replace")}
        return bytes(error.encode().buffer)
    if isinstance(packet, OptionAck):
        oack = TftpPacketOACK()
        oack.options = dict(packet.options)
        return bytes(oack.encode().buffer)
    if packet.mode != "octet":
        # tftpy's encoder knows only octet; a server never sends requests, and our
        # client asks for octet. Decoding accepts every mode.
        raise ValueError(f"cannot encode a {packet.mode} request: tftpy encodes octet only")
    encoder: TftpPacketRRQ | TftpPacketWRQ
    encoder = TftpPacketRRQ() if isinstance(packet, ReadRequest) else TftpPacketWRQ()
    encoder.filename = packet.filename
    encoder.mode = packet.mode
    encoder.options = dict(packet.options)
    return bytes(encoder.encode().buffer)
