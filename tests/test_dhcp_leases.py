"""The lease database: allocation order, refusals, persistence and sharing a file.

Stores live in SQLite files under `tmp_path`, so every test also crosses the
disk format; the clock is a `FakeClock` the test moves by hand. Clients are
numbered: `client(n)` is a MAC and the client identifier a DHCP client without
option 61 gets (0x01 + chaddr). Addresses are `ip(n)`, host n of 10.0.0.0/24.

Two things are checked from outside the store rather than through its API: the
journal mode (a second SQLite connection reads it), and, in the concurrency and
property tests, that no address is held by two clients, counted over the leases
the store *returned* to its callers, which is what clients would act on.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from netboot.dhcp.lease_file import SCHEMA_VERSION
from netboot.dhcp.lease_pg import PgLeaseStore
from netboot.dhcp.lease_store import (
    LeaseBackend,
    ServerSeen,
    is_postgresql_url,
    lease_database_name,
)
from netboot.dhcp.leases import (
    AddressPool,
    Lease,
    LeaseDatabaseError,
    LeaseState,
    LeaseStore,
)
from netboot.errors import NetbootError
from netboot.macaddr import MacAddress, mac_from_bytes
from netboot_lab.postgres import PrivateCluster
from tests.postgres import fresh_schema_url

START = 1_700_000_000.0
NET = IPv4Address("10.0.0.0")


# --- helpers -----------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Client:
    cid: bytes
    mac: MacAddress


def client(number: int) -> Client:
    raw = bytes((2, 0, 0)) + number.to_bytes(3, "big")
    return Client(b"\x01" + raw, mac_from_bytes(raw))


def ip(host: int) -> IPv4Address:
    return NET + host


def pool(
    first: int = 1,
    last: int = 10,
    *,
    reservations: dict[MacAddress, IPv4Address] | None = None,
    excluded: tuple[int, ...] = (),
) -> AddressPool:
    return AddressPool(
        ip(first),
        ip(last),
        reservations or {},
        frozenset(ip(host) for host in excluded),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "leases.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the contract tests keep their leases: an SQLite file, or a fresh schema of
    the session's private PostgreSQL cluster (the same contract, two backends)."""
    if request.param == "sqlite":
        return tmp_path / "leases.db"
    cluster: PrivateCluster = request.getfixturevalue("postgres_cluster")
    return fresh_schema_url(cluster)


def open_store(
    path: Path | str, clock: FakeClock, address_pool: AddressPool | None = None, **kw: Any
) -> LeaseBackend:
    if is_postgresql_url(path):
        return PgLeaseStore(str(path), address_pool or pool(), clock, **kw)
    return LeaseStore(path, address_pool or pool(), clock, **kw)


def open_sqlite(
    path: Path | str, clock: FakeClock, address_pool: AddressPool | None = None, **kw: Any
) -> LeaseStore:
    return LeaseStore(path, address_pool or pool(), clock, **kw)


@pytest.fixture
def store(database: Path | str, clock: FakeClock) -> Iterator[LeaseBackend]:
    lease_store = open_store(database, clock)
    yield lease_store
    lease_store.close()


def offered(store: LeaseBackend, number: int, requested: IPv4Address | None = None) -> Lease:
    c = client(number)
    lease = store.offer(c.cid, c.mac, requested)
    assert lease is not None, f"no offer for client {number}"
    return lease


def bound(
    store: LeaseBackend, number: int, lease_time: float = 3600.0, hostname: str | None = None
) -> Lease:
    """DISCOVER then REQUEST of the offered address, as a fresh client does it."""
    c = client(number)
    lease = store.bind(c.cid, c.mac, offered(store, number).address, lease_time, hostname)
    assert lease is not None, f"client {number} was refused its offer"
    return lease


def bind(
    store: LeaseBackend, number: int, address: IPv4Address, lease_time: float = 3600.0
) -> Lease | None:
    c = client(number)
    return store.bind(c.cid, c.mac, address, lease_time)


# --- the pool ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pool(10, 1), "after its end"),
        (lambda: AddressPool(IPv4Address("10.0.0.0"), IPv4Address("10.1.0.0")), "at most 65536"),
        (
            lambda: pool(reservations={client(1).mac: ip(3), client(2).mac: ip(3)}),
            "reserved for both",
        ),
        (lambda: pool(reservations={client(1).mac: ip(3)}, excluded=(3,)), "also excluded"),
    ],
)
def test_pool_refuses_impossible_definitions(make: Callable[[], AddressPool], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_pool_size_counts_what_may_be_handed_out() -> None:
    p = pool(1, 10, reservations={client(1).mac: ip(200), client(2).mac: ip(4)}, excluded=(1, 5))
    assert p.size == 10 - 2 + 1
    assert [p.contains(ip(n)) for n in (1, 2, 4, 5, 10, 11, 200)] == [
        False, True, True, False, True, False, True,
    ]  # fmt: skip
    assert AddressPool(IPv4Address("10.0.0.0"), IPv4Address("10.0.255.255")).size == 65536


def test_pool_keeps_its_own_copy_of_the_reservations() -> None:
    reservations = {client(1).mac: ip(3)}
    p = pool(reservations=reservations)
    reservations[client(2).mac] = ip(4)
    assert p.reserved_for(ip(4)) is None
    assert p.reserved_for(ip(3)) == client(1).mac


# --- choosing an address ------------------------------------------------------------------


def test_an_offer_is_the_lowest_address_and_holds_it_against_other_clients(
    store: LeaseBackend, clock: FakeClock
) -> None:
    first = offered(store, 1)
    assert (first.address, first.state, first.expires) == (ip(1), LeaseState.OFFERED, START + 30)
    assert first.client_id == client(1).cid and first.mac == client(1).mac
    assert offered(store, 2).address == ip(2)
    assert offered(store, 1).address == ip(1), "a repeated DISCOVER gets the same offer"


def test_excluded_addresses_are_never_offered(database: Path | str, clock: FakeClock) -> None:
    with open_store(database, clock, pool(1, 4, excluded=(1, 3))) as store:
        assert [offered(store, n).address for n in (1, 2)] == [ip(2), ip(4)]
        assert store.offer(client(3).cid, client(3).mac, ip(3)) is None


def test_a_bound_client_discovering_gets_its_lease_unchanged(
    store: LeaseBackend, clock: FakeClock
) -> None:
    lease = bound(store, 1, hostname="mac-1")
    clock.advance(100)
    again = offered(store, 1, requested=ip(7))
    assert again == lease
    assert store.lease_for(client(1).cid) == lease


def test_never_used_addresses_go_before_expired_ones_and_the_oldest_expiry_first(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 5)) as store:
        for number, lease_time in ((1, 300), (2, 100), (3, 200)):
            bound(store, number, lease_time)
        clock.advance(400)
        handed = [offered(store, n).address for n in range(10, 15)]
        assert handed == [ip(4), ip(5), ip(2), ip(3), ip(1)]
        assert store.offer(client(15).cid, client(15).mac) is None


def test_a_lapsed_offer_is_reused_like_an_expired_lease(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 2)) as store:
        offered(store, 1)
        bound(store, 2)
        assert store.offer(client(3).cid, client(3).mac) is None
        clock.advance(31)
        assert offered(store, 3).address == ip(1)


def test_a_released_address_queues_from_the_moment_of_release(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 2)) as store:
        bound(store, 1, lease_time=1000)
        bound(store, 2, lease_time=100)
        clock.advance(50)
        assert store.release(client(1).cid, ip(1))
        clock.advance(100)
        assert [offered(store, n).address for n in (3, 4)] == [ip(1), ip(2)]


def test_pool_exhaustion_and_reuse_after_expiry(database: Path | str, clock: FakeClock) -> None:
    with open_store(database, clock, pool(1, 3)) as store:
        for number, lease_time in ((1, 300), (2, 100), (3, 200)):
            bound(store, number, lease_time)
        assert store.offer(client(4).cid, client(4).mac) is None
        assert store.counts() == {"offered": 0, "bound": 3, "quarantined": 0, "free": 0}
        clock.advance(150)
        assert bound(store, 4).address == ip(2)
        assert store.offer(client(5).cid, client(5).mac) is None


def test_a_requested_address_is_honoured_only_when_free(store: LeaseBackend) -> None:
    assert offered(store, 1, requested=ip(5)).address == ip(5)
    assert offered(store, 2, requested=ip(5)).address == ip(1)
    assert offered(store, 3, requested=ip(50)).address == ip(2), "outside the pool"


def test_a_client_gets_its_previous_address_back_first(
    store: LeaseBackend, clock: FakeClock
) -> None:
    bound(store, 1)
    assert store.release(client(1).cid, ip(1))
    released = store.lease_at(ip(1))
    assert released is not None
    assert (released.state, released.client_id) == (LeaseState.RELEASED, client(1).cid)
    assert offered(store, 2).address == ip(2), "others take never-used addresses first"
    clock.advance(10_000)
    assert offered(store, 1, requested=ip(9)).address == ip(1)


def test_a_released_address_goes_to_another_client_when_nothing_else_is_free(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 2)) as store:
        bound(store, 1)
        assert store.release(client(1).cid, ip(1))
        assert bound(store, 2).address == ip(2)
        assert bound(store, 3).address == ip(1)
        assert store.offer(client(1).cid, client(1).mac) is None
        assert store.lease_for(client(1).cid) is None, "the address is no longer associated"


# --- reservations -------------------------------------------------------------------------


def reserved_pool() -> AddressPool:
    return pool(1, 3, reservations={client(1).mac: ip(2), client(2).mac: ip(200)})


def test_a_reserved_mac_always_gets_its_address(database: Path | str, clock: FakeClock) -> None:
    with open_store(database, clock, reserved_pool()) as store:
        assert offered(store, 1, requested=ip(1)).address == ip(2)
        assert bound(store, 2).address == ip(200), "a reservation outside the range"
        assert bind(store, 1, ip(1)) is None, "its reservation is free for it"
        assert bound(store, 1).address == ip(2)


def test_no_other_mac_ever_gets_a_reserved_address(database: Path | str, clock: FakeClock) -> None:
    with open_store(database, clock, reserved_pool()) as store:
        assert [offered(store, n).address for n in (3, 4)] == [ip(1), ip(3)]
        assert store.offer(client(5).cid, client(5).mac, ip(2)) is None
        assert bind(store, 5, ip(2)) is None
        assert bind(store, 5, ip(200)) is None
        assert store.counts()["free"] == 2, "two reservations, nobody holding them"


def test_a_reserved_address_is_not_reused_when_its_lease_expires(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, reserved_pool()) as store:
        assert bound(store, 1, lease_time=10).address == ip(2)
        clock.advance(100)
        assert [bound(store, n).address for n in (3, 4)] == [ip(1), ip(3)]
        assert store.offer(client(5).cid, client(5).mac) is None
        assert offered(store, 1).address == ip(2)


def test_an_address_excluded_after_use_is_not_reused(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 2)) as store:
        bound(store, 1, lease_time=10)
        bound(store, 2, lease_time=20)
    clock.advance(100)
    with open_store(database, clock, pool(1, 2, excluded=(1,))) as store:
        assert bind(store, 1, ip(1)) is None
        assert offered(store, 3).address == ip(2)
        assert store.offer(client(4).cid, client(4).mac) is None


def test_a_new_reservation_moves_its_client_off_its_old_address(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 5)) as store:
        assert bound(store, 1).address == ip(1)
    with open_store(database, clock, pool(1, 5, reservations={client(1).mac: ip(4)})) as store:
        assert bind(store, 1, ip(1)) is None, "the renewal is NAKed"
        moved = offered(store, 1)
        assert moved.address == ip(4)
        assert store.holder(ip(1)) is None


def test_a_reserved_client_falls_back_to_the_pool_while_its_address_is_quarantined(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, reserved_pool()) as store:
        assert bound(store, 1).address == ip(2)
        assert store.decline(client(1).cid, ip(2))
        assert bound(store, 1).address == ip(1)


# --- REQUEST, RELEASE, DECLINE ---------------------------------------------------------------


def test_bind_refusals(database: Path | str, clock: FakeClock) -> None:
    with open_store(database, clock, pool(1, 5, excluded=(5,))) as store:
        assert offered(store, 1).address == ip(1)
        assert bound(store, 2).address == ip(2)
        assert bind(store, 3, ip(1)) is None, "offered to another client"
        assert bind(store, 3, ip(2)) is None, "bound to another client"
        assert bind(store, 3, ip(6)) is None, "outside the pool"
        assert bind(store, 3, ip(5)) is None, "excluded"
        assert store.decline(client(2).cid, ip(2))
        assert bind(store, 2, ip(2)) is None, "quarantined, even for the client that declined"
        assert bind(store, 3, ip(2)) is None, "quarantined"
        with pytest.raises(ValueError, match="lease_time"):
            bind(store, 3, ip(3), lease_time=0)


def test_init_reboot_binds_a_free_address_never_offered(store: LeaseBackend) -> None:
    lease = bind(store, 1, ip(7), lease_time=600)
    assert lease is not None
    assert (lease.address, lease.state, lease.expires) == (ip(7), LeaseState.BOUND, START + 600)


def test_renewal_extends_the_lease_and_keeps_the_hostname(
    store: LeaseBackend, clock: FakeClock
) -> None:
    bound(store, 1, hostname="lab-1")
    clock.advance(1800)
    renewed = bind(store, 1, ip(1))
    assert renewed is not None
    assert (renewed.expires, renewed.hostname) == (START + 1800 + 3600, "lab-1")


def test_binding_another_address_releases_the_old_one(store: LeaseBackend) -> None:
    bound(store, 1)
    moved = bind(store, 1, ip(5))
    assert moved is not None and moved.address == ip(5)
    old = store.lease_at(ip(1))
    assert old is not None and old.state == LeaseState.RELEASED
    assert store.holder(ip(1)) is None
    assert store.lease_for(client(1).cid) == moved
    assert store.counts()["bound"] == 1


def test_only_the_holder_may_release(store: LeaseBackend) -> None:
    bound(store, 1)
    assert not store.release(client(2).cid, ip(1))
    assert not store.release(client(1).cid, ip(2))
    assert store.release(client(1).cid, ip(1))
    assert not store.release(client(1).cid, ip(1)), "nothing left to release"
    assert store.holder(ip(1)) is None


def test_releasing_an_expired_lease_keeps_its_place_in_the_reuse_queue(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 2)) as store:
        bound(store, 1, lease_time=10)
        bound(store, 2, lease_time=20)
        clock.advance(30)
        assert not store.release(client(1).cid, ip(1))
        assert offered(store, 3).address == ip(1)


def test_a_declined_address_is_quarantined_then_handed_out_again(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 3), quarantine=600) as store:
        bound(store, 1)
        assert not store.decline(client(2).cid, ip(1)), "only the holder may decline"
        assert store.decline(client(1).cid, ip(1))
        assert not store.decline(client(1).cid, ip(1)), "already declined"
        assert store.counts() == {"offered": 0, "bound": 0, "quarantined": 1, "free": 2}
        assert bound(store, 1).address == ip(2), "the decliner is not given it back"
        assert bound(store, 2).address == ip(3)
        assert store.offer(client(3).cid, client(3).mac, ip(1)) is None
        clock.advance(599)
        assert store.offer(client(3).cid, client(3).mac) is None
        clock.advance(1)
        assert offered(store, 3).address == ip(1)


def test_a_lifted_quarantine_queues_behind_leases_that_ended_earlier(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock, pool(1, 3), quarantine=600) as store:
        bound(store, 1)
        bound(store, 2, lease_time=100)
        bound(store, 3, lease_time=700)
        assert store.decline(client(1).cid, ip(1))
        clock.advance(800)
        assert [offered(store, n).address for n in (4, 5, 6)] == [ip(2), ip(1), ip(3)]


# --- reading ----------------------------------------------------------------------------


def test_lease_for_holder_leases_and_counts(store: LeaseBackend, clock: FakeClock) -> None:
    assert store.lease_for(client(1).cid) is None
    first = bound(store, 1, hostname="one")
    second = offered(store, 2)
    assert store.holder(ip(1)) == first
    assert store.holder(ip(3)) is None
    assert store.leases() == [first, second]
    assert store.counts() == {"offered": 1, "bound": 1, "quarantined": 0, "free": 8}
    clock.advance(31)
    assert store.holder(ip(2)) is None
    assert store.lease_for(client(2).cid) == second, "any state, expired included"
    assert store.counts() == {"offered": 0, "bound": 1, "quarantined": 0, "free": 9}


# --- servers sharing the store -------------------------------------------------------------


def test_rows_carry_the_server_that_wrote_them_and_heartbeats_are_upserted(
    database: Path | str, clock: FakeClock
) -> None:
    with open_store(database, clock) as first:
        first.server_id = "alpha"
        lease = bound(first, 1)
        assert lease.server_id == "alpha"
        assert first.up
        first.heartbeat("alpha", "10.0.0.250", 0.5)
        clock.advance(10)
        first.heartbeat("beta", "10.0.0.251", 0.25)
        first.heartbeat("alpha", "10.0.0.249", 0.75)
        assert first.servers(within=60) == [
            ServerSeen("alpha", "10.0.0.249", START + 10, 0.75),
            ServerSeen("beta", "10.0.0.251", START + 10, 0.25),
        ]
        clock.advance(30)
        assert first.servers(within=30) == [], "heartbeats older than `within` are not live"
    with open_store(database, clock) as second:
        second.server_id = "beta"
        assert second.lease_at(ip(1)) == lease
        assert second.release(client(1).cid, ip(1))
        released = second.lease_at(ip(1))
        assert released is not None and released.server_id == "beta"


def test_a_lease_database_is_named_without_its_password() -> None:
    """Logs and the status page name the database: a file by its path, a URL without
    the password it may carry."""
    assert lease_database_name(Path("/var/lib/netboot/leases.db")) == "/var/lib/netboot/leases.db"
    assert (
        lease_database_name("postgresql://netboot:s3cret@db.example:5432/leases")
        == "postgresql://netboot:***@db.example:5432/leases"
    )
    assert lease_database_name("postgres://netboot@db/leases") == "postgres://netboot@db/leases"


def test_reconnecting_a_store_that_is_up_changes_nothing(store: LeaseBackend) -> None:
    """The daemon reconnects only a store that is down; one that is up (an SQLite
    file always is) says True and keeps its leases and its connection."""
    lease = bound(store, 1)
    assert store.up and store.reconnect()
    assert store.up and store.lease_at(lease.address) == lease


# --- the file -------------------------------------------------------------------------------


def test_leases_and_quarantine_survive_a_restart(database: Path | str, clock: FakeClock) -> None:
    with open_store(database, clock, pool(1, 3)) as store:
        first = bound(store, 1, hostname="one")
        bound(store, 2)
        assert store.decline(client(2).cid, ip(2))
        before = store.leases()
    clock.advance(60)
    with open_store(database, clock, pool(1, 3)) as store:
        assert store.leases() == before
        assert offered(store, 1) == first
        assert bind(store, 1, ip(1)) is not None
        assert bound(store, 3).address == ip(3)
        assert store.offer(client(4).cid, client(4).mac) is None, "ip(2) still quarantined"


def test_a_restarted_store_finds_the_lowest_never_used_address(
    database: Path | str, clock: FakeClock
) -> None:
    """The never-used cursor starts over on open and walks several index batches."""
    with open_store(database, clock, pool(1, 700)) as store:
        for number in range(1, 601):
            bound(store, number)
        assert store.release(client(3).cid, ip(3))
    with open_store(database, clock, pool(1, 700, excluded=(601, 602))) as store:
        assert offered(store, 1000).address == ip(603)
        assert offered(store, 1001).address == ip(604)


def test_the_file_is_in_wal_mode_and_sound(db: Path, clock: FakeClock) -> None:
    with open_sqlite(db, clock) as store:
        bound(store, 1)
        assert store.integrity_check() == "ok"
    with sqlite3.connect(db) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "leases.txt"
    path.write_text("10.0.0.1 aa:bb:cc:dd:ee:ff\n" * 100)
    with pytest.raises(LeaseDatabaseError, match=str(path)) as caught:
        open_sqlite(path, clock)
    assert isinstance(caught.value, NetbootError)
    assert caught.value.path == str(path)


def test_someone_elses_sqlite_database_is_refused_untouched(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (body TEXT)")
    other.close()
    with pytest.raises(LeaseDatabaseError, match="not a netboot lease database"):
        open_sqlite(path, clock)
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    other.close()


def test_a_newer_schema_is_refused(db: Path, clock: FakeClock) -> None:
    open_sqlite(db, clock).close()
    with sqlite3.connect(db) as other:
        other.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    other.close()
    with pytest.raises(LeaseDatabaseError, match="newer"):
        open_sqlite(db, clock)


def test_a_schema_2_file_gains_the_server_column_and_table_in_place(
    db: Path, clock: FakeClock
) -> None:
    """Rows written before issue #21 keep everything and get an empty server_id."""
    with sqlite3.connect(db) as old:
        old.execute(
            "CREATE TABLE lease (address INTEGER PRIMARY KEY, client_id BLOB NOT NULL,"
            " mac TEXT NOT NULL, state TEXT NOT NULL, expires REAL NOT NULL, hostname TEXT,"
            " seq INTEGER NOT NULL)"
        )
        old.execute("CREATE TABLE lease6 (address BLOB PRIMARY KEY) WITHOUT ROWID")
        old.execute(
            "INSERT INTO lease VALUES (?, ?, ?, 'bound', ?, 'old', 1)",
            (int(ip(4)), client(1).cid, str(client(1).mac), START + 100),
        )
        old.execute("PRAGMA application_id = 1312969804")
        old.execute("PRAGMA user_version = 2")
    old.close()
    with open_sqlite(db, clock) as store:
        assert store.lease_at(ip(4)) == Lease(
            ip(4), client(1).cid, client(1).mac, LeaseState.BOUND, START + 100, "old", ""
        )
        store.heartbeat("alpha", "10.0.0.250", 0.0)
        assert [seen.server_id for seen in store.servers(60)] == ["alpha"]
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    check.close()


def test_a_missing_directory_is_refused_by_name(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "absent" / "leases.db"
    with pytest.raises(LeaseDatabaseError, match=str(path)):
        open_sqlite(path, clock)


def test_an_in_memory_store_works(clock: FakeClock) -> None:
    with open_sqlite(":memory:", clock) as store:
        assert bound(store, 1).address == ip(1)
        assert store.integrity_check() == "ok"


# --- several stores on one file ------------------------------------------------------------


def serve(path: str, first_client: int, count: int) -> list[str]:
    """DISCOVER + REQUEST for `count` clients through a store of its own; bound addresses.

    Module-level so that a spawned process can import it.
    """
    clock = FakeClock()
    with LeaseStore(path, pool(1, 200), clock, busy_timeout=30.0) as store:
        addresses = []
        for number in range(first_client, first_client + count):
            c = client(number)
            lease = store.offer(c.cid, c.mac)
            if lease is None:
                continue
            result = store.bind(c.cid, c.mac, lease.address, 3600.0)
            assert result is not None, f"client {number} offered {lease.address}, then NAKed"
            addresses.append(str(result.address))
        return addresses


def check_shared(path: Path, handed: list[str]) -> None:
    """Every address went to exactly one client, and the file agrees."""
    assert len(handed) == 200, "a store gave up while addresses were left"
    assert len(set(handed)) == len(handed), "an address was handed out twice"
    with LeaseStore(path, pool(1, 200), FakeClock()) as store:
        rows = store.leases()
        assert sorted(str(lease.address) for lease in rows) == sorted(handed)
        assert len({lease.client_id for lease in rows}) == 200
        assert store.integrity_check() == "ok"


def test_stores_in_threads_never_hand_out_an_address_twice(db: Path) -> None:
    open_sqlite(db, FakeClock()).close()
    results: list[list[str]] = [[] for _ in range(4)]

    def work(index: int) -> None:
        results[index] = serve(str(db), index * 1000, 75)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_shared(db, [address for result in results for address in result])


def test_stores_in_processes_never_hand_out_an_address_twice(db: Path) -> None:
    open_sqlite(db, FakeClock()).close()
    with multiprocessing.get_context("spawn").Pool(2) as workers:
        results = workers.starmap(serve, [(str(db), 0, 150), (str(db), 1000, 150)])
    check_shared(db, [address for result in results for address in result])


# --- random sequences ------------------------------------------------------------------------

MACHINE_POOL = pool(1, 6, reservations={client(0).mac: ip(9)}, excluded=(2,))


class LeaseMachine(RuleBasedStateMachine):
    """Random DORA, RELEASE and DECLINE traffic from six clients on a small pool.

    `believed` is what each client was last told; a RELEASE or DECLINE the store
    accepted ends it. However the steps interleave, no two clients may believe
    they hold one address, and the store must agree with every belief.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = LeaseStore(":memory:", MACHINE_POOL, self.clock, offer_hold=30, quarantine=100)
        self.believed: dict[int, Lease] = {}

    clients = st.integers(0, 5)
    addresses = st.integers(0, 10).map(ip)

    @rule(number=clients, requested=st.none() | addresses)
    def discover(self, number: int, requested: IPv4Address | None) -> None:
        c = client(number)
        lease = self.store.offer(c.cid, c.mac, requested)
        if lease is not None:
            assert lease.active(self.clock.now)
            self.believed[number] = lease

    @rule(number=clients, address=addresses, lease_time=st.sampled_from([10.0, 50.0, 200.0]))
    def request(self, number: int, address: IPv4Address, lease_time: float) -> None:
        c = client(number)
        lease = self.store.bind(c.cid, c.mac, address, lease_time)
        if lease is not None:
            self.believed[number] = lease

    @rule(number=clients, address=addresses)
    def release(self, number: int, address: IPv4Address) -> None:
        if self.store.release(client(number).cid, address):
            self.forget(number, address)

    @rule(number=clients, address=addresses)
    def decline(self, number: int, address: IPv4Address) -> None:
        if self.store.decline(client(number).cid, address):
            self.forget(number, address)

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0, 60.0, 150.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def forget(self, number: int, address: IPv4Address) -> None:
        belief = self.believed.get(number)
        if belief is not None and belief.address == address:
            del self.believed[number]

    @invariant()
    def one_client_per_address_and_one_address_per_client(self) -> None:
        now = self.clock.now
        active = {n: lease for n, lease in self.believed.items() if lease.active(now)}
        held = [lease.address for lease in active.values()]
        assert len(held) == len(set(held)), active
        for number, lease in active.items():
            holder = self.store.holder(lease.address)
            assert holder is not None and holder.client_id == client(number).cid, (lease, holder)
        rows = [lease for lease in self.store.leases() if lease.active(now)]
        assert len({lease.client_id for lease in rows}) == len(rows), rows
        for lease in rows:
            assert MACHINE_POOL.contains(lease.address), lease
            assert MACHINE_POOL.reserved_for(lease.address) in (None, lease.mac), lease

    def teardown(self) -> None:
        self.store.close()


TestLeaseMachine = LeaseMachine.TestCase
TestLeaseMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# --- group commit ------------------------------------------------------------------


def test_a_batch_commits_every_operation_inside_at_once(db: Path, clock: FakeClock) -> None:
    """Nothing of a batch is visible to another connection until it ends, then all is."""
    with open_sqlite(db, clock) as store:
        with store.batch():
            first = offered(store, 1)
            second = offered(store, 2)
            bound(store, 3)
            other = sqlite3.connect(db)
            try:
                assert other.execute("SELECT count(*) FROM lease").fetchone()[0] == 0
            finally:
                other.close()
        other = sqlite3.connect(db)
        try:
            assert other.execute("SELECT count(*) FROM lease").fetchone()[0] == 3
        finally:
            other.close()
        assert {first.address, second.address} == {ip(1), ip(2)}


def test_a_failed_operation_in_a_batch_undoes_only_itself(db: Path, clock: FakeClock) -> None:
    """A savepoint per operation: the others in the batch still commit."""
    with open_sqlite(db, clock) as store:
        with store.batch():
            kept = offered(store, 1)
            with pytest.raises(ValueError, match="lease_time"):
                store.bind(client(2).cid, client(2).mac, ip(2), lease_time=0)
            with pytest.raises(RuntimeError, match="boom"), store._file.transaction():
                store._db.execute(
                    "INSERT INTO lease (client_id, mac, state, expires, hostname, seq, address)"
                    " VALUES (x'01', '02:00:00:00:00:09', 'bound', 1e12, NULL, 1, ?)",
                    (int(ip(9)),),
                )
                raise RuntimeError("boom")
        assert store.lease_at(ip(9)) is None
        assert store.lease_at(kept.address) == kept


def test_batches_do_not_nest(store: LeaseBackend) -> None:
    with store.batch(), pytest.raises(RuntimeError, match="nest"), store.batch():
        pass


def test_an_operation_that_writes_twice_in_a_batch_is_undone_whole(
    db: Path, clock: FakeClock
) -> None:
    """Moving a client releases its old address and writes the new one: a failed write
    of the new one must not leave the old one released (its savepoint), while an
    operation that writes once needs none and the batch's others still commit."""
    with open_sqlite(db, clock) as store:
        held = bound(store, 1)
        store._db.execute(
            "CREATE TEMP TRIGGER refuse AFTER UPDATE ON lease WHEN new.address = ?"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END".replace("?", str(int(ip(5))))
        )
        store._db.execute(
            "INSERT INTO lease (client_id, mac, state, expires, hostname, seq, address)"
            " VALUES (x'09', '02:00:00:00:00:09', 'released', 0, NULL, 1, ?)",
            (int(ip(5)),),
        )
        with store.batch():
            other = offered(store, 2)
            with pytest.raises(LeaseDatabaseError, match="refused"):
                store.bind(client(1).cid, client(1).mac, ip(5), 3600.0)
            with pytest.raises(LeaseDatabaseError, match="refused"):
                store.bind(client(3).cid, client(3).mac, ip(5), 3600.0)
        assert store.lease_at(held.address) == held
        assert store.lease_at(other.address) == other
        assert store.lease_at(ip(5)) is not None and store.lease_at(ip(5)).client_id == b"\x09"
