"""Three daemons as one DHCP service under a storm: one daemon killed, the database restarted.

Issue #21's storm test. Three real daemons (`netboot serve`, full mode) on one
namespace bridge share a private PostgreSQL cluster (tests/postgres.py), as in
tests/test_dhcp_failover.py. Two kinds of clients at once, from the client
namespace:

* perfdhcp (Kea's) with 300 MACs, at a bounded rate for a bounded time: the
  load. It acts as a relay from the client host's address (giaddr), and
  broadcasts, so every daemon hears every DISCOVER and every REQUEST, and the
  split (netboot.dhcp.peers) decides who answers; its REQUESTs name the server
  that offered, which the other two must never take as a reason to drop it.
* busybox udhcpc on macvlan interfaces (netboot_lab.udhcpc): real clients that
  act on their leases, so what "every client ends with a lease" and "no
  address held twice" mean is what the clients themselves were told.

The segment is a /22 so one pool holds the 300 perfdhcp clients and the udhcpc
ones together. What is checked: no address held twice among the udhcpc clients,
nor in the database (`PeerService.rows`), every bound row a different MAC, and
each udhcpc client's address is the one the database holds for its MAC; after
`kill -9` of one daemon mid-storm every udhcpc client still ends with a lease,
the killed daemon's clients rebound with a survivor; after the database stops
and starts again mid-storm no lease is lost (every client keeps its address,
its row is still there) and new clients get leases once the daemons say the
database is reachable again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from ipaddress import IPv4Address
from pathlib import Path

import psycopg
import pytest

from netboot_lab.dhcp_peers import PeerService, PeerSettings, peer_service
from netboot_lab.perfdhcp import V4_LAST, PerfdhcpReport, perfdhcp_command, run_perfdhcp
from netboot_lab.postgres import PrivateCluster
from netboot_lab.udhcpc import ClientEvent, UdhcpcFleet, client_mac, udhcpc_fleet
from tests.netns import require_root
from tests.postgres import fresh_schema_url
from tests.test_dhcp_network import require_tool

NAMES = ("alpha", "beta", "gamma")
SETTINGS = PeerSettings(subnet="10.235.0", prefix=22, pool=("10.235.1.0", "10.235.2.255"))
"""512 addresses for 300 perfdhcp clients and at most 60 udhcpc ones."""
LEASE_TIME = SETTINGS.lease_time
"""60 s, the shortest allowed: udhcpc rebinds by broadcast at half of it."""
PERF_CLIENTS = 300
PERF_RATE = 100
PERF_SECONDS = 10
UDHCPC_CLIENTS = 50


@pytest.fixture
def service(postgres_cluster: PrivateCluster, tmp_path: Path) -> Iterator[PeerService]:
    require_root()
    require_tool("perfdhcp", "kea-admin")
    with peer_service(fresh_schema_url(postgres_cluster), tmp_path, SETTINGS, NAMES) as running:
        yield running
    for name in NAMES:
        log = "\n".join(running.daemons[name].lines)
        assert "Traceback" not in log
        assert "RIVAL DHCP SERVER" not in log, "a peer was taken for a rival"


def storm(service: PeerService, pool: ThreadPoolExecutor) -> Future[PerfdhcpReport]:
    """perfdhcp from the client host, in the background: DISCOVERs at PERF_RATE a
    second from PERF_CLIENTS MACs for PERF_SECONDS, each OFFER followed by its REQUEST."""
    command = perfdhcp_command(
        4, "eth0", PERF_RATE, PERF_CLIENTS, "-p", str(PERF_SECONDS), "-W", "1000000"
    )
    return pool.submit(run_perfdhcp, service.clients, command, V4_LAST, PERF_SECONDS + 30)


def assert_one_holder(service: PeerService, held: dict[str, ClientEvent]) -> None:
    """No address twice among the clients nor in the database, no MAC bound twice,
    and every client's address is its own MAC's row in the database."""
    addresses = [str(event.address) for event in held.values()]
    assert len(set(addresses)) == len(addresses), f"an address held twice: {sorted(addresses)}"
    rows = service.rows()
    assert len({address for address, *_ in rows}) == len(rows), f"duplicate rows: {rows}"
    bound_macs = [mac for _, mac, state, _ in rows if state == "bound"]
    assert len(set(bound_macs)) == len(bound_macs), "a MAC bound to two addresses"
    by_address = {address: mac for address, mac, *_ in rows}
    for interface, event in held.items():
        expected = client_mac(int(interface.removeprefix("c")))
        holder = by_address.get(str(event.address))
        assert holder == expected, (
            f"{interface} ({expected}) holds {event.address}, whose active row is {holder}'s;"
            f" every row there or for it: {rows_of(service, str(event.address), expected)}"
        )


def rows_of(service: PeerService, address: str, mac: str) -> list[tuple[object, ...]]:
    """Every row, whatever its state, at `address` or for `mac`: for a failure message."""
    with psycopg.connect(service.url, autocommit=True) as conn:
        return conn.execute(
            "SELECT address, mac, state, expires - extract(epoch FROM now()), server_id"
            " FROM lease WHERE address = %s OR mac = %s",
            (int(IPv4Address(address)), mac),
        ).fetchall()


def wait_served_by(fleet: UdhcpcFleet, servers: set[str], timeout: float) -> dict[str, ClientEvent]:
    """Until every client's newest lease came from one of `servers`."""
    deadline = time.monotonic() + timeout
    while True:
        held = fleet.latest()
        strays = [i for i in fleet.interfaces() if i not in held or held[i].server not in servers]
        if not strays:
            return held
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(strays)} client(s) not served by {servers}: {strays[:10]}")
        time.sleep(0.5)


def test_three_daemons_under_a_storm_lose_no_client_when_one_is_killed(
    service: PeerService,
) -> None:
    with ThreadPoolExecutor(1) as pool:
        load = storm(service, pool)
        with udhcpc_fleet(service.clients, "eth0", UDHCPC_CLIENTS, service.work / "fleet") as fleet:
            time.sleep(PERF_SECONDS / 3)
            service.daemons["alpha"].process.kill()
            service.daemons["alpha"].process.wait()
            alpha = service.address_of("alpha")
            orphans = {e.interface for e in fleet.events() if e.server == alpha}
            assert orphans, "alpha had leased to some clients before it was killed"
            report = load.result()
            survivors = {service.address_of("beta"), service.address_of("gamma")}
            # The killed daemon's clients rebind by broadcast at half their lease.
            held = wait_served_by(fleet, survivors, timeout=LEASE_TIME)
            assert_one_holder(service, held)
    served = report.count(V4_LAST, "received packets")
    assert served >= PERF_CLIENTS, f"the storm was served:\n{report.output}"
    assert report.count(V4_LAST, "rejected leases") == 0, report.output
    for name in ("beta", "gamma"):
        service.daemons[name].seen_or_wait("DHCP peer alpha has not written a heartbeat", 5)


def test_a_database_restart_mid_storm_loses_no_lease_and_leases_resume(
    service: PeerService, postgres_cluster: PrivateCluster
) -> None:
    with (
        ThreadPoolExecutor(1) as pool,
        udhcpc_fleet(service.clients, "eth0", UDHCPC_CLIENTS, service.work / "first") as first,
    ):
        before = first.wait_bound(60)
        assert_one_holder(service, before)
        load = storm(service, pool)
        time.sleep(PERF_SECONDS / 3)
        postgres_cluster.stop()
        try:
            time.sleep(2)
        finally:
            postgres_cluster.start()
        for daemon in service.daemons.values():
            daemon.wait_for(r"lease database .* reachable again", timeout=30)
        with udhcpc_fleet(service.clients, "eth0", 10, service.work / "late", first=100) as late:
            joined = late.wait_bound(30)
            report = load.result()
            after = first.latest()
            assert {i: e.address for i, e in after.items()} == {
                i: e.address for i, e in before.items()
            }, "every client keeps its address"
            assert_one_holder(service, {**after, **joined})
    assert report.count(V4_LAST, "received packets") > 0, report.output
    assert report.count(V4_LAST, "rejected leases") == 0, report.output
