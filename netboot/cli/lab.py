"""`netboot lab`: boot real firmware (QEMU) and a simulated Mac through our server.

    netboot lab up [--name N] [--root DIR]      namespace, bridge, daemon (full DHCP)
    netboot lab boot --firmware bios|uefi ...   one guest, to the serial marker
    netboot lab mac [--image NAME] ...          a Mac's whole NetBoot, simulated
    netboot lab down [--name N]                 everything gone

`boot` and `mac` use the lab that is up, or set one up for the run and take
it down afterwards. Exit status: 0 when the boot reached its end, 1 when it
did not (the JSON says where it stopped), 2 on a bad command line or a lab
that cannot be set up.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from netboot.errors import ImageError, NetbootError
from netboot.lab.lab import Lab, LabError
from netboot.lab.qemu import ACCELERATORS, FIRMWARES

name_option = click.option("--name", default="lab", show_default=True, help="Lab name.")


@click.group()
def lab() -> None:
    """An isolated boot lab: our daemon and QEMU guests in a network namespace."""


@lab.command()
@name_option
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Image root to serve (default: a fresh demo set with Debian's kernel).",
)
def up(name: str, root: Path | None) -> None:
    """Create the lab and start the daemon in it."""
    try:
        started = Lab.up(name, root)
    except (LabError, ImageError) as error:
        _fail(error)
    click.echo(
        f"lab {name!r} is up: namespace {started.state.namespace}, server "
        f"{started.state.server}, log {started.daemon_log}"
    )


@lab.command()
@name_option
def down(name: str) -> None:
    """Stop the lab's daemon and guests and delete its namespace."""
    try:
        Lab.attach(name).down()
    except LabError as error:
        _fail(error)
    click.echo(f"lab {name!r} is down")


@lab.command()
@name_option
@click.option("--firmware", type=click.Choice(FIRMWARES), default="bios", show_default=True)
@click.option("--image", help="PC image to boot (name or set directory); default: the default.")
@click.option("--accel", type=click.Choice(ACCELERATORS), default="auto", show_default=True)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds.")
@click.option(
    "--ipxe-rom/--no-ipxe-rom",
    default=True,
    show_default=True,
    help="Keep the NIC's iPXE option ROM; without it a UEFI guest boots with the "
    "firmware's own PXE, as real PCs do.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def boot(
    name: str,
    firmware: str,
    image: str | None,
    accel: str,
    timeout: float,
    ipxe_rom: bool,
    as_json: bool,
) -> None:
    """Power on a QEMU guest and follow it to the demo initrd's serial marker."""
    if firmware == "bios" and not ipxe_rom:
        raise click.UsageError("a BIOS guest network-boots only from the NIC's iPXE ROM")
    with _lab(name) as running:
        result = running.boot(firmware, image, accel, timeout, ipxe_rom)
    _print(result.as_json(), as_json)
    sys.exit(0 if result.result == "ok" else 1)


@lab.command()
@name_option
@click.option("--image", help="NBI set to select (name or set directory); default: the default.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def mac(name: str, image: str | None, timeout: float, as_json: bool) -> None:
    """Run a Mac's NetBoot as a client in the lab: BSDP, TFTP, root image reads."""
    from netboot.lab.mac import simulate_mac

    with _lab(name) as running:
        result = simulate_mac(running, image, timeout)
    _print(result.as_json(), as_json)
    sys.exit(0 if result.result == "ok" else 1)


@contextmanager
def _lab(name: str) -> Iterator[Lab]:
    """The lab that is up, or one set up now and taken down afterwards."""
    try:
        existing: Lab | None = Lab.attach(name)
    except LabError:
        existing = None
    if existing is not None:
        yield existing
        return
    try:
        temporary = Lab.up(name)
    except (LabError, ImageError) as error:
        _fail(error)
    try:
        yield temporary
    finally:
        temporary.down()


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{summary['result']}: {summary.get('error') or 'reached the end'}")
    for stage, seconds in summary["stages"].items():
        click.echo(f"  {stage:12} {seconds:8.3f} s")
    click.echo(f"  bytes        {summary['bytes']}")
    click.echo(f"  serial log   {summary['serial_log']}")


def _fail(error: NetbootError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)
