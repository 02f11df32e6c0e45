"""The lease database file: its marks, its tables for both families, and how it is migrated.

The IPv4 `LeaseStore` (`netboot/dhcp/leases.py`) and the DHCPv6 `Lease6Store`
(`netboot/dhcp6/leases.py`) keep their leases in one file (`[dhcp]
lease_database`), each in a table of its own. Both open it with this one
`FileKind`, so whichever store opens a new file first creates both tables, and
neither refuses a file the other marked. Schema 2 added the `lease6` table; a
schema-1 file (IPv4 leases only) gains it in place the first time a netboot of
schema 2 opens it, in the same transaction that stamps the new version
(docs/protocols/dhcpv6.md §10). Schema 3 (issue #21, several servers as one
service) added the `server_id` column of the IPv4 `lease` table (the server that
last wrote the row) and the `server` table of heartbeats; an older file gains
both the same way, its rows with an empty `server_id`.
"""

from __future__ import annotations

from types import MappingProxyType

from netboot.sqlite_file import DatabaseFileError, FileKind

SCHEMA_VERSION = 3
"""Kept in PRAGMA user_version; a file written by a newer netboot is refused."""

APPLICATION_ID = 0x4E42544C  # "NBTL"
"""Kept in PRAGMA application_id, so someone else's SQLite file is never adopted."""

# IPv4: address is the rowid: the UNIQUE key, and the cheapest lookup and range scan
# there is. lease_by_client finds a client's rows newest first (seq orders one
# client's rows only); lease_by_expiry finds the address free the longest (rowid
# breaks ties). One statement each, because in Python 3.11 executescript() commits the
# open transaction, which would split creating the schema from stamping its version.
_LEASE_V4 = (
    """
    CREATE TABLE lease (
        address   INTEGER PRIMARY KEY CHECK (address BETWEEN 0 AND 4294967295),
        client_id BLOB NOT NULL,
        mac       TEXT NOT NULL,
        state     TEXT NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'declined')),
        expires   REAL NOT NULL,
        hostname  TEXT,
        seq       INTEGER NOT NULL,
        server_id TEXT NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX lease_by_client ON lease (client_id, seq)",
    "CREATE INDEX lease_by_expiry ON lease (expires)",
)

# IPv6: an identity association (DUID, IAID) finds its rows through lease6_by_ia,
# newest first; the address, 16 bytes big-endian (so byte order is numeric order), is
# the primary key, which makes a second holder of one address a constraint violation
# rather than a second row, as in the IPv4 table.
_LEASE_V6 = (
    """
    CREATE TABLE lease6 (
        address BLOB PRIMARY KEY CHECK (length(address) = 16),
        duid    BLOB NOT NULL,
        iaid    INTEGER NOT NULL CHECK (iaid BETWEEN 0 AND 4294967295),
        mac     TEXT,
        state   TEXT NOT NULL CHECK (state IN ('offered', 'bound', 'released', 'declined')),
        expires REAL NOT NULL,
        seq     INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX lease6_by_ia ON lease6 (duid, iaid, seq)",
    "CREATE INDEX lease6_by_expiry ON lease6 (expires)",
)


# Each daemon's last heartbeat (`LeaseBackend.heartbeat`): which servers share the
# leases, and how busy each is. One row per server, overwritten in place.
_SERVER = (
    """
    CREATE TABLE server (
        server_id TEXT PRIMARY KEY,
        address   TEXT NOT NULL,
        seen      REAL NOT NULL,
        load      REAL NOT NULL
    )
    """,
)

_TO_SCHEMA_3 = ("ALTER TABLE lease ADD COLUMN server_id TEXT NOT NULL DEFAULT ''", *_SERVER)


def check_lease_terms(offer_hold: float, quarantine: float) -> None:
    """Refuse terms no store can keep: an offer must be held, a quarantine not negative."""
    if not offer_hold > 0:
        raise ValueError(f"offer_hold must be positive, got {offer_hold}")
    if not quarantine >= 0:
        raise ValueError(f"quarantine must not be negative, got {quarantine}")


class LeaseDatabaseError(DatabaseFileError):
    """The lease file cannot be used; names the file, since the admin must act on it."""


LEASE_FILE = FileKind(
    "lease",
    APPLICATION_ID,
    SCHEMA_VERSION,
    (*_LEASE_V4, *_LEASE_V6, *_SERVER),
    LeaseDatabaseError,
    migrations=MappingProxyType({1: _LEASE_V6, 2: _TO_SCHEMA_3}),
)
