"""Is this a volume a Mac could mount? The HFS+/HFSX and APFS header checks.

A NetBoot client mounts its root image's volume; these checks read what a
mount reads first (TN1150's volume header and the catalog B-tree's header
node; the APFS container superblock and its Fletcher-64 checksum) and say
precisely what is wrong. Pure: they work through a `read(offset, size)`
callable, so the same code checks a raw file, a UDIF image being decoded
(`UdifImage.read`) and ranges fetched over HTTP.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netboot.errors import NetbootError


class VolumeError(NetbootError):
    """The volume is readable but not one a Mac could mount."""


Read = Callable[[int, int], bytes]


@dataclass(frozen=True)
class VolumeCheck:
    """What the volume header (and what it points at) said."""

    file_system: str
    signature: str
    block_size: int
    total_blocks: int
    details: dict[str, Any] = field(default_factory=dict)


def check_hfs_plus(read: Read, start: int, length: int, where: str) -> VolumeCheck:
    """HFS+/HFSX volume header (TN1150) at `start` + 1024, and its catalog's header node.

    `where` names the volume in errors. Raises VolumeError saying what is wrong.
    """
    header = read(start + 1024, 512)
    signature = header[0:2]
    if len(header) < 512 or signature not in (b"H+", b"HX"):
        raise VolumeError(
            f"{where}: volume header signature is {signature!r}, not 'H+' (HFS+) or 'HX' (HFSX)"
        )
    version, _attributes, last_mounted = struct.unpack_from(">HI4s", header, 2)
    file_count, folder_count, block_size, total_blocks = struct.unpack_from(">IIII", header, 32)
    if version not in (4, 5):
        raise VolumeError(f"{where}: HFS+ version {version}, not 4 or 5")
    if block_size < 512 or block_size & (block_size - 1) or block_size > 1 << 16:
        raise VolumeError(f"{where}: block size {block_size} is not a power of two >= 512")
    volume_bytes = block_size * total_blocks
    if total_blocks == 0 or volume_bytes > length:
        raise VolumeError(
            f"{where}: {total_blocks} blocks of {block_size} bytes do not fit the "
            f"{length}-byte partition"
        )
    details: dict[str, Any] = {
        "last_mounted_by": last_mounted.decode("mac_roman"),
        "files": file_count,
        "folders": folder_count,
    }
    # The catalog B-tree: a mount reads its header node (node descriptor, header record).
    catalog_size, _clump, _blocks, first_block, first_count = struct.unpack_from(
        ">QIIII", header, 0x110
    )
    node_at = start + first_block * block_size
    if catalog_size == 0 or first_count == 0 or first_block >= total_blocks:
        raise VolumeError(f"{where}: the catalog file's extents are empty or out of the volume")
    node = read(node_at, 512)
    kind = struct.unpack_from(">b", node, 8)[0]
    if kind != 1:
        raise VolumeError(
            f"{where}: catalog header node at byte {node_at} has kind {kind}, not 1 (header)"
        )
    depth, _root, leaf_records = struct.unpack_from(">HII", node, 14)
    node_size = struct.unpack_from(">H", node, 14 + 18)[0]
    if node_size < 512 or node_size & (node_size - 1):
        raise VolumeError(f"{where}: catalog node size {node_size} at byte {node_at}")
    details.update(catalog_records=leaf_records, catalog_depth=depth, catalog_node_size=node_size)
    # The alternate volume header, 1024 bytes before the end of the volume (a fsck's backup).
    alternate = read(start + length - 1024, 2)
    details["alternate_header"] = (
        "present" if alternate == signature else f"missing ({alternate!r})"
    )
    return VolumeCheck(
        "HFS+" if signature == b"H+" else "HFSX",
        signature.decode(),
        block_size,
        total_blocks,
        details,
    )


def check_apfs(read: Read, start: int, length: int, where: str) -> VolumeCheck:
    """APFS container superblock (Apple File System Reference): NXSB at +32, its checksum.

    `where` names the container in errors. Raises VolumeError saying what is wrong.
    """
    head = read(start, 4096)
    if len(head) < 4096 or head[32:36] != b"NXSB":
        raise VolumeError(f"{where}: superblock magic is {head[32:36]!r}, not 'NXSB' (APFS)")
    block_size = int.from_bytes(head[36:40], "little")
    block_count = int.from_bytes(head[40:48], "little")
    if block_size < 4096 or block_size & (block_size - 1) or block_size > 1 << 16:
        raise VolumeError(f"{where}: block size {block_size} is not a power of two >= 4096")
    if block_count == 0 or block_size * block_count > length:
        raise VolumeError(
            f"{where}: {block_count} blocks of {block_size} bytes do not fit the "
            f"{length}-byte partition"
        )
    block = head if block_size == 4096 else read(start, block_size)
    stored = int.from_bytes(block[0:8], "little")
    computed = fletcher64(block[8:block_size])
    if stored != computed:
        raise VolumeError(
            f"{where}: superblock checksum is {stored:016x}, the block sums to {computed:016x}"
        )
    return VolumeCheck("APFS", "NXSB", block_size, block_count, {"checksum": "valid"})


def fletcher64(data: bytes) -> int:
    """The APFS object checksum of `data` (an object without its first 8 bytes)."""
    first = second = 0
    for (word,) in struct.iter_unpack("<I", data[: len(data) - len(data) % 4]):
        first = (first + word) % 0xFFFFFFFF
        second = (second + first) % 0xFFFFFFFF
    low = 0xFFFFFFFF - ((first + second) % 0xFFFFFFFF)
    high = 0xFFFFFFFF - ((first + low) % 0xFFFFFFFF)
    return (high << 32) | low
