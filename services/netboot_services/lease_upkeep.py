"""Full mode's side of a lease database: heartbeats, peers, outages, and what scrapes show.

Every `heartbeat_interval` this service writes the daemon's heartbeat into the
store and reads the others', then gives the lease server the live peers
(`netboot.dhcp.peers`), so the split of new clients follows daemons that come
and go. Joins and departures are logged once each. On the same tick it reads
the lease table that `/metrics`, `/status.json` and the status page show
(`LeaseTable`), so a scrape never waits on the database.

When the store is unreachable (`LeaseStoreUnavailable`, `up` False) it says so
once, loudly; the lease server pauses new leases by itself. Reconnecting is a
blocking connect, so it runs in a thread, one attempt at a time, each
interval; when one succeeds, leases resume and the log says so. The SQLite
store is never down and is only ever touched from the reactor thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import threads
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from netboot.dhcp.lease_store import (
    LeaseBackend,
    LeaseStoreUnavailable,
    ServerSeen,
    lease_database_name,
)
from netboot.dhcp.leases import Lease, LeaseState
from netboot.dhcp.peers import DEAD_AFTER, live_peers
from netboot.dhcp.server import LeaseServer
from netboot_services.pxe import PxeCounters

log = Logger(namespace="netboot.dhcp")


@dataclass(frozen=True, slots=True)
class LeaseTable:
    """The lease store as `/metrics`, `/status.json` and the status page show it, as
    read at `taken`.

    Scrapes read this, never the store: with PostgreSQL every read is a round trip
    made on the reactor thread, so a scrape that read the store (Prometheus every
    few seconds, each open status page every 5) would stall port 67 as long each
    time. The upkeep reads it once a heartbeat: what a scrape shows is at most one
    `heartbeat_interval` old.
    """

    taken: float | None
    """When it was read, on the reactor's clock; None: not read yet."""
    counts: Mapping[str, int]
    """Pool addresses by state (`LeaseBackend.counts`)."""
    leases: tuple[Lease, ...]
    """The leases that were active, or declined (quarantined), when it was read."""

    def shown(self, now: float) -> list[Lease]:
        """The leases still active at `now`, and the declined ones, as scrapes list them."""
        return [lease for lease in self.leases if _shown(lease, now)]


NOT_READ = LeaseTable(None, {}, ())
"""The table before the first heartbeat read it."""


def _shown(lease: Lease, now: float) -> bool:
    return lease.active(now) or lease.state is LeaseState.DECLINED


def read_lease_table(store: LeaseBackend, now: float) -> LeaseTable:
    """What scrapes will show of `store`, read now (raises `LeaseStoreUnavailable`)."""
    counts = store.counts()
    leases = tuple(lease for lease in store.leases() if _shown(lease, now))
    return LeaseTable(now, counts, leases)


class AnswerRate:
    """The load a heartbeat reports: OFFERs and ACKs a second since the last reading.

    Peers show it on their status pages; it is read once per heartbeat, so each
    reading covers one interval (the first, the time since the daemon built it).
    """

    def __init__(self, counters: PxeCounters, clock: Callable[[], float]) -> None:
        self.counters = counters
        self.clock = clock
        self.answered = self._answered()
        """OFFERs and ACKs sent by the last reading."""
        self.read_at = clock()
        """When the last reading was taken."""

    def _answered(self) -> int:
        return self.counters.offers + self.counters.acks

    def __call__(self) -> float:
        answered, now = self._answered(), self.clock()
        rate = (answered - self.answered) / max(now - self.read_at, 1e-3)
        self.answered, self.read_at = answered, now
        return float(round(rate, 1))


class LeaseUpkeep(Service):
    name = "lease-upkeep"

    def __init__(
        self,
        lease_server: LeaseServer,
        address: str,
        interval: float,
        load: Callable[[], float],
        reactor: Any,
        database: Path | str,
    ) -> None:
        self.lease_server = lease_server
        self.address = address
        self.interval = interval
        self.load = load
        self.reactor = reactor
        self.database = lease_database_name(database)
        """The database as the log names it (`lease_database_name`: no password)."""
        self.store_up = True
        """What the log last said of the store; the gauge reads the store itself."""
        self.down_since: float | None = None
        self.back_at: float | None = None
        """When the store last came back after an outage: for `DEAD_AFTER` intervals
        from then the peers live before it stay live (`live_peers` `keep`), since
        their heartbeats went stale with the database, not with them."""
        self.heard: dict[str, ServerSeen] = {}
        """Peers whose heartbeat is recent, by server id, for the status page."""
        self.peer_addresses: set[str] = set()
        """Every address a peer ever heart-beat from: its replies are never a rival's.
        Kept when the peer goes quiet, since a stale heartbeat is not a foreign
        server: after an outage every heartbeat in the table is stale until its
        daemon reconnects, while that daemon goes on renewing from memory."""
        self.table = NOT_READ
        """The lease table scrapes show, read on each heartbeat while the store is up."""
        self._reconnecting = False
        self._loop = LoopingCall(self.beat)
        self._loop.clock = reactor

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._loop.start(self.interval, now=True)

    def stopService(self) -> None:  # noqa: N802
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def beat(self) -> None:
        store = self.lease_server.store
        if not store.up:
            self._went_down("the last operation could not reach it")
            self._reconnect()
            return
        me = self.lease_server.peers.me
        try:
            store.heartbeat(me, self.address, self.load())
            seen = store.servers(DEAD_AFTER * self.interval)
            self.table = read_lease_table(store, self.reactor.seconds())
        except LeaseStoreUnavailable as error:
            self._went_down(str(error))
            return
        self._came_back()
        before = self.lease_server.peers.live
        now = self.reactor.seconds()
        regrouping = self.back_at is not None and now - self.back_at < DEAD_AFTER * self.interval
        view = live_peers(me, seen, now, self.interval, keep=before if regrouping else ())
        self.lease_server.peers = view
        self.heard = {server.server_id: server for server in seen if server.server_id != me}
        self.peer_addresses.update(peer.address for peer in self.heard.values() if peer.address)
        for joined in sorted(set(view.live) - set(before)):
            log.info("DHCP peer {peer} is live: it answers its share of new clients", peer=joined)
        for left in sorted(set(before) - set(view.live)):
            log.warn(
                "DHCP peer {peer} has not written a heartbeat for {seconds:.0f} s: its share "
                "of new clients moves to the live daemons ({live})",
                peer=left,
                seconds=DEAD_AFTER * self.interval,
                live=", ".join(view.live),
            )

    def _went_down(self, why: str) -> None:
        if self.store_up:
            self.store_up = False
            self.down_since = self.reactor.seconds()
            log.critical(
                "lease database {database} unreachable ({why}): new leases pause; BSDP, "
                "TFTP, HTTP, proxy PXE and renewals of leases granted here go on",
                database=self.database,
                why=why,
            )

    def _came_back(self) -> None:
        if not self.store_up:
            self.store_up = True
            self.down_since = None
            self.back_at = self.reactor.seconds()
            log.warn(
                "lease database {database} reachable again: new leases resume",
                database=self.database,
            )

    def _reconnect(self) -> None:
        if self._reconnecting:
            return
        self._reconnecting = True
        attempt = threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), self.lease_server.store.reconnect
        )

        def done(result: object) -> None:
            self._reconnecting = False
            if result is True:
                self.beat()

        attempt.addBoth(done)
