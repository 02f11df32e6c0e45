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
* **One round trip per operation**: offer, bind, release and decline are each one
  call of a PL/pgSQL function (`netboot_offer`, `netboot_bind`, `netboot_end`)
  that does the whole walk in the server and returns the row. Done from here, an
  operation was five statements (savepoint, lock the client's rows, claim, write,
  release the savepoint), each waiting for the last, and those waits were most of
  its time. What depends only on this daemon's pool configuration (whether the
  MAC may have its reservation or the requested address; the addresses that are
  never dynamic) is decided here and passed in, so the policy stays `PoolRules`'
  and the functions hold no configuration. The functions are part of the
  schema: changing one means a new schema version and a migration.
* **Group commit**: `batch()` is one transaction; each function runs its work in
  an exception block (a subtransaction, as a savepoint was), so a failed
  operation (a lock or statement timeout, a deadlock PostgreSQL broke) is undone
  and reported alone and the batch goes on. The commit returns after
  PostgreSQL's WAL flush (`synchronous_commit` on), so an ACK sent after `batch()`
  exits is for a durable lease; outside a batch the one statement is its own
  transaction, durable when it returns.
* **Versioned schema** (`netboot_schema`, now 2: the tables, then the functions):
  created and migrated under an advisory lock by whichever daemon connects first;
  a newer version, or a `lease` table that is not ours, is refused.
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

SCHEMA_VERSION = 2
"""Kept in `netboot_schema.version`; a database of a newer netboot is refused.

1: the tables; 2: the operations as server-side functions (`_FUNCTIONS`)."""

_SCHEMA_LOCK = 0x4E42544C  # "NBTL", as the SQLite lease file's application_id
"""The advisory lock under which one daemon at a time creates or migrates the schema."""

_UNUSED = "unused"
"""A pre-created row no client ever had: reads treat it as no row at all."""

_TABLES = (
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
"""Schema 1: the tables."""


def _client_operation(name: str, parameters: str, declarations: str, body: str) -> str:
    """A lease operation on one client as a PL/pgSQL function (`netboot_offer`,
    `netboot_bind`): what they share is written once here, their decisions apart.

    `body` runs with the client's rows locked first (`v_mine`, newest first: the
    lock order that keeps two daemons serving one client from deadlocking), inside
    an exception block, a subtransaction, so that a failure (a lock or statement
    timeout, a deadlock PostgreSQL broke) is undone alone and the batch goes on.
    The function returns no row (no address: the pool is exhausted, or NAK), the
    lease row `body` left in `v_out`, or a row with only `o_failure` set. `v_row`
    is the body's to reuse; `declarations` adds its own variables.
    """
    return (
        f"""
    CREATE OR REPLACE FUNCTION {name}({parameters})
    RETURNS TABLE (o_address bigint, o_client_id bytea, o_mac text, o_state text,
        o_expires double precision, o_hostname text, o_seq bigint, o_server_id text,
        o_failure text)
    LANGUAGE plpgsql AS $$
    DECLARE
        v_row lease;
        v_mine lease[] := '{{}}';{declarations}
        v_out lease;
        v_failure text;
    BEGIN
        BEGIN
            FOR v_row IN
                SELECT * FROM lease WHERE client_id = p_client ORDER BY seq DESC FOR UPDATE
            LOOP
                v_mine := v_mine || v_row;
            END LOOP;"""  # noqa: S608 - this module's own SQL, put together at import: no input
        + body
        + """
        EXCEPTION
            WHEN query_canceled THEN v_failure := SQLERRM;
            WHEN OTHERS THEN v_failure := SQLERRM;
        END;
        IF v_out.address IS NOT NULL OR v_failure IS NOT NULL THEN
            RETURN QUERY SELECT (v_out).*, v_failure;
        END IF;
    END $$
    """
    )


_FUNCTIONS = (
    # `PoolRules.available`: free, or already this client's (unless it declined it).
    """
    CREATE OR REPLACE FUNCTION netboot_available(p_row lease, p_client bytea,
                                                 p_now double precision)
    RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
        SELECT (p_row).state IN ('unused', 'released') OR p_now >= (p_row).expires
            OR ((p_row).client_id = p_client AND (p_row).state <> 'declined')
    $$
    """,
    # `PoolRules.allowed` for the addresses a client's own rows hold: the caller
    # passes the MAC's reservation and whether the MAC may have it.
    """
    CREATE OR REPLACE FUNCTION netboot_allowed(p_address bigint, p_reserved bigint,
        p_reserved_ok boolean, p_not_dynamic bigint[], p_first bigint, p_last bigint)
    RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN p_address = p_reserved THEN p_reserved_ok
            ELSE p_address BETWEEN p_first AND p_last AND p_address <> ALL(p_not_dynamic) END
    $$
    """,
    # Lock one address's row: the row (state 'unused' if never leased), or all NULL
    # when another transaction holds it and `p_wait` is false. A row missing (an
    # address outside the pools the daemons created) is added.
    """
    CREATE OR REPLACE FUNCTION netboot_claim(p_address bigint, p_wait boolean)
    RETURNS lease LANGUAGE plpgsql AS $$
    DECLARE
        v_row lease;
    BEGIN
        IF p_wait THEN
            SELECT * INTO v_row FROM lease WHERE address = p_address FOR UPDATE;
        ELSE
            SELECT * INTO v_row FROM lease WHERE address = p_address FOR UPDATE SKIP LOCKED;
        END IF;
        IF FOUND THEN
            RETURN v_row;
        END IF;
        INSERT INTO lease (address, state, expires) VALUES (p_address, 'unused', '-Infinity')
            ON CONFLICT (address) DO NOTHING RETURNING * INTO v_row;
        IF NOT FOUND AND p_wait THEN
            SELECT * INTO v_row FROM lease WHERE address = p_address FOR UPDATE;
        END IF;
        RETURN v_row;
    END $$
    """,
    # Keep one client on one address: whatever else of its rows (locked by the
    # caller) it holds goes back. Row by row on the primary key: a client has one or
    # two rows, and one UPDATE over an array of them is planned as a scan of the table.
    """
    CREATE OR REPLACE FUNCTION netboot_release_others(p_mine lease[], p_keep bigint,
        p_now double precision, p_server text)
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        v_row lease;
    BEGIN
        FOREACH v_row IN ARRAY p_mine LOOP
            IF v_row.address <> p_keep AND v_row.state IN ('offered', 'bound')
                    AND p_now < v_row.expires THEN
                UPDATE lease SET state = 'released', expires = p_now, server_id = p_server
                    WHERE address = v_row.address;
            END IF;
        END LOOP;
    END $$
    """,
    # DISCOVER. The client's rows are locked first, then the
    # address: reservation, the client's own address, the requested one, then the
    # first row of the walk of lease_by_expiry it can lock (never-used rows expire at
    # -infinity, so they come first, lowest address first; then the row whose lease,
    # offer or quarantine ended the longest ago). `address + 0` keeps the planner off
    # the primary key's range, which covers the whole pool.
    _client_operation(
        "netboot_offer",
        """p_client bytea, p_mac text, p_requested bigint,
        p_reserved bigint, p_reserved_ok boolean, p_not_dynamic bigint[], p_first bigint,
        p_last bigint, p_now double precision, p_expires double precision, p_server text""",
        """
        v_chosen lease;""",
        """
            IF p_reserved IS NOT NULL THEN
                v_row := netboot_claim(p_reserved, false);
                IF v_row.address IS NOT NULL AND netboot_available(v_row, p_client, p_now) THEN
                    v_chosen := v_row;
                END IF;
            END IF;
            IF v_chosen.address IS NULL THEN
                FOREACH v_row IN ARRAY v_mine LOOP
                    IF v_row.state <> 'declined' AND netboot_allowed(v_row.address, p_reserved,
                            p_reserved_ok, p_not_dynamic, p_first, p_last) THEN
                        v_chosen := v_row;
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            IF v_chosen.address IS NULL AND p_requested IS NOT NULL THEN
                v_row := netboot_claim(p_requested, false);
                IF v_row.address IS NOT NULL AND netboot_available(v_row, p_client, p_now) THEN
                    v_chosen := v_row;
                END IF;
            END IF;
            IF v_chosen.address IS NULL THEN
                SELECT * INTO v_chosen FROM lease
                    WHERE (expires <= p_now OR state = 'released')
                    AND address + 0 BETWEEN p_first AND p_last AND address <> ALL(p_not_dynamic)
                    ORDER BY expires, address LIMIT 1 FOR UPDATE SKIP LOCKED;
            END IF;
            IF v_chosen.address IS NULL THEN
                NULL;  -- the pool is exhausted
            ELSIF v_chosen.client_id = p_client AND v_chosen.state = 'bound'
                    AND p_now < v_chosen.expires THEN
                v_out := v_chosen;  -- a bound client's stray DISCOVER: its lease, unchanged
            ELSE
                PERFORM netboot_release_others(v_mine, v_chosen.address, p_now, p_server);
                UPDATE lease SET client_id = p_client, mac = p_mac, state = 'offered',
                    expires = p_expires,
                    hostname = CASE WHEN client_id = p_client THEN hostname END,
                    seq = coalesce((v_mine[1]).seq + 1, 1), server_id = p_server
                    WHERE address = v_chosen.address RETURNING * INTO v_out;
            END IF;""",
    ),
    # REQUEST (`LeaseStore.bind`), its address already checked `allowed` by the
    # caller; `p_reserved` is the MAC's reservation when it is another address.
    _client_operation(
        "netboot_bind",
        """p_client bytea, p_mac text, p_address bigint,
        p_reserved bigint, p_now double precision, p_expires double precision,
        p_hostname text, p_server text""",
        "",
        """
            IF p_reserved IS NOT NULL THEN
                SELECT * INTO v_row FROM lease WHERE address = p_reserved;
            END IF;
            -- A reservation free for this client refuses it any other address.
            IF p_reserved IS NULL OR NOT (v_row.address IS NULL
                    OR netboot_available(v_row, p_client, p_now)) THEN
                v_row := netboot_claim(p_address, true);
                IF v_row.address IS NOT NULL AND netboot_available(v_row, p_client, p_now) THEN
                    PERFORM netboot_release_others(v_mine, p_address, p_now, p_server);
                    UPDATE lease SET client_id = p_client, mac = p_mac, state = 'bound',
                        expires = p_expires,
                        hostname = coalesce(p_hostname,
                                            CASE WHEN client_id = p_client THEN hostname END),
                        seq = coalesce((v_mine[1]).seq + 1, 1), server_id = p_server
                        WHERE address = p_address RETURNING * INTO v_out;
                END IF;
            END IF;""",
    ),
    # RELEASE and DECLINE: one conditional UPDATE each; the row keeps its client.
    """
    CREATE OR REPLACE FUNCTION netboot_end(p_client bytea, p_address bigint, p_state text,
        p_now double precision, p_expires double precision, p_server text,
        OUT o_done boolean, OUT o_failure text)
    LANGUAGE plpgsql AS $$
    BEGIN
        o_done := false;
        BEGIN
            UPDATE lease SET state = p_state, expires = p_expires, server_id = p_server
                WHERE address = p_address AND client_id = p_client
                AND state IN ('offered', 'bound') AND (p_state = 'declined' OR expires > p_now);
            o_done := FOUND;
        EXCEPTION
            WHEN query_canceled THEN o_failure := SQLERRM;
            WHEN OTHERS THEN o_failure := SQLERRM;
        END;
    END $$
    """,
)
"""Schema 2: each lease operation one server-side function, so one round trip.

Every function catches its own failure (a lock or statement timeout, a deadlock
PostgreSQL broke) in an exception block, which is a subtransaction: the failed
operation is undone and reported, and the batch's transaction goes on, as a
savepoint per operation did, without the two round trips a savepoint costs."""

_SCHEMA = _TABLES + _FUNCTIONS
"""The newest schema whole, for an empty database."""

MIGRATIONS: Mapping[int, Sequence[str]] = MappingProxyType({1: _FUNCTIONS})
"""Version N to the statements that turn a schema-N database into schema N+1."""

_ROW_AT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE address = %s"
)
_NEWEST_OF_CLIENT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE client_id = %s ORDER BY seq DESC LIMIT 1"
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
_OFFER = (
    "SELECT * FROM netboot_offer(%s::bytea, %s::text, %s::bigint, %s::bigint, %s::boolean,"
    " %s::bigint[], %s::bigint, %s::bigint, %s::float8, %s::float8, %s::text)"
)
_BIND = (
    "SELECT * FROM netboot_bind(%s::bytea, %s::text, %s::bigint, %s::bigint, %s::float8,"
    " %s::float8, %s::text, %s::text)"
)
_END_LEASE = (
    "SELECT * FROM netboot_end(%s::bytea, %s::bigint, %s::text, %s::float8, %s::float8, %s::text)"
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

    # --- the protocol's operations ----------------------------------------------------

    def _answer(self, sql: str, parameters: tuple[object, ...]) -> tuple[Any, ...] | None:
        """One call of a lease function: one statement, so one round trip.

        Outside a batch it is a transaction of its own (autocommit), durable when it
        returns; inside, part of the batch's. A failure the function caught (and
        undid) raises `LeaseDatabaseError` and leaves the batch usable.
        """
        conn = self._live()
        try:
            raw = conn.execute(sql, parameters).fetchone()
        except psycopg.Error as error:
            raise self._failed(error) from error
        if raw is not None and raw[-1] is not None:
            raise LeaseDatabaseError(self.path, str(raw[-1]))
        return raw

    def _lease(self, sql: str, parameters: tuple[object, ...]) -> Lease | None:
        raw = self._answer(sql, parameters)
        row = None if raw is None else _row(raw[:-1])
        return None if row is None else row.lease()

    def offer(
        self, client_id: bytes, mac: MacAddress, requested: IPv4Address | None = None
    ) -> Lease | None:
        """Answer a DISCOVER (`LeaseStore.offer`): hold an address for `offer_hold`.

        The allocation walk runs in the database (`netboot_offer`); what depends
        only on the pool's configuration is decided here and passed in.
        """
        rules = self._rules
        reserved = rules.reservation.get(mac)
        wanted = None if requested is None else int(requested)
        if wanted is not None and not rules.allowed(wanted, mac):
            wanted = None
        now = self._clock()
        return self._lease(
            _OFFER,
            (
                client_id,
                str(mac),
                wanted,
                reserved,
                reserved is not None and rules.allowed(reserved, mac),
                self._not_dynamic,
                rules.first,
                rules.last,
                now,
                now + self._offer_hold,
                self.server_id,
            ),
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
        self._live()
        wanted = int(address)
        rules = self._rules
        if not rules.allowed(wanted, mac):
            return None
        reserved = rules.reservation.get(mac)
        now = self._clock()
        return self._lease(
            _BIND,
            (
                client_id,
                str(mac),
                wanted,
                None if reserved == wanted else reserved,
                now,
                now + lease_time,
                hostname,
                self.server_id,
            ),
        )

    def release(self, client_id: bytes, address: IPv4Address) -> bool:
        """Answer a RELEASE (`LeaseStore.release`): one conditional UPDATE."""
        now = self._clock()
        parameters = (client_id, int(address), LeaseState.RELEASED.value, now, now, self.server_id)
        done = self._answer(_END_LEASE, parameters)
        return done is not None and bool(done[0])

    def decline(self, client_id: bytes, address: IPv4Address) -> bool:
        """Answer a DECLINE (`LeaseStore.decline`): quarantined for every daemon."""
        now = self._clock()
        parameters = (
            client_id,
            int(address),
            LeaseState.DECLINED.value,
            now,
            now + self.quarantine,
            self.server_id,
        )
        done = self._answer(_END_LEASE, parameters)
        return done is not None and bool(done[0])

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
