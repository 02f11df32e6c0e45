"""The `netboot` command: one click group, one module per command family."""

from __future__ import annotations

import click

from netboot import __version__
from netboot.cli.bsdp import bsdp
from netboot.cli.dmg import dmg
from netboot.cli.images import images
from netboot.cli.lab import lab
from netboot.cli.nbi import nbi
from netboot.cli.serve import serve
from netboot.cli.status import status
from netboot.cli.tftp import tftp
from netboot.cli.units import install_units, nfs_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netboot")
def cli() -> None:
    """NetBoot server for Macs (BSDP) and PCs (PXE/iPXE).

    Images are NBI sets (X.nbi/NBImageInfo.plist with a booter and a root
    image) under an image root, `nbimages/` by default.
    """


cli.add_command(bsdp)
cli.add_command(dmg)
cli.add_command(images)
cli.add_command(lab)
cli.add_command(nbi)
cli.add_command(serve)
cli.add_command(status)
cli.add_command(tftp)
cli.add_command(install_units)
cli.add_command(nfs_config)


def main() -> None:
    cli()
