"""decmpfs payloads built the way macOS lays them out, for the decoder tests and the Linux fixture.

LZVN comes from Apple's own encoder (PyPI `lzfse`): `lzfse.compress` of fewer
than 4096 bytes returns a 'bvxn' block, i.e. a raw LZVN stream ending in the
8-byte eos. The encoder starts each stream with no previous distance and
refers only inside its input, so streams for consecutive 4000-byte pieces,
stripped of their eos and joined with one eos at the end, form one valid stream
for a 64 KiB block. Pieces the encoder leaves raw ('bvx-') are spelled as
literal opcodes. The resource-fork layouts follow 7-Zip's HfsHandler.cpp,
written here with struct and not with netboot.hfs, so the decoder is not
checked against itself.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import lzfse

BLOCK = 65536
ENCODER_PIECE = 4000
EOS = b"\x06" + bytes(7)


def decmpfs_header(compression_type: int, size: int) -> bytes:
    return b"fpmc" + struct.pack("<IQ", compression_type, size)


def lzvn_literals(data: bytes) -> bytes:
    """`data` as literal opcodes only (lrg_l: 0xE0, length - 16; sml_l: 0xE0 | length)."""
    out = bytearray()
    for start in range(0, len(data), 271):
        run = data[start : start + 271]
        out += bytes([0xE0, len(run) - 16]) if len(run) >= 16 else bytes([0xE0 | len(run)])
        out += run
    return bytes(out)


def apple_lzvn(data: bytes) -> bytes:
    """One LZVN stream for `data`, made of Apple encoder streams for 4000-byte pieces."""
    parts = []
    for start in range(0, len(data), ENCODER_PIECE):
        piece = data[start : start + ENCODER_PIECE]
        block = lzfse.compress(piece)
        if block[:4] == b"bvxn":
            raw_size, payload_size = struct.unpack_from("<II", block, 4)
            assert raw_size == len(piece)
            stream = block[12 : 12 + payload_size]
            assert stream.endswith(EOS)
            parts.append(stream[: -len(EOS)])
        else:
            parts.append(lzvn_literals(piece))
    return b"".join(parts) + EOS


def reference_lzvn_decode(stream: bytes, size: int) -> bytes:
    """Apple's decoder on a raw LZVN stream (wrapped as a 'bvxn' block). Valid streams only:
    the binding loops growing its buffer on some corrupt ones."""
    block = b"bvxn" + struct.pack("<II", size, len(stream)) + stream + b"bvx$"
    decoded: bytes = lzfse.decompress(block)
    return decoded


def blocks_of(data: bytes) -> list[bytes]:
    return [data[start : start + BLOCK] for start in range(0, len(data), BLOCK)]


def zlib_resource_fork(compressed_blocks: list[bytes]) -> bytes:
    """Type 4: a classic resource file holding one 'cmpf' resource with the block table."""
    table = bytearray()
    offset = 4 + 8 * len(compressed_blocks)
    for block in compressed_blocks:
        table += struct.pack("<II", offset, len(block))
        offset += len(block)
    resource = struct.pack("<I", len(compressed_blocks)) + table + b"".join(compressed_blocks)
    data_length = 4 + len(resource)
    resource_map = bytearray(50)
    # type list at 28, name list at 50, one type; 'cmpf' with one resource, ID 1, no name
    struct.pack_into(">HHH", resource_map, 24, 28, 50, 0)
    struct.pack_into(">4sHH", resource_map, 30, b"cmpf", 0, 10)
    struct.pack_into(">HhI", resource_map, 38, 1, -1, 0)
    header = struct.pack(">IIII", 0x100, 0x100 + data_length, data_length, 50)
    return (
        header
        + bytes(0x100 - len(header))
        + struct.pack(">I", len(resource))
        + resource
        + bytes(resource_map)
    )


def offset_table_fork(compressed_blocks: list[bytes]) -> bytes:
    """Types 8/10/12: (blocks + 1) little-endian offsets from the fork start, then the blocks."""
    offsets = [4 * (len(compressed_blocks) + 1)]
    for block in compressed_blocks:
        offsets.append(offsets[-1] + len(block))
    return struct.pack(f"<{len(offsets)}I", *offsets) + b"".join(compressed_blocks)


@dataclass(frozen=True)
class CompressedFile:
    """What a compressed file needs on disk: the decmpfs attribute and maybe a resource fork."""

    attribute: bytes
    resource_fork: bytes | None
    plain: bytes


def zlib_inline(plain: bytes) -> CompressedFile:
    return CompressedFile(decmpfs_header(3, len(plain)) + zlib.compress(plain, 9), None, plain)


def lzvn_inline(plain: bytes) -> CompressedFile:
    return CompressedFile(decmpfs_header(7, len(plain)) + apple_lzvn(plain), None, plain)


def zlib_in_resource_fork(plain: bytes, stored: frozenset[int] = frozenset()) -> CompressedFile:
    """Type 4; the blocks numbered in `stored` are kept raw after a 0xFF marker."""
    compressed = [
        b"\xff" + block if index in stored else zlib.compress(block, 9)
        for index, block in enumerate(blocks_of(plain))
    ]
    return CompressedFile(decmpfs_header(4, len(plain)), zlib_resource_fork(compressed), plain)


def lzvn_in_resource_fork(plain: bytes, stored: frozenset[int] = frozenset()) -> CompressedFile:
    """Type 8; the blocks numbered in `stored` are kept raw after a 0x06 marker."""
    compressed = [
        b"\x06" + block if index in stored else apple_lzvn(block)
        for index, block in enumerate(blocks_of(plain))
    ]
    return CompressedFile(decmpfs_header(8, len(plain)), offset_table_fork(compressed), plain)


def lzfse_inline(plain: bytes) -> CompressedFile:
    """Type 11: one LZFSE stream (Apple's encoder) after the header."""
    return CompressedFile(decmpfs_header(11, len(plain)) + lzfse.compress(plain), None, plain)


def lzfse_in_resource_fork(plain: bytes, stored: frozenset[int] = frozenset()) -> CompressedFile:
    """Type 12: an LZFSE stream per 64 KiB block, in type 8's table; `stored` blocks raw
    after a 0xFF marker."""
    compressed = [
        b"\xff" + block if index in stored else lzfse.compress(block)
        for index, block in enumerate(blocks_of(plain))
    ]
    return CompressedFile(decmpfs_header(12, len(plain)), offset_table_fork(compressed), plain)


@dataclass(frozen=True)
class BytesFork:
    """A resource fork held in memory, read the way the volume reader reads one."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]
