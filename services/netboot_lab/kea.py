"""ISC Kea's DHCPv4 server on PostgreSQL: the peer our shared-database daemons are measured against.

Kea (`kea-dhcp4`, Debian's kea-dhcp4-server) is the server a site would pick
for leases in PostgreSQL, so the benchmark of issue #21 runs it on the same
private cluster (`netboot_lab.postgres`) as ours, in a database of its own that
`kea-admin db-init pgsql` creates. Everything Kea writes goes to a directory the
caller owns: its configuration, its pid and lock files (KEA_PIDFILE_DIR,
KEA_LOCKFILE_DIR) and its log (stdout); nothing of the host's Kea is read or
touched, and the packaged service is never started.
"""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import psycopg

from netboot_lab.netns import LabError, start_until_logged
from netboot_lab.postgres import SUPERUSER, PrivateCluster

KEA_READY = "DHCP4_STARTED"
"""What kea-dhcp4 logs (at INFO) once its sockets are open and it serves."""
VALID_LIFETIME = 3600
START_TIMEOUT = 30.0
INIT_PGSQL = ("kea-admin", "db-init", "pgsql")


def create_kea_database(cluster: PrivateCluster, database: str) -> None:
    """A new database `database` in `cluster` holding Kea's schema (`kea-admin db-init pgsql`).

    kea-admin runs psql over the cluster's Unix socket (libpq takes a directory
    as host) as the cluster's trust-authenticated superuser, so no password.
    """
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    where = ("-h", str(cluster.socket_dir), "-P", str(cluster.port))
    done = subprocess.run(
        [*INIT_PGSQL, *where, "-u", SUPERUSER, "-n", database],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"kea-admin db-init pgsql failed: {done.stderr or done.stdout}")


def kea_config(
    state: Path,
    interface: str,
    subnet: str,
    pool: tuple[str, str],
    cluster: PrivateCluster,
    database: str,
) -> Path:
    """kea-dhcp4's configuration in `state`: one subnet and pool, leases in `database`.

    `subnet` is a CIDR network holding the relay's address (perfdhcp's giaddr
    selects it). Kea 2.2 offers without a ping check and, by default, on one
    thread; every lease it hands out (DHCP4_LEASE_ALLOC) is logged at INFO, as
    ours logs every OFFER and ACK at info.
    """
    config = {
        "Dhcp4": {
            "interfaces-config": {"interfaces": [interface]},
            "lease-database": {
                "type": "postgresql",
                "name": database,
                "user": SUPERUSER,
                "host": str(cluster.socket_dir),
                "port": cluster.port,
            },
            "valid-lifetime": VALID_LIFETIME,
            "subnet4": [{"id": 1, "subnet": subnet, "pools": [{"pool": f"{pool[0]} - {pool[1]}"}]}],
            "loggers": [
                {
                    "name": "kea-dhcp4",
                    "output_options": [{"output": "stdout"}],
                    "severity": "INFO",
                }
            ],
        }
    }
    path = state / "kea-dhcp4.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_kea(namespace: str, config: Path, state: Path) -> subprocess.Popen[bytes]:
    """kea-dhcp4 in `namespace` with `config`, once it serves; its pid and lock files in `state`."""
    command = [
        "env", f"KEA_PIDFILE_DIR={state}", f"KEA_LOCKFILE_DIR={state}",
        "kea-dhcp4", "-c", str(config),
    ]  # fmt: skip
    return start_until_logged(namespace, command, state / "kea-dhcp4.log", KEA_READY, START_TIMEOUT)


def kea_leases(cluster: PrivateCluster, database: str) -> list[tuple[str, str]]:
    """(address, MAC) of every lease Kea's lease4 table says a client holds.

    Kea writes a lease only when it ACKs (an offer is not stored), so every
    row with state 0 (default) that has not expired is one. The table's
    primary key is the address; whether a MAC holds two is for the caller.
    """
    with psycopg.connect(cluster.url(database), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT address, hwaddr FROM lease4 WHERE state = 0 AND expire > now()"
        ).fetchall()
    return [(str(IPv4Address(address)), bytes(mac).hex(":")) for address, mac in rows]
