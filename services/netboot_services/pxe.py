"""The PXE handler on the shared port-67 listener (and the port-4011 boot server).

What to answer is `netboot.port67.pxe`'s (proxy offer or lease, whether an
overheard reply is a rival's); this adapter supplies the clock and acts on
the typed outcome: counts it, notes the client's journey by MAC, logs the
line with the outcome's kind, and in full mode remembers rival DHCP servers
and warns about them loudly, once per server per five minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from netboot.dhcp.boot import BootSettings
from netboot.dhcp.server import LeaseServer
from netboot.dhcpwire.options import BOOTREQUEST, message_name
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import DhcpPacket
from netboot.hostport import join_host_port
from netboot.port67.arrival import Arrival
from netboot.port67.dispatch import HandlerResult
from netboot.port67.outcome import Outcome
from netboot.port67.pxe import pxe_outcome, replying_server
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters
from netboot_services.logging import HotPathLogger
from netboot_services.outcomes import PXE_COUNTERS, note_journey, tally
from netboot_services.ratelimit import OncePerInterval

log = HotPathLogger(namespace="netboot.pxe")

RIVAL_WARNING_INTERVAL = 300.0
QUIET = frozenset({OutcomeKind.OVERHEARD, OutcomeKind.MALFORMED})
"""Kinds this handler does not log: nothing to say, or the dispatcher says it."""


@dataclass
class PxeCounters(Counters):
    requests: int = 0
    proxy_offers: int = 0
    boot_server_acks: int = 0
    offers: int = 0
    acks: int = 0
    naks: int = 0
    releases: int = 0
    declines: int = 0
    informs: int = 0
    exhausted: int = 0
    ignored: int = 0
    rival_offers: int = 0


class PxeHandler:
    name = "pxe"

    def __init__(
        self,
        boot: BootSettings,
        clock: Callable[[], float],
        lease_server: LeaseServer | None = None,
        own_addresses: Callable[[], set[str]] = set,
    ) -> None:
        self.boot = boot
        self.clock = clock
        self.lease_server = lease_server
        self.own_addresses = own_addresses
        """This daemon's addresses: its own replies, overheard, are nobody's."""
        self.peer_addresses: Callable[[], set[str]] = set
        """Full mode's peers (lease upkeep): their replies are neither ours nor a rival's."""
        self.mac_boot: Callable[[DhcpPacket, Arrival], DhcpPacket | None] | None = None
        """A bound Mac's fast-path BSDP OFFER (the BSDP handler's), for its lease OFFER."""
        self.counters = PxeCounters()
        self.clients = ClientTracker()
        self.rivals: dict[str, float] = {}
        """Rival DHCP servers by server identifier, with when each was last heard."""
        self.replies_heard: dict[str, float] = {}
        """Other servers whose replies were overheard on the link (peers, proxies,
        rivals), by server identifier, with when each was last heard: the status
        page's "seen on the link" beside the peers' heartbeats."""
        self._rival_log = OncePerInterval(RIVAL_WARNING_INTERVAL)
        self._loud_log = OncePerInterval()

    @property
    def full_mode(self) -> bool:
        return self.lease_server is not None

    def batch(self) -> AbstractContextManager[None]:
        """The lease store's group commit in full mode (the listener opens it around a
        wake-up's datagrams and sends their replies after it); nothing in proxy mode."""
        if self.lease_server is None:
            return nullcontext()
        store = self.lease_server.store
        if not store.up:
            # Down: no transaction to open; the lease server answers from memory or
            # stays silent, and everything else in the wake-up is answered as ever.
            return nullcontext()
        return store.batch()

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None:
        outcome = pxe_outcome(
            packet, arrival, self.boot, self.lease_server, self._not_rivals, self.mac_boot
        )
        if outcome is None:
            return None
        tally(self.counters, PXE_COUNTERS, outcome.kind)
        if packet.op != BOOTREQUEST:
            self._heard(packet, arrival)
        if outcome.kind in QUIET:
            return HandlerResult.of(outcome)
        now = self.clock()
        if outcome.kind is OutcomeKind.RIVAL_OFFER:
            self._rival(outcome, packet, arrival, now)
            return HandlerResult()
        message = message_name(packet.message_type)
        client = outcome.client.describe() if outcome.client is not None else "-"
        destination = outcome.destination
        if destination is None:
            note_journey(self.clients, outcome, now, outcome.summary)
            self._silence(outcome, message, client, now)
            return HandlerResult()
        note_journey(self.clients, outcome, now, f"{message} -> {outcome.summary}")
        log.info(
            "{mac} {message} via {server}: {summary}",
            mac=str(outcome.mac),  # the packet's, as dissected once by pxe_outcome
            message=message,
            server=arrival.local_address,
            summary=outcome.summary,
            outcome=outcome.kind.value,
            address=outcome.address,
            client=client,
            destination=join_host_port(*destination),
            server_id=self.lease_server.store.server_id if self.lease_server else None,
        )
        return HandlerResult.of(outcome)

    def _silence(self, outcome: Outcome, message: str, client: str, now: float) -> None:
        """Why no reply: a warning when an operator should hear it, else debug."""
        mac = str(outcome.mac)
        heard = outcome.loud and self._loud_log.allow(f"{mac} {outcome.summary}", now)
        (log.warn if heard else log.debug)(
            "{mac} {message}: {reason}",
            mac=mac,
            message=message,
            reason=outcome.summary,
            outcome=outcome.kind.value,
            client=client,
        )

    def _not_rivals(self) -> set[str]:
        """Servers whose offers are no rival's: this daemon and its peers."""
        return self.own_addresses() | self.peer_addresses()

    def _heard(self, packet: DhcpPacket, arrival: Arrival) -> None:
        """Remember another server's reply heard on the link (ours are not noted)."""
        own = self.own_addresses()
        server = replying_server(packet, arrival)
        if server not in own and arrival.source[0] not in own:
            note_server(self.replies_heard, server, self.clock())

    def _rival(self, outcome: Outcome, packet: DhcpPacket, arrival: Arrival, now: float) -> None:
        """Another server handing out addresses: remembered, and said loudly (rate-limited)."""
        assert outcome.rival is not None
        note_server(self.rivals, outcome.rival, now)
        if self._rival_log.allow(outcome.rival, now):
            log.critical(
                "RIVAL DHCP SERVER {rival} (from {source}) is handing out addresses on this "
                "segment ({address} to {mac}); clients may take its leases instead of ours. "
                "Full mode belongs on an isolated lab net: stop the other server or use "
                "dhcp.mode = proxy.",
                rival=outcome.rival,
                source=arrival.source[0],
                address=packet.yiaddr,
                mac=str(packet.mac),
                outcome=outcome.kind.value,
            )


SERVERS_REMEMBERED = 64
"""Other servers remembered per table (`rivals`, `replies_heard`): far more than a link
has, so only forged server identifiers are forgotten."""


def note_server(heard: dict[str, float], server: str, now: float) -> None:
    """Remember when `server` was last heard, keeping at most `SERVERS_REMEMBERED`.

    Option 54 is whatever a sender writes, so a flood of forged identifiers must not
    grow the table: the least recently heard (first in the dict's order, since each
    note moves its server to the end) is forgotten."""
    heard.pop(server, None)
    heard[server] = now
    if len(heard) > SERVERS_REMEMBERED:
        del heard[next(iter(heard))]
