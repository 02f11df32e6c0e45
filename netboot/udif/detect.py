"""Tell what kind of disk image a file is, from its magic numbers alone.

A NetBoot root image must be something the client's kernel can attach: a UDIF
image (`.dmg`, recognised by the 512-byte `koly` trailer at the very end) or a
raw disk image, recognised by a partition map (Apple Partition Map, GPT, MBR) or
by a bare volume header (HFS+, HFSX, APFS). Everything else is refused by the
catalog, so a mistyped RootPath is found at validation, not by a Mac that hangs
on a grey screen. Only a few kilobytes at each end are read.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import BinaryIO

from netboot.udif.sector import SECTOR

KOLY_SIZE = 512
_HEAD_BYTES = 8192


class ImageFormat(StrEnum):
    UDIF = "udif"
    APPLE_PARTITION_MAP = "apm"
    GPT = "gpt"
    MBR = "mbr"
    HFS_PLUS = "hfs+"
    HFSX = "hfsx"
    APFS = "apfs"
    SPARSE_IMAGE = "sparseimage"
    EMPTY = "empty"
    UNKNOWN = "unknown"

    @property
    def is_servable(self) -> bool:
        """True for the formats a NetBoot client can use as its root image."""
        return self not in (ImageFormat.SPARSE_IMAGE, ImageFormat.EMPTY, ImageFormat.UNKNOWN)


def detect_format(stream: BinaryIO) -> ImageFormat:
    """Classify an open, seekable binary stream; its position is restored afterwards."""
    position = stream.tell()
    try:
        return _detect(stream)
    finally:
        stream.seek(position)


def _detect(stream: BinaryIO) -> ImageFormat:
    size = stream.seek(0, os.SEEK_END)
    if size == 0:
        return ImageFormat.EMPTY
    if size >= KOLY_SIZE:
        stream.seek(size - KOLY_SIZE)
        if _is_koly(stream.read(KOLY_SIZE)):
            return ImageFormat.UDIF
    stream.seek(0)
    return _classify_head(stream.read(_HEAD_BYTES))


def _is_koly(trailer: bytes) -> bool:
    # signature, version 4, header size 512 (see docs/protocols/udif.md §2)
    return (
        trailer[0:4] == b"koly"
        and int.from_bytes(trailer[4:8], "big") == 4
        and int.from_bytes(trailer[8:12], "big") == KOLY_SIZE
    )


def _classify_head(head: bytes) -> ImageFormat:
    if head[0:4] == b"sprs":
        return ImageFormat.SPARSE_IMAGE
    # GPT before MBR: a GPT disk also carries a protective MBR. The header sits in
    # LBA 1, which is byte 512 or, on 4K-sector media, byte 4096.
    if head[SECTOR : SECTOR + 8] == b"EFI PART" or head[4096 : 4096 + 8] == b"EFI PART":
        return ImageFormat.GPT
    if _is_apple_partition_map(head):
        return ImageFormat.APPLE_PARTITION_MAP
    # APFS container superblock: object header (32 bytes), then magic NXSB.
    if head[32:36] == b"NXSB":
        return ImageFormat.APFS
    # HFS+ / HFSX volume header at byte 1024: signature and version 4 / 5.
    signature, version = head[1024:1026], int.from_bytes(head[1026:1028], "big")
    if signature == b"H+" and version == 4:
        return ImageFormat.HFS_PLUS
    if signature == b"HX" and version == 5:
        return ImageFormat.HFSX
    if head[510:512] == b"\x55\xaa" and _mbr_has_partition(head):
        return ImageFormat.MBR
    return ImageFormat.UNKNOWN


def _is_apple_partition_map(head: bytes) -> bool:
    # Block 0 is the Driver Descriptor Map ("ER", then the device block size);
    # the map's first entry ("PM") follows in block 1. Images made for 2048-byte
    # media (System Image Utility's NetBoot.dmg) put it at 2048, others at 512.
    if head[0:2] == b"ER":
        block_size = int.from_bytes(head[2:4], "big")
        offsets = {SECTOR, block_size} if block_size in (512, 1024, 2048, 4096) else {SECTOR}
        return any(head[offset : offset + 2] == b"PM" for offset in offsets)
    return head[SECTOR : SECTOR + 2] == b"PM"


def _mbr_has_partition(head: bytes) -> bool:
    # The 0x55AA boot signature alone is also on FAT boot sectors; a partition
    # table has at least one entry with a type byte and a status of 0x00 or 0x80.
    entries = [head[446 + 16 * n : 446 + 16 * (n + 1)] for n in range(4)]
    return any(entry[4] != 0 and entry[0] in (0x00, 0x80) for entry in entries)
