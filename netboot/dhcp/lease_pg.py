"""Full DHCP's IPv4 leases in a PostgreSQL database that several daemons share (issue #21).

The contract is `LeaseBackend`'s (`netboot/dhcp/lease_store.py`) and the allocation
policy the SQLite store's (`PoolRules`: reservation, the client's own address, the
requested one, the lowest never-used, then the one free the longest; offers held
`offer_hold`; DECLINE quarantine; release keeps the client). What changes is who
keeps two daemons from handing one address to two clients: the database, never a
lock inside one process.

Design, and why:

* **Pre-created pool rows, claimed with `FOR UPDATE SKIP LOCKED`.** On connect the
  store inserts one `unused` row per pool address (`ON CONFLICT DO NOTHING`, so
  every daemon may do it). A never-used row's expiry is -infinity, so "lowest
  never-used, then longest-free" is one index walk on `(expires, address)`, and a
  free address is claimed by locking its row. `SKIP LOCKED` makes a daemon pass
  over a row another daemon's open transaction (a group-commit batch) is claiming
  instead of queueing behind it: with plain `FOR UPDATE` every daemon would
  convoy on the same lowest free row and wait for the other's whole batch, and two
  batches claiming rows in different orders could deadlock. The alternative,
  inserting rows only when first used and retrying on a primary-key conflict,
  serialises the same way on the never-used walk and needs a retry loop.
* **`address` is the PRIMARY KEY**: one row per address, so two holders of one
  address cannot exist, whatever the daemons do; every write is to a row this
  transaction has locked (or a conditional `UPDATE ... WHERE <still theirs>`),
  re-checked by PostgreSQL on the committed row.
* **A client's rows are locked before the address**, in every operation, so two
  daemons serving one client serialise instead of deadlocking; a REQUEST waits
  for its address's row at most `lock_timeout`.
* **Group commit**: `batch()` is one transaction, each operation a savepoint (a
  failed operation costs only itself); the commit returns after PostgreSQL's WAL
  flush (`synchronous_commit` on), so an ACK sent after `batch()` exits is for a
  durable lease.
* **Versioned schema** (`netboot_schema`): created and migrated under an advisory
  lock by whichever daemon connects first; a newer version, or a `lease` table
  that is not ours, is refused.
* **Down is not fatal**: an operation on an unreachable database raises
  `LeaseStoreUnavailable` and marks the store down; while down, operations raise
  at once, without network I/O, until `reconnect()` (one short blocking attempt,
  which the daemon makes from a thread) succeeds. Every session bounds its waits:
  `connect_timeout`, TCP keepalives and `tcp_user_timeout` for a silent peer,
  `statement_timeout` and `lock_timeout` for a busy one.

Expiry times are float seconds on the injected clock, as in the SQLite store, so the
daemons sharing a database must share a wall clock (NTP).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Any

import psycopg

from netboot.dhcp.lease_file import LeaseDatabaseError, check_lease_terms
from netboot.dhcp.lease_store import LeaseStoreUnavailable, ServerSeen, redacted
from netboot.dhcp.leases import (
    AddressPool,
    Lease,
    LeaseRow,
    LeaseState,
    PoolRules,
    count_active,
)
from netboot.macaddr import MacAddress

SCHEMA_VERSION = 1
"""Kept in `netboot_schema.version`; a database of a newer netboot is refused."""

_SCHEMA_LOCK = 0x4E42544C  # "NBTL", as the SQLite lease file's application_id
"""The advisory lock under which one daemon at a time creates or migrates the schema."""

_UNUSED = "unused"
"""A pre-created row no client ever had: reads treat it as no row at all."""

_SCHEMA = (
    """
    CREATE TABLE lease (
        address   bigint PRIMARY KEY CHECK (address BETWEEN 0 AND 4294967295),
        client_id bytea,
        mac       text,
        state     text NOT NULL
                  CHECK (state IN ('unused', 'offered', 'bound', 'released', 'declined')),
        expires   double precision NOT NULL,
        hostname  text,
        seq       bigint NOT NULL DEFAULT 0,
        server_id text NOT NULL DEFAULT '',
        CHECK ((state = 'unused') = (client_id IS NULL)),
        CHECK ((state = 'unused') = (mac IS NULL))
    )
    """,
    "CREATE INDEX lease_by_client ON lease (client_id, seq) WHERE client_id IS NOT NULL",
    "CREATE INDEX lease_by_expiry ON lease (expires, address)",
    """
    CREATE TABLE server (
        server_id text PRIMARY KEY,
        address   text NOT NULL,
        seen      double precision NOT NULL,
        load      double precision NOT NULL
    )
    """,
)
"""The newest schema whole, for an empty database."""

MIGRATIONS: Mapping[int, Sequence[str]] = MappingProxyType({})
"""Version N to the statements that turn a schema-N database into schema N+1."""

_ROW_AT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE address = %s"
)
_LOCK_ROW = _ROW_AT + " FOR UPDATE"
_CLAIM_ROW = _ROW_AT + " FOR UPDATE SKIP LOCKED"
_ROWS_OF_CLIENT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE client_id = %s ORDER BY seq DESC"
)
_LOCK_CLIENT = _ROWS_OF_CLIENT + " FOR UPDATE"
_NEWEST_OF_CLIENT = _ROWS_OF_CLIENT + " LIMIT 1"
# Never-used rows expire at -infinity, so they come first, lowest address first; then
# the row whose lease, offer or quarantine ended the longest ago. `address + 0` keeps
# the planner off the primary key's range (as the SQLite store's unary +): the range
# covers the whole pool, and every free row would be sorted by expiry on each offer,
# where the walk of lease_by_expiry stops at the first free row it can lock.
_CLAIM_FREE = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE (expires <= %s OR state = 'released') AND address + 0 BETWEEN %s AND %s"
    " AND address <> ALL(%s) ORDER BY expires, address LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_ALL_ROWS = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE state <> 'unused' ORDER BY address"
)
_ADD_UNUSED = (
    "INSERT INTO lease (address, state, expires) SELECT a, 'unused', '-Infinity'"
    " FROM unnest(%s::bigint[]) AS a ON CONFLICT (address) DO NOTHING RETURNING address"
)
_ADD_RANGE = (
    "INSERT INTO lease (address, state, expires) SELECT a, 'unused', '-Infinity'"
    " FROM generate_series(%s::bigint, %s::bigint) AS a ON CONFLICT (address) DO NOTHING"
)
_WRITE = (
    "UPDATE lease SET client_id = %s, mac = %s, state = %s, expires = %s, hostname = %s,"
    " seq = %s, server_id = %s WHERE address = %s"
)
_END = "UPDATE lease SET state = %s, expires = %s, server_id = %s WHERE address = %s"
_RELEASE = (
    "UPDATE lease SET state = 'released', expires = %s, server_id = %s"
    " WHERE address = %s AND client_id = %s AND state IN ('offered', 'bound')"
    " AND expires > %s RETURNING address"
)
_DECLINE = (
    "UPDATE lease SET state = 'declined', expires = %s, server_id = %s"
    " WHERE address = %s AND client_id = %s AND state IN ('offered', 'bound')"
    " RETURNING address"
)
_HEARTBEAT = (
    "INSERT INTO server (server_id, address, seen, load) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (server_id) DO UPDATE"
    " SET address = excluded.address, seen = excluded.seen, load = excluded.load"
)
_SERVERS_SEEN = (
    "SELECT server_id, address, seen, load FROM server WHERE seen > %s ORDER BY server_id"
)
_BUSY = (
    "SELECT address, state FROM lease WHERE expires > %s AND state NOT IN ('released', 'unused')"
)


def _row(raw: tuple[Any, ...] | None) -> LeaseRow | None:
    """A fetched row, or None for none or a never-used one."""
    if raw is None or raw[3] == _UNUSED:
        return None
    return LeaseRow(int(raw[0]), bytes(raw[1]), *raw[2:])


def prepare_schema(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> None:
    """Create, check or migrate the schema inside the open transaction, under an advisory
    lock so that daemons starting together create it once. `name` is for errors."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    tables = conn.execute(
        "SELECT to_regclass('netboot_schema') IS NOT NULL, to_regclass('lease') IS NOT NULL"
    ).fetchone()
    assert tables is not None
    ours, lease_table = tables
    if ours:
        _migrate(conn, name)
        return
    if lease_table:
        raise LeaseDatabaseError(name, "has a lease table, but is not a netboot lease database")
    conn.execute("CREATE TABLE netboot_schema (version integer NOT NULL)")
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO netboot_schema VALUES (%s)", (SCHEMA_VERSION,))


def _migrate(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> None:
    row = conn.execute("SELECT max(version) FROM netboot_schema").fetchone()
    version = None if row is None else row[0]
    if version is None or version < 1:
        raise LeaseDatabaseError(name, f"unknown lease database schema {version}")
    if version > SCHEMA_VERSION:
        raise LeaseDatabaseError(
            name,
            f"lease database schema {version} is newer than this netboot understands"
            f" ({SCHEMA_VERSION}); upgrade netboot",
        )
    if any(step not in MIGRATIONS for step in range(version, SCHEMA_VERSION)):
        raise LeaseDatabaseError(
            name,
            f"lease database schema {version} cannot be migrated to {SCHEMA_VERSION}"
            " by this netboot",
        )
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            conn.execute(statement)
    conn.execute("UPDATE netboot_schema SET version = %s", (SCHEMA_VERSION,))


class PgLeaseStore:
    """The lease table of one pool in a PostgreSQL database; one thread uses it.

    Several stores, in several processes on several machines, may share the database.
    Construction connects once; an unreachable database leaves the store down
    (`up` False, `down_reason` says why) rather than raising, so the daemon starts
    and serves what needs no new lease. A schema it must not touch raises
    `LeaseDatabaseError`.
    """

    def __init__(
        self,
        url: str,
        pool: AddressPool,
        clock: Callable[[], float],
        *,
        offer_hold: float = 30.0,
        quarantine: float = 600.0,
        server_id: str = "",
        connect_timeout: float = 2.0,
        statement_timeout: float = 5.0,
        lock_timeout: float = 2.0,
    ) -> None:
        check_lease_terms(offer_hold, quarantine)
        self.url = url
        self.path = redacted(url)
        """What errors and logs name (the URL without its password)."""
        self.pool = pool
        self.quarantine = quarantine
        """Seconds a DECLINEd address sits out; a reload may change it."""
        self.server_id = server_id
        """This daemon's identity, written into every row it changes."""
        self._clock = clock
        self._offer_hold = offer_hold
        self._rules = PoolRules(pool)
        self._not_dynamic = sorted(self._rules.excluded | set(self._rules.reserved_for))
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._lock_timeout = lock_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._batch_depth = 0
        self.down_reason = "not connected yet"
        """Why the store is down (the last connection error); empty while up."""
        self.reconnect()

    # --- connection ---------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """Whether the database answered last time; False: every operation raises at once."""
        return self._conn is not None

    def reconnect(self) -> bool:
        """One blocking connection attempt (at most `connect_timeout`); True when up.

        Also creates or migrates the schema and the pool's rows, so a database that
        came back empty is usable at once. A schema this netboot must not touch
        raises `LeaseDatabaseError` instead.
        """
        if self._conn is not None:
            return True
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout)),
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
                tcp_user_timeout=round(self._statement_timeout * 1000),
                application_name=f"netboot {self.server_id}".strip(),
            )
        except psycopg.Error as error:
            self.down_reason = str(error).strip() or type(error).__name__
            return False
        try:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false),"
                " set_config('lock_timeout', %s, false),"
                " set_config('idle_in_transaction_session_timeout', %s, false)",
                (
                    f"{round(self._statement_timeout * 1000)}ms",
                    f"{round(self._lock_timeout * 1000)}ms",
                    f"{round(self._statement_timeout * 6000)}ms",
                ),
            )
            self._prepare(conn)
        except psycopg.OperationalError as error:
            conn.close()
            self.down_reason = str(error).strip() or type(error).__name__
            return False
        except psycopg.Error as error:
            conn.close()
            raise LeaseDatabaseError(self.path, f"not a usable lease database: {error}") from error
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.down_reason = ""
        return True

    def _prepare(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Create, check or migrate the schema, and add the pool's rows, in one transaction."""
        with conn.transaction():
            prepare_schema(conn, self.path)
            conn.execute(_ADD_RANGE, (self._rules.first, self._rules.last))
            conn.execute(_ADD_UNUSED, (sorted(self._rules.reserved_for),))
        conn.execute("ANALYZE lease")  # the planner's statistics include the new pool rows

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection, or `LeaseStoreUnavailable` at once (no network I/O) while down."""
        if self._conn is None:
            raise LeaseStoreUnavailable(f"{self.path}: lease database down: {self.down_reason}")
        return self._conn

    def _failed(self, error: psycopg.Error) -> Exception:
        """What a database error means to the caller: an outage, or a refused operation.

        A broken connection marks the store down. Anything else (a lock or statement
        timeout, a deadlock PostgreSQL broke) failed this operation alone.
        """
        conn = self._conn
        if conn is None or conn.broken or conn.closed:
            self.down_reason = str(error).strip() or type(error).__name__
            self._drop()
            return LeaseStoreUnavailable(f"{self.path}: lease database down: {self.down_reason}")
        return LeaseDatabaseError(self.path, str(error).strip())

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with suppress(psycopg.Error):
                conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[tuple[psycopg.Cursor[tuple[Any, ...]], float]]:
        """One transaction (a savepoint inside a batch); yields a cursor and the time,
        read once the transaction has begun."""
        conn = self._live()
        try:
            with conn.transaction(), conn.cursor() as cursor:
                yield cursor, self._clock()
        except psycopg.Error as error:
            raise self._failed(error) from error

    def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """A read in a transaction of its own (or the batch's)."""
        conn = self._live()
        try:
            return conn.execute(sql, parameters).fetchall()
        except psycopg.Error as error:
            raise self._failed(error) from error

    def batch(self) -> AbstractContextManager[None]:
        """Group commit: every operation inside shares one transaction, each in a
        savepoint; committed (WAL flushed) on leaving. Answers made inside may leave
        only after it exits; if the commit fails it raises, and none may leave."""
        return self._batch()

    @contextmanager
    def _batch(self) -> Iterator[None]:
        if self._batch_depth:
            raise RuntimeError("PgLeaseStore.batch() does not nest")
        conn = self._live()
        self._batch_depth = 1
        try:
            with conn.transaction():
                yield
        except psycopg.Error as error:
            raise self._failed(error) from error
        finally:
            self._batch_depth = 0

    # --- rows ------------------------------------------------------------------------------

    @staticmethod
    def _client_rows(cursor: psycopg.Cursor[tuple[Any, ...]], client_id: bytes) -> list[LeaseRow]:
        """The client's rows, newest first, locked: its operations serialise across daemons."""
        rows = cursor.execute(_LOCK_CLIENT, (client_id,)).fetchall()
        return [row for row in map(_row, rows) if row is not None]

    def _claim(
        self, cursor: psycopg.Cursor[tuple[Any, ...]], address: int, *, wait: bool
    ) -> tuple[bool, LeaseRow | None]:
        """Lock `address`'s row: (whether we hold it, its lease row or None if never used).

        Without `wait`, a row another transaction holds is passed over (False). A
        row missing (an address outside the pools the daemons created) is added.
        """
        raw = cursor.execute(_LOCK_ROW if wait else _CLAIM_ROW, (address,)).fetchone()
        if raw is not None:
            return True, _row(raw)
        added = cursor.execute(_ADD_UNUSED, ([address],)).fetchone()
        if added is not None:
            return True, None
        if wait:
            raw = cursor.execute(_LOCK_ROW, (address,)).fetchone()
            return raw is not None, _row(raw)
        return False, None

    def _write(
        self,
        cursor: psycopg.Cursor[tuple[Any, ...]],
        address: int,
        client_id: bytes,
        mac: MacAddress,
        state: LeaseState,
        expires: float,
        hostname: str | None,
        seq: int,
    ) -> Lease:
        cursor.execute(
            _WRITE,
            (client_id, str(mac), state.value, expires, hostname, seq, self.server_id, address),
        )
        return Lease(IPv4Address(address), client_id, mac, state, expires, hostname, self.server_id)

    def _release_others(
        self, cursor: psycopg.Cursor[tuple[Any, ...]], mine: list[LeaseRow], keep: int, now: float
    ) -> None:
        """Keep one client on one address: whatever else it holds goes back."""
        for row in mine:
            held = row.state in (LeaseState.OFFERED, LeaseState.BOUND) and now < row.expires
            if row.address != keep and held:
                cursor.execute(_END, (LeaseState.RELEASED.value, now, self.server_id, row.address))

    def _choose(
        self,
        cursor: psycopg.Cursor[tuple[Any, ...]],
        client_id: bytes,
        mac: MacAddress,
        requested: IPv4Address | None,
        mine: list[LeaseRow],
        now: float,
    ) -> tuple[int, LeaseRow | None] | None:
        rules = self._rules
        reserved = rules.reservation.get(mac)
        if reserved is not None:
            held, row = self._claim(cursor, reserved, wait=False)
            if held and rules.available(row, client_id, now):
                return reserved, row
        for row in mine:
            if row.state != LeaseState.DECLINED and rules.allowed(row.address, mac):
                return row.address, row
        if requested is not None:
            address = int(requested)
            if rules.allowed(address, mac):
                held, row = self._claim(cursor, address, wait=False)
                if held and rules.available(row, client_id, now):
                    return address, row
        raw = cursor.execute(
            _CLAIM_FREE, (now, rules.first, rules.last, self._not_dynamic)
        ).fetchone()
        if raw is None:
            return None
        return int(raw[0]), _row(raw)

    # --- the protocol's operations ----------------------------------------------------

    def offer(
        self, client_id: bytes, mac: MacAddress, requested: IPv4Address | None = None
    ) -> Lease | None:
        """Answer a DISCOVER (`LeaseStore.offer`): hold an address for `offer_hold`."""
        with self._transaction() as (cursor, now):
            mine = self._client_rows(cursor, client_id)
            choice = self._choose(cursor, client_id, mac, requested, mine, now)
            if choice is None:
                return None
            address, previous = choice
            ours = previous if previous is not None and previous.client_id == client_id else None
            if ours is not None and ours.state == LeaseState.BOUND and now < ours.expires:
                return ours.lease()
            self._release_others(cursor, mine, address, now)
            return self._write(
                cursor,
                address,
                client_id,
                mac,
                LeaseState.OFFERED,
                now + self._offer_hold,
                None if ours is None else ours.hostname,
                (mine[0].seq + 1) if mine else 1,
            )

    def bind(
        self,
        client_id: bytes,
        mac: MacAddress,
        address: IPv4Address,
        lease_time: float,
        hostname: str | None = None,
    ) -> Lease | None:
        """Answer a REQUEST (`LeaseStore.bind`); None means NAK."""
        if not lease_time > 0:
            raise ValueError(f"lease_time must be positive, got {lease_time}")
        wanted = int(address)
        rules = self._rules
        with self._transaction() as (cursor, now):
            if not rules.allowed(wanted, mac):
                return None
            mine = self._client_rows(cursor, client_id)
            reserved = rules.reservation.get(mac)
            if reserved is not None and reserved != wanted:
                row = _row(cursor.execute(_ROW_AT, (reserved,)).fetchone())
                if rules.available(row, client_id, now):
                    return None
            held, previous = self._claim(cursor, wanted, wait=True)
            if not held or not rules.available(previous, client_id, now):
                return None
            self._release_others(cursor, mine, wanted, now)
            if hostname is None and previous is not None and previous.client_id == client_id:
                hostname = previous.hostname
            return self._write(
                cursor,
                wanted,
                client_id,
                mac,
                LeaseState.BOUND,
                now + lease_time,
                hostname,
                (mine[0].seq + 1) if mine else 1,
            )

    def release(self, client_id: bytes, address: IPv4Address) -> bool:
        """Answer a RELEASE (`LeaseStore.release`): one conditional UPDATE."""
        with self._transaction() as (cursor, now):
            done = cursor.execute(
                _RELEASE, (now, self.server_id, int(address), client_id, now)
            ).fetchone()
            return done is not None

    def decline(self, client_id: bytes, address: IPv4Address) -> bool:
        """Answer a DECLINE (`LeaseStore.decline`): quarantined for every daemon."""
        with self._transaction() as (cursor, now):
            done = cursor.execute(
                _DECLINE, (now + self.quarantine, self.server_id, int(address), client_id)
            ).fetchone()
            return done is not None

    # --- reading ----------------------------------------------------------------------

    def lease_for(self, client_id: bytes) -> Lease | None:
        """The client's most recently changed row, in whatever state."""
        rows = self._query(_NEWEST_OF_CLIENT, (client_id,))
        row = _row(rows[0]) if rows else None
        return None if row is None else row.lease()

    def holder(self, address: IPv4Address) -> Lease | None:
        """The active (offered or bound, unexpired) lease on `address`, if any."""
        lease = self.lease_at(address)
        return lease if lease is not None and lease.active(self._clock()) else None

    def lease_at(self, address: IPv4Address) -> Lease | None:
        """The row of `address` in whatever state; None if no client ever had it."""
        rows = self._query(_ROW_AT, (int(address),))
        row = _row(rows[0]) if rows else None
        return None if row is None else row.lease()

    def leases(self) -> list[Lease]:
        """Every row a client ever had, by address; expired ones included."""
        rows = (_row(raw) for raw in self._query(_ALL_ROWS))
        return [row.lease() for row in rows if row is not None]

    def counts(self) -> dict[str, int]:
        """Gauges for /metrics, as `LeaseStore.counts`."""
        rows = self._query(_BUSY, (self._clock(),))
        return count_active(self.pool, [(int(a), str(s)) for a, s in rows])

    # --- servers sharing the leases -------------------------------------------------------

    def heartbeat(self, server_id: str, address: str, load: float) -> None:
        """Record that `server_id` (at `address`, this busy) is alive now, on the store's clock."""
        with self._transaction() as (cursor, now):
            cursor.execute(_HEARTBEAT, (server_id, address, now, load))

    def servers(self, within: float) -> list[ServerSeen]:
        """The servers whose last heartbeat is newer than `within` seconds ago, by id."""
        rows = self._query(_SERVERS_SEEN, (self._clock() - within,))
        return [ServerSeen(str(s), str(a), float(seen), float(load)) for s, a, seen, load in rows]

    def close(self) -> None:
        self._drop()
        self.down_reason = "closed"

    def __enter__(self) -> PgLeaseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_ROWS_AT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE address = ANY(%s)"
)
_COPY_ROW = (
    "INSERT INTO lease (address, client_id, mac, state, expires, hostname, seq, server_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (address) DO UPDATE SET client_id = excluded.client_id, mac = excluded.mac,"
    " state = excluded.state, expires = excluded.expires, hostname = excluded.hostname,"
    " seq = excluded.seq, server_id = excluded.server_id WHERE lease.state = 'unused'"
)


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What `copy_leases` found in the target after copying, row by row of the source."""

    source: int
    """Rows in the source."""
    copied: int
    """Rows this run wrote (an address the target had never leased)."""
    matching: int
    """Rows the target now holds exactly as the source does (copied ones included)."""
    conflicting: tuple[IPv4Address, ...]
    """Addresses the target lacks or holds differently (another daemon leased them)."""

    @property
    def complete(self) -> bool:
        return self.matching == self.source and not self.conflicting


def copy_leases(rows: Sequence[LeaseRow], url: str, *, connect_timeout: float = 10.0) -> CopyReport:
    """Copy lease rows into the PostgreSQL database at `url`, then check every one is there.

    One transaction: the schema is created if needed, each row goes into an address
    nobody leased in the target yet, and a row the target already holds is never
    overwritten, so running it twice changes nothing the second time. The check reads
    the rows back after the commit.
    """
    name = redacted(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=round(connect_timeout)) as conn:
            copied = 0
            with conn.transaction(), conn.cursor() as cursor:
                prepare_schema(conn, name)
                for row in rows:
                    cursor.execute(_COPY_ROW, _values(row))
                    copied += cursor.rowcount
            found = {
                int(raw[0]): _row(raw)
                for raw in conn.execute(_ROWS_AT, ([row.address for row in rows],)).fetchall()
            }
    except psycopg.OperationalError as error:
        raise LeaseStoreUnavailable(f"{name}: {str(error).strip()}") from error
    except psycopg.Error as error:
        raise LeaseDatabaseError(name, str(error).strip()) from error
    conflicting = tuple(
        IPv4Address(row.address) for row in rows if not _same(found.get(row.address), row)
    )
    return CopyReport(len(rows), copied, len(rows) - len(conflicting), conflicting)


def _same(stored: LeaseRow | None, source: LeaseRow) -> bool:
    return stored is not None and _values(stored) == _values(source)


def _values(row: LeaseRow) -> tuple[object, ...]:
    """A row as it is stored and compared: the MAC as text, the state as its word."""
    return (
        row.address,
        bytes(row.client_id),
        str(row.mac),
        str(row.state),
        float(row.expires),
        row.hostname,
        int(row.seq),
        row.server_id,
    )
