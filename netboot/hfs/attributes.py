"""Extended attributes: the attributes B-tree (TN1150 "Attributes File"; Apple hfs_format.h).

Keys are (fileID, name, startBlock), compared by fileID first, so a file's
attributes are contiguous: search (fileID, "") and walk while fileID matches.
A value is inline (record type 0x10) or a fork (0x20, with more extents in
0x30 records keyed by the blocks before them). `com.apple.decmpfs` lives here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from netboot.hfs.btree import BTree, KeyCompare, Record
from netboot.hfs.errors import HfsCorruptError
from netboot.hfs.fork import Extent, ForkData, ForkReader, Geometry, parse_extents

MAX_ATTRIBUTE_NAME = 127
_KEY = struct.Struct(">xxIIH")


class AttributeRecordType(IntEnum):
    INLINE = 0x10
    FORK = 0x20
    EXTENTS = 0x30


@dataclass(frozen=True)
class AttributeValue:
    """An attribute's value: inline bytes, or a fork to read in bounded pieces."""

    inline: bytes | None
    fork: ForkReader | None

    @property
    def size(self) -> int:
        if self.inline is not None:
            return len(self.inline)
        return self.fork.size if self.fork is not None else 0

    def read_all(self, limit: int, image: str) -> bytes:
        """The whole value; refuses one over `limit` bytes (a hostile fork can claim gigabytes)."""
        if self.inline is not None:
            return self.inline
        assert self.fork is not None
        if self.fork.size > limit:
            raise HfsCorruptError(
                image, None, f"attribute of {self.fork.size} bytes is over the {limit} allowed"
            )
        return self.fork.read(0, self.fork.size)


def _file_compare(file_id: int) -> KeyCompare:
    def compare(key: bytes) -> int:
        if len(key) < _KEY.size:
            return -1
        found, _start, length = _KEY.unpack_from(key)
        if found != file_id:
            return -1 if found < file_id else 1
        return 0 if length == 0 else 1

    return compare


def _key(record: Record, image: str) -> tuple[int, int, str]:
    if len(record.key) < _KEY.size:
        raise HfsCorruptError(image, record.at, f"attribute key of {len(record.key)} bytes")
    file_id, start_block, length = _KEY.unpack_from(record.key)
    if length > MAX_ATTRIBUTE_NAME or _KEY.size + 2 * length > len(record.key):
        raise HfsCorruptError(image, record.at, f"attribute name length {length}")
    name = record.key[_KEY.size : _KEY.size + 2 * length].decode("utf-16-be", "surrogatepass")
    return file_id, start_block, name


def attributes(
    tree: BTree, geometry: Geometry, file_id: int
) -> Iterator[tuple[str, AttributeValue]]:
    """The attributes of `file_id` in key order, with fork values' overflow extents joined."""
    image = geometry.image
    pending: tuple[str, ForkData, list[Extent], int] | None = None
    for record in tree.records_from(_file_compare(file_id)):
        found, _start_block, name = _key(record, image)
        if found != file_id:
            break
        data = record.data
        if len(data) < 4:
            raise HfsCorruptError(image, record.at, "attribute record has no type")
        kind = struct.unpack_from(">I", data)[0]
        if kind == AttributeRecordType.EXTENTS and pending is not None and pending[0] == name:
            if len(data) < 8 + 64:
                raise HfsCorruptError(image, record.at, "attribute extents record cut short")
            pending[2].extend(parse_extents(data, 8))
            continue
        if pending is not None:
            yield pending[0], _fork_value(geometry, *pending)
            pending = None
        if kind == AttributeRecordType.INLINE:
            if len(data) < 16:
                raise HfsCorruptError(image, record.at, "inline attribute record cut short")
            size = struct.unpack_from(">I", data, 12)[0]
            if 16 + size > len(data):
                raise HfsCorruptError(
                    image,
                    record.at,
                    f"inline attribute claims {size} bytes, the record holds {len(data) - 16}",
                )
            yield name, AttributeValue(bytes(data[16 : 16 + size]), None)
        elif kind == AttributeRecordType.FORK:
            if len(data) < 8 + 80:
                raise HfsCorruptError(image, record.at, "attribute fork record cut short")
            fork = ForkData.parse(data, 8)
            pending = (name, fork, list(fork.extents), record.at)
        elif kind == AttributeRecordType.EXTENTS:
            raise HfsCorruptError(
                image, record.at, f"attribute extents record for {name!r} without its fork"
            )
        else:
            raise HfsCorruptError(image, record.at, f"attribute record type {kind:#x}")
    if pending is not None:
        yield pending[0], _fork_value(geometry, *pending)


def _fork_value(
    geometry: Geometry, name: str, fork: ForkData, extents: list[Extent], at: int
) -> AttributeValue:
    blocks = sum(extent.block_count for extent in extents)
    if blocks < fork.total_blocks:
        raise HfsCorruptError(
            geometry.image,
            at,
            f"attribute {name!r}: extents hold {blocks} of its {fork.total_blocks} blocks",
        )
    reader = ForkReader(geometry, fork.logical_size, tuple(extents), f"attribute {name!r}", at)
    return AttributeValue(None, reader)
