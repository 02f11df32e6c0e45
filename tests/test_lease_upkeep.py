"""The heartbeat loop of daemons sharing a PostgreSQL lease database (lease_upkeep.py).

Real stores on a private cluster (tests/postgres.py), driven one beat at a time
on a Twisted test clock: what a daemon believes of its peers after their
heartbeats went stale, as every daemon's do after the database was away.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from ipaddress import IPv4Network

import pytest
from twisted.internet.task import Clock

from netboot.dhcp.lease_store import ServerSeen, open_lease_store
from netboot.dhcp.peers import DEAD_AFTER
from netboot.dhcp.server import LeaseServer, NetworkSettings
from netboot_lab.postgres import PrivateCluster
from netboot_services.lease_upkeep import AnswerRate, LeaseUpkeep
from netboot_services.pxe import PxeCounters
from tests.postgres import fresh_schema_url
from tests.test_dhcp_leases import FakeClock, pool

INTERVAL = 0.05
NETWORK = NetworkSettings(subnet=IPv4Network("192.0.2.0/24"))


@pytest.fixture
def clock() -> FakeClock:
    """The stores' clock, which heartbeats are written and read by."""
    return FakeClock()


@pytest.fixture
def upkeeps(postgres_cluster: PrivateCluster, clock: FakeClock) -> Iterator[dict[str, LeaseUpkeep]]:
    """Daemons alpha (192.0.2.1) and beta (192.0.2.2) on one fresh schema, one clock."""
    url = fresh_schema_url(postgres_cluster)
    with ExitStack() as stack:
        made = {}
        for number, name in enumerate(("alpha", "beta"), start=1):
            store = stack.enter_context(
                open_lease_store(url, pool(), clock, quarantine=60, server_id=name)
            )
            server = LeaseServer(store, NETWORK)
            made[name] = LeaseUpkeep(
                server, f"192.0.2.{number}", INTERVAL, lambda: 0.0, Clock(), url
            )
        yield made


def test_a_peer_whose_heartbeat_went_stale_is_still_a_peer_not_a_rival(
    upkeeps: dict[str, LeaseUpkeep], clock: FakeClock
) -> None:
    """After an outage every heartbeat in the table is old: the first daemon back
    counts the others gone (their share of new clients moves to it), but their
    replies, to clients they renew from memory, are still a peer's."""
    alpha, beta = upkeeps["alpha"], upkeeps["beta"]
    beta.beat()
    alpha.beat()
    assert alpha.lease_server.peers.live == ("alpha", "beta")
    assert alpha.peer_addresses == {"192.0.2.2"}
    assert alpha.heard == {"beta": ServerSeen("beta", "192.0.2.2", clock.now, 0.0)}
    clock.advance(2 * DEAD_AFTER * INTERVAL)
    alpha.beat()
    assert alpha.heard == {}
    assert alpha.lease_server.peers.alone
    assert alpha.peer_addresses == {"192.0.2.2"}


def test_after_an_outage_the_peers_keep_their_share_while_they_reconnect(
    upkeeps: dict[str, LeaseUpkeep], clock: FakeClock
) -> None:
    """The first daemon back does not take over everyone: the peers it had stay live
    for DEAD_AFTER intervals; one that writes again stays, one that does not goes."""
    alpha, beta = upkeeps["alpha"], upkeeps["beta"]
    beta.beat()
    alpha.beat()
    assert alpha.lease_server.peers.live == ("alpha", "beta")
    alpha._went_down("the database restarted")  # as a failed operation would say
    clock.advance(2 * DEAD_AFTER * INTERVAL)  # every heartbeat went stale meanwhile
    alpha.beat()
    assert alpha.store_up and alpha.back_at == alpha.reactor.seconds()
    assert alpha.lease_server.peers.live == ("alpha", "beta"), "beta keeps its share"
    alpha.reactor.advance(DEAD_AFTER * INTERVAL - INTERVAL / 2)
    clock.advance(DEAD_AFTER * INTERVAL - INTERVAL / 2)
    alpha.beat()
    assert alpha.lease_server.peers.live == ("alpha", "beta"), "still regrouping"
    alpha.reactor.advance(INTERVAL)
    clock.advance(INTERVAL)
    alpha.beat()
    assert alpha.lease_server.peers.alone, "beta never wrote again: gone"


def test_after_an_outage_a_peer_that_writes_again_stays_live(
    upkeeps: dict[str, LeaseUpkeep], clock: FakeClock
) -> None:
    alpha, beta = upkeeps["alpha"], upkeeps["beta"]
    beta.beat()
    alpha.beat()
    alpha._went_down("the database restarted")
    clock.advance(2 * DEAD_AFTER * INTERVAL)
    alpha.beat()
    beta.beat()
    alpha.reactor.advance(DEAD_AFTER * INTERVAL + INTERVAL)
    clock.advance(INTERVAL)
    alpha.beat()
    assert alpha.lease_server.peers.live == ("alpha", "beta")


def test_the_load_a_heartbeat_reports_is_the_answers_a_second_since_the_last_reading() -> None:
    counters, reactor = PxeCounters(), Clock()
    counters.offers = 7  # sent before the daemon built its rate: not counted
    rate = AnswerRate(counters, reactor.seconds)
    counters.offers += 3
    counters.acks += 2
    reactor.advance(2)
    assert rate() == 2.5
    counters.acks += 1
    reactor.advance(5)
    assert rate() == 0.2, "the second reading covers only the time since the first"
    assert rate() == 0.0, "nothing answered since: no load, whatever the elapsed time"
