"""Assignments on disk: the daemon's state database (`server.state_database`).

An assignment must outlive the daemon (an admin who assigned a lab's machines
on Friday expects them to boot it on Monday after a reboot), and must be on
disk before the API says 204, so this is one SQLite file made crash-safe the
way the lease and binding stores are (`netboot/sqlite_file.py`): marked as
ours, WAL with `synchronous=FULL`, one `BEGIN IMMEDIATE` transaction per
change. `AssignmentStore` is the interface the daemon writes through; the
several-servers work adds a PostgreSQL one beside `SqliteAssignments`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from netboot.admin.assignments import Assignment
from netboot.macaddr import MacAddress
from netboot.sqlite_file import DatabaseFileError, FileKind, SqliteFile

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4E425354  # "NBST"
"""Kept in PRAGMA application_id, so no other SQLite file is ever adopted."""

_SCHEMA = (
    """
    CREATE TABLE assignment (
        mac        TEXT PRIMARY KEY,
        image_id   INTEGER CHECK (image_id IS NULL OR image_id BETWEEN 0 AND 4294967295),
        changed_by TEXT NOT NULL,
        changed_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
)
_ALL_ROWS = "SELECT mac, image_id, changed_by, changed_at FROM assignment ORDER BY mac"
_SAVE = (
    "INSERT OR REPLACE INTO assignment (mac, image_id, changed_by, changed_at) VALUES (?, ?, ?, ?)"
)


class StateDatabaseError(DatabaseFileError):
    """The state database cannot be used; names the file, since the admin must act on it."""


_STATE_FILE = FileKind("state", APPLICATION_ID, SCHEMA_VERSION, _SCHEMA, StateDatabaseError)


class AssignmentStore(Protocol):
    """Where assignments are kept; every call is durable when it returns."""

    def load(self) -> dict[MacAddress, Assignment]: ...
    def save(self, assignment: Assignment) -> None: ...
    def delete(self, mac: MacAddress) -> bool:
        """Whether there was one to delete."""
        ...

    def close(self) -> None: ...


class SqliteAssignments:
    """The assignments of one SQLite state file (or `":memory:"` for tests)."""

    def __init__(self, path: str | Path, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        self._file = SqliteFile(path, _STATE_FILE, busy_timeout)

    def load(self) -> dict[MacAddress, Assignment]:
        rows = self._file.query(_ALL_ROWS)
        return {
            MacAddress(str(mac)): Assignment(
                MacAddress(str(mac)),
                None if image_id is None else int(str(image_id)),
                str(changed_by),
                float(str(changed_at)),
            )
            for mac, image_id, changed_by, changed_at in rows
        }

    def save(self, assignment: Assignment) -> None:
        with self._file.transaction():
            self._file.db.execute(
                _SAVE,
                (
                    assignment.mac,
                    assignment.image_id,
                    assignment.changed_by,
                    assignment.changed_at,
                ),
            )

    def delete(self, mac: MacAddress) -> bool:
        with self._file.transaction():
            cursor = self._file.db.execute("DELETE FROM assignment WHERE mac = ?", (mac,))
            return cursor.rowcount > 0

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SqliteAssignments:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
