"""netboot: boot Macs (BSDP) and PCs (PXE/iPXE) over the LAN from NBI sets.

The package is the pure library (formats, protocol decisions) and the CLI. The
Twisted services that own sockets live in the separate `netboot_services` package.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netboot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
