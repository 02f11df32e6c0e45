"""Several daemons as one DHCP service: one PostgreSQL lease database, real clients (issue #21).

Real daemons (`netboot serve`, full mode) on one namespace bridge share a private
PostgreSQL cluster (Debian's, on a Unix socket, tests/postgres.py). The clients
are busybox udhcpc, one per macvlan interface of a client namespace
(netboot_lab.udhcpc), so every lease is a real DORA a real client acted on. The
daemons run with 60 s leases (the shortest allowed) and 1 s heartbeats: udhcpc
rebinds by broadcast at half the lease, and a daemon missing three heartbeats is
taken for dead.

What is checked, from the clients' view and from the database:
* the done-when of the issue: 40 clients each get a lease, 40 distinct
  addresses, both daemons granted some, and after `kill -9` of one daemon a
  client it served rebinds with the other;
* a PostgreSQL restart in the middle: leases pause and resume by themselves,
  and no address is ever held twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netboot_lab.dhcp_peers import DEFAULT_NAMES, PeerService, PeerSettings, peer_service
from netboot_lab.postgres import PrivateCluster
from netboot_lab.udhcpc import ClientEvent, UdhcpcFleet, udhcpc_fleet
from tests.netns import require_root
from tests.postgres import fresh_schema_url

SETTINGS = PeerSettings(subnet="10.234.0", pool=("10.234.0.100", "10.234.0.220"))
LEASE_TIME = SETTINGS.lease_time
"""60 s, the shortest allowed: udhcpc rebinds by broadcast at half of it."""
NAMES = DEFAULT_NAMES


@pytest.fixture
def service(postgres_cluster: PrivateCluster, tmp_path: Path) -> Iterator[PeerService]:
    require_root()
    with peer_service(fresh_schema_url(postgres_cluster), tmp_path, SETTINGS) as running:
        yield running
    for name in NAMES:
        log = "\n".join(running.daemons[name].lines)
        assert "Traceback" not in log
        assert "RIVAL DHCP SERVER" not in log, "a peer was taken for a rival"


def assert_distinct(held: dict[str, ClientEvent]) -> None:
    addresses = [event.address for event in held.values()]
    assert len(set(addresses)) == len(addresses), f"an address held twice: {sorted(addresses)}"


def wait_rebound(fleet: UdhcpcFleet, interface: str, server: str, timeout: float) -> ClientEvent:
    """Until `interface`'s newest lease came from `server`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = fleet.latest().get(interface)
        if event is not None and event.server == server:
            return event
        time.sleep(0.25)
    raise AssertionError(
        f"{interface} did not rebind with {server} in {timeout} s: "
        f"{[e for e in fleet.events() if e.interface == interface]}"
    )


def leases_shown(service: PeerService, name: str, count: int) -> dict[str, Any]:
    """`name`'s /status.json `dhcp` once it lists `count` leases: the status page shows
    the lease table as read on the daemon's last heartbeat, so it may be up to one
    `heartbeat_interval` behind the clients."""
    deadline = time.monotonic() + 3 * SETTINGS.heartbeat_interval
    while True:
        status: dict[str, Any] = service.status(name)["dhcp"]
        if len(status["leases"]) >= count or time.monotonic() > deadline:
            return status
        time.sleep(SETTINGS.heartbeat_interval / 4)


def test_two_daemons_share_the_clients_and_one_takes_over_when_the_other_dies(
    service: PeerService,
) -> None:
    with udhcpc_fleet(service.clients, "eth0", 40, service.work / "fleet") as fleet:
        held = fleet.wait_bound(60)
        assert_distinct(held)
        servers = {event.server for event in held.values()}
        alpha, beta = service.address_of("alpha"), service.address_of("beta")
        assert servers == {alpha, beta}, f"both daemons grant leases: {servers}"
        rows = service.rows()
        assert len({address for address, *_ in rows}) == len(rows)
        assert {row[3] for row in rows if row[2] == "bound"} == set(NAMES)
        status = leases_shown(service, "alpha", len(held))
        assert status["server_id"] == "alpha" and status["store_up"] is True
        assert [(p["server_id"], p["address"], p["live"]) for p in status["peers"]] == [
            ("beta", beta, True)
        ]
        granted = {lease["mac"]: lease["server_id"] for lease in status["leases"]}
        assert set(granted.values()) == set(NAMES)
        # Full mode broadcasts its replies on a link without relays, and the lab watches
        # port 68 (`watch_rivals`): alpha heard beta's replies, which are no rival's.
        assert beta in status["servers_heard"] and status["peers"][0]["heard_ago"] is not None
        assert status["rivals"] == {}
        text = service.status_text("alpha")
        assert f"peer beta {beta}: live" in text and "reply heard on the link" in text
        assert "leases by server: alpha " in text
        victim = next(name for name, event in held.items() if event.server == alpha)
        service.daemons["alpha"].process.kill()
        service.daemons["alpha"].process.wait()
        rebound = wait_rebound(fleet, victim, beta, timeout=LEASE_TIME + 10)
        assert rebound.address == held[victim].address, "the client keeps its address"
        everyone = fleet.wait_bound(30)
        assert_distinct(everyone)
    service.daemons["beta"].seen_or_wait("DHCP peer alpha has not written a heartbeat", 5)


def test_a_database_outage_keeps_renewals_pauses_new_leases_and_they_resume(
    service: PeerService, postgres_cluster: PrivateCluster
) -> None:
    """Down for longer than half a lease: every client renews during the outage, from
    the memory of the daemon that granted its lease; new clients wait, and get
    their leases by themselves once the database is back."""
    with udhcpc_fleet(service.clients, "eth0", 10, service.work / "first") as first:
        before = first.wait_bound(60)
        assert_distinct(before)
        postgres_cluster.stop()
        try:
            for daemon in service.daemons.values():
                daemon.seen_or_wait(r"lease database .* unreachable", timeout=15)
            stopped = len(first.events())
            time.sleep(LEASE_TIME / 2 + 3)
            renewed = [e for e in first.events()[stopped:] if e.event == "renew"]
            assert {e.interface for e in renewed} == set(before), "renewals go on:\n" + "\n".join(
                service.log_of(name)[-6000:] for name in NAMES
            )
            assert all(e.address == before[e.interface].address for e in renewed)
            assert all(e.lease is not None and e.lease < LEASE_TIME for e in renewed)
            with udhcpc_fleet(service.clients, "eth0", 5, service.work / "late", first=40) as late:
                time.sleep(4)
                assert late.latest() == {}, "no new lease while the database is down"
                postgres_cluster.start()
                for daemon in service.daemons.values():
                    daemon.wait_for(r"lease database .* reachable again", timeout=30)
                joined = late.wait_bound(30)
                assert_distinct({**first.latest(), **joined})
        finally:
            if not postgres_cluster.running():
                postgres_cluster.start()
    rows = service.rows()
    assert len({address for address, *_ in rows}) == len(rows)
