"""DHCPv6 leases: which identity association holds which address, on disk beside the IPv4 leases.

The same promises as `netboot.dhcp.leases`, kept the same way (docs/protocols/dhcpv6.md §10):

* One file (`[dhcp] lease_database`), opened through `netboot.sqlite_file` with
  the lease file's own kind (`netboot.dhcp.lease_file`): WAL with
  `synchronous=FULL`, so a Reply is only sent for a binding already on disk, and
  every change one `BEGIN IMMEDIATE` transaction, so two processes on the file
  serialise "find a free address" with "record it".
* The table `lease6` has one row per address ever handed out, the address its
  primary key: a second holder of an address is a constraint violation, never a
  second row. A client's rows are found by its identity association, the
  (DUID, IAID) pair RFC 8415 §12.1 binds addresses to, newest first; one IA
  holds one address (we put one IAADDR in each IA_NA).
* Rows are never deleted, so an address without a row has never been used.
  Allocation order: the address the IA holds or held (unless it declined it),
  then the one the client hints at in its IA_NA, then the lowest never-used
  address, then the one free the longest, so an address a vanished client may
  still use is reused as late as possible.
* An offer (Advertise) holds its address for `offer_hold` seconds, so a second
  Solicit before the first client's Request cannot be offered it; a declined
  address sits out `quarantine` seconds for everyone.

Unlike the IPv4 store the time is an argument of every call, read by the
caller once per datagram (the decision core never reads a clock). It must be
wall-clock time: expiries are absolute and outlive the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import NamedTuple

from netboot.dhcp.lease_file import LEASE_FILE, check_lease_terms
from netboot.dhcp.leases import MAX_POOL_SIZE, LeaseState
from netboot.macaddr import MacAddress
from netboot.sqlite_file import SqliteFile

PREFIX_LENGTH = 64
"""A pool lies in one /64: the on-link prefix SLAAC and DHCPv6 share (RFC 4291 §2.5.1)."""

_HELD = (LeaseState.OFFERED.value, LeaseState.BOUND.value)
# Written out in full, each with the columns of _Row in order, so no SQL is ever
# assembled at run time.
_ROW_AT = "SELECT address, duid, iaid, mac, state, expires, seq FROM lease6 WHERE address = ?"
_ROWS_OF_IA = (
    "SELECT address, duid, iaid, mac, state, expires, seq FROM lease6"
    " WHERE duid = ? AND iaid = ? ORDER BY seq DESC"
)
_NEWEST_OF_IA = _ROWS_OF_IA + " LIMIT 1"
_FREE_LONGEST = (
    "SELECT address, duid, iaid, mac, state, expires, seq FROM lease6"
    " WHERE address BETWEEN ? AND ? AND (state = 'released' OR expires <= ?)"
    " ORDER BY expires, address LIMIT 1"
)
_ALL_ROWS = "SELECT address, duid, iaid, mac, state, expires, seq FROM lease6 ORDER BY address"
_BATCH = 256


@dataclass(frozen=True, slots=True)
class Address6Pool:
    """The addresses full mode hands out: `first`..`last`, inside one /64."""

    first: IPv6Address
    last: IPv6Address

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError(f"address pool starts at {self.first}, after its end {self.last}")
        if self.last not in self.network:
            raise ValueError(
                f"address pool {self.first}-{self.last} spans more than one /{PREFIX_LENGTH}"
            )
        if self.size > MAX_POOL_SIZE:
            raise ValueError(
                f"address pool {self.first}-{self.last} has {self.size} addresses;"
                f" at most {MAX_POOL_SIZE} are supported"
            )

    @property
    def network(self) -> IPv6Network:
        """The /64 holding the pool: the link the pool's addresses belong on."""
        return IPv6Network((self.first, PREFIX_LENGTH), strict=False)

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def contains(self, address: IPv6Address) -> bool:
        return self.first <= address <= self.last

    def on_link(self, address: IPv6Address) -> bool:
        """Whether `address` belongs on the pool's link (RFC 8415 §18.3.3's Confirm test)."""
        return address in self.network


@dataclass(frozen=True, slots=True)
class IaKey:
    """An identity association: the client's whole DUID and the IA_NA's IAID."""

    duid: bytes
    iaid: int


@dataclass(frozen=True, slots=True)
class Lease6:
    address: IPv6Address
    ia: IaKey
    mac: MacAddress | None
    """The client's MAC when it could be known (docs/protocols/dhcpv6.md §11), for people."""
    state: LeaseState
    expires: float
    """Absolute wall-clock time: the offer's, lease's or quarantine's end."""

    def active(self, now: float) -> bool:
        """Whether the client may be using the address right now."""
        return self.state in (LeaseState.OFFERED, LeaseState.BOUND) and now < self.expires


class _Row(NamedTuple):
    address: bytes
    duid: bytes
    iaid: int
    mac: str | None
    state: str
    expires: float
    seq: int

    def busy(self, now: float) -> bool:
        """Held by its IA or quarantined: not available to anyone else."""
        return self.state != LeaseState.RELEASED and now < self.expires

    def of(self, ia: IaKey) -> bool:
        return self.duid == ia.duid and self.iaid == ia.iaid

    def lease(self) -> Lease6:
        return Lease6(
            IPv6Address(self.address),
            IaKey(self.duid, self.iaid),
            None if self.mac is None else MacAddress(self.mac),
            LeaseState(self.state),
            self.expires,
        )


class Lease6Store:
    """The DHCPv6 leases of one pool, in the lease file; one thread uses it."""

    def __init__(
        self,
        path: str | Path,
        pool: Address6Pool,
        *,
        offer_hold: float = 30.0,
        quarantine: float = 600.0,
        busy_timeout: float = 5.0,
    ) -> None:
        check_lease_terms(offer_hold, quarantine)
        self.path = str(path)
        self.pool = pool
        self._offer_hold = offer_hold
        self.quarantine = quarantine
        self._first = pool.first.packed
        self._last = pool.last.packed
        self._cursor = int(pool.first)
        """Every pool address below it has a row."""
        self._file = SqliteFile(path, LEASE_FILE, busy_timeout)
        self._db = self._file.db

    # --- reading rows inside a transaction ------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._file.transaction():
            yield

    def _row(self, address: IPv6Address) -> _Row | None:
        row = self._db.execute(_ROW_AT, (address.packed,)).fetchone()
        return None if row is None else _Row._make(row)

    def _rows_of(self, ia: IaKey) -> list[_Row]:
        return [_Row._make(row) for row in self._db.execute(_ROWS_OF_IA, (ia.duid, ia.iaid))]

    def _never_used(self) -> IPv6Address | None:
        """The lowest pool address without a row, walking the primary key from the cursor.

        Rows are never deleted, so the cursor only moves forward.
        """
        candidate, last = self._cursor, int(self.pool.last)
        while candidate <= last:
            used = self._db.execute(
                "SELECT address FROM lease6 WHERE address BETWEEN ? AND ? ORDER BY address LIMIT ?",
                (IPv6Address(candidate).packed, self._last, _BATCH),
            ).fetchall()
            gap = False
            for (raw,) in used:
                address = int.from_bytes(raw, "big")
                if candidate < address:
                    gap = True
                    break
                candidate = address + 1
            if gap or len(used) < _BATCH:
                break
        self._cursor = candidate
        return IPv6Address(candidate) if candidate <= last else None

    def _choose(
        self, ia: IaKey, hint: IPv6Address | None, mine: list[_Row], now: float
    ) -> tuple[IPv6Address, _Row | None] | None:
        for row in mine:
            address = IPv6Address(row.address)
            if row.state != LeaseState.DECLINED and self.pool.contains(address):
                return address, row
        if hint is not None and self.pool.contains(hint):
            hinted = self._row(hint)
            if hinted is None or not hinted.busy(now):
                return hint, hinted
        unused = self._never_used()
        if unused is not None:
            return unused, None
        free = self._db.execute(_FREE_LONGEST, (self._first, self._last, now)).fetchone()
        if free is None:
            return None
        taken = _Row._make(free)
        return IPv6Address(taken.address), taken

    def _write(
        self,
        address: IPv6Address,
        previous: _Row | None,
        ia: IaKey,
        mac: MacAddress | None,
        state: LeaseState,
        expires: float,
        mine: list[_Row],
        now: float,
    ) -> Lease6:
        """Record `address` for `ia`, and give back whatever else the IA held."""
        for row in mine:
            if row.address != address.packed and row.state in _HELD and now < row.expires:
                self._db.execute(
                    "UPDATE lease6 SET state = ?, expires = ? WHERE address = ?",
                    (LeaseState.RELEASED.value, now, row.address),
                )
        seq = (mine[0].seq + 1) if mine else 1
        values = (ia.duid, ia.iaid, mac, state.value, expires, seq, address.packed)
        if previous is None:
            # A plain INSERT: if the address somehow had a row, the primary key refuses it.
            self._db.execute(
                "INSERT INTO lease6 (duid, iaid, mac, state, expires, seq, address)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        else:
            self._db.execute(
                "UPDATE lease6 SET duid = ?, iaid = ?, mac = ?, state = ?, expires = ?, seq = ?"
                " WHERE address = ?",
                values,
            )
        return Lease6(address, ia, mac, state, expires)

    # --- the protocol's operations ----------------------------------------------------

    def offer(
        self, ia: IaKey, mac: MacAddress | None, hint: IPv6Address | None, now: float
    ) -> Lease6 | None:
        """Answer a Solicit: pick an address and hold it for `offer_hold` seconds.

        An IA with an active binding gets it back untouched, so a stray Solicit
        cannot shorten a lease to an offer. None: the pool is exhausted.
        """
        with self._transaction():
            mine = self._rows_of(ia)
            choice = self._choose(ia, hint, mine, now)
            if choice is None:
                return None
            address, previous = choice
            if (
                previous is not None
                and previous.of(ia)
                and previous.state == LeaseState.BOUND
                and now < previous.expires
            ):
                return previous.lease()
            expires = now + self._offer_hold
            return self._write(address, previous, ia, mac, LeaseState.OFFERED, expires, mine, now)

    def bind(
        self,
        ia: IaKey,
        mac: MacAddress | None,
        hint: IPv6Address | None,
        lease_time: float,
        now: float,
    ) -> Lease6 | None:
        """Answer a Request or a rapid-commit Solicit: bind an address to the IA.

        The address the IA was offered (or held) comes first, so a Request after
        an Advertise binds what was advertised. None: the pool is exhausted.
        """
        if not lease_time > 0:
            raise ValueError(f"lease_time must be positive, got {lease_time}")
        with self._transaction():
            mine = self._rows_of(ia)
            choice = self._choose(ia, hint, mine, now)
            if choice is None:
                return None
            address, previous = choice
            return self._write(
                address, previous, ia, mac, LeaseState.BOUND, now + lease_time, mine, now
            )

    def extend(
        self, ia: IaKey, address: IPv6Address, lease_time: float, now: float
    ) -> Lease6 | None:
        """Answer a Renew or Rebind for one address: a new lifetime if the IA still has it.

        None is RFC 8415 §18.3.4's "no binding": the address is not this IA's,
        or it was released or declined. An expired binding nobody took since is
        still the IA's and is extended.
        """
        if not lease_time > 0:
            raise ValueError(f"lease_time must be positive, got {lease_time}")
        with self._transaction():
            row = self._row(address)
            if row is None or not row.of(ia) or row.state not in _HELD:
                return None
            if not self.pool.contains(address):
                return None
            mac = None if row.mac is None else MacAddress(row.mac)
            return self._write(
                address, row, ia, mac, LeaseState.BOUND, now + lease_time, self._rows_of(ia), now
            )

    def release(self, ia: IaKey, address: IPv6Address, now: float) -> bool:
        """Answer a Release: the address goes back, first to this IA, then to the pool."""
        return self._end(ia, address, LeaseState.RELEASED, now)

    def decline(self, ia: IaKey, address: IPv6Address, now: float) -> bool:
        """Answer a Decline: someone else uses the address (DAD failed); quarantine it.

        Only the IA the address was given to may decline it, so a client cannot
        quarantine addresses others hold.
        """
        return self._end(ia, address, LeaseState.DECLINED, now + self.quarantine)

    def _end(self, ia: IaKey, address: IPv6Address, state: LeaseState, until: float) -> bool:
        """End the IA's hold on `address`: released (until now) or declined (until quarantine)."""
        with self._transaction():
            row = self._row(address)
            if row is None or not row.of(ia) or row.state not in _HELD:
                return False
            self._db.execute(
                "UPDATE lease6 SET state = ?, expires = ? WHERE address = ?",
                (state.value, until, row.address),
            )
            return True

    # --- reading ----------------------------------------------------------------------

    def lease_for(self, ia: IaKey) -> Lease6 | None:
        """The IA's most recently changed row, in whatever state."""
        rows = self._file.query(_NEWEST_OF_IA, (ia.duid, ia.iaid))
        return _Row._make(rows[0]).lease() if rows else None

    def holder(self, address: IPv6Address, now: float) -> Lease6 | None:
        """The active (offered or bound, unexpired) lease on `address`, if any."""
        lease = self.lease_at(address)
        return lease if lease is not None and lease.active(now) else None

    def lease_at(self, address: IPv6Address) -> Lease6 | None:
        """The row of `address` in whatever state: who had it last, and how it ended."""
        rows = self._file.query(_ROW_AT, (address.packed,))
        return _Row._make(rows[0]).lease() if rows else None

    def leases(self) -> list[Lease6]:
        """Every row, by address, for the status page; expired ones included."""
        return [_Row._make(row).lease() for row in self._file.query(_ALL_ROWS)]

    def counts(self, now: float) -> dict[str, int]:
        """Gauges for /metrics: active offers and leases, quarantined and free pool addresses."""
        rows = self._file.query(
            "SELECT state, count(*) FROM lease6 WHERE address BETWEEN ? AND ?"
            " AND expires > ? AND state != ? GROUP BY state",
            (self._first, self._last, now, LeaseState.RELEASED.value),
        )
        counts = {"offered": 0, "bound": 0, "quarantined": 0}
        for state, count in rows:
            key = "quarantined" if state == LeaseState.DECLINED else str(state)
            counts[key] = count if isinstance(count, int) else 0
        counts["free"] = self.pool.size - sum(counts.values())
        return counts

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Lease6Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
