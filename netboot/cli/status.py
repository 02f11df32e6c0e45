"""`netboot status`: what a running daemon says about itself, from its admin address."""

from __future__ import annotations

import json
import sys

import click

DEFAULT_ADMIN = "http://127.0.0.1:9067"


@click.command()
@click.option(
    "--admin",
    "admin_url",
    default=DEFAULT_ADMIN,
    show_default=True,
    help="Base URL of the daemon's admin listener (admin.listen).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's status as JSON.")
def status(admin_url: str, as_json: bool) -> None:
    """Show the images, counters and service health of a running daemon.

    Exit status 0 when the daemon answered, 1 when it could not be reached, 4 when
    it wants the admin token (a listener off loopback) and none could be read.
    """
    from netboot.cli.admin_client import call, fail_unless_ok, target

    # The token goes along when it can be read: a listener off loopback wants it.
    where = target(None, admin_url, None)
    try:
        answer = call(where, "GET", "/status.json")
    except click.ClickException as error:
        click.echo(f"error: {error.message}", err=True)
        sys.exit(1)
    fail_unless_ok(where, answer)
    state = answer.body
    if not isinstance(state, dict):
        click.echo(f"error: {admin_url} did not answer with a status document", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    images = state["images"]
    valid = sum(1 for image in images if image["valid"])
    click.echo(f"netboot {state['version']}: {valid} of {len(images)} NBI sets valid")
    for image in images:
        mark = "ok " if image["valid"] else "BAD"
        image_id = f"{image['id']:#010x}" if image["id"] is not None else "-"
        click.echo(f"  {mark} {image_id} {image['path']} {image['name']}")
        for problem in image["errors"]:
            click.echo(f"      {problem}")
    for protocol, counters in state["counters"].items():
        click.echo(f"  {protocol}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    nfs = state["nfs"]
    click.echo(f"  nfs: mode {nfs['mode']}, {'up' if nfs['available'] else 'down'}")
    dhcp = state.get("dhcp")
    if dhcp:
        store = "up" if dhcp.get("store_up", True) else "DOWN: new leases paused"
        counts = ", ".join(f"{k} {v}" for k, v in dhcp["counts"].items())
        click.echo(
            f"  dhcp: server {dhcp.get('server_id', '-')}, pool {dhcp['pool']} ({counts}),"
            f" lease database {store}"
        )
        for peer in dhcp.get("peers", []):
            state_word = "live" if peer["live"] else "silent"
            click.echo(
                f"    peer {peer['server_id']} {peer['address']}: {state_word}, heartbeat"
                f" {peer['seen_ago']} s ago, {peer['load']} answers/s"
                + (
                    f", reply heard on the link {peer['heard_ago']} s ago"
                    if peer.get("heard_ago") is not None
                    else ""
                )
            )
        heard = dhcp.get("servers_heard", {})
        if heard:
            click.echo(
                "    replies heard on the link from: "
                + ", ".join(f"{server} {ago} s ago" for server, ago in heard.items())
            )
        granted: dict[str, int] = {}
        for lease in dhcp["leases"]:
            granted[lease.get("server_id") or "-"] = (
                granted.get(lease.get("server_id") or "-", 0) + 1
            )
        if granted:
            click.echo(
                "    leases by server: " + ", ".join(f"{k} {v}" for k, v in sorted(granted.items()))
            )
    pending = state.get("restart_pending") or []
    if pending:
        click.echo(f"  waiting for a restart (old values in force): {', '.join(pending)}")
