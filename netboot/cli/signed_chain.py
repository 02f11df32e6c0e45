"""`netboot fetch-signed-chain`: Debian's signed shim and GRUB, without installing them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from netboot.config import (
    SIGNED_CHAIN_ARCHITECTURES,
    SIGNED_CHAIN_CACHE,
    SIGNED_CHAIN_PACKAGES,
    PxeConfig,
)
from netboot.debian import apt_for, unpack_packages
from netboot.errors import ImageError
from netboot.settings import chain_file

DEFAULT_FAMILY = "efi-x64"


@click.command("fetch-signed-chain")
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    default=SIGNED_CHAIN_CACHE,
    show_default=True,
    help="Where to unpack the packages (as if it were /).",
)
@click.option(
    "--if-missing",
    is_flag=True,
    help="Do nothing when the daemon already finds both default files (installed, or "
    "fetched before): what the quick start runs.",
)
@click.option(
    "--family",
    "families",
    type=click.Choice(tuple(SIGNED_CHAIN_PACKAGES)),
    multiple=True,
    help=f"UEFI family whose chain to fetch (repeatable; default {DEFAULT_FAMILY}). Another "
    "architecture's packages come through a private apt state under /var/cache/netboot, "
    "without `dpkg --add-architecture`.",
)
@click.option("--all", "every_family", is_flag=True, help="Every family there is a chain for.")
def fetch_signed_chain(
    into: Path, if_missing: bool, families: tuple[str, ...], every_family: bool
) -> None:
    """Fetch Debian's signed shim and network GRUB for Secure Boot PCs, not installed.

    `apt-get download` brings shim-signed and grub-efi-amd64-signed (or, for
    `--family efi-arm64`, the arm64 shim-signed and grub-efi-arm64-signed) and
    `dpkg-deb` unpacks them under --into: no maintainer script runs, so a UEFI
    host's own boot loader is left alone (shim-signed's postinst would
    reinstall it). The daemon looks for its default `[pxe] shim_files` and
    `grub_files` there when they are not installed. Run it again to update.
    Exit 0 when the files are in place, 2 when they could not be had.
    """
    chosen = tuple(SIGNED_CHAIN_PACKAGES) if every_family else families or (DEFAULT_FAMILY,)
    defaults = PxeConfig()
    missing = []
    for family in chosen:
        wanted = [
            Path(path)
            for named, path in (*defaults.shim_files, *defaults.grub_files)
            if named == family
        ]
        if if_missing and all(chain_file(path, Path.is_file).is_file() for path in wanted):
            continue
        try:
            placed = set(_fetch(family, into))
        except (ImageError, OSError) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        for path in wanted:
            unpacked = into / path.relative_to("/")
            if unpacked in placed:
                click.echo(f"{unpacked}")
            else:
                missing.append(str(path))
    if missing:
        click.echo(f"error: the packages hold no {', '.join(missing)}", err=True)
        sys.exit(2)
    if into != SIGNED_CHAIN_CACHE:
        click.echo(
            f"note: the daemon looks in {SIGNED_CHAIN_CACHE}; name these files in "
            "[pxe] shim_files and grub_files",
            err=True,
        )


def _fetch(family: str, into: Path) -> list[Path]:
    """Unpack `family`'s packages under `into`: from the host's apt when they are of the
    host's architecture, else through that architecture's private apt state."""
    packages = SIGNED_CHAIN_PACKAGES[family]
    return unpack_packages(packages, into, apt_for(SIGNED_CHAIN_ARCHITECTURES[family]))
