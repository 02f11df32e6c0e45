"""One datagram on port 67, offered to the handlers in order until one claims it.

BSDP and PXE share the port, so the daemon lists its handlers (BSDP first:
it claims option 60 `AAPLBSDPC…`; then PXE) and the first that returns a
result answers. The datagram is dissected once, here. This module knows
neither protocol; it only says what to send and whether anything was wrong,
and the listener (`netboot_services.dhcp`) counts and logs that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket
from netboot.port67.arrival import Address, Arrival
from netboot.port67.outcome import Outcome


@dataclass(frozen=True, slots=True)
class HandlerResult:
    replies: tuple[tuple[DhcpPacket, Address], ...] = ()
    malformed: str | None = None
    """Set when the packet was for this handler but unusable (counted, rate-limited)."""

    @classmethod
    def of(cls, outcome: Outcome) -> HandlerResult:
        malformed = outcome.summary if outcome.kind is OutcomeKind.MALFORMED else None
        return cls(outcome.replies, malformed)


class Handler(Protocol):
    """A protocol on port 67: claims a packet (returns a result) or passes (None)."""

    name: str

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    datagram: bytes
    destination: Address


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What became of one datagram at the listener."""

    outgoing: tuple[Outgoing, ...] = ()
    claimed: bool = False
    malformed: str | None = None
    """Why the datagram was unusable, naming the handler that said so, if it was."""


def dispatch(datagram: bytes, arrival: Arrival, handlers: list[Handler]) -> Dispatched:
    try:
        packet = parse_packet(datagram)
    except MalformedPacket as error:
        return Dispatched(malformed=str(error))
    for handler in handlers:
        result = handler.handle(packet, arrival)
        if result is None:
            continue
        malformed = None if result.malformed is None else f"{handler.name}: {result.malformed}"
        outgoing = tuple(Outgoing(build_packet(reply), where) for reply, where in result.replies)
        return Dispatched(outgoing, claimed=True, malformed=malformed)
    return Dispatched()
