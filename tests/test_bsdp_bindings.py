"""The BSDP bindings: kept across restarts in SQLite, with a lifetime for the fast path.

Every test here uses a real file under `tmp_path`, so each also crosses the
disk format; "a restart" is a second `BindingStore` on the same file.
"""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.bsdp.binding_store import BindingDatabaseError, BindingStore
from netboot.bsdp.bindings import Binding, BindingTable
from netboot.dhcp.leases import AddressPool, LeaseStore
from netboot.macaddr import MacAddress

START = 1_700_000_000.0
MAC = MacAddress("00:16:cb:12:34:56")
OTHER = MacAddress("00:16:cb:00:00:01")
DAY = 86400.0


def restarted(path: Path, now: float, lifetime: float = 30 * DAY) -> BindingTable:
    """A table as the daemon builds it at start: from what the file kept."""
    store = BindingStore(path)
    return BindingTable(lifetime=lifetime, store=store, saved=store.load(now, lifetime))


def test_a_select_survives_a_restart_with_its_machine_name(tmp_path: Path) -> None:
    path = tmp_path / "bindings.sqlite3"
    first = restarted(path, START)
    first.bind(MAC, 0x01000001, "10.0.0.5", START)
    second_binding = first.bind(OTHER, 0x01000002, "10.0.0.6", START + 1)
    after = restarted(path, START + 10)
    assert after.get(MAC) == Binding(MAC, 0x01000001, 1, "NetBoot001", "10.0.0.5", START)
    assert after.get(OTHER) == second_binding
    # Host numbers go on after the highest kept, so no two Macs ever share a name.
    assert after.bind(MacAddress("00:16:cb:00:00:09"), 1, "10.0.0.7", START).host_number == 3


def test_a_new_select_replaces_the_old_one_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "bindings.sqlite3"
    table = restarted(path, START)
    table.bind(MAC, 0x01000001, "10.0.0.5", START)
    table.bind(MAC, 0x01000003, "10.0.0.5", START + 5)
    binding = restarted(path, START + 10).get(MAC)
    assert binding is not None
    assert (binding.image_id, binding.host_number, binding.last_seen) == (0x01000003, 1, START + 5)


def test_a_dropped_binding_is_gone_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bindings.sqlite3"
    table = restarted(path, START)
    table.bind(MAC, 0x01000001, "10.0.0.5", START)
    assert table.drop(MAC)
    assert restarted(path, START).get(MAC) is None


def test_the_fast_path_binding_ends_with_its_lifetime(tmp_path: Path) -> None:
    table = BindingTable(ttl=3600.0, lifetime=10 * DAY)
    table.bind(MAC, 0x01000001, "10.0.0.5", START)
    assert table.bound(MAC, START + 2 * 3600.0) is not None  # no longer load, still bound
    assert table.active(START + 2 * 3600.0) == 0
    assert table.bound(MAC, START + 10 * DAY - 1) is not None
    assert table.bound(MAC, START + 10 * DAY) is None
    assert table.bound(OTHER, START) is None


def test_loading_deletes_bindings_past_their_lifetime(tmp_path: Path) -> None:
    path = tmp_path / "bindings.sqlite3"
    table = restarted(path, START, lifetime=10 * DAY)
    table.bind(MAC, 0x01000001, "10.0.0.5", START)
    table.bind(OTHER, 0x01000002, "10.0.0.6", START + 5 * DAY)
    after = restarted(path, START + 12 * DAY, lifetime=10 * DAY)
    assert after.get(MAC) is None and after.get(OTHER) is not None
    rows = sqlite3.connect(path).execute("SELECT mac FROM binding").fetchall()
    assert rows == [(OTHER,)]


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "bindings.sqlite3"
    BindingStore(path).close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_someone_elses_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(BindingDatabaseError, match="not a netboot bindings database"):
        BindingStore(path)
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("notes",)]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bindings.sqlite3"
    BindingStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(BindingDatabaseError, match="upgrade netboot"):
        BindingStore(path)


def test_the_lease_database_is_not_taken_for_a_bindings_file(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    pool = AddressPool(IPv4Address("10.0.0.10"), IPv4Address("10.0.0.20"))
    LeaseStore(path, pool, lambda: START).close()
    with pytest.raises(BindingDatabaseError, match="is not a netboot bindings database"):
        BindingStore(path)
