"""One datagram on port 67, offered to the handlers in order until one claims it.

BSDP and PXE share the port, so the daemon lists its handlers (BSDP first:
it claims option 60 `AAPLBSDPC…`; then PXE) and the first that returns a
result answers. The datagram is dissected once, here. This module knows
neither protocol; it only says what to send and whether anything was wrong,
and the listener (`netboot_services.dhcp`) counts and logs that.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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
    leased: bool = False
    """The replies promise a lease written in the open batch: they may leave only once
    that batch has committed (an OFFER or ACK), never if its commit fails."""

    @classmethod
    def of(cls, outcome: Outcome) -> HandlerResult:
        malformed = outcome.summary if outcome.kind is OutcomeKind.MALFORMED else None
        return cls(outcome.replies, malformed, outcome.kind in LEASE_WRITES)


LEASE_WRITES = frozenset({OutcomeKind.OFFER, OutcomeKind.ACK})
"""Kinds whose reply rests on a lease-store write (an offer held, a lease bound)."""


class Handler(Protocol):
    """A protocol on port 67: claims a packet (returns a result) or passes (None)."""

    name: str

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None: ...


@runtime_checkable
class Batching(Protocol):
    """A handler that writes to a store may say so: the listener opens its batch around
    all the datagrams of one wake-up, so one commit (one fsync) covers them all."""

    def batch(self) -> AbstractContextManager[None]: ...


@contextmanager
def batch(handlers: Sequence[Handler]) -> Iterator[None]:
    """Every batching handler's batch, open around the body, committed on leaving.

    Raises when a commit fails; the replies whose `leased` is set must then not leave.
    """
    with ExitStack() as stack:
        for handler in handlers:
            # What isinstance(handler, Batching) asks, without a runtime-checkable
            # protocol's scan of its members on every wake-up.
            opener = getattr(handler, "batch", None)
            if opener is not None:
                stack.enter_context(opener())
        yield


@dataclass(frozen=True, slots=True)
class Outgoing:
    datagram: bytes
    destination: Address
    leased: bool = False
    """Rests on a lease write: sent only after the batch holding it committed."""


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
    return dispatch_packet(packet, arrival, handlers)


def dispatch_packet(packet: DhcpPacket, arrival: Arrival, handlers: list[Handler]) -> Dispatched:
    """An already dissected packet (the listener dissects a wake-up's datagrams first,
    to decide which to answer), offered to the handlers in order."""
    for handler in handlers:
        result = handler.handle(packet, arrival)
        if result is None:
            continue
        malformed = None if result.malformed is None else f"{handler.name}: {result.malformed}"
        leased = result.leased
        outgoing = tuple(
            Outgoing(build_packet(reply), where, leased) for reply, where in result.replies
        )
        return Dispatched(outgoing, claimed=True, malformed=malformed)
    return Dispatched()
