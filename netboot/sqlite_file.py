"""An SQLite file the daemon owns: opened, marked, migrated and written the same way everywhere.

The lease store (`netboot/dhcp/leases.py`) and the BSDP binding store
(`netboot/bsdp/binding_store.py`) keep state that must survive crashes and
must never be mistaken for someone else's file, so both need the same few
rules, kept here once:

* `PRAGMA application_id` and `user_version` mark the file as ours. An empty
  file is adopted (under the write lock, since another process may be doing
  the same); anyone else's SQLite file, or one from a newer netboot, is refused
  before anything is written to it. A file of an older schema is migrated in
  place, in one transaction with its new `user_version`, by the statements its
  kind lists for each step (a crash leaves it wholly old or wholly new).
* WAL journal with `synchronous=FULL`: every commit is on disk when it returns,
  so nothing is acknowledged on the wire that a power loss could take back; WAL
  keeps that one sequential fsync cheap and lets readers run beside the writer.
* Every change is one `BEGIN IMMEDIATE` transaction: the write lock is taken
  before the first read, so two processes on one file serialise their
  read-then-write decisions instead of racing them.
* Every `sqlite3.Error` leaves as the store's own error type, naming the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from netboot.errors import NetbootError


class DatabaseFileError(NetbootError):
    """A database file cannot be used; names the file, since the admin must act on it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class FileKind:
    """What makes a file one of ours, and what to call it in errors."""

    what: str
    """`lease`, `bindings`: as in "not a netboot lease database"."""
    application_id: int
    schema_version: int
    schema: Sequence[str]
    error: Callable[[str, str], DatabaseFileError]
    """The store's own error type, built from (path, message)."""
    migrations: Mapping[int, Sequence[str]] = field(default_factory=lambda: MappingProxyType({}))
    """Version N to the statements that turn a schema-N file into schema N+1;
    `schema` itself is always the newest schema whole, for empty files."""


class SqliteFile:
    """One connection to one marked SQLite file (or `":memory:"`); one thread uses it."""

    def __init__(self, path: str | Path, kind: FileKind, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        self.kind = kind
        self._batch_depth = 0
        try:
            self.db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise kind.error(self.path, f"cannot open: {error}") from error
        try:
            self._open()
        except BaseException:
            self.db.close()
            raise

    def _open(self) -> None:
        """Adopt an empty file, accept our own, refuse anything else before writing."""
        kind = self.kind
        try:
            self._is_empty()
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode not in ("wal", "memory"):
                raise kind.error(
                    self.path,
                    f"cannot use write-ahead logging (journal mode stays {mode!r});"
                    f" keep the {kind.what} file on a local filesystem",
                )
            self.db.execute("PRAGMA synchronous = FULL")
            with self.transaction():
                if self._is_empty():  # asked again under the write lock
                    for statement in kind.schema:
                        self.db.execute(statement)
                    self.db.execute(f"PRAGMA application_id = {kind.application_id}")
                    self.db.execute(f"PRAGMA user_version = {kind.schema_version}")
                else:
                    self._migrate()
        except sqlite3.Error as error:
            raise kind.error(self.path, f"not a usable {kind.what} database: {error}") from error

    def _is_empty(self) -> bool:
        """Whether the file still needs the schema; raises if it is someone else's."""
        kind = self.kind
        application_id = self.db.execute("PRAGMA application_id").fetchone()[0]
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if application_id == 0 and version == 0:
            if self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise kind.error(
                    self.path, f"is an SQLite database, but not a netboot {kind.what} database"
                )
            return True
        if application_id != kind.application_id:
            raise kind.error(self.path, f"is not a netboot {kind.what} database")
        if version > kind.schema_version:
            raise kind.error(
                self.path,
                f"{kind.what} database schema {version} is newer than this netboot"
                f" understands ({kind.schema_version}); upgrade netboot",
            )
        if version < 1:
            raise kind.error(self.path, f"unknown {kind.what} database schema {version}")
        missing = [v for v in range(version, kind.schema_version) if v not in kind.migrations]
        if missing:
            raise kind.error(
                self.path,
                f"{kind.what} database schema {version} cannot be migrated to"
                f" {kind.schema_version} by this netboot",
            )
        return False

    def _migrate(self) -> None:
        """Bring an older file up to `schema_version`, inside the open write transaction."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= self.kind.schema_version:
            return
        for step in range(version, self.kind.schema_version):
            for statement in self.kind.migrations[step]:
                self.db.execute(statement)
        self.db.execute(f"PRAGMA user_version = {self.kind.schema_version}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One `BEGIN IMMEDIATE` write transaction, committed (and fsynced) on leaving.

        Inside a `batch` it is a savepoint instead: its changes are undone alone if
        it fails, and made durable only when the batch commits.
        """
        if self._batch_depth:
            yield from self._savepoint()
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise self.kind.error(self.path, f"cannot start a transaction: {error}") from error
        try:
            yield
            self.db.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback()
            raise self.kind.error(self.path, str(error)) from error
        except BaseException:
            self._rollback()
            raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every `transaction` inside shares one write transaction and one
        fsync, committed on leaving.

        A server answering many clients at once pays one commit for all of them
        rather than one each, and sends its answers only after this returns, so no
        answer promises what is not on disk. A failed transaction inside costs only
        its own changes (a savepoint); a failed commit costs the whole batch, and
        raises, so the caller sends none of its answers. Batches do not nest.
        """
        if self._batch_depth:
            raise RuntimeError("SqliteFile.batch() does not nest")
        with self.transaction():
            self._batch_depth = 1
            try:
                yield
            finally:
                self._batch_depth = 0

    def operation(self) -> AbstractContextManager[None]:
        """One operation whose changes are a single statement, or guarded by `savepoint`.

        Outside a batch it is `transaction`. Inside one it opens no savepoint: a
        statement that fails undoes itself (SQLite's statement journal), so an
        operation that writes once, last, leaves nothing half-done when it fails,
        and the two statements a savepoint costs per operation (a fifth of a busy
        server's SQLite work) are saved. Errors become the file's, as ever.
        """
        return _Operation(self)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside an `operation` that writes more than once: undo them together if one
        fails. Outside a batch the operation's own transaction already does that."""
        if self._batch_depth:
            yield from self._savepoint()
        else:
            yield

    def _savepoint(self) -> Iterator[None]:
        # One name for every savepoint: the statements stay the same text, so SQLite's
        # statement cache compiles them once rather than once per operation (a numbered
        # name cost ~10% of a busy DHCP server). Reusing a name is sound: ROLLBACK TO
        # and RELEASE act on the newest savepoint of that name, which is this one.
        name = "operation"
        try:
            self.db.execute(f"SAVEPOINT {name}")
        except sqlite3.Error as error:
            raise self.kind.error(self.path, f"cannot start a savepoint: {error}") from error
        try:
            yield
            self.db.execute(f"RELEASE {name}")
        except sqlite3.Error as error:
            self._undo(name)
            raise self.kind.error(self.path, str(error)) from error
        except BaseException:
            self._undo(name)
            raise

    def _undo(self, name: str) -> None:
        """Best effort, as `_rollback`: back to the savepoint, and forget it."""
        try:
            self.db.execute(f"ROLLBACK TO {name}")
            self.db.execute(f"RELEASE {name}")
        except sqlite3.Error:
            pass

    def _rollback(self) -> None:
        """Best effort: the error that led here says more than a failed rollback would."""
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A read outside a transaction, with SQLite's errors turned into the store's."""
        try:
            return self.db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise self.kind.error(self.path, str(error)) from error

    def close(self) -> None:
        self.db.close()


class _Operation:
    """`SqliteFile.operation`, as a class: it runs for every DHCP packet, and a
    generator-based context manager costs several times as much to enter and leave."""

    __slots__ = ("_alone", "_file")

    def __init__(self, file: SqliteFile) -> None:
        self._file = file
        self._alone = False
        """Whether this operation began (and must end) its own transaction."""

    def __enter__(self) -> None:
        file = self._file
        if file._batch_depth:
            return
        try:
            file.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise file.kind.error(file.path, f"cannot start a transaction: {error}") from error
        self._alone = True

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> None:
        file = self._file
        if self._alone:
            if error is None:
                try:
                    file.db.execute("COMMIT")
                except sqlite3.Error as failed:
                    file._rollback()
                    raise file.kind.error(file.path, str(failed)) from failed
                return
            file._rollback()
        if isinstance(error, sqlite3.Error):
            raise file.kind.error(file.path, str(error)) from error
