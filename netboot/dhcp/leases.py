"""The lease database of full-DHCP mode: which client holds which address, on disk.

Full DHCP hands out addresses, so a restart must not forget who holds what, and
nothing (a crash, a second process on the same file) may ever hand one address
to two clients. The design choices that follow from that:

* One row per address ever handed out, keyed by the address as an INTEGER
  PRIMARY KEY: the key is the table's UNIQUE constraint, so a second holder of an
  address is a constraint violation, never a second row. Rows are never deleted;
  an address is "never used" exactly when it has no row, which makes the lowest
  never-used address an index walk from a cursor that only moves forward.
* Every change is one `BEGIN IMMEDIATE` transaction. IMMEDIATE takes the write
  lock before the first read, so two stores sharing the file serialise "find a
  free address" with "record it"; a deferred transaction would let both read the
  same free address before either writes.
* WAL journal with `synchronous=FULL`. Both NORMAL and FULL survive a process
  crash intact; they differ on power loss, where NORMAL may lose the last commits.
  A lost BIND is an address the client was ACKed and still uses but the file no
  longer records, which the next boot would offer to someone else: the very
  duplicate this module exists to prevent. FULL syncs the WAL at every commit, so
  an ACK is only ever sent for a lease that is on disk. WAL keeps that fsync
  cheap (one sequential append) and lets status readers run beside the writer.
* The clock is injected and must be a wall clock (`time.time`): expiries are
  absolute and outlive the process, and a monotonic clock restarts with the
  machine, which would make stored leases look expired or immortal.

Allocation order, after RFC 2131 4.3.1: a client's reservation, then the address
it holds or held, then the one it asks for, then the lowest never-used address,
and only then the address that has been free the longest, so an address a
vanished client might still be using is reused as late as possible. DECLINEd
addresses (someone on the wire answered ARP for them) sit out a quarantine and
then rejoin that queue at the end, as if their lease had ended when it lifted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from netboot.dhcp.lease_file import LEASE_FILE, check_lease_terms
from netboot.dhcp.lease_file import LeaseDatabaseError as LeaseDatabaseError  # its home before
from netboot.dhcp.lease_store import ServerSeen
from netboot.macaddr import MacAddress
from netboot.sqlite_file import SqliteFile

MAX_POOL_SIZE = 65536
"""A /16: far beyond one broadcast domain, and it bounds the never-used walk."""

# Written out in full, each with the columns of LeaseRow in order, so no SQL is ever
# assembled at run time.
_ROW_AT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE address = ?"
)
_ROWS_OF_CLIENT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE client_id = ? ORDER BY seq DESC"
)
_NEWEST_OF_CLIENT = _ROWS_OF_CLIENT + " LIMIT 1"
_ROW_AT_AND_CLIENT = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE address = ? OR client_id = ? ORDER BY seq DESC"
)
# What a REQUEST reads, in one statement: the address asked for and the client's rows.
_FREE_LONGEST = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " WHERE expires <= ? AND +address BETWEEN ? AND ? ORDER BY expires, address LIMIT ? OFFSET ?"
)
# The unary + keeps the planner off the rowid range: a range over the whole pool
# looks selective to it, but then every candidate is sorted by expiry on each offer.
_ALL_ROWS = (
    "SELECT address, client_id, mac, state, expires, hostname, seq, server_id FROM lease"
    " ORDER BY address"
)
_BATCH = 256
_HEARTBEAT = (
    "INSERT INTO server (server_id, address, seen, load) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (server_id) DO UPDATE"
    " SET address = excluded.address, seen = excluded.seen, load = excluded.load"
)
_SERVERS_SEEN = (
    "SELECT server_id, address, seen, load FROM server WHERE seen > ? ORDER BY server_id"
)


@dataclass(frozen=True, slots=True)
class AddressPool:
    """The addresses the server may hand out, fixed for a store's lifetime.

    A reservation may lie outside `first`..`last` (a printer kept out of the
    dynamic range): its MAC gets it anyway, and no other client ever does.
    """

    first: IPv4Address
    last: IPv4Address
    reservations: Mapping[MacAddress, IPv4Address] = field(
        default_factory=lambda: MappingProxyType({})
    )
    excluded: frozenset[IPv4Address] = frozenset()
    """Never handed out: typically the server's own address and the router."""
    _reserved_for: Mapping[IPv4Address, MacAddress] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError(f"address pool starts at {self.first}, after its end {self.last}")
        count = int(self.last) - int(self.first) + 1
        if count > MAX_POOL_SIZE:
            raise ValueError(
                f"address pool {self.first}-{self.last} has {count} addresses;"
                f" at most {MAX_POOL_SIZE} are supported"
            )
        reserved_for: dict[IPv4Address, MacAddress] = {}
        for mac, address in self.reservations.items():
            if address in reserved_for:
                raise ValueError(
                    f"{address} is reserved for both {reserved_for[address]} and {mac}"
                )
            if address in self.excluded:
                raise ValueError(f"{address} is reserved for {mac} but also excluded")
            reserved_for[address] = mac
        # Copies, so a caller mutating its dict cannot change a pool a store relies on.
        object.__setattr__(self, "reservations", MappingProxyType(dict(self.reservations)))
        object.__setattr__(self, "_reserved_for", MappingProxyType(reserved_for))

    def contains(self, address: IPv4Address) -> bool:
        """Whether some client may ever be given `address`."""
        if address in self.excluded:
            return False
        return self.first <= address <= self.last or address in self._reserved_for

    def reserved_for(self, address: IPv4Address) -> MacAddress | None:
        return self._reserved_for.get(address)

    @property
    def size(self) -> int:
        """How many addresses `contains` accepts: the denominator of a usage metric."""
        in_range = int(self.last) - int(self.first) + 1
        excluded = sum(1 for a in self.excluded if self.first <= a <= self.last)
        outside = sum(1 for a in self._reserved_for if not self.first <= a <= self.last)
        return in_range - excluded + outside


class LeaseState(StrEnum):
    OFFERED = "offered"
    BOUND = "bound"
    RELEASED = "released"
    DECLINED = "declined"


_HELD = (LeaseState.OFFERED, LeaseState.BOUND)
_STATES = {state.value: state for state in LeaseState}
"""A row's state text to its member: looked up, not `LeaseState(text)` (an enum call
per lease read, and every DISCOVER of a bound client reads one)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One address's row. `client_id` is an opaque key chosen by the caller
    (option 61, or 0x01 + chaddr), so two OSes on one machine can hold two leases."""

    address: IPv4Address
    client_id: bytes
    mac: MacAddress
    state: LeaseState
    expires: float
    """Absolute, on the injected clock: the offer's, lease's or quarantine's end."""
    hostname: str | None
    server_id: str = ""
    """The server that last wrote the row (`server.id`): who answered, across daemons."""

    def active(self, now: float) -> bool:
        """Whether a client may be using the address right now."""
        return self.state in _HELD and now < self.expires


class LeaseRow(NamedTuple):
    """A row as both backends read it (their columns in this order); `seq` orders one
    client's rows, newest last."""

    address: int
    client_id: bytes
    mac: str
    state: str
    expires: float
    hostname: str | None
    seq: int
    server_id: str

    def busy(self, now: float) -> bool:
        """Held by its client or quarantined: not available to anyone else."""
        return self.state != LeaseState.RELEASED and now < self.expires

    def lease(self) -> Lease:
        return Lease(
            IPv4Address(self.address),
            self.client_id,
            MacAddress(self.mac),
            _STATES.get(self.state) or LeaseState(self.state),  # unknown text: ValueError
            self.expires,
            self.hostname,
            self.server_id,
        )


def lease_rows(path: str | Path) -> list[LeaseRow]:
    """Every IPv4 row of a lease file as stored, whatever the pool: what a migration copies.

    Opening it is opening it as the daemon does: an older file is migrated in place first.
    """
    file = SqliteFile(path, LEASE_FILE)
    try:
        return [LeaseRow._make(row) for row in file.query(_ALL_ROWS)]
    finally:
        file.close()


class PoolRules:
    """Who may have which address, from the pool: the allocation policy both backends share.

    Works on integers (the address as the database key), which are cheaper than
    `IPv4Address` on every offer.
    """

    def __init__(self, pool: AddressPool) -> None:
        self.first = int(pool.first)
        self.last = int(pool.last)
        self.excluded = frozenset(int(a) for a in pool.excluded)
        self.reservation = {mac: int(a) for mac, a in pool.reservations.items()}
        self.reserved_for = {a: mac for mac, a in self.reservation.items()}

    def allowed(self, address: int, mac: MacAddress) -> bool:
        """Whether `mac` may ever get `address`, whoever holds it now."""
        if address in self.excluded:
            return False
        owner = self.reserved_for.get(address)
        if owner is not None:
            return owner == mac
        return self.first <= address <= self.last

    def dynamic(self, address: int) -> bool:
        """Whether the never-used and longest-free steps may hand out `address`."""
        return address not in self.excluded and address not in self.reserved_for

    @staticmethod
    def available(row: LeaseRow | None, client_id: bytes, now: float) -> bool:
        """Free, or already this client's (unless it declined it)."""
        if row is None or not row.busy(now):
            return True
        return row.client_id == client_id and row.state != LeaseState.DECLINED


def count_active(pool: AddressPool, busy: list[tuple[int, str]]) -> dict[str, int]:
    """The /metrics gauges from the (address, state) of every unexpired, unreleased row.

    `free` counts pool addresses nobody holds or quarantines (a free reservation
    included, though only its MAC can take it).
    """
    counts = {"offered": 0, "bound": 0, "quarantined": 0}
    busy_in_pool = 0
    for address, state in busy:
        key = "quarantined" if state == LeaseState.DECLINED else str(state)
        counts[key] += 1
        if pool.contains(IPv4Address(address)):
            busy_in_pool += 1
    counts["free"] = pool.size - busy_in_pool
    return counts


class LeaseStore:
    """The lease table of one pool in one SQLite file (or `":memory:"` for tests).

    Not thread-safe: one store per thread, as the daemon has one reactor thread.
    Several stores, in several processes, may share a file.
    """

    def __init__(
        self,
        path: str | Path,
        pool: AddressPool,
        clock: Callable[[], float],
        *,
        offer_hold: float = 30.0,
        quarantine: float = 600.0,
        busy_timeout: float = 5.0,
        server_id: str = "",
    ) -> None:
        check_lease_terms(offer_hold, quarantine)
        self.path = str(path)
        self.server_id = server_id
        """This daemon's identity, written into every row it changes."""
        self.pool = pool
        self._clock = clock
        self._offer_hold = offer_hold
        self.quarantine = quarantine
        """Seconds a DECLINEd address sits out; a reload may change it."""
        self._rules = PoolRules(pool)
        self._first = self._rules.first
        self._last = self._rules.last
        self._cursor = self._first
        """Every address below it in the range has a row or is never dynamic."""
        self._file = SqliteFile(path, LEASE_FILE, busy_timeout)
        self._db = self._file.db

    # --- transactions ------------------------------------------------------------
    # Each operation is one `SqliteFile.operation` (its own BEGIN IMMEDIATE, or a step
    # of the open batch), and reads the clock once inside it: after the write lock is
    # held, so a wait for another process's lock cannot leave it deciding with a stale
    # "now". An operation writes once, last, unless it also releases a client's other
    # rows; only then does it open a savepoint (`_take`), so a failure undoes it whole.

    def batch(self) -> AbstractContextManager[None]:
        """Group commit of every operation inside: one transaction, one fsync
        (`SqliteFile.batch`). Answers made inside may leave only after it exits."""
        return self._file.batch()

    def _query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[Any]:
        """A read outside a transaction, with SQLite's errors turned into ours."""
        return self._file.query(sql, parameters)

    def _row(self, address: int) -> LeaseRow | None:
        row = self._db.execute(_ROW_AT, (address,)).fetchone()
        return None if row is None else LeaseRow._make(row)

    def _client_rows(self, client_id: bytes) -> list[LeaseRow]:
        """Newest first; a client rarely has more than two (its address and its last one)."""
        rows = self._db.execute(_ROWS_OF_CLIENT, (client_id,)).fetchall()
        return [LeaseRow._make(row) for row in rows]

    def _row_and_client_rows(
        self, address: int, client_id: bytes
    ) -> tuple[LeaseRow | None, list[LeaseRow]]:
        """`_row(address)` and `_client_rows(client_id)` in one statement."""
        previous = None
        mine = []
        for raw in self._db.execute(_ROW_AT_AND_CLIENT, (address, client_id)).fetchall():
            row = LeaseRow._make(raw)
            if row.address == address:
                previous = row
            if row.client_id == client_id:
                mine.append(row)
        return previous, mine

    def _write(
        self,
        address: int,
        previous: LeaseRow | None,
        client_id: bytes,
        mac: MacAddress,
        state: LeaseState,
        expires: float,
        hostname: str | None,
        seq: int,
    ) -> Lease:
        values = (client_id, mac, state.value, expires, hostname, seq, self.server_id, address)
        if previous is None:
            # A plain INSERT: if the address somehow had a row, the UNIQUE key refuses it.
            self._db.execute(
                "INSERT INTO lease"
                " (client_id, mac, state, expires, hostname, seq, server_id, address)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        else:
            self._db.execute(
                "UPDATE lease SET client_id = ?, mac = ?, state = ?, expires = ?,"
                " hostname = ?, seq = ?, server_id = ? WHERE address = ?",
                values,
            )
        return Lease(IPv4Address(address), client_id, mac, state, expires, hostname, self.server_id)

    def _end(self, address: int, state: LeaseState, expires: float) -> None:
        """Release or quarantine a row in place: it keeps its client."""
        self._db.execute(
            "UPDATE lease SET state = ?, expires = ?, server_id = ? WHERE address = ?",
            (state.value, expires, self.server_id, address),
        )

    def _take(
        self,
        address: int,
        previous: LeaseRow | None,
        mine: list[LeaseRow],
        client_id: bytes,
        mac: MacAddress,
        state: LeaseState,
        expires: float,
        hostname: str | None,
        now: float,
    ) -> Lease:
        """Write the client's row for `address`, and keep one client on one address:
        whatever else it holds goes back (then, and only then, two writes that must
        succeed or fail together: a savepoint)."""
        seq = (mine[0].seq + 1) if mine else 1
        others = [
            row.address
            for row in mine
            if row.address != address and row.state in _HELD and now < row.expires
        ]
        if not others:
            return self._write(address, previous, client_id, mac, state, expires, hostname, seq)
        with self._file.savepoint():
            for other in others:
                self._end(other, LeaseState.RELEASED, now)
            return self._write(address, previous, client_id, mac, state, expires, hostname, seq)

    # --- policy ----------------------------------------------------------------------

    def _never_used(self) -> int | None:
        """The lowest dynamic address without a row, walking the index from the cursor.

        Rows are never deleted, so the cursor never has to move back, and the walk
        costs one batch per call once the cursor has caught up.
        """
        candidate = self._cursor
        while candidate <= self._last:
            used = self._db.execute(
                "SELECT address FROM lease WHERE address BETWEEN ? AND ? ORDER BY address LIMIT ?",
                (candidate, self._last, _BATCH),
            ).fetchall()
            for (address,) in used:
                while candidate < address:
                    if self._rules.dynamic(candidate):
                        self._cursor = candidate
                        return candidate
                    candidate += 1
                candidate = address + 1
            if len(used) < _BATCH:
                while candidate <= self._last:
                    if self._rules.dynamic(candidate):
                        self._cursor = candidate
                        return candidate
                    candidate += 1
        self._cursor = candidate
        return None

    def _longest_free(self, now: float) -> LeaseRow | None:
        """The dynamic address whose lease, offer or quarantine ended first.

        The first row nearly always qualifies (only a reservation or an address
        excluded after it was used is skipped), so batches start at one row and
        double: fetching a long batch per offer costs more than the query.
        """
        offset, limit = 0, 1
        while True:
            rows = self._db.execute(
                _FREE_LONGEST, (now, self._first, self._last, limit, offset)
            ).fetchall()
            for raw in rows:
                row = LeaseRow._make(raw)
                if self._rules.dynamic(row.address) and not row.busy(now):
                    return row
            if len(rows) < limit:
                return None
            offset, limit = offset + limit, min(2 * limit, _BATCH)

    def _choose(
        self,
        client_id: bytes,
        mac: MacAddress,
        requested: IPv4Address | None,
        mine: list[LeaseRow],
        now: float,
    ) -> tuple[int, LeaseRow | None] | None:
        reserved = self._rules.reservation.get(mac)
        if reserved is not None:
            row = self._row(reserved)
            if self._rules.available(row, client_id, now):
                return reserved, row
        for row in mine:
            if row.state != LeaseState.DECLINED and self._rules.allowed(row.address, mac):
                return row.address, row
        if requested is not None:
            address = int(requested)
            if self._rules.allowed(address, mac):
                row = self._row(address)
                if self._rules.available(row, client_id, now):
                    return address, row
        unused = self._never_used()
        if unused is not None:
            return unused, None
        free = self._longest_free(now)
        return None if free is None else (free.address, free)

    # --- the protocol's operations ----------------------------------------------------

    def offer(
        self, client_id: bytes, mac: MacAddress, requested: IPv4Address | None = None
    ) -> Lease | None:
        """Answer a DISCOVER: pick an address and hold it for `offer_hold` seconds.

        The hold is what stops a second client's DISCOVER, arriving before the
        first client's REQUEST, from being offered the same address. A client with
        an active BOUND lease gets that lease back untouched, so a stray DISCOVER
        cannot shorten it to an offer. None means the pool is exhausted.
        """
        with self._file.operation():
            now = self._clock()
            mine = self._client_rows(client_id)
            choice = self._choose(client_id, mac, requested, mine, now)
            if choice is None:
                return None
            address, previous = choice
            ours = previous if previous is not None and previous.client_id == client_id else None
            if ours is not None and ours.state == LeaseState.BOUND and now < ours.expires:
                return ours.lease()
            return self._take(
                address,
                previous,
                mine,
                client_id,
                mac,
                LeaseState.OFFERED,
                now + self._offer_hold,
                None if ours is None else ours.hostname,
                now,
            )

    def bind(
        self,
        client_id: bytes,
        mac: MacAddress,
        address: IPv4Address,
        lease_time: float,
        hostname: str | None = None,
    ) -> Lease | None:
        """Answer a REQUEST in any state (selecting, init-reboot, renewing, rebinding).

        None means NAK: the address is not this client's to have. A client with a
        reservation that is free for it is refused any other address, so a NAK
        moves it onto its reservation at the next DISCOVER. `hostname` None keeps
        the name the client gave before (renewals often leave option 12 out).
        """
        if not lease_time > 0:
            raise ValueError(f"lease_time must be positive, got {lease_time}")
        wanted = int(address)
        with self._file.operation():
            now = self._clock()
            if not self._rules.allowed(wanted, mac):
                return None
            reserved = self._rules.reservation.get(mac)
            if (
                reserved is not None
                and reserved != wanted
                and self._rules.available(self._row(reserved), client_id, now)
            ):
                return None
            previous, mine = self._row_and_client_rows(wanted, client_id)
            if not self._rules.available(previous, client_id, now):
                return None
            if hostname is None and previous is not None and previous.client_id == client_id:
                hostname = previous.hostname
            return self._take(
                wanted,
                previous,
                mine,
                client_id,
                mac,
                LeaseState.BOUND,
                now + lease_time,
                hostname,
                now,
            )

    def release(self, client_id: bytes, address: IPv4Address) -> bool:
        """Answer a RELEASE (or drop an offer the client turned down).

        The row keeps its client, so this client gets the address back first, and
        its expiry becomes now, so for everyone else it queues as freshly freed.
        """
        with self._file.operation():
            now = self._clock()
            row = self._row(int(address))
            if row is None or row.client_id != client_id:
                return False
            if row.state not in _HELD or not now < row.expires:
                return False
            self._end(row.address, LeaseState.RELEASED, now)
            return True

    def decline(self, client_id: bytes, address: IPv4Address) -> bool:
        """Answer a DECLINE: something else on the wire uses the address.

        Quarantined for `quarantine` seconds even if the lease had expired, since
        the conflict is real either way. The row keeps the decliner's client id for
        the status page, but allocation no longer counts the address as its.
        Only the client the address was given to may decline it, so a client
        cannot quarantine addresses others hold.
        """
        with self._file.operation():
            now = self._clock()
            row = self._row(int(address))
            if row is None or row.client_id != client_id or row.state not in _HELD:
                return False
            self._end(row.address, LeaseState.DECLINED, now + self.quarantine)
            return True

    # --- reading ----------------------------------------------------------------------

    def lease_for(self, client_id: bytes) -> Lease | None:
        """The client's most recently changed row, in whatever state."""
        rows = self._query(_NEWEST_OF_CLIENT, (client_id,))
        return LeaseRow._make(rows[0]).lease() if rows else None

    def holder(self, address: IPv4Address) -> Lease | None:
        """The active (offered or bound, unexpired) lease on `address`, if any."""
        lease = self.lease_at(address)
        return lease if lease is not None and lease.active(self._clock()) else None

    def lease_at(self, address: IPv4Address) -> Lease | None:
        """The row of `address` in whatever state: who had it last, and how it ended."""
        rows = self._query(_ROW_AT, (int(address),))
        return LeaseRow._make(rows[0]).lease() if rows else None

    def leases(self) -> list[Lease]:
        """Every row, by address, for the status page; expired ones included."""
        rows = self._query(_ALL_ROWS)
        return [LeaseRow._make(row).lease() for row in rows]

    def counts(self) -> dict[str, int]:
        """Gauges for /metrics: active offers and leases, quarantined and free addresses."""
        rows = self._query(
            "SELECT address, state FROM lease WHERE expires > ? AND state != ?",
            (self._clock(), LeaseState.RELEASED.value),
        )
        return count_active(self.pool, [(int(a), str(s)) for a, s in rows])

    # --- servers sharing the leases -------------------------------------------------------

    @property
    def up(self) -> bool:
        """A local file is always reachable: its failures are errors, not outages."""
        return True

    @property
    def down_reason(self) -> str:
        """Always empty: a local file is never down (`up`)."""
        return ""

    def reconnect(self) -> bool:
        """Always True, at once: a local file is always reachable (`up` is always
        True), so there is no connection to make again. It touches nothing, so
        calling it from a thread is harmless."""
        return True

    def heartbeat(self, server_id: str, address: str, load: float) -> None:
        """Record that `server_id` (at `address`, this busy) is alive now, on the store's clock."""
        with self._file.operation():
            now = self._clock()
            self._db.execute(_HEARTBEAT, (server_id, address, now, load))

    def servers(self, within: float) -> list[ServerSeen]:
        """The servers whose last heartbeat is newer than `within` seconds ago, by id."""
        rows = self._query(_SERVERS_SEEN, (self._clock() - within,))
        return [ServerSeen(str(s), str(a), float(seen), float(load)) for s, a, seen, load in rows]

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file, "ok" when sound: for a health check."""
        rows = self._query("PRAGMA integrity_check")
        return "\n".join(str(row[0]) for row in rows)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LeaseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
