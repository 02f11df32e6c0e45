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

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netboot.bsdp.bindings import Binding
from netboot.errors import NetbootError
from netboot.macaddr import MacAddress

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


class BindingDatabaseError(NetbootError):
    """The bindings file cannot be used; names the file, since the admin must act on it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class BindingStore:
    """One SQLite file of bindings (or `":memory:"` for tests). One reactor thread uses it."""

    def __init__(self, path: str | Path, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise BindingDatabaseError(self.path, f"cannot open: {error}") from error
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        """Adopt an empty file, accept our own, refuse anything else before writing."""
        try:
            self._is_empty()
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode not in ("wal", "memory"):
                raise BindingDatabaseError(
                    self.path,
                    f"cannot use write-ahead logging (journal mode stays {mode!r});"
                    " keep the bindings file on a local filesystem",
                )
            self._db.execute("PRAGMA synchronous = FULL")
            with self._transaction():
                if self._is_empty():  # asked again under the write lock
                    for statement in _SCHEMA:
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as error:
            raise BindingDatabaseError(
                self.path, f"not a usable bindings database: {error}"
            ) from error

    def _is_empty(self) -> bool:
        """Whether the file still needs the schema; raises if it is someone else's."""
        application_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if application_id == 0 and version == 0:
            if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise BindingDatabaseError(
                    self.path, "is an SQLite database, but not a netboot bindings database"
                )
            return True
        if application_id != APPLICATION_ID:
            raise BindingDatabaseError(self.path, "is not a netboot bindings database")
        if version > SCHEMA_VERSION:
            raise BindingDatabaseError(
                self.path,
                f"bindings schema {version} is newer than this netboot understands"
                f" ({SCHEMA_VERSION}); upgrade netboot",
            )
        return False

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise BindingDatabaseError(self.path, f"cannot start a transaction: {error}") from error
        try:
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            raise BindingDatabaseError(self.path, str(error)) from error
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        """Best effort: the error that led here says more than a failed rollback would."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

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
        self._db.close()

    def __enter__(self) -> BindingStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
