"""The exceptions netboot raises, split by whose fault the failure is.

`MalformedPacket` means a peer sent garbage: the service counts it, logs it once
per client and drops it. `ConfigError` and `ImageError` mean local input is wrong:
the CLI prints the file, the key and what is wrong, and exits non-zero. Nothing
else is meant to escape the library.
"""

from __future__ import annotations


class NetbootError(Exception):
    """Root of every error the library raises on purpose."""


class MalformedPacket(NetbootError):  # noqa: N818 - the name says what arrived
    """A peer sent bytes that do not decode; never the server's own fault."""


class LocalInputError(NetbootError):
    """Local input (a file the admin wrote) is wrong; names the file and the key."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}")
        self.file = file
        self.key = key
        self.message = message


class ConfigError(LocalInputError):
    """The configuration file or a command-line override is wrong."""


class ImageError(LocalInputError):
    """An image file (plist, disk image) cannot be used."""


class UdifError(NetbootError):
    """A UDIF disk image (`.dmg`) is malformed, truncated or lies about its contents.

    It names the image and, where one is known, the byte offset in that file of
    the structure at fault, so a checker's report points a hex editor at the
    right place. It is raised for anything read from the image; the reader never
    lets a `zlib.error`, `struct.error` or `KeyError` escape.
    """

    def __init__(self, image: str, offset: int | None, message: str) -> None:
        where = f"{image}: " if offset is None else f"{image}: at byte {offset}: "
        super().__init__(where + message)
        self.image = image
        self.offset = offset
        self.message = message


class HfsError(NetbootError):
    """An HFS+/HFSX volume is malformed, truncated, or uses what the reader cannot read.

    Like `UdifError` it names the image and, where one is known, the byte offset
    of the structure at fault, counted in the volume (the bytes the reader was
    given, after any container and partition), so a report points a hex editor
    at the right place. The reader never lets `struct.error`, `zlib.error`,
    `IndexError` or `KeyError` escape.
    """

    def __init__(self, image: str, offset: int | None, message: str) -> None:
        where = f"{image}: " if offset is None else f"{image}: at volume byte {offset}: "
        super().__init__(where + message)
        self.image = image
        self.offset = offset
        self.message = message
