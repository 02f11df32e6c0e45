"""`netboot admin-token`, `netboot assign` and `netboot machines`: the admin API from a shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from netboot.cli.admin_client import call, fail_unless_ok, load, target

CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The daemon's TOML configuration (for admin.listen and admin.token_file); "
    "default: /etc/netboot/netboot.toml when it exists.",
)
ADMIN = click.option(
    "--admin",
    "admin_url",
    metavar="URL",
    help="Base URL of the admin listener; default: from admin.listen.",
)
TOKEN_FILE = click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The admin token's file; default: admin.token_file.",
)


@click.command("admin-token")
@CONFIG
@TOKEN_FILE
def admin_token(config_file: Path | None, token_file: Path | None) -> None:
    """Print the admin token (made by the daemon on its first start).

    Exit status 0 with the token on standard output, 1 when there is none yet
    or it cannot be read.
    """
    from netboot.admin.token import TokenFileError, read_token

    file = token_file or load(config_file).admin.token_file
    try:
        click.echo(read_token(file))
    except TokenFileError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _image_id(text: str) -> int | None:
    if text.lower() in ("none", "menu"):
        return None
    try:
        value = int(text, 0)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an image ID (decimal, 0x hex, or none)", param_hint="IMAGE_ID"
        ) from None
    if not 0 <= value < 1 << 32:
        raise click.BadParameter(f"{text} is not a 32-bit image ID", param_hint="IMAGE_ID")
    return value


@click.command()
@click.argument("mac")
@click.argument("image_id", required=False)
@click.option("--remove", is_flag=True, help="Remove the machine's assignment instead.")
@CONFIG
@ADMIN
@TOKEN_FILE
def assign(
    mac: str,
    image_id: str | None,
    remove: bool,
    config_file: Path | None,
    admin_url: str | None,
    token_file: Path | None,
) -> None:
    """Make machine MAC boot image IMAGE_ID next (`none`: no image, its menu).

    IMAGE_ID is the image ID `netboot images list` shows (decimal or 0x hex).
    The running daemon checks, stores and applies it at once, through its
    admin API. Exit status 0 when done, 1 when the daemon cannot be reached,
    2 for a usage error, 3 when the daemon refused (unknown image, one this
    machine cannot boot), 4 when not authorized.
    """
    where = target(config_file, admin_url, token_file)
    if remove:
        if image_id is not None:
            raise click.UsageError("--remove takes no IMAGE_ID")
        answer = call(where, "DELETE", f"/api/assignments/{mac}")
        fail_unless_ok(where, answer)
        click.echo(f"{mac}: assignment removed")
        return
    if image_id is None:
        raise click.UsageError("IMAGE_ID is required (or --remove)")
    wanted = _image_id(image_id)
    answer = call(where, "PUT", f"/api/assignments/{mac}", {"image_id": wanted})
    fail_unless_ok(where, answer)
    shown = "no image (its menu)" if wanted is None else f"image {wanted:#010x}"
    click.echo(f"{mac}: assigned {shown}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@CONFIG
@ADMIN
@TOKEN_FILE
def machines(
    as_json: bool, config_file: Path | None, admin_url: str | None, token_file: Path | None
) -> None:
    """List the machines the daemon has seen, their last boot and their assignment.

    Exit status 0 when the daemon answered, 1 when it could not be reached,
    4 when not authorized.
    """
    where = target(config_file, admin_url, token_file)
    answer = call(where, "GET", "/api/machines")
    fail_unless_ok(where, answer)
    if as_json:
        click.echo(json.dumps(answer.body, indent=2))
        return
    seen = answer.body["machines"] if isinstance(answer.body, dict) else []
    if not seen:
        click.echo("no machine seen yet")
    for machine in seen:
        click.echo(_line(machine))


def _line(machine: dict[str, Any]) -> str:
    what = machine.get("model") or machine.get("firmware") or machine.get("kind") or "-"
    assignment = machine.get("assignment")
    if assignment is None:
        assigned = "unassigned"
    else:
        image = assignment.get("image_name") or (
            f"{assignment['image_id']:#010x}" if assignment.get("image_id") is not None else "none"
        )
        assigned = f"assigned {image} ({assignment.get('source')})"
    return (
        f"{machine['mac']}  {machine.get('address') or '-':15}  {what:14}  "
        f"{machine.get('progress') or '-':12}  {assigned}"
    )
