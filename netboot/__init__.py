"""netboot: boot Macs (BSDP) and PCs (PXE/iPXE) over the LAN from NBI sets.

The package is the pure library (formats, protocol decisions) and the CLI. The
Twisted services that own sockets live in the separate `netboot_services` package.

`__version__` is looked up on first use (PEP 562): `importlib.metadata` costs
~35 ms to import, which every `netboot` command paid at start-up although only
`--version` and the daemon's status page print the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("netboot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


if TYPE_CHECKING:
    __version__: str
else:

    def __getattr__(name: str) -> str:
        if name == "__version__":
            found = _installed_version()
            globals()["__version__"] = found
            return found
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
