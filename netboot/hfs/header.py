"""The volume header (TN1150 "Volume Header") and the HFS wrapper around an HFS+ volume.

An HFS+ volume may sit inside a classic HFS volume whose Master Directory
Block names it as the embedded volume (TN1150 "HFS Wrapper"; Linux
fs/hfsplus/wrapper.c): the reader then re-bases every offset to the embedded
volume, which is what `wrapper_offset` records.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from netboot.hfs.errors import HfsCorruptError, HfsUnsupportedError
from netboot.hfs.fork import FORK_DATA_SIZE, ForkData, Read

HEADER_AT = 1024
HEADER_SIZE = 512
JOURNALED = 0x2000
UNMOUNTED = 0x100
_MDB = struct.Struct(">2s8xH8xI4xH")  # drSigWord, drAtrb, drAlBlkSiz, drAlBlSt
_EMBED = struct.Struct(">2sHH")  # drEmbedSigWord, drEmbedExtent (start, count)


@dataclass(frozen=True)
class VolumeHeader:
    signature: str
    version: int
    attributes: int
    last_mounted_version: str
    file_count: int
    folder_count: int
    block_size: int
    total_blocks: int
    free_blocks: int
    extents_file: ForkData
    catalog_file: ForkData
    attributes_file: ForkData

    @property
    def journaled(self) -> bool:
        return bool(self.attributes & JOURNALED)


def embedded_volume(read: Read, size: int, image: str) -> tuple[int, int] | None:
    """(offset, length) of the HFS+ volume a classic HFS wrapper holds, or None if not wrapped.

    Raises HfsUnsupportedError for a plain classic HFS volume (nothing embedded).
    """
    mdb = read(HEADER_AT, 162)
    if mdb[0:2] != b"BD":
        return None
    if len(mdb) < 130:
        raise HfsCorruptError(image, HEADER_AT, "HFS master directory block is cut short")
    _sig, _attributes, block_size, first_sector = _MDB.unpack_from(mdb)
    embed_signature, start, count = _EMBED.unpack_from(mdb, 124)
    if embed_signature not in (b"H+", b"HX"):
        raise HfsUnsupportedError(
            image, HEADER_AT, "a classic HFS volume (no embedded HFS+ volume): not readable here"
        )
    if block_size == 0 or block_size % 512:
        raise HfsCorruptError(image, HEADER_AT + 20, f"wrapper block size {block_size}")
    offset = first_sector * 512 + start * block_size
    length = count * block_size
    if length < HEADER_AT + HEADER_SIZE or offset + length > size:
        raise HfsCorruptError(
            image,
            HEADER_AT + 126,
            f"the embedded volume ({length} bytes at {offset}) is outside the {size}-byte wrapper",
        )
    return offset, length


def parse_header(read: Read, size: int, image: str) -> VolumeHeader:
    """The volume header at byte 1024, checked against the volume's size."""
    raw = read(HEADER_AT, HEADER_SIZE)
    if len(raw) < HEADER_SIZE:
        raise HfsCorruptError(image, HEADER_AT, "the volume ends before its header")
    signature = raw[0:2]
    if signature not in (b"H+", b"HX"):
        raise HfsCorruptError(
            image, HEADER_AT, f"signature {signature!r} is not 'H+' (HFS+) or 'HX' (HFSX)"
        )
    version, attributes, last_mounted = struct.unpack_from(">HI4s", raw, 2)
    if (signature, version) not in ((b"H+", 4), (b"HX", 5)):
        raise HfsCorruptError(image, HEADER_AT + 2, f"{signature.decode()} version {version}")
    files, folders, block_size, total_blocks, free_blocks = struct.unpack_from(">5I", raw, 32)
    if block_size < 512 or block_size & (block_size - 1) or block_size > 1 << 20:
        raise HfsCorruptError(image, HEADER_AT + 40, f"block size {block_size}")
    if total_blocks == 0 or total_blocks * block_size > size:
        raise HfsCorruptError(
            image,
            HEADER_AT + 44,
            f"{total_blocks} blocks of {block_size} bytes do not fit the {size}-byte volume",
        )
    forks = [ForkData.parse(raw, at) for at in range(112, 112 + 5 * FORK_DATA_SIZE, FORK_DATA_SIZE)]
    return VolumeHeader(
        signature.decode(),
        version,
        attributes,
        last_mounted.decode("mac_roman"),
        files,
        folders,
        block_size,
        total_blocks,
        free_blocks,
        extents_file=forks[1],
        catalog_file=forks[2],
        attributes_file=forks[3],
    )
