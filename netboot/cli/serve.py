"""`netboot serve`: run the daemon."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from netboot.config import LOG_FORMATS, LOG_LEVELS, Config, load_config, with_overrides
from netboot.errors import ConfigError


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML configuration file (see docs/configuration.md).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Image root; overrides server.root. Default: nbimages/.",
)
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    metavar="NAME",
    help="Serve on this interface (repeatable); overrides server.interfaces. Default: all.",
)
@click.option("--user", help="Become this user once the ports are bound (server.user).")
@click.option("--group", help="…and this group (server.group); default: the user's own.")
@click.option(
    "--allow-root",
    is_flag=True,
    default=None,
    help="Keep running as root (server.allow_root); otherwise root needs --user.",
)
@click.option(
    "--admin-listen",
    metavar="HOST:PORT",
    help="Admin page and /metrics address; overrides admin.listen (default 127.0.0.1:9067).",
)
@click.option(
    "--dhcp-mode",
    type=click.Choice(["proxy", "full", "off"]),
    help="PXE answers (dhcp.mode): proxy beside a site's DHCP server (default), full with "
    "address leases on an isolated net, or off.",
)
@click.option(
    "--dhcp-pool",
    metavar="FIRST-LAST",
    help="Addresses to lease in full mode (dhcp.pool), e.g. 10.0.0.100-10.0.0.199.",
)
@click.option(
    "--dhcp6-mode",
    type=click.Choice(["off", "proxy", "full"]),
    help="DHCPv6 answers (dhcp6.mode): off (default), proxy (boot options beside a site's "
    "DHCPv6 server), or full with address leases on an isolated net.",
)
@click.option(
    "--dhcp6-pool",
    metavar="FIRST-LAST",
    help="IPv6 addresses to lease in full mode, in one /64 (dhcp6.pool).",
)
@click.option(
    "--lease-database",
    metavar="PATH|URL",
    help="SQLite file of the full-mode leases, or a postgresql:// URL (dhcp.lease_database).",
)
@click.option(
    "--bindings-database",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file of the BSDP bindings (bsdp.bindings_database).",
)
@click.option(
    "--state-database",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file of the daemon's state, the admin API's assignments (server.state_database).",
)
@click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The admin token's file, made on first start (admin.token_file).",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of the admin API's audit lines (admin.audit_log).",
)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), help="Overrides logging.format.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="Overrides logging.level.")
def serve(
    config_file: Path | None,
    root: Path | None,
    interfaces: tuple[str, ...],
    user: str | None,
    group: str | None,
    allow_root: bool | None,
    admin_listen: str | None,
    dhcp_mode: str | None,
    dhcp_pool: str | None,
    dhcp6_mode: str | None,
    dhcp6_pool: str | None,
    lease_database: str | None,
    bindings_database: Path | None,
    state_database: Path | None,
    admin_token_file: Path | None,
    audit_log: Path | None,
    log_format: str | None,
    log_level: str | None,
) -> None:
    """Serve the NBI sets under the image root until SIGTERM or SIGINT.

    Exit status 0 after a clean stop, 1 when a service fails to start, 2 when
    the configuration is wrong.
    """
    overrides: dict[str, Any] = {}
    if root is not None:
        overrides["server__root"] = str(root)
    if interfaces:
        overrides["server__interfaces"] = list(interfaces)
    if user is not None:
        overrides["server__user"] = user
    if group is not None:
        overrides["server__group"] = group
    if allow_root:
        overrides["server__allow_root"] = True
    if admin_listen is not None:
        overrides["admin__listen"] = admin_listen
    if dhcp_mode is not None:
        overrides["dhcp__mode"] = dhcp_mode
    if dhcp_pool is not None:
        overrides["dhcp__pool"] = dhcp_pool
    if dhcp6_mode is not None:
        overrides["dhcp6__mode"] = dhcp6_mode
    if dhcp6_pool is not None:
        overrides["dhcp6__pool"] = dhcp6_pool
    if lease_database is not None:
        overrides["dhcp__lease_database"] = lease_database
    if bindings_database is not None:
        overrides["bsdp__bindings_database"] = str(bindings_database)
    if state_database is not None:
        overrides["server__state_database"] = str(state_database)
    if admin_token_file is not None:
        overrides["admin__token_file"] = str(admin_token_file)
    if audit_log is not None:
        overrides["admin__audit_log"] = str(audit_log)
    if log_format is not None:
        overrides["logging__format"] = log_format
    if log_level is not None:
        overrides["logging__level"] = log_level
    try:
        config = load_config(config_file) if config_file else Config()
        config = with_overrides(config, **overrides)
        # Imported here: the services pull in Twisted, which `images` never needs.
        from twisted.internet import reactor  # noqa: TID251 - the CLI picks the reactor

        from netboot_services.app import run

        def reread() -> Config:
            fresh = load_config(config_file) if config_file else Config()
            return with_overrides(fresh, **overrides)

        status = run(config, reactor, reread)
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    sys.exit(status)
