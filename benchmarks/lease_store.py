"""Lease store throughput: clients a second through offer + bind, SQLite against PostgreSQL.

Run from the repository root after `./bootstrap.sh test` (PostgreSQL's server
binaries: `apt-get install postgresql`; as root the private cluster runs as the
`postgres` user):

    .venv/bin/python benchmarks/lease_store.py [--clients 4096] [--batch 64] [--repeat 3]

What is measured
----------------
The store alone, no sockets: what the daemon's port-67 listener asks of it. For
`--clients` new clients, in groups of `--batch`: one `batch()` (group commit) of
their offers (DISCOVER), then one `batch()` of their binds (REQUEST of the
offered address), as a wake-up of port 67 does. The number is clients a second
(one offer and one bind each), over the whole run; the best of `--repeat`
rounds counts, each round on an empty store with a pool twice `--clients`.

* SQLite: `LeaseStore` on a file in a temporary directory (WAL, one fsync a batch).
* PostgreSQL: `PgLeaseStore` on a private cluster (`netboot_lab.postgres`,
  initdb'd in a temporary directory, fsync and `synchronous_commit` on), reached
  over its Unix socket, a fresh schema each round.

It also prints the statements the PostgreSQL store sent per operation (each a
round trip): the cluster is restarted with `pg_stat_statements` loaded (Debian's
server package ships it), and the top-level statements it counted during the
timed run (BEGIN, SAVEPOINT and COMMIT included, the schema's creation not) are
divided by the operations (one offer and one bind a client).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import psycopg

from netboot.dhcp.lease_pg import PgLeaseStore
from netboot.dhcp.lease_store import LeaseBackend
from netboot.dhcp.leases import AddressPool, LeaseStore
from netboot.macaddr import mac_from_bytes
from netboot_lab.postgres import PrivateCluster, private_postgres

FIRST = IPv4Address("10.32.0.1")


def address_pool(size: int) -> AddressPool:
    return AddressPool(FIRST, FIRST + (size - 1), {}, frozenset())


def run_clients(store: LeaseBackend, clients: int, batch: int) -> float:
    """Offer and bind `clients` new clients in batches; returns clients a second."""
    began = time.perf_counter()
    for start in range(0, clients, batch):
        numbers = range(start, min(start + batch, clients))
        offered = []
        with store.batch():
            for number in numbers:
                raw = bytes((2, 0)) + number.to_bytes(4, "big")
                mac = mac_from_bytes(raw)
                lease = store.offer(b"\x01" + raw, mac)
                if lease is None:
                    raise SystemExit(f"pool exhausted at client {number}")
                offered.append((b"\x01" + raw, mac, lease.address))
        with store.batch():
            for client_id, mac, address in offered:
                if store.bind(client_id, mac, address, 3600.0) is None:
                    raise SystemExit(f"{address} offered, then refused")
    return clients / (time.perf_counter() - began)


def sqlite_round(clients: int, batch: int) -> float:
    with tempfile.TemporaryDirectory(prefix="netboot-bench-") as directory:
        path = Path(directory) / "leases.sqlite3"
        with LeaseStore(path, address_pool(2 * clients), time.time) as store:
            return run_clients(store, clients, batch)


def count_statements(cluster: PrivateCluster) -> None:
    """Load `pg_stat_statements` into the cluster (a restart) and create the extension."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    cluster.restart()
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")


def statements_run(cluster: PrivateCluster) -> int:
    """Top-level statements the cluster has run since the last reset, then reset."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
            " WHERE query NOT LIKE '%pg_stat_statements%'"
        ).fetchone()
        conn.execute("SELECT pg_stat_statements_reset()")
    assert row is not None
    return int(row[0])


def postgres_round(cluster: PrivateCluster, round_number: int, clients: int, batch: int) -> float:
    schema = f"bench{round_number}"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = cluster.schema_url(schema)
    with PgLeaseStore(url, address_pool(2 * clients), time.time, server_id="bench") as store:
        statements_run(cluster)
        rate = run_clients(store, clients, batch)
    print(
        f"postgresql round {round_number}: {rate:.0f} clients/s,"
        f" {statements_run(cluster) / (2 * clients):.2f} statements per operation"
    )
    return rate


def best(rounds: int, measure: Callable[[int], float]) -> float:
    return max(measure(number) for number in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sqlite = best(args.repeat, lambda _: sqlite_round(args.clients, args.batch))
    with private_postgres() as cluster:
        count_statements(cluster)
        postgres = best(
            args.repeat, lambda number: postgres_round(cluster, number, args.clients, args.batch)
        )
    print(f"clients {args.clients}, batches of {args.batch}, best of {args.repeat}")
    print(f"sqlite      {sqlite:8.0f} clients/s (offer + bind)")
    print(f"postgresql  {postgres:8.0f} clients/s (offer + bind)")
    print(f"postgresql/sqlite {postgres / sqlite:.2f}")


if __name__ == "__main__":
    main()
