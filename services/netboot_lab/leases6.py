"""Who holds which IPv6 address: read from our daemon's log and lease store, and dnsmasq's.

"No address twice" is checked two ways, so a crash that loses the store and a
store that disagrees with what was sent are both caught:

* `replay_log`: the daemon's JSON log (`--log-format json`), system
  `netboot.dhcp6`, in order (the DHCPv6 service logs every outcome with the
  fields `outcome`, `duid`, `address`, `mac`, `client`). Each `bound` gives its addresses to the
  DUID; `released` and `declined` take them back. An address bound to a second
  DUID while the first still holds it is a duplicate: a client was told an
  address another client was also told, which is what a client would suffer.
  Several daemon runs' logs (a restart, a SIGKILL) replay as one history.
* `database_bindings`: the rows of the `lease6` table in the SQLite lease
  database (`[dhcp] lease_database`, the same file as the IPv4 leases) that hold
  their address now (offered or bound, not expired). The address is that
  table's primary key, so the store itself cannot list one address twice;
  what it can get wrong is one IA_NA holding two addresses.
* `dnsmasq6_bindings`: dnsmasq's lease file, for the benchmark's peer.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path

from netboot_lab.netns import LabError

DHCP6_SYSTEM = "netboot.dhcp6"
HOLDS = "bound"
GIVES_BACK = frozenset({"released", "declined"})


@dataclass(frozen=True)
class Binding6:
    """An address held by one client's IA_NA (`iaid` None where the source does not say)."""

    duid: bytes
    iaid: int | None
    address: IPv6Address


def dhcp6_events(lines: Iterable[str]) -> list[dict[str, object]]:
    """The daemon's `netboot.dhcp6` JSON log records, in order (other lines skipped)."""
    events = []
    for line in lines:
        if not line.startswith("{"):
            continue
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("system") == DHCP6_SYSTEM:
                events.append(record)
    return events


def logged_addresses(event: dict[str, object]) -> list[IPv6Address]:
    """The `address` field of a record: one address, or several joined by "," or " "."""
    raw = event.get("address")
    if isinstance(raw, list):
        parts = [str(item) for item in raw]
    elif raw:
        parts = str(raw).replace(",", " ").split()
    else:
        parts = []
    return [IPv6Address(part) for part in parts]


@dataclass(frozen=True)
class Replay:
    holders: dict[IPv6Address, str]
    """Address -> the DUID (hex) holding it at the end."""
    duplicates: list[str]
    """Each time an address was bound to a DUID while another held it."""
    outcomes: Counter[str]


def replay_log(lines: Iterable[str]) -> Replay:
    """Replay the bound/released/declined outcomes of one or more daemon runs' logs."""
    holders: dict[IPv6Address, str] = {}
    duplicates: list[str] = []
    outcomes: Counter[str] = Counter()
    for event in dhcp6_events(lines):
        outcome = str(event.get("outcome", ""))
        outcomes[outcome] += 1
        duid = str(event.get("duid", ""))
        for address in logged_addresses(event):
            if outcome == HOLDS:
                holder = holders.setdefault(address, duid)
                if holder != duid:
                    duplicates.append(f"{address} bound to {duid} while {holder} holds it")
            elif outcome in GIVES_BACK and holders.get(address) == duid:
                del holders[address]
    return Replay(holders, duplicates, outcomes)


HELD = """
    SELECT duid, iaid, address FROM lease6
    WHERE state IN ('offered', 'bound') AND expires > ?
"""
"""The rows of the lease file's lease6 table (netboot/dhcp/lease_file.py) that hold
their address now: advertised or bound, not yet expired."""


def database_bindings(database: Path, now: float | None = None) -> tuple[list[Binding6], str]:
    """The addresses the lease database says are held, and its integrity_check verdict."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        verdict = str(db.execute("PRAGMA integrity_check").fetchone()[0])
        try:
            rows = db.execute(HELD, (time.time() if now is None else now,)).fetchall()
        except sqlite3.OperationalError as error:
            raise LabError(f"{database}: no readable lease6 table: {error}") from None
    bindings = [
        Binding6(bytes(duid), int(iaid), IPv6Address(bytes(address)))
        for duid, iaid, address in rows
    ]
    return bindings, verdict


def dnsmasq6_bindings(leases: Path) -> list[Binding6]:
    """dnsmasq's DHCPv6 lease lines: `EXPIRY IAID ADDRESS HOSTNAME DUID` (`duid` line skipped)."""
    bindings = []
    for line in leases.read_text().splitlines():
        fields = line.split()
        if len(fields) == 5 and ":" in fields[2]:
            duid = bytes.fromhex(fields[4].replace(":", ""))
            bindings.append(Binding6(duid, int(fields[1]), IPv6Address(fields[2])))
    return bindings


def duplicate_problems(bindings: Iterable[Binding6]) -> list[str]:
    """Addresses held by two clients, and IA_NAs holding two addresses."""
    by_address: dict[IPv6Address, set[tuple[bytes, int | None]]] = {}
    by_client: Counter[tuple[bytes, int | None]] = Counter()
    for binding in bindings:
        by_address.setdefault(binding.address, set()).add((binding.duid, binding.iaid))
        by_client[binding.duid, binding.iaid] += 1
    problems = [
        f"address {address} held by {len(owners)} clients"
        for address, owners in by_address.items()
        if len(owners) > 1
    ]
    problems += [
        f"client {duid.hex()} IAID {iaid} holds {count} addresses"
        for (duid, iaid), count in by_client.items()
        if count > 1
    ]
    return problems
