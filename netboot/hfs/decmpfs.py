"""HFS+ transparent compression (decmpfs): decoding a compressed file block by block.

macOS compresses system files (kernelcaches, booters, frameworks) in place: the
catalog record keeps an empty data fork and sets UF_COMPRESSED, and the
`com.apple.decmpfs` attribute starts with a 16-byte little-endian header
(magic "fpmc", compression type, uncompressed size). Depending on the type the
compressed bytes follow the header in the attribute itself ("inline", odd
types) or live in the resource fork, cut into independently compressed 64 KiB
blocks ("resource", even types). Layouts as parsed by 7-Zip's HfsHandler.cpp
and libfshfs:

* type 3/4 zlib: a block whose first byte has low nibble 0xF is stored raw
  after that byte. Type 4's resource fork is a classic resource file: a 16-byte
  big-endian header (data offset, map offset, data length, map length), then at
  the data offset a u32 BE resource length, a u32 LE block count and that many
  (offset, size) u32 LE pairs, offsets counted from just after the length.
* type 7/8 LZVN (`netboot.hfs.lzvn`): a block starting 0x06 is stored raw.
  Type 8's resource fork starts with (blocks + 1) u32 LE offsets from the fork
  start; block i is the bytes between entries i and i + 1.
* type 9/10 uncompressed: a 0xCC byte, then the bytes; type 10 uses type 8's table.
* type 11/12 LZFSE: each block (or the inline payload) is an LZFSE stream,
  decoded by the reference library into a buffer of exactly the block's share
  (`netboot.udif.chunks.decode_chunk`, as ULFO chunks are: the `lzfse`
  binding's own `decompress` grows its buffer without bound on a corrupt
  stream, so it is never used on volume data); a block starting 0xFF is
  stored raw after that byte (libfshfs's reading). Type 12 uses type 8's table.
  Other types are refused as unsupported, naming the type.

Every count read from the volume is checked before it sizes anything: the
block count must be ceil(size / 64 KiB), a compressed block at most 64 KiB + 1,
each block must decode to exactly its share of the size (never more: the
zip-bomb guard), and the tables must lie inside the fork. Memory stays at one
block in, one block out.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol

from netboot.errors import UdifError
from netboot.hfs.errors import HfsCompressionError, HfsUnsupportedError
from netboot.hfs.lzvn import lzvn_decode
from netboot.udif.blkx import ChunkType
from netboot.udif.chunks import decode_chunk

DECMPFS_MAGIC = b"fpmc"
HEADER_SIZE = 16
BLOCK_SIZE = 65536
MAX_STORED_BLOCK = BLOCK_SIZE + 1
"""A block that does not compress is stored raw after a one-byte marker, so no block is larger."""

RESOURCE_FILE_HEADER_SIZE = 16


class DecmpfsType(IntEnum):
    """The compression types this module decodes (the header's u32 at offset 4).

    Others (1, 5: rare or dedup markers; 13/14: LZBITMAP, macOS 11's) are refused
    as unsupported, naming the number."""

    ZLIB_INLINE = 3
    ZLIB_RESOURCE = 4
    LZVN_INLINE = 7
    LZVN_RESOURCE = 8
    RAW_INLINE = 9
    RAW_RESOURCE = 10
    LZFSE_INLINE = 11
    LZFSE_RESOURCE = 12


class ForkRead(Protocol):
    """A fork's bytes by position: what the reader hands over for a resource fork."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, size: int) -> bytes: ...


class _Codec(Enum):
    ZLIB = "zlib"
    LZVN = "LZVN"
    LZFSE = "LZFSE"
    RAW = "uncompressed"


_CODECS = {
    DecmpfsType.ZLIB_INLINE: _Codec.ZLIB,
    DecmpfsType.ZLIB_RESOURCE: _Codec.ZLIB,
    DecmpfsType.LZVN_INLINE: _Codec.LZVN,
    DecmpfsType.LZVN_RESOURCE: _Codec.LZVN,
    DecmpfsType.RAW_INLINE: _Codec.RAW,
    DecmpfsType.RAW_RESOURCE: _Codec.RAW,
    DecmpfsType.LZFSE_INLINE: _Codec.LZFSE,
    DecmpfsType.LZFSE_RESOURCE: _Codec.LZFSE,
}
_RESOURCE_TYPES = frozenset(
    {
        DecmpfsType.ZLIB_RESOURCE,
        DecmpfsType.LZVN_RESOURCE,
        DecmpfsType.RAW_RESOURCE,
        DecmpfsType.LZFSE_RESOURCE,
    }
)


@dataclass(frozen=True)
class DecmpfsHeader:
    """The `com.apple.decmpfs` attribute: type, decompressed size and any inline payload."""

    compression_type: int
    uncompressed_size: int
    payload: bytes

    @classmethod
    def parse(cls, xattr_value: bytes, where: str) -> DecmpfsHeader:
        """Parse the attribute's value; `where` names the file in errors."""
        if len(xattr_value) < HEADER_SIZE:
            raise HfsCompressionError(
                where, None, f"decmpfs attribute is {len(xattr_value)} bytes, under its header's 16"
            )
        magic, compression_type, size = struct.unpack_from("<4sIQ", xattr_value)
        if magic != DECMPFS_MAGIC:
            raise HfsCompressionError(
                where, None, f"decmpfs attribute starts {magic!r}, not {DECMPFS_MAGIC!r}"
            )
        return cls(compression_type, size, bytes(xattr_value[HEADER_SIZE:]))

    @property
    def in_resource_fork(self) -> bool:
        """True when the compressed bytes are in the resource fork, not after the header."""
        return self.compression_type in _RESOURCE_TYPES

    @property
    def block_count(self) -> int:
        return -(-self.uncompressed_size // BLOCK_SIZE)


def decmpfs_blocks(
    header: DecmpfsHeader, resource_fork: ForkRead | None, where: str
) -> Iterator[bytes]:
    """Yield the decompressed file in order, one block (at most 64 KiB) at a time."""
    return DecmpfsFile(header, resource_fork, where).blocks()


def decmpfs_read(
    header: DecmpfsHeader,
    resource_fork: ForkRead | None,
    offset: int,
    size: int,
    where: str = "decmpfs file",
) -> bytes:
    """Read `size` decompressed bytes at `offset` (fewer at the end of the file).

    A caller making many reads should keep one `DecmpfsFile`, which reads the
    block table once and remembers the last block it decoded.
    """
    return DecmpfsFile(header, resource_fork, where).read(offset, size)


@dataclass(frozen=True)
class _Extent:
    """Where one compressed block lies in the resource fork."""

    offset: int
    length: int


class DecmpfsFile:
    """One compressed file: its size, its blocks in order, and reads at any offset.

    A resource-fork file is read by block through the fork's block table (read
    and checked on first use); an inline file is decoded from the attribute.
    """

    def __init__(self, header: DecmpfsHeader, resource_fork: ForkRead | None, where: str) -> None:
        try:
            self._type = DecmpfsType(header.compression_type)
        except ValueError:
            raise HfsUnsupportedError(
                where, None, f"decmpfs compression type {header.compression_type} is not known"
            ) from None
        codec = _CODECS[self._type]
        if header.in_resource_fork and resource_fork is None:
            raise HfsCompressionError(
                where, None, f"decmpfs type {self._type.value} needs a resource fork; it has none"
            )
        self._codec = codec
        self._header = header
        self._fork = resource_fork
        self._where = where
        self._extents: list[_Extent] | None = None
        self._cached: tuple[int, bytes] | None = None

    @property
    def size(self) -> int:
        return self._header.uncompressed_size

    def blocks(self, first: int = 0) -> Iterator[bytes]:
        """Yield the decompressed blocks from block `first` on (each 64 KiB but the last)."""
        if not self._header.in_resource_fork:
            inline = self._inline_blocks()
            for _ in range(first):
                next(inline, None)
            yield from inline
            return
        for index in range(first, self._header.block_count):
            yield self._block(index)

    def read(self, offset: int, size: int) -> bytes:
        """Up to `size` decompressed bytes at `offset`; fewer only at the end of the file."""
        if offset < 0 or size < 0:
            raise ValueError(f"read({offset}, {size}) of {self._where}")
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        first, last = offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE
        pieces: Iterator[bytes]
        if self._header.in_resource_fork:
            pieces = (self._block(index) for index in range(first, last + 1))
        else:
            pieces = self.blocks(first)
        out = bytearray()
        for index, piece in zip(range(first, last + 1), pieces, strict=False):
            base = index * BLOCK_SIZE
            out += piece[max(offset - base, 0) : end - base]
        return bytes(out)

    def _block(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        assert self._fork is not None  # __init__ refuses resource types without a fork
        extent = self._block_table()[index]
        where = f"{self._where}: decmpfs block {index} at resource-fork byte {extent.offset}"
        data = self._fork.read(extent.offset, extent.length)
        if len(data) != extent.length:
            raise HfsCompressionError(where, None, "resource fork is shorter than its block table")
        expected = min(BLOCK_SIZE, self.size - index * BLOCK_SIZE)
        block = _decode(self._codec, data, expected, where)
        self._cached = (index, block)
        return block

    def _inline_blocks(self) -> Iterator[bytes]:
        payload, size = self._header.payload, self.size
        where = f"{self._where}: inline decmpfs data"
        if size == 0:
            return
        if not payload:
            raise HfsCompressionError(where, None, f"no data for a {size}-byte file")
        if self._codec is _Codec.ZLIB and payload[0] & 0x0F != 0x0F:
            yield from _inflate(payload, size, where)
            return
        whole = _decode(self._codec, payload, size, where)
        for start in range(0, size, BLOCK_SIZE):
            yield whole[start : start + BLOCK_SIZE]

    def _block_table(self) -> list[_Extent]:
        if self._extents is None:
            assert self._fork is not None
            count = self._header.block_count
            if self._type is DecmpfsType.ZLIB_RESOURCE:
                extents = _resource_file_table(self._fork, count, self._where)
            else:
                extents = _offset_table(self._fork, count, self._where)
            for index, extent in enumerate(extents):
                if extent.length > MAX_STORED_BLOCK or extent.length == 0:
                    raise HfsCompressionError(
                        self._where,
                        None,
                        f"decmpfs block {index} at resource-fork byte {extent.offset} is "
                        f"{extent.length} bytes; a block holds 1 to {MAX_STORED_BLOCK}",
                    )
            self._extents = extents
        return self._extents


def _read_exact(fork: ForkRead, offset: int, size: int, what: str, where: str) -> bytes:
    if offset + size > fork.size:
        raise HfsCompressionError(
            where,
            None,
            f"{what} (resource-fork bytes {offset}..{offset + size}) "
            f"runs past the {fork.size}-byte fork",
        )
    data = fork.read(offset, size)
    if len(data) != size:
        raise HfsCompressionError(where, None, f"{what}: short read at resource-fork byte {offset}")
    return data


def _resource_file_table(fork: ForkRead, count: int, where: str) -> list[_Extent]:
    """Type 4: the block table inside the classic resource file's one 'cmpf' resource."""
    header = _read_exact(fork, 0, RESOURCE_FILE_HEADER_SIZE, "resource-file header", where)
    data_offset = struct.unpack_from(">I", header)[0]
    preamble = _read_exact(fork, data_offset, 8, "compressed-resource header", where)
    resource_length = struct.unpack_from(">I", preamble)[0]
    stored_count = struct.unpack_from("<I", preamble, 4)[0]
    if stored_count != count:
        raise HfsCompressionError(
            where,
            None,
            f"resource-fork byte {data_offset + 4}: block table holds {stored_count} blocks, "
            f"the file's size needs {count}",
        )
    base = data_offset + 4
    if base + resource_length > fork.size:
        raise HfsCompressionError(
            where,
            None,
            f"resource-fork byte {data_offset}: resource of {resource_length} bytes "
            f"runs past the {fork.size}-byte fork",
        )
    table = _read_exact(fork, base + 4, 8 * count, "block table", where)
    extents = []
    for index, (offset, length) in enumerate(struct.iter_unpack("<II", table)):
        if offset + length > resource_length:
            raise HfsCompressionError(
                where,
                None,
                f"resource-fork byte {base + 4 + 8 * index}: block {index} "
                f"({offset}+{length}) lies outside the {resource_length}-byte resource",
            )
        extents.append(_Extent(base + offset, length))
    return extents


def _offset_table(fork: ForkRead, count: int, where: str) -> list[_Extent]:
    """Types 8/10: (blocks + 1) little-endian offsets from the fork's start."""
    raw = _read_exact(fork, 0, 4 * (count + 1), "block offset table", where)
    offsets = [value for (value,) in struct.iter_unpack("<I", raw)]
    if offsets[0] != 4 * (count + 1):
        raise HfsCompressionError(
            where,
            None,
            f"resource-fork byte 0: first block at {offsets[0]}, "
            f"but a table of {count} blocks ends at {4 * (count + 1)}",
        )
    extents = []
    for index in range(count):
        start, stop = offsets[index], offsets[index + 1]
        if stop < start or stop > fork.size:
            raise HfsCompressionError(
                where,
                None,
                f"resource-fork byte {4 * (index + 1)}: block {index} ends at {stop}, "
                f"outside {start}..{fork.size}",
            )
        extents.append(_Extent(start, stop - start))
    return extents


def _decode(codec: _Codec, data: bytes, expected: int, where: str) -> bytes:
    """One block (or a whole inline payload) to exactly `expected` bytes."""
    marker = data[0]
    if (
        (codec is _Codec.ZLIB and marker & 0x0F == 0x0F)
        or (codec is _Codec.LZVN and marker == 0x06)
        or (codec is _Codec.RAW and marker == 0xCC)
        or (codec is _Codec.LZFSE and marker == 0xFF)
    ):
        if len(data) - 1 != expected:
            raise HfsCompressionError(
                where, None, f"stored block holds {len(data) - 1} bytes, expected {expected}"
            )
        return data[1:]
    if codec is _Codec.ZLIB:
        return b"".join(_inflate(data, expected, where))
    if codec is _Codec.LZVN:
        return lzvn_decode(data, expected, where)
    if codec is _Codec.LZFSE:
        try:
            return decode_chunk(ChunkType.LZFSE, data, expected, where, 0)
        except UdifError as error:
            raise HfsCompressionError(where, None, f"LZFSE data: {error.message}") from None
    raise HfsCompressionError(
        where, None, f"uncompressed decmpfs data starts 0x{marker:02x}, not the 0xCC marker"
    )


def _inflate(data: bytes, size: int, where: str) -> Iterator[bytes]:
    """Inflate one zlib stream to exactly `size` bytes, yielding at most 64 KiB at a time.

    A stream that ends early, or that would go on past `size`, is an error; one
    whose Adler-32 trailer is missing is accepted once `size` bytes are out
    (7-Zip notes newer encoders omit it), a wrong trailer is not.
    """
    inflater = zlib.decompressobj()
    pending = data
    remaining = size
    try:
        while remaining:
            piece = inflater.decompress(pending, min(BLOCK_SIZE, remaining))
            pending = inflater.unconsumed_tail
            if not piece:
                raise HfsCompressionError(
                    where,
                    None,
                    f"zlib stream ends after {size - remaining} of {size} bytes "
                    f"(input byte {len(data) - len(pending)})",
                )
            remaining -= len(piece)
            yield piece
        if inflater.decompress(pending, 1):
            raise HfsCompressionError(
                where, None, f"zlib stream decodes to more than the {size} bytes expected"
            )
    except zlib.error as error:
        raise HfsCompressionError(
            where, None, f"zlib stream is corrupt after {size - remaining} bytes out: {error}"
        ) from None
