"""`netboot leases migrate`: move full-mode IPv4 leases from an SQLite file into PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def leases() -> None:
    """Full-mode lease databases: move leases between backends."""


@leases.command()
@click.argument(
    "sqlite_file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)
)
@click.argument("postgresql_url")
def migrate(sqlite_file: Path, postgresql_url: str) -> None:
    """Copy every IPv4 lease of SQLITE_FILE into the PostgreSQL database POSTGRESQL_URL,
    then check that the database holds each one unchanged.

    Rows go only into addresses the database has never leased, so a second run
    changes nothing. Stop the daemons using either database first. Exit status 0
    when every row is there, 1 when one is missing or the database holds it
    differently (another daemon leased it), 2 on a usage error. DHCPv6 leases
    stay in the file.
    """
    from netboot.dhcp.lease_pg import copy_leases
    from netboot.dhcp.lease_store import LeaseStoreUnavailable, is_postgresql_url, redacted
    from netboot.dhcp.leases import lease_rows
    from netboot.errors import NetbootError

    if not is_postgresql_url(postgresql_url):
        raise click.UsageError(
            f"POSTGRESQL_URL must start with postgresql:// or postgres://, got {postgresql_url!r}"
        )
    try:
        rows = lease_rows(sqlite_file)
        report = copy_leases(rows, postgresql_url)
    except LeaseStoreUnavailable as error:
        click.echo(f"netboot leases migrate: cannot reach the database: {error}", err=True)
        sys.exit(1)
    except NetbootError as error:
        click.echo(f"netboot leases migrate: {error}", err=True)
        sys.exit(1)
    click.echo(
        f"{report.source} leases in {sqlite_file}; {report.copied} copied to"
        f" {redacted(postgresql_url)}; {report.matching} present unchanged;"
        f" {len(report.conflicting)} missing or different"
    )
    for address in report.conflicting:
        click.echo(f"  {address}: missing or held differently in the database", err=True)
    sys.exit(0 if report.complete else 1)
