"""The PostgreSQL lease store beyond the shared contract (tests/test_dhcp_leases.py runs that
against both backends): several processes on one database, group commit, the schema's
version, the database going away and coming back, and `netboot leases migrate`.

Everything runs against a real private cluster (`netboot_lab.postgres`); no test
here can pass without PostgreSQL doing the work.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from netboot.cli import cli
from netboot.dhcp.lease_pg import SCHEMA_VERSION, PgLeaseStore
from netboot.dhcp.lease_store import LeaseStoreUnavailable, open_lease_store
from netboot.dhcp.leases import LeaseDatabaseError, LeaseStore
from netboot_lab.postgres import PrivateCluster, private_postgres, server_binaries
from tests.postgres import fresh_schema_url
from tests.test_dhcp_leases import FakeClock, bound, client, ip, offered, pool


@pytest.fixture
def url(postgres_cluster: PrivateCluster) -> str:
    return fresh_schema_url(postgres_cluster)


def rows_in(url: str) -> int:
    """Leased rows, counted by another connection: what other daemons see."""
    with psycopg.connect(url) as other:
        row = other.execute("SELECT count(*) FROM lease WHERE state <> 'unused'").fetchone()
    assert row is not None
    return int(row[0])


def test_open_lease_store_picks_the_backend_from_the_name(url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    with open_lease_store(url, pool(), clock, quarantine=60, server_id="a") as store:
        assert isinstance(store, PgLeaseStore) and store.server_id == "a"
    sqlite = tmp_path / "leases.sqlite3"
    with open_lease_store(sqlite, pool(), clock, quarantine=60, server_id="a") as store:
        assert isinstance(store, LeaseStore)
    with open_lease_store(str(sqlite), pool(), clock, quarantine=60, server_id="") as store:
        assert isinstance(store, LeaseStore), "a path given as a string is still a file"


# --- several daemons on one database ---------------------------------------------------


def serve(url: str, first_client: int, count: int) -> list[str]:
    """DISCOVER + REQUEST for `count` clients, in batches of 8, through a store of its own.

    Module-level so that a spawned process can import it.
    """
    clock = FakeClock()
    addresses = []
    with PgLeaseStore(url, pool(1, 200), clock, server_id=f"s{first_client}") as store:
        numbers = list(range(first_client, first_client + count))
        for start in range(0, count, 8):
            offers = []
            with store.batch():
                for number in numbers[start : start + 8]:
                    c = client(number)
                    lease = store.offer(c.cid, c.mac)
                    if lease is not None:
                        offers.append((c, lease.address))
            with store.batch():
                for c, address in offers:
                    result = store.bind(c.cid, c.mac, address, 3600.0)
                    assert result is not None, f"{c} offered {address}, then NAKed"
                    addresses.append(str(result.address))
    return addresses


def test_stores_in_processes_never_hand_out_an_address_twice(url: str) -> None:
    PgLeaseStore(url, pool(1, 200), FakeClock()).close()
    with multiprocessing.get_context("spawn").Pool(2) as workers:
        results = workers.starmap(serve, [(url, 0, 150), (url, 1000, 150)])
    handed = [address for result in results for address in result]
    assert len(handed) == 200, "a store gave up while addresses were left"
    assert len(set(handed)) == 200, "an address was handed out twice"
    with PgLeaseStore(url, pool(1, 200), FakeClock()) as store:
        rows = store.leases()
    assert sorted(str(lease.address) for lease in rows) == sorted(handed)
    assert len({lease.client_id for lease in rows}) == 200
    assert {lease.server_id for lease in rows} == {"s0", "s1000"}, "both processes leased"


def test_a_declined_address_is_quarantined_for_every_store(url: str) -> None:
    clock = FakeClock()
    with (
        PgLeaseStore(url, pool(1, 2), clock) as first,
        PgLeaseStore(url, pool(1, 2), clock) as second,
    ):
        bound(first, 1)
        assert first.decline(client(1).cid, ip(1))
        assert bound(second, 2).address == ip(2)
        assert second.offer(client(3).cid, client(3).mac) is None
        clock.advance(600)
        assert offered(second, 3).address == ip(1)


# --- group commit ------------------------------------------------------------------------


def test_a_batch_is_one_transaction_committed_on_exit(url: str) -> None:
    with PgLeaseStore(url, pool(), FakeClock()) as store:
        with store.batch():
            assert offered(store, 1).address == ip(1)
            bound(store, 2)
            assert rows_in(url) == 0, "nothing is visible before the commit"
        assert rows_in(url) == 2


def test_a_failed_operation_in_a_batch_undoes_only_itself(url: str) -> None:
    with PgLeaseStore(url, pool(), FakeClock()) as store:
        with store.batch():
            kept = offered(store, 1)
            with pytest.raises(LeaseDatabaseError), store._transaction() as (cursor, _):
                cursor.execute("UPDATE lease SET state = 'bogus' WHERE address = %s", (int(ip(3)),))
            assert offered(store, 2).address == ip(2)
        assert store.lease_at(kept.address) == kept
        assert rows_in(url) == 2


def test_an_operation_that_times_out_in_a_batch_undoes_only_itself(url: str) -> None:
    """A REQUEST waiting on a row another daemon holds fails after `lock_timeout`,
    inside the database's function, and the batch goes on and commits the rest."""
    with PgLeaseStore(url, pool(), FakeClock(), lock_timeout=0.2) as store:
        with psycopg.connect(url) as other:
            other.execute("SELECT 1 FROM lease WHERE address = %s FOR UPDATE", (int(ip(5)),))
            with store.batch():
                kept = offered(store, 1)
                with pytest.raises(LeaseDatabaseError, match="lock timeout"):
                    store.bind(client(2).cid, client(2).mac, ip(5), 3600.0)
                after = bound(store, 3)
            other.rollback()
        assert store.lease_at(kept.address) == kept
        assert store.lease_at(after.address) == after
        assert store.lease_at(ip(5)) is None, "the failed bind left nothing behind"
        assert rows_in(url) == 2


def test_batches_do_not_nest(url: str) -> None:
    store = PgLeaseStore(url, pool(), FakeClock())
    with store.batch(), pytest.raises(RuntimeError, match="nest"), store.batch():
        pass
    store.close()


# --- the schema ---------------------------------------------------------------------------


def test_the_schema_is_versioned_and_a_newer_one_refused(url: str) -> None:
    PgLeaseStore(url, pool(), FakeClock()).close()
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM netboot_schema").fetchone() == (SCHEMA_VERSION,)
        conn.execute("UPDATE netboot_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(LeaseDatabaseError, match="newer"):
        PgLeaseStore(url, pool(), FakeClock())


def test_a_schema_1_database_is_migrated_in_place_keeping_its_leases(url: str) -> None:
    """Schema 1 had the tables only; opening it adds the lease functions (schema 2)."""
    clock = FakeClock()
    with PgLeaseStore(url, pool(), clock) as store:
        first = bound(store, 1, hostname="pc-1")
    with psycopg.connect(url, autocommit=True) as conn:
        for name in (
            "netboot_offer", "netboot_bind", "netboot_end", "netboot_release_others",
            "netboot_claim", "netboot_allowed", "netboot_available",
        ):  # fmt: skip
            conn.execute(f"DROP FUNCTION {name}")
        conn.execute("UPDATE netboot_schema SET version = 1")
    with PgLeaseStore(url, pool(), clock) as store:
        assert store.lease_at(ip(1)) == first
        assert offered(store, 2).address == ip(2)
        assert offered(store, 1) == first, "a bound client's DISCOVER: its lease, unchanged"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM netboot_schema").fetchone() == (SCHEMA_VERSION,)


def test_someone_elses_lease_table_is_refused_untouched(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE lease (ip inet PRIMARY KEY)")
    with pytest.raises(LeaseDatabaseError, match="not a netboot lease database"):
        PgLeaseStore(url, pool(), FakeClock())
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('netboot_schema')").fetchone() == (None,)


# --- the database going away ----------------------------------------------------------------


def test_a_stopped_database_is_an_outage_that_ends_by_itself() -> None:
    """Down: quick `LeaseStoreUnavailable`, `up` False, then none without network I/O;
    after the restart one `reconnect()` brings back every lease committed before."""
    server_binaries()
    with private_postgres() as cluster:
        clock = FakeClock()
        store = PgLeaseStore(cluster.url(), pool(), clock, server_id="a")
        first = bound(store, 1)
        cluster.stop()
        began = time.monotonic()
        with pytest.raises(LeaseStoreUnavailable):
            offered(store, 2)
        assert time.monotonic() - began < 2.0
        assert not store.up
        began = time.monotonic()
        for _ in range(100):
            with pytest.raises(LeaseStoreUnavailable):
                store.lease_for(client(1).cid)
        with pytest.raises(LeaseStoreUnavailable):
            store.batch().__enter__()
        assert time.monotonic() - began < 0.1, "down: no connection attempts"
        assert not store.reconnect()
        cluster.start()
        assert store.reconnect() and store.up
        assert store.lease_at(ip(1)) == first
        assert offered(store, 2).address == ip(2)
        store.close()


def test_a_database_lost_inside_a_batch_fails_the_batch(url: str) -> None:
    with PgLeaseStore(url, pool(), FakeClock()) as store:
        with pytest.raises(LeaseStoreUnavailable), store.batch():
            offered(store, 1)
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'netboot' AND pid <> pg_backend_pid()"
                )
            offered(store, 2)
        assert not store.up
        assert store.reconnect()
        assert store.leases() == [], "nothing of the lost batch was committed"


# --- netboot leases migrate ------------------------------------------------------------------


def test_migrate_copies_every_row_checks_them_and_is_idempotent(url: str, tmp_path: Path) -> None:
    sqlite = tmp_path / "leases.sqlite3"
    clock = FakeClock()
    with LeaseStore(sqlite, pool(1, 20), clock, server_id="old") as source:
        for number in range(1, 8):
            bound(source, number, hostname=f"pc-{number}")
        assert source.release(client(2).cid, ip(2))
        assert source.decline(client(3).cid, ip(3))
        offered(source, 9)
        before = source.leases()
    runner = CliRunner()
    first = runner.invoke(cli, ["leases", "migrate", str(sqlite), url])
    assert first.exit_code == 0, first.output
    assert "8 leases" in first.output and "8 copied" in first.output
    assert "8 present unchanged; 0 missing or different" in first.output
    with PgLeaseStore(url, pool(1, 20), clock) as target:
        assert target.leases() == before
        assert offered(target, 20).address == ip(9), "the migrated rows are in use"
        assert offered(target, 1) == before[0], "a migrated lease is its client's"
        assert target.release(client(1).cid, ip(1))
    again = runner.invoke(cli, ["leases", "migrate", str(sqlite), url])
    assert again.exit_code == 1, "ip(1) was released in the database in the meantime"
    assert "0 copied to" in again.output
    assert "7 present unchanged; 1 missing or different" in again.output
    assert f"{ip(1)}: missing or held differently" in again.output


def test_migrate_twice_unchanged_and_usage_errors(url: str, tmp_path: Path) -> None:
    sqlite = tmp_path / "leases.sqlite3"
    with LeaseStore(sqlite, pool(), FakeClock()) as source:
        bound(source, 1)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["leases", "migrate", str(sqlite), url])
        assert result.exit_code == 0, result.output
    assert rows_in(url) == 1
    assert runner.invoke(cli, ["leases", "migrate", str(sqlite), "/tmp/x.db"]).exit_code == 2
    absent = str(tmp_path / "absent.sqlite3")
    assert runner.invoke(cli, ["leases", "migrate", absent, url]).exit_code == 2
