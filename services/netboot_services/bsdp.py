"""The BSDP handler on the shared port-67 listener: Macs' INFORM[LIST] and [SELECT],
and the fast path's BSDP OFFER to a bound Mac's DISCOVER.

What to answer is `netboot.port67.bsdp`'s (and the policy's, which keeps the
bindings); this adapter supplies the current catalog, the clock and whether
NFS is up, then acts on the typed outcome: counts it, notes the client's
journey, creates a diskless Mac's shadow directory, and logs the line with
the client's MAC, address and the outcome's kind. An image list cut to fit
one reply is worth a warning, but a Mac asks for the list every few seconds
while its Startup Disk pane is open: the warning comes once per client and
cut per hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twisted.logger import Logger

from netboot.bsdp.packing import ListCut
from netboot.bsdp.policy import BsdpPolicy, Ignore
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import DhcpPacket
from netboot.hostport import join_host_port
from netboot.nbi.catalog import Catalog
from netboot.port67.arrival import Arrival
from netboot.port67.bsdp import bsdp_outcome, claims
from netboot.port67.dispatch import HandlerResult
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters
from netboot_services.outcomes import BSDP_COUNTERS, note_journey, tally
from netboot_services.ratelimit import OncePerInterval

log = Logger(namespace="netboot.bsdp")
LIST_CUT_LOG_INTERVAL = 3600.0


@dataclass
class BsdpCounters(Counters):
    requests: int = 0
    list_replies: int = 0
    select_replies: int = 0
    failed_replies: int = 0
    offer_replies: int = 0
    ignored: int = 0


class BsdpHandler:
    name = "bsdp"

    def __init__(
        self, policy: BsdpPolicy, catalog: Callable[[], Catalog], clock: Callable[[], float]
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.clock = clock
        self.counters = BsdpCounters()
        self.nfs_available: Callable[[], bool] = lambda: True
        self.leased_here: Callable[[DhcpPacket, Arrival], bool] = lambda packet, arrival: False
        """Whether full mode leases to this client (then its DISCOVER is the PXE handler's)."""
        self.clients = ClientTracker()
        self._cut_log = OncePerInterval(LIST_CUT_LOG_INTERVAL)

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None:
        if not claims(packet):
            return None  # every DHCP client's packet on a full-mode server: asked nothing
        now = self.clock()
        outcome = bsdp_outcome(
            self.policy,
            packet,
            arrival,
            self.catalog(),
            now,
            self.nfs_available(),
            self.leased_here(packet, arrival),
        )
        if outcome is None:
            return None
        tally(self.counters, BSDP_COUNTERS, outcome.kind)
        note_journey(self.clients, outcome, now, outcome.summary)
        if outcome.shadow_directory is not None:
            _make_shadow_directory(Path(outcome.shadow_directory))
        client = f"{packet.mac} ({packet.ciaddr})"
        destination = outcome.destination
        if destination is not None:
            log.info(
                "{client} via {server}: {summary}",
                client=client,
                mac=str(packet.mac),
                server=arrival.local_address,
                summary=outcome.summary,
                outcome=outcome.kind.value,
                destination=join_host_port(*destination),
            )
            if outcome.list_cut is not None:
                self._warn_of_cut(client, str(packet.mac), outcome.list_cut, now)
        elif outcome.kind is OutcomeKind.BSDP_IGNORED:
            log.debug(
                "ignored BSDP from {client}: {reason}",
                client=client,
                reason=outcome.summary,
                outcome=outcome.kind.value,
            )
        return HandlerResult.of(outcome)

    def _warn_of_cut(self, client: str, mac: str, cut: ListCut, now: float) -> None:
        if not self._cut_log.allow(f"{mac} {cut.listed}/{cut.offered}", now):
            return
        log.warn(
            "{client}: image list truncated to first {listed} of {offered} images, "
            "all one {size}-byte ACK[LIST] holds (see `netboot images validate`)",
            client=client,
            mac=mac,
            listed=cut.listed,
            offered=cut.offered,
            size=cut.reply_size,
        )

    def fast_path_offer(self, packet: DhcpPacket, arrival: Arrival) -> DhcpPacket | None:
        """The BSDP OFFER a bound Mac's DISCOVER would get: full mode's lease OFFER carries it."""
        decision = self.policy.offer(
            packet, self.catalog(), arrival.local_address, self.clock(), self.nfs_available()
        )
        if isinstance(decision, Ignore):
            return None
        # Counted as a BSDP OFFER given; the request itself is the PXE handler's.
        self.counters.offer_replies += 1
        if decision.shadow_directory is not None and self.policy.settings.shadow_root:
            _make_shadow_directory(
                Path(self.policy.settings.shadow_root) / decision.shadow_directory
            )
        return decision.packets[0]


def _make_shadow_directory(path: Path) -> None:
    """A diskless Mac's shadow area must exist before its ACK[SELECT] leaves."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        log.warn("cannot create shadow area {path}: {error}", path=str(path), error=str(error))
