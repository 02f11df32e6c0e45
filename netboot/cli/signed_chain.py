"""`netboot fetch-signed-chain`: Debian's signed shim and GRUB, without installing them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from netboot.config import SIGNED_CHAIN_CACHE, SIGNED_CHAIN_PACKAGES, PxeConfig
from netboot.debian import unpack_packages
from netboot.errors import ImageError
from netboot.settings import chain_file


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
def fetch_signed_chain(into: Path, if_missing: bool) -> None:
    """Fetch Debian's signed shim and network GRUB for Secure Boot PCs, not installed.

    `apt-get download` brings shim-signed and grub-efi-amd64-signed and
    `dpkg-deb` unpacks them under --into: no maintainer script runs, so a UEFI
    host's own boot loader is left alone (shim-signed's postinst would
    reinstall it). The daemon looks for its default `[pxe] shim_files` and
    `grub_files` there when they are not installed. Run it again to update.
    Exit 0 when both files are in place, 2 when they could not be had.
    """
    defaults = PxeConfig()
    wanted = [Path(path) for _family, path in (*defaults.shim_files, *defaults.grub_files)]
    if if_missing and all(chain_file(path, Path.is_file).is_file() for path in wanted):
        return
    try:
        placed = set(unpack_packages(SIGNED_CHAIN_PACKAGES, into))
    except (ImageError, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    missing = []
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
