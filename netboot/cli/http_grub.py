"""`netboot build-http-grub`: a network GRUB with HTTP for UEFI HTTP boot (arm64 above all)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from netboot.config import HTTP_GRUB_CACHE, HTTP_GRUB_PACKAGES
from netboot.errors import ImageError
from netboot.grub.build import build_http_grub as build
from netboot.grub.build import default_output

DEFAULT_FAMILY = "efi-arm64"
"""The family with no other HTTP-boot loader: Debian ships iPXE for x64 only."""


@click.command("build-http-grub")
@click.option(
    "--family",
    "families",
    type=click.Choice(tuple(HTTP_GRUB_PACKAGES)),
    multiple=True,
    help=f"UEFI family to build for (repeatable; default {DEFAULT_FAMILY}).",
)
@click.option("--all", "every_family", is_flag=True, help="Every family there are modules for.")
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Directory to write to instead of the family's `[pxe] http_grub_files` path "
    f"(by default under {HTTP_GRUB_CACHE}).",
)
@click.option(
    "--if-missing",
    is_flag=True,
    help="Build only where the file is not there yet: what the quick start runs.",
)
def build_http_grub(
    families: tuple[str, ...], every_family: bool, into: Path | None, if_missing: bool
) -> None:
    """Build a network GRUB with the `http` module from Debian's GRUB modules.

    Debian's signed GRUB reads by TFTP only, and Debian ships no arm64 iPXE, so
    an arm64 machine doing UEFI HTTP boot has nothing to run. This fetches
    `grub-efi-arm64-bin` (or `grub-efi-amd64-bin` for `--family efi-x64`)
    without installing it, through a private apt state for another
    architecture, and runs `grub-mkimage` (Debian's grub-common) on its
    modules. The daemon hands the result to HTTP-boot clients of that family
    that have no `[pxe] boot_files` entry. It is unsigned: it boots with Secure
    Boot off. Run it again to update. Exit 0 when the files are in place, 2
    when they could not be made.
    """
    chosen = tuple(HTTP_GRUB_PACKAGES) if every_family else families or (DEFAULT_FAMILY,)
    for family in chosen:
        default = default_output(family)
        output = default if into is None else into / default.name
        if if_missing and output.is_file():
            continue
        try:
            click.echo(str(build(family, output)))
        except (ImageError, OSError) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
    if into is not None:
        click.echo(
            f"note: the daemon looks in {HTTP_GRUB_CACHE}; name these files in "
            "[pxe] http_grub_files",
            err=True,
        )
