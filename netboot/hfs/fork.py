"""A fork: a file's bytes as a list of extents of allocation blocks (TN1150 "Fork Data Structure").

Everything the reader reads goes through a `ForkReader`: the B-tree files,
file contents, resource forks and attribute forks. It maps a fork offset to
the volume offset of the extent holding it and reads at most one extent's
piece at a time, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from netboot.hfs.errors import HfsCorruptError

Read = Callable[[int, int], bytes]
"""(offset, size) -> bytes over the volume, as `netboot.udif.volumes.Read`."""

FORK_DATA_SIZE = 80
_FORK_DATA = struct.Struct(">QII")
_EXTENT = struct.Struct(">II")
INLINE_EXTENTS = 8


@dataclass(frozen=True)
class Extent:
    """`block_count` allocation blocks from `start_block` (volume-relative)."""

    start_block: int
    block_count: int


@dataclass(frozen=True)
class ForkData:
    """HFSPlusForkData: the logical size, the blocks allocated, and the first eight extents."""

    logical_size: int
    total_blocks: int
    extents: tuple[Extent, ...]

    @classmethod
    def parse(cls, raw: bytes, at: int = 0) -> ForkData:
        logical_size, _clump, total_blocks = _FORK_DATA.unpack_from(raw, at)
        return cls(logical_size, total_blocks, parse_extents(raw, at + 16))

    @property
    def inline_blocks(self) -> int:
        return sum(extent.block_count for extent in self.extents)


def parse_extents(raw: bytes, at: int) -> tuple[Extent, ...]:
    """An HFSPlusExtentRecord (eight descriptors), without the unused (0, 0) tail."""
    extents = []
    for number in range(INLINE_EXTENTS):
        start, count = _EXTENT.unpack_from(raw, at + 8 * number)
        if count == 0:
            break
        extents.append(Extent(start, count))
    return tuple(extents)


@dataclass(frozen=True)
class Geometry:
    """What a fork needs of its volume: how to read it, its block size, its extent, its name."""

    read: Read
    block_size: int
    total_blocks: int
    image: str


class ForkReader:
    """Random access to one fork; satisfies the `ForkRead` protocol decmpfs takes.

    `described_at` is the volume offset of the record describing the fork, so
    an error about its extents points at the record, not at the bad target.
    """

    def __init__(
        self,
        geometry: Geometry,
        size: int,
        extents: tuple[Extent, ...],
        what: str,
        described_at: int | None,
    ) -> None:
        self.geometry = geometry
        self.size = size
        self.what = what
        self.extents = extents
        block_size = geometry.block_size
        covered = 0
        for extent in extents:
            if extent.start_block + extent.block_count > geometry.total_blocks:
                raise HfsCorruptError(
                    geometry.image,
                    described_at,
                    f"{what}: extent of {extent.block_count} blocks at block "
                    f"{extent.start_block} runs past the volume's {geometry.total_blocks} blocks",
                )
            covered += extent.block_count * block_size
        if size > covered:
            raise HfsCorruptError(
                geometry.image,
                described_at,
                f"{what}: logical size {size} is more than its extents' {covered} bytes",
            )

    def volume_offset(self, offset: int) -> int:
        """Where fork byte `offset` is in the volume (for reads and for error messages)."""
        block_size = self.geometry.block_size
        skipped = 0
        for extent in self.extents:
            length = extent.block_count * block_size
            if offset < skipped + length:
                return extent.start_block * block_size + offset - skipped
            skipped += length
        raise HfsCorruptError(
            self.geometry.image, None, f"{self.what}: offset {offset} is past its extents"
        )

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes at `offset`, fewer only at the end of the fork."""
        if offset < 0 or size < 0:
            raise ValueError("offset and size must not be negative")
        size = max(0, min(size, self.size - offset))
        parts: list[bytes] = []
        block_size = self.geometry.block_size
        skipped = 0
        position, end = offset, offset + size
        for extent in self.extents:
            if position >= end:
                break
            length = extent.block_count * block_size
            if position < skipped + length:
                piece = min(end, skipped + length) - position
                at = extent.start_block * block_size + position - skipped
                data = self.geometry.read(at, piece)
                if len(data) != piece:
                    raise HfsCorruptError(
                        self.geometry.image,
                        at,
                        f"{self.what}: the volume ends before the {piece} bytes at this offset",
                    )
                parts.append(data)
                position += piece
            skipped += length
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def iter_blocks(self, block_size: int = 1 << 20) -> Iterator[bytes]:
        """The fork from start to end, `block_size` bytes at a time (the last shorter)."""
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        for offset in range(0, self.size, block_size):
            yield self.read(offset, block_size)
