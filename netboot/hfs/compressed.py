"""HFS+-compressed files (decmpfs): finding the header and presenting the decompressed bytes.

A compressed file has UF_COMPRESSED in its BSD owner flags, an empty data
fork, and a `com.apple.decmpfs` attribute whose 16-byte header gives the
compression type and the real size; the payload is in the attribute or in
the resource fork (Apple hfs `decmpfs.c`; TN1150 predates it). The decoding
itself is `netboot.hfs.decmpfs`; this module only wires the volume to it.
The flag is required, as xnu requires it: an attribute without the flag is
an ordinary attribute, and the file is its data fork.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from netboot.hfs.catalog import CatalogRecord
from netboot.hfs.decmpfs import DecmpfsFile, DecmpfsHeader
from netboot.hfs.errors import HfsCorruptError
from netboot.hfs.fork import ForkReader

if TYPE_CHECKING:
    from netboot.hfs.volume import Entry, HfsVolume

DECMPFS_ATTRIBUTE = "com.apple.decmpfs"
MAX_DECMPFS_ATTRIBUTE = 1 << 20
"""Inline payloads stay under 4 KiB (Linux caps inline attributes at 3802 bytes)."""


def decmpfs_header(volume: HfsVolume, record: CatalogRecord, path: str) -> DecmpfsHeader:
    """The parsed `com.apple.decmpfs` attribute of a file marked compressed."""
    value = volume.attribute(record.cnid, DECMPFS_ATTRIBUTE)
    if value is None:
        raise HfsCorruptError(
            volume.name,
            record.at,
            f"{path}: marked compressed (UF_COMPRESSED) but has no {DECMPFS_ATTRIBUTE} attribute",
        )
    raw = value.read_all(MAX_DECMPFS_ATTRIBUTE, volume.name)
    return DecmpfsHeader.parse(raw, f"{volume.name}: {path}")


class CompressedFile:
    """A compressed file's decompressed contents, decoded one 64 KiB block at a time."""

    def __init__(self, header: DecmpfsHeader, resource: ForkReader | None, where: str) -> None:
        self._file = DecmpfsFile(header, resource, where)
        self.size = self._file.size

    def read(self, offset: int, size: int) -> bytes:
        return self._file.read(offset, size)

    def iter_blocks(self, block_size: int = 1 << 20) -> Iterator[bytes]:
        """The decompressed file in `block_size` pieces (the last shorter)."""
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        pending = bytearray()
        for block in self._file.blocks():
            pending += block
            while len(pending) >= block_size:
                yield bytes(pending[:block_size])
                del pending[:block_size]
        if pending:
            yield bytes(pending)


def compressed_file(volume: HfsVolume, entry: Entry) -> CompressedFile:
    record = entry.record
    header = decmpfs_header(volume, record, entry.path)
    resource = None
    if record.resource is not None and record.resource.logical_size:
        resource = volume.resource_fork(entry)
    return CompressedFile(header, resource, f"{volume.name}: {entry.path}")
