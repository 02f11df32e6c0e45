"""DHCPv6 messages as values, and their wire codec (RFC 8415 §8, §9, §21.1).

Options come out as `(code, raw bytes)` in wire order, so an option sent
several times (one IA_NA per interface, one vendor class per enterprise)
keeps every instance; the typed readers of `netboot.dhcp6wire.values`,
`.duid` and `.ia` decode the values the boot needs. A relayed message is a
`RelayMessage` whose option 9 holds the next message in, checked down to the
client's own message at parse time and at most `MAX_RELAY_DEPTH` deep.

Anything that does not decode is a `MalformedPacket` naming the option and
the byte offset at fault, never another exception. Building refuses values
that do not fit their field (ValueError: the server's own bug, not a peer's).
Layouts and rules: docs/protocols/dhcpv6.md §1 (messages) and
docs/protocols/dhcpv6.md §2 (relays).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from netboot.dhcp6wire.fields import pack_uint
from netboot.dhcp6wire.options import (
    HEADER_SIZE,
    MAX_OPTION_LENGTH,
    MAX_RELAY_DEPTH,
    OPTION_HEADER_SIZE,
    RELAY_HEADER_SIZE,
    RELAY_MESSAGE_TYPES,
    MessageType,
    Option,
    option_name,
)
from netboot.errors import MalformedPacket

RawOption = tuple[int, bytes]
"""One option as sent: its code and its value, header left out."""


class _HasOptions:
    """Lookups shared by both message formats, over their `options` field."""

    __slots__ = ()
    options: tuple[RawOption, ...]

    def option(self, code: int) -> bytes | None:
        """The first instance of an option."""
        return next((value for number, value in self.options if number == code), None)

    def all_of(self, code: int) -> list[bytes]:
        """Every instance of an option, in wire order."""
        return [value for number, value in self.options if number == code]


@dataclass(frozen=True, slots=True)
class Dhcp6Message(_HasOptions):
    """A client/server message (RFC 8415 §8): every type but 12 and 13."""

    msg_type: int
    transaction_id: int
    """24 bits; the client picks it, the server echoes it."""
    options: tuple[RawOption, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> MessageType | None:
        try:
            return MessageType(self.msg_type)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class RelayMessage(_HasOptions):
    """A Relay-forward or Relay-reply (RFC 8415 §9) wrapping one message in option 9."""

    msg_type: int
    hop_count: int
    link_address: IPv6Address
    """An address on the client's link, or :: when the peer is a relay (§19.1.1)."""
    peer_address: IPv6Address
    """The address the relay heard the message from, and the reply goes back to."""
    options: tuple[RawOption, ...] = field(default_factory=tuple)

    @property
    def relayed(self) -> Dhcp6Message | RelayMessage:
        """The message option 9 carries (the next relay in, or the client's own)."""
        value = self.option(Option.RELAY_MSG)
        if value is None:
            raise MalformedPacket("relay message without option 9 (RELAY_MSG)")
        return parse_message(value)

    @property
    def innermost(self) -> Dhcp6Message:
        """The client's (or server's) own message under every relay layer."""
        message: Dhcp6Message | RelayMessage = self
        while isinstance(message, RelayMessage):
            message = message.relayed
        return message


def parse_options(raw: bytes, start: int, where: str) -> tuple[RawOption, ...]:
    """Walk the option area `raw[start:]` (RFC 8415 §21.1); `where` names it for errors.

    Offsets in errors count from the start of `raw`, so a nested option area
    reports where in its parent's value the fault is.
    """
    options: list[RawOption] = []
    at, end = start, len(raw)
    while at < end:
        if at + OPTION_HEADER_SIZE > end:
            raise MalformedPacket(
                f"{where}: {end - at} stray bytes at byte {at} are too short for an option header"
            )
        code = int.from_bytes(raw[at : at + 2], "big")
        length = int.from_bytes(raw[at + 2 : at + 4], "big")
        if at + OPTION_HEADER_SIZE + length > end:
            raise MalformedPacket(
                f"{where}: option {option_name(code)} at byte {at} claims {length} bytes,"
                f" only {end - at - OPTION_HEADER_SIZE} follow"
            )
        options.append((code, raw[at + OPTION_HEADER_SIZE : at + OPTION_HEADER_SIZE + length]))
        at += OPTION_HEADER_SIZE + length
    return tuple(options)


def parse_message(datagram: bytes) -> Dhcp6Message | RelayMessage:
    """Dissect a DHCPv6 datagram; raises MalformedPacket, and nothing else, on garbage."""
    return _parse(datagram, depth=0)


def _parse(datagram: bytes, depth: int) -> Dhcp6Message | RelayMessage:
    if len(datagram) < HEADER_SIZE:
        raise MalformedPacket(f"{len(datagram)} bytes is too short for a DHCPv6 message")
    msg_type = datagram[0]
    if msg_type not in RELAY_MESSAGE_TYPES:
        return Dhcp6Message(
            msg_type=msg_type,
            transaction_id=int.from_bytes(datagram[1:4], "big"),
            options=parse_options(datagram, HEADER_SIZE, f"message type {msg_type}"),
        )
    name = MessageType(msg_type).name
    if depth >= MAX_RELAY_DEPTH:
        raise MalformedPacket(f"{name} nested deeper than {MAX_RELAY_DEPTH} relay layers")
    if len(datagram) < RELAY_HEADER_SIZE:
        raise MalformedPacket(f"{len(datagram)} bytes is too short for a {name}")
    options = parse_options(datagram, RELAY_HEADER_SIZE, name)
    relayed = [value for code, value in options if code == Option.RELAY_MSG]
    if len(relayed) != 1:
        raise MalformedPacket(f"{name} with {len(relayed)} RELAY_MSG options, not one")
    try:
        _parse(relayed[0], depth + 1)
    except MalformedPacket as error:
        raise MalformedPacket(f"{name} (relay layer {depth + 1}) option 9: {error}") from None
    return RelayMessage(
        msg_type=msg_type,
        hop_count=datagram[1],
        link_address=IPv6Address(datagram[2:18]),
        peer_address=IPv6Address(datagram[18:34]),
        options=options,
    )


def build_options(options: Sequence[RawOption]) -> bytes:
    """Encode an option area; refuses codes and values that do not fit 16 bits."""
    encoded = bytearray()
    for code, value in options:
        if len(value) > MAX_OPTION_LENGTH:
            raise ValueError(f"option {option_name(code)} is {len(value)} bytes, over 65535")
        encoded += pack_uint(code, 2, "option code") + len(value).to_bytes(2, "big") + value
    return bytes(encoded)


def build_message(message: Dhcp6Message | RelayMessage) -> bytes:
    """Encode a message; refuses fields that do not fit instead of truncating them."""
    if isinstance(message, RelayMessage):
        if message.msg_type not in RELAY_MESSAGE_TYPES:
            raise ValueError(f"a relay message has type 12 or 13, not {message.msg_type}")
        if len(message.all_of(Option.RELAY_MSG)) != 1:
            raise ValueError("a relay message carries exactly one RELAY_MSG option (9)")
        header = (
            bytes((message.msg_type,))
            + pack_uint(message.hop_count, 1, "hop-count")
            + message.link_address.packed
            + message.peer_address.packed
        )
        return header + build_options(message.options)
    if message.msg_type in RELAY_MESSAGE_TYPES or not 0 <= message.msg_type <= 0xFF:
        raise ValueError(f"message type {message.msg_type} is not a client/server type")
    header = bytes((message.msg_type,)) + pack_uint(message.transaction_id, 3, "transaction-id")
    return header + build_options(message.options)


def relay_reply_to(
    forward: RelayMessage, reply: Dhcp6Message | RelayMessage, options: Sequence[RawOption] = ()
) -> RelayMessage:
    """The Relay-reply that carries `reply` back through the relay that sent `forward`.

    RFC 8415 §19.3: hop-count, link-address and peer-address are copied, and
    the Interface-Id option too when the relay sent one, since the relay may
    need it to find the client's link.
    """
    copied = [(Option.INTERFACE_ID.value, value) for value in forward.all_of(Option.INTERFACE_ID)]
    return RelayMessage(
        msg_type=MessageType.RELAY_REPL,
        hop_count=forward.hop_count,
        link_address=forward.link_address,
        peer_address=forward.peer_address,
        options=(
            *copied,
            *((int(code), value) for code, value in options),
            (Option.RELAY_MSG.value, build_message(reply)),
        ),
    )
