"""Several daemons on one lease database: which of them answers which client.

Every daemon sharing a lease database writes a heartbeat into it (the store's
`server` table) and reads the others'. The live ones split new clients between
them by a hash of the client's MAC, as RFC 3074 splits them between two
failover partners: each client has exactly one daemon that OFFERs to it, so a
DISCOVER costs one daemon's work, not every daemon's, two daemons never race
for one client's row, and a client sees one OFFER rather than one per server.

A daemon that stops heart-beating for `DEAD_AFTER` intervals drops out of
every other daemon's list at their next heartbeat, and its share of the MACs
moves on: new clients never wait on a dead server for longer than that. A
client that has tried for a while anyway (its `secs` field, RFC 2131 §2, at
least `takeover_after`) is answered by whoever hears it, as RFC 3074 §6 lets
a partner take over a client that waits too long.

What a daemon does whatever the split says, because the shared store makes it
safe: answering a REQUEST that names it (SELECTING), a RENEWING client's
unicast, a RELEASE, DECLINE or INFORM, and a client whose lease it wrote.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from netboot.macaddr import MacAddress

DEAD_AFTER = 3
"""Heartbeat intervals without a heartbeat after which a daemon counts as gone."""


class Heard(Protocol):
    """A daemon's newest heartbeat, as the lease store reads it (`ServerSeen`)."""

    @property
    def server_id(self) -> str: ...

    @property
    def seen(self) -> float:
        """When it last wrote, on the store's wall clock."""
        ...


@dataclass(frozen=True, slots=True)
class PeerView:
    """The live daemons, this one included, in the one order every daemon agrees on."""

    me: str
    live: tuple[str, ...]

    @property
    def alone(self) -> bool:
        return self.live == (self.me,)

    def owner(self, mac: MacAddress) -> str:
        """The daemon whose share of the MACs holds `mac`."""
        return self.live[zlib.crc32(bytes.fromhex(mac.replace(":", ""))) % len(self.live)]


def alone(me: str) -> PeerView:
    """A daemon that has heard from no one (SQLite, or before the first heartbeat)."""
    return PeerView(me, (me,))


def live_peers(
    me: str,
    heartbeats: Iterable[Heard],
    now: float,
    interval: float,
    keep: Iterable[str] = (),
) -> PeerView:
    """The daemons heard within `DEAD_AFTER` intervals, and always this one.

    Sorted by server id, so every daemon reading the same table computes the
    same split; ourselves included even when our own heartbeat has not been
    written yet, so a daemon never hands its clients to nobody.

    `keep`: daemons counted live whatever their heartbeat says. After the
    database was away every heartbeat in it is stale, so the first daemon back
    would count all the others gone and answer everyone until they reconnect;
    the daemon keeps the peers it had for `DEAD_AFTER` intervals instead
    (`LeaseUpkeep`), which a dead peer's clients wait out as they would have.
    """
    horizon = now - DEAD_AFTER * interval
    live = {beat.server_id for beat in heartbeats if beat.seen >= horizon}
    live.update(keep)
    live.add(me)
    return PeerView(me, tuple(sorted(live)))


def answers(view: PeerView, mac: MacAddress, secs: int, takeover_after: int) -> bool:
    """Whether this daemon answers a new client (a DISCOVER, or a broadcast REQUEST
    without a server identifier) from `mac` whose `secs` field is `secs`."""
    if view.alone or secs >= takeover_after:
        return True
    return view.owner(mac) == view.me
