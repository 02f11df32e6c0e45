"""The typed failures of the HFS+ reader, all `netboot.errors.HfsError`.

A caller that only reports catches `HfsError`; one that decides (skip a file
it cannot decompress, but stop on a corrupt catalog) catches the subclass.
"""

from __future__ import annotations

from netboot.errors import HfsError


class HfsCorruptError(HfsError):
    """A structure on the volume contradicts itself or the format (bad counts, offsets, sizes)."""


class HfsCompressionError(HfsCorruptError):
    """A decmpfs-compressed file's header, block table or compressed bytes do not decode."""


class HfsUnsupportedError(HfsError):
    """The volume uses a feature the reader does not implement (e.g. LZFSE decmpfs, plain HFS)."""


class HfsNotFound(HfsError):  # noqa: N818 - the name is the agreed API (hfs-api.md)
    """A path asked for does not exist on the volume (or leaves it through a symlink)."""

    def __init__(self, image: str, path: str, message: str = "no such file or directory") -> None:
        super().__init__(image, None, f"{path}: {message}")
        self.path = path
