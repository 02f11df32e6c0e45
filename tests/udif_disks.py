"""Disk images for the UDIF writer tests: volumes, APM and GPT disks, realistic content.

Built here with struct from the published layouts (Inside Macintosh: Devices
for the APM, UEFI 2.x section 5 for GPT, TN1150 for the HFS+ header), not with
netboot.udif.layout, so a test that feeds them to the writer is not checking
the writer against itself.
"""

from __future__ import annotations

import random
import struct
import uuid
import zlib
from dataclasses import dataclass

SECTOR = 512
HFS_GUID = uuid.UUID("48465300-0000-11AA-AA11-00306543ECAC")
LINUX_GUID = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
TEXT = (
    b"NetBoot serves a disk image to Macs over NFS or HTTP; the image is usually "
    b"an Apple Partition Map holding an HFS+ volume, compressed as UDZO.\n"
)


def content(rng: random.Random, size: int) -> bytes:
    """About half compressible: runs of zeros, of text, and of random bytes, 4-64 KiB each."""
    parts: list[bytes] = []
    total = 0
    while total < size:
        length = min(rng.randrange(4096, 65536), size - total)
        kind = rng.random()
        if kind < 0.35:
            part = bytes(length)
        elif kind < 0.7:
            part = (TEXT * (length // len(TEXT) + 1))[:length]
        else:
            part = rng.randbytes(length)
        parts.append(part)
        total += length
    return b"".join(parts)


def hfs_volume(rng: random.Random, size: int) -> bytes:
    """`size` bytes that detect as an HFS+ volume (signature and block counts at 1024)."""
    data = bytearray(content(rng, size))
    data[1024 : 1024 + 512] = bytes(512)
    # signature, version, attributes, lastMountedVersion, journalInfoBlock,
    # 4 dates, fileCount, folderCount, blockSize, totalBlocks
    struct.pack_into(">2sHI4sI4I2III", data, 1024, b"H+", 4, 0, b"10.0", 0, 0, 0, 0, 0, 0, 0,
                     4096, size // 4096)  # fmt: skip
    return bytes(data)


@dataclass(frozen=True)
class Part:
    name: str
    type: str
    first_sector: int
    sector_count: int


def apm_disk(rng: random.Random, total_sectors: int, parts: list[Part]) -> bytes:
    """A DDM, a partition map (its own entry first) and `parts` filled with `content`."""
    disk = bytearray(content(rng, total_sectors * SECTOR))
    disk[0:SECTOR] = struct.pack(">2sHI", b"ER", SECTOR, total_sectors).ljust(SECTOR, b"\0")
    entries = [Part("Apple", "Apple_partition_map", 1, 63), *parts]
    disk[SECTOR : 64 * SECTOR] = bytes(63 * SECTOR)
    for number, part in enumerate(entries, start=1):
        entry = struct.pack(
            ">2sHIII32s32sIII",
            b"PM",
            0,
            len(entries),
            part.first_sector,
            part.sector_count,
            part.name.encode(),
            part.type.encode(),
            0,
            part.sector_count,
            0x33,
        )
        disk[number * SECTOR : (number + 1) * SECTOR] = entry.ljust(SECTOR, b"\0")
    return bytes(disk)


def gpt_disk(rng: random.Random, total_sectors: int, parts: list[Part]) -> bytes:
    """A protective MBR, primary and backup GPT (128 entries of 128 bytes) and `parts`."""
    disk = bytearray(content(rng, total_sectors * SECTOR))
    table = bytearray(128 * 128)
    for number, part in enumerate(parts):
        guid = HFS_GUID if part.type == "Apple_HFS" else LINUX_GUID
        struct.pack_into(
            "<16s16sQQQ72s",
            table,
            number * 128,
            guid.bytes_le,
            uuid.UUID(int=number + 1).bytes_le,
            part.first_sector,
            part.first_sector + part.sector_count - 1,
            0,
            part.name.encode("utf-16-le"),
        )
    table_crc = zlib.crc32(table)
    last = total_sectors - 1
    mbr = bytearray(SECTOR)
    struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1, last)
    mbr[510:512] = b"\x55\xaa"
    disk[0:SECTOR] = mbr

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        fields = struct.pack(
            "<8sIIIIQQQQ16sQIII",
            b"EFI PART",
            0x00010000,
            92,
            0,
            0,
            current,
            backup,
            34,
            last - 33,
            uuid.UUID(int=0xD15C).bytes_le,
            entries_lba,
            128,
            128,
            table_crc,
        )
        fields = fields[:16] + struct.pack("<I", zlib.crc32(fields)) + fields[20:]
        return fields.ljust(SECTOR, b"\0")

    disk[SECTOR : 2 * SECTOR] = header(1, last, 2)
    disk[2 * SECTOR : 34 * SECTOR] = table
    disk[(last - 32) * SECTOR : last * SECTOR] = table
    disk[last * SECTOR :] = header(last, 1, last - 32)
    return bytes(disk)


def several_partitions_apm(rng: random.Random) -> bytes:
    """A 4 MiB APM disk with a driver, two HFS volumes, a gap nobody claims, and free space."""
    return apm_disk(
        rng,
        8192,
        [
            Part("Macintosh", "Apple_Driver43", 64, 56),
            Part("First", "Apple_HFS", 128, 3000),
            Part("Second", "Apple_HFS", 3200, 4000),
            Part("", "Apple_Free", 7200, 992),
        ],
    )


def small_gpt(rng: random.Random) -> bytes:
    """A 2 MiB GPT disk with an HFS+ and a Linux partition and a gap before the first."""
    return gpt_disk(
        rng,
        4096,
        [Part("Mac", "Apple_HFS", 40, 2000), Part("linux", "Linux", 2048, 2000)],
    )
