"""The BSDP bindings on disk: which image each Mac last selected here, across restarts.

A binding is what lets a Mac skip LIST and SELECT on its next boot: its plain
DISCOVER gets a BSDP OFFER (docs/protocols/bsdp.md §1). Apple's bootpd keeps
them in /var/db/bsdpd_clients; we keep one SQLite row per MAC, made
crash-safe the way the lease store is (`netboot/dhcp/leases.py`):

* Written when a SELECT is acknowledged, before the ACK leaves, in one
  `BEGIN IMMEDIATE` transaction; WAL with `synchronous=FULL`, so a binding we
  answered for is on disk even after a power loss. Losing one would only cost
  that Mac a LIST/SELECT round, but the price of FULL is one fsync per
  SELECT, which a boot does once.
* `PRAGMA application_id` and `user_version` mark the file as ours; anyone
  else's SQLite file, or one from a newer netboot, is refused before any write.
* Times are wall-clock seconds (`time.time`), since they outlive the process.

Rows are replaced per MAC (the MAC is the primary key) and deleted when the
Mac selects another server or the binding's lifetime has passed (`load`).
"""

from __future__ import annotations

from pathlib import Path

from netboot.bsdp.bindings import Binding
from netboot.macaddr import MacAddress
from netboot.sqlite_file import DatabaseFileError, FileKind, SqliteFile

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4E424244  # "NBBD"
"""Kept in PRAGMA application_id, so no other SQLite file is ever adopted."""

_SCHEMA = (
    """
    CREATE TABLE binding (
        mac          TEXT PRIMARY KEY,
        image_id     INTEGER NOT NULL CHECK (image_id BETWEEN 0 AND 4294967295),
        host_number  INTEGER NOT NULL,
        machine_name TEXT NOT NULL,
        client_ip    TEXT NOT NULL,
        selected_at  REAL NOT NULL
    ) WITHOUT ROWID
    """,
)
# Written out in full, so no SQL is ever assembled at run time.
_ALL_ROWS = (
    "SELECT mac, image_id, host_number, machine_name, client_ip, selected_at FROM binding"
    " ORDER BY host_number"
)
_SAVE = (
    "INSERT OR REPLACE INTO binding"
    " (mac, image_id, host_number, machine_name, client_ip, selected_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


class BindingDatabaseError(DatabaseFileError):
    """The bindings file cannot be used; names the file, since the admin must act on it."""


_BINDINGS_FILE = FileKind("bindings", APPLICATION_ID, SCHEMA_VERSION, _SCHEMA, BindingDatabaseError)


class BindingStore:
    """One SQLite file of bindings (or `":memory:"` for tests). One reactor thread uses it."""

    def __init__(self, path: str | Path, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        self._file = SqliteFile(path, _BINDINGS_FILE, busy_timeout)
        self._db = self._file.db
        self._transaction = self._file.transaction

    def load(self, now: float, lifetime: float) -> list[Binding]:
        """Every binding selected within `lifetime` seconds; older rows are deleted."""
        with self._transaction():
            self._db.execute("DELETE FROM binding WHERE selected_at <= ?", (now - lifetime,))
            rows = self._db.execute(_ALL_ROWS).fetchall()
        return [
            Binding(MacAddress(mac), image_id, number, name, client_ip, selected_at)
            for mac, image_id, number, name, client_ip, selected_at in rows
        ]

    def save(self, binding: Binding) -> None:
        """A SELECT acknowledged: on disk (fsynced) when this returns."""
        with self._transaction():
            self._db.execute(
                _SAVE,
                (
                    binding.mac,
                    binding.image_id,
                    binding.host_number,
                    binding.machine_name,
                    binding.client_ip,
                    binding.last_seen,
                ),
            )

    def delete(self, mac: MacAddress) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM binding WHERE mac = ?", (mac,))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> BindingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
