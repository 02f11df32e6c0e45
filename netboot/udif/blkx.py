"""`mish` block tables: how one partition's sectors map to chunks in the data fork.

Each blkx resource holds one table (BLKXTable): a 204-byte header, then
40-byte chunk entries (docs/protocols/udif.md §5). Chunk sector numbers are
relative to the table's first sector; chunk data offsets are relative to the
table's data start plus the trailer's data fork offset. `BlockTable.parse`
checks what a reader needs before trusting the table for random access: the
signature, the entry count against the blob length, and that the chunks tile
`[0, sector_count)` in order with no gap and no overlap (qemu binary-searches
the table, so an image that breaks this reads differently in different tools).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from netboot.errors import UdifError
from netboot.udif.trailer import CHECKSUM_SIZE, Checksum

MISH_MAGIC = b"mish"
MISH_VERSION = 1
HEADER_SIZE = 204
ENTRY_SIZE = 40
# A table bigger than this is not a real partition's: hdiutil's 1 MiB chunks make
# about 1000 entries per GiB; two million entries cover a 2 TiB partition.
MAX_ENTRIES = 2_000_000

# signature, version, first sector, sector count, data start, buffer sectors,
# descriptor, 24 reserved
_HEAD = struct.Struct(">4sIQQQII24x")
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">IIQQQQ")
_CHECKSUM_AT = 64
_COUNT_AT = _CHECKSUM_AT + CHECKSUM_SIZE  # 200


class ChunkType(IntEnum):
    """Chunk entry types; the codes are those of qemu dmg.c, dmg2img and 7-Zip's DmgHandler."""

    ZERO = 0x00000000  # zero fill, no data (UDZE)
    RAW = 0x00000001  # stored verbatim (UDRW/UDRO)
    IGNORE = 0x00000002  # free space: reads as zeros, left out of the table checksum
    ADC = 0x80000004  # Apple Data Compression (UDCO)
    ZLIB = 0x80000005  # one zlib stream (UDZO)
    BZIP2 = 0x80000006  # one bzip2 stream (UDBZ)
    LZFSE = 0x80000007  # LZFSE block stream (ULFO)
    LZMA = 0x80000008  # XZ container, as 7-Zip reads it (ULMO)
    COMMENT = 0x7FFFFFFE  # no data; a 4-character tag in the comment field
    TERMINATOR = 0xFFFFFFFF  # last entry of a table


# Entries that occupy no sectors: they are left out of the tiling and of reads.
MARKER_TYPES = frozenset({ChunkType.COMMENT, ChunkType.TERMINATOR})
# Entries whose sectors read as zeros without touching the data fork.
ZERO_TYPES = frozenset({ChunkType.ZERO, ChunkType.IGNORE})


@dataclass(frozen=True)
class Chunk:
    """One 40-byte chunk entry (BLKXChunkEntry); `type` stays an int so unknown codes survive."""

    type: int
    comment: int
    first_sector: int  # relative to the table's first sector
    sector_count: int
    data_offset: int  # relative to the table's data start, plus the trailer's data fork offset
    data_length: int

    @property
    def has_data(self) -> bool:
        """True if this entry's bytes live in the data fork (not zero fill, not a marker)."""
        return self.type not in ZERO_TYPES and self.type not in MARKER_TYPES


@dataclass(frozen=True)
class BlockTable:
    """One decoded `mish` table."""

    first_sector: int
    sector_count: int
    data_start: int
    buffer_sectors: int
    descriptor: int
    checksum: Checksum
    chunks: tuple[Chunk, ...]

    @property
    def data_chunks(self) -> tuple[Chunk, ...]:
        """The chunks that cover sectors, in order (comments and the terminator left out)."""
        return tuple(chunk for chunk in self.chunks if chunk.type not in MARKER_TYPES)

    @classmethod
    def parse(cls, raw: bytes, image: str, offset: int) -> BlockTable:
        """Decode and check a table; `offset` is the file position reported in errors.

        A table lives base64-encoded inside the XML plist, so it has no byte
        offset of its own; callers pass the offset of the plist (or of the
        resource in a binary resource fork).
        """
        if len(raw) < HEADER_SIZE:
            raise UdifError(image, offset, f"mish table truncated: {len(raw)} bytes, header is 204")
        signature, version, first_sector, sector_count, data_start, buffer_sectors, descriptor = (
            _HEAD.unpack_from(raw)
        )
        if signature != MISH_MAGIC:
            raise UdifError(image, offset, f"block table signature {signature!r}, expected 'mish'")
        if version != MISH_VERSION:
            raise UdifError(image, offset, f"block table version {version}, expected 1")
        (count,) = _COUNT.unpack_from(raw, _COUNT_AT)
        if count > MAX_ENTRIES or HEADER_SIZE + count * ENTRY_SIZE > len(raw):
            raise UdifError(
                image,
                offset,
                f"block table claims {count} chunks but holds room for "
                f"{(len(raw) - HEADER_SIZE) // ENTRY_SIZE}",
            )
        chunks = tuple(
            Chunk(*_ENTRY.unpack_from(raw, HEADER_SIZE + index * ENTRY_SIZE))
            for index in range(count)
        )
        table = cls(
            first_sector=first_sector,
            sector_count=sector_count,
            data_start=data_start,
            buffer_sectors=buffer_sectors,
            descriptor=descriptor,
            checksum=Checksum.parse(raw[_CHECKSUM_AT : _CHECKSUM_AT + CHECKSUM_SIZE]),
            chunks=chunks,
        )
        table.validate(image, offset)
        return table

    def validate(self, image: str, offset: int | None) -> None:
        """Raise UdifError unless the chunks tile `[0, sector_count)` in ascending order.

        Comments may sit anywhere between chunks as long as they do not point
        behind the current end (7-Zip reports "Headers Error" for that); a
        terminator, when present, must be the last entry.
        """
        end = 0
        for index, chunk in enumerate(self.chunks):
            where = f"chunk {index} (type {chunk_type_name(chunk.type)})"
            if chunk.type == ChunkType.TERMINATOR:
                if index != len(self.chunks) - 1:
                    raise UdifError(image, offset, f"{where}: terminator before the last entry")
                continue
            if chunk.type == ChunkType.COMMENT:
                if chunk.first_sector < end:
                    raise UdifError(
                        image, offset, f"{where}: comment at sector {chunk.first_sector} < {end}"
                    )
                continue
            if chunk.first_sector != end:
                kind = "gap" if chunk.first_sector > end else "overlap"
                raise UdifError(
                    image,
                    offset,
                    f"{where}: {kind}: starts at sector {chunk.first_sector}, "
                    f"previous chunk ends at {end}",
                )
            end += chunk.sector_count
        if end != self.sector_count:
            raise UdifError(
                image,
                offset,
                f"chunks cover {end} sectors, the table claims {self.sector_count}",
            )

    def build(self) -> bytes:
        """The `mish` bytes (204 + 40 per chunk). Tiling is not checked: call `validate`."""
        try:
            return (
                _HEAD.pack(
                    MISH_MAGIC,
                    MISH_VERSION,
                    self.first_sector,
                    self.sector_count,
                    self.data_start,
                    self.buffer_sectors,
                    self.descriptor,
                )
                + self.checksum.build()
                + _COUNT.pack(len(self.chunks))
                + b"".join(
                    _ENTRY.pack(
                        chunk.type,
                        chunk.comment,
                        chunk.first_sector,
                        chunk.sector_count,
                        chunk.data_offset,
                        chunk.data_length,
                    )
                    for chunk in self.chunks
                )
            )
        except struct.error as error:
            raise ValueError(f"block table field out of range: {error}") from error


def chunk_type_name(code: int) -> str:
    """`zlib`, `raw`, ... for known codes, `0x...` for others (used in messages and counts)."""
    try:
        return ChunkType(code).name.lower()
    except ValueError:
        return f"0x{code:08X}"
