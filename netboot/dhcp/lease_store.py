"""The lease store contract both backends keep, and the one place that picks a backend.

Full DHCP keeps its IPv4 leases either in an SQLite file (`LeaseStore`,
`netboot/dhcp/leases.py`: the embedded default, one machine) or in a PostgreSQL
database that several daemons share (`PgLeaseStore`, `netboot/dhcp/lease_pg.py`,
issue #21). The DHCP server and the daemon talk to either through
`LeaseBackend`, so what a lease means (allocation order, offer hold, DECLINE
quarantine, release keeping the client) is one contract with two
implementations, and the contract tests run against both.

A shared database can be unreachable, which a local file never is: that is
`LeaseStoreUnavailable`, raised quickly and with nothing done, so the daemon can
keep serving everything that needs no new lease and resume by itself (`up`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from netboot.config import is_postgresql_url as is_postgresql_url  # where callers look
from netboot.errors import NetbootError
from netboot.macaddr import MacAddress

if TYPE_CHECKING:
    from netboot.dhcp.leases import AddressPool, Lease


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def lease_database_name(database: Path | str) -> str:
    """The lease database as logs and the status page name it: a URL without its password."""
    if isinstance(database, Path):
        return str(database)
    return redacted(database)


class LeaseStoreUnavailable(NetbootError):  # noqa: N818 - the name says what happened
    """The lease database cannot be reached now; nothing was done.

    Not a verdict on the request: the caller answers nothing that needs a new lease
    and tries again once the store is `up`.
    """


@dataclass(frozen=True, slots=True)
class ServerSeen:
    """One daemon sharing the lease store, as its last heartbeat recorded it."""

    server_id: str
    address: str
    """Where its peers reach it (its server identifier address)."""
    seen: float
    """When, on the store's clock."""
    load: float


class LeaseBackend(Protocol):
    """What full DHCP needs of a lease store, whichever database holds it."""

    pool: AddressPool
    quarantine: float
    """Seconds a DECLINEd address sits out; a reload may change it."""
    server_id: str
    """This daemon's identity, written into every row it changes."""

    @property
    def up(self) -> bool:
        """Whether the database answered last time; False: operations raise at once."""
        ...

    @property
    def down_reason(self) -> str:
        """Why the store is down, as the database said it; empty while `up`."""
        ...

    def reconnect(self) -> bool:
        """One blocking attempt to reach the database again; True when `up` after it.

        The daemon calls it from a thread while the store is down, one attempt at a
        time; a store that is up returns True at once and changes nothing.
        """
        ...

    def offer(
        self, client_id: bytes, mac: MacAddress, requested: IPv4Address | None = None
    ) -> Lease | None: ...

    def bind(
        self,
        client_id: bytes,
        mac: MacAddress,
        address: IPv4Address,
        lease_time: float,
        hostname: str | None = None,
    ) -> Lease | None: ...

    def release(self, client_id: bytes, address: IPv4Address) -> bool: ...

    def decline(self, client_id: bytes, address: IPv4Address) -> bool: ...

    def lease_for(self, client_id: bytes) -> Lease | None: ...

    def holder(self, address: IPv4Address) -> Lease | None: ...

    def lease_at(self, address: IPv4Address) -> Lease | None: ...

    def leases(self) -> list[Lease]: ...

    def counts(self) -> dict[str, int]: ...

    def batch(self) -> AbstractContextManager[None]:
        """Group commit: one transaction for every operation inside, durable on exit."""
        ...

    def heartbeat(self, server_id: str, address: str, load: float) -> None:
        """Upsert `server_id`'s row with the store's current time."""
        ...

    def servers(self, within: float) -> list[ServerSeen]:
        """Servers whose heartbeat is newer than `within` seconds ago, by id."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> LeaseBackend: ...

    def __exit__(self, *exc_info: object) -> None: ...


def open_lease_store(
    database: Path | str,
    pool: AddressPool,
    clock: Callable[[], float],
    *,
    quarantine: float,
    server_id: str,
) -> LeaseBackend:
    """The PostgreSQL store for a `postgresql://` (or `postgres://`) URL, else the SQLite one.

    psycopg is imported only when a URL asks for it, so SQLite users never load it.
    """
    if is_postgresql_url(database):
        from netboot.dhcp.lease_pg import PgLeaseStore

        return PgLeaseStore(str(database), pool, clock, quarantine=quarantine, server_id=server_id)
    from netboot.dhcp.leases import LeaseStore

    return LeaseStore(database, pool, clock, quarantine=quarantine, server_id=server_id)
