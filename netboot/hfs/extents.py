"""Forks beyond eight extents: the extents-overflow B-tree (TN1150 "Extents Overflow File").

A fork's record holds its first eight extents; the rest sit in the extents
file under keys (fileID, forkType, startBlock), startBlock being the
fork-relative block where that record's first extent begins. Keys sort by
fileID, then forkType (data 0x00 before resource 0xFF), then startBlock
(Apple hfs `FileExtentMapping.c`, CompareExtentKeysPlus).
"""

from __future__ import annotations

import struct
from enum import IntEnum

from netboot.hfs.btree import BTree, KeyCompare
from netboot.hfs.errors import HfsCorruptError
from netboot.hfs.fork import Extent, ForkData, parse_extents

_KEY = struct.Struct(">BxII")
KEY_LENGTH = 10
MAX_OVERFLOW_RECORDS = 1 << 16
"""A fork this fragmented (over half a million extents) is a loop or a lie."""


class ForkType(IntEnum):
    DATA = 0x00
    RESOURCE = 0xFF


def extent_key(file_id: int, fork: ForkType, start_block: int) -> bytes:
    """An extents-overflow key without its keyLength (for tests and builders)."""
    return _KEY.pack(fork, file_id, start_block)


def _compare(file_id: int, fork: ForkType, start_block: int) -> KeyCompare:
    sought = (file_id, int(fork), start_block)

    def compare(key: bytes) -> int:
        if len(key) < KEY_LENGTH:
            return -1
        fork_type, key_file, key_start = _KEY.unpack_from(key)
        found = (key_file, fork_type, key_start)
        return (found > sought) - (found < sought)

    return compare


def all_extents(
    fork: ForkData,
    file_id: int,
    fork_type: ForkType,
    overflow: BTree | None,
    image: str,
    described_at: int | None,
) -> tuple[Extent, ...]:
    """The fork's whole extent list: its eight, then overflow records until totalBlocks."""
    extents = list(fork.extents)
    found = fork.inline_blocks
    if found >= fork.total_blocks:
        return tuple(extents)
    if overflow is None:
        raise HfsCorruptError(
            image,
            described_at,
            f"file {file_id}: {fork.total_blocks} blocks but its extents hold {found}, "
            "and the extents file cannot hold its own overflow",
        )
    for _ in range(MAX_OVERFLOW_RECORDS):
        more = _overflow_record(overflow, file_id, fork_type, found)
        if more is None:
            raise HfsCorruptError(
                image,
                described_at,
                f"file {file_id} {fork_type.name.lower()} fork: no extents-overflow record "
                f"for block {found} of {fork.total_blocks}",
            )
        if not more:
            raise HfsCorruptError(
                image, described_at, f"file {file_id}: empty extents-overflow record"
            )
        extents.extend(more)
        found += sum(extent.block_count for extent in more)
        if found >= fork.total_blocks:
            return tuple(extents)
    raise HfsCorruptError(image, described_at, f"file {file_id}: too many overflow records")


def _overflow_record(
    overflow: BTree, file_id: int, fork_type: ForkType, start_block: int
) -> tuple[Extent, ...] | None:
    compare = _compare(file_id, fork_type, start_block)
    for record in overflow.records_from(compare):
        if compare(record.key) != 0:
            return None
        if len(record.data) < 64:
            raise HfsCorruptError(
                overflow.image, record.at, "extents-overflow record shorter than 64 bytes"
            )
        return parse_extents(record.data, 0)
    return None
