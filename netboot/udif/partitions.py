"""The partitions inside a disk image: Apple Partition Map, GPT, MBR, or a bare volume.

Works through a `read(offset, size)` callable, so the same code lists the
partitions of a raw image (a file's pread) and of a compressed UDIF image
(`UdifImage.read`, which decodes only the few chunks holding the maps). All
sector numbers returned are 512-byte sectors, UDIF's unit, whatever block size
the map itself uses.

Sources for the layouts: Apple "Inside Macintosh: Devices" (Driver Descriptor
Map `ER` and partition map entries `PM`, big-endian), Linux `block/partitions/mac.c`
(entries sit at multiples of the DDM block size and count in those blocks), UEFI
2.x section 5 (GPT header and entries, little-endian, mixed-endian GUIDs, CRC32s),
TN1150 (HFS+ volume header at byte 1024), Apple File System Reference (NXSB).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from netboot.errors import UdifError
from netboot.udif.sector import SECTOR

Scheme = Literal["apm", "gpt", "mbr", "none"]
# A real map has a handful of entries; these caps keep a hostile one small.
MAX_APM_ENTRIES = 256
MAX_GPT_TABLE = 1 << 20

# GPT partition type GUIDs; Apple's names are those hdiutil prints in blkx names.
GPT_TYPES: dict[str, str] = {
    "48465300-0000-11AA-AA11-00306543ECAC": "Apple_HFS",
    "7C3457EF-0000-11AA-AA11-00306543ECAC": "Apple_APFS",
    "426F6F74-0000-11AA-AA11-00306543ECAC": "Apple_Boot",
    "55465300-0000-11AA-AA11-00306543ECAC": "Apple_UFS",
    "52414944-0000-11AA-AA11-00306543ECAC": "Apple_RAID",
    "52414944-5F4F-11AA-AA11-00306543ECAC": "Apple_RAID_Offline",
    "4C616265-6C00-11AA-AA11-00306543ECAC": "Apple_Label",
    "5265636F-7665-11AA-AA11-00306543ECAC": "Apple_TV_Recovery",
    "53746F72-6167-11AA-AA11-00306543ECAC": "Apple_CoreStorage",
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
    "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
    "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
}
MBR_TYPES: dict[int, str] = {
    0x01: "FAT12",
    0x04: "FAT16",
    0x05: "Extended",
    0x06: "FAT16",
    0x07: "NTFS/exFAT",
    0x0B: "FAT32",
    0x0C: "FAT32",
    0x0E: "FAT16",
    0x0F: "Extended",
    0x82: "Linux swap",
    0x83: "Linux",
    0xA8: "Apple_UFS",
    0xAB: "Apple_Boot",
    0xAF: "Apple_HFS",
    0xEE: "GPT protective",
    0xEF: "EFI System",
}


@dataclass(frozen=True)
class Partition:
    """One partition. `index` is the map's own 1-based entry number (0 for a bare volume)."""

    index: int
    name: str
    type: str
    first_sector: int
    sector_count: int
    scheme: Scheme


Reader = Callable[[int, int], bytes]


def read_partitions(
    read: Reader, size: int, image: str = "<image>"
) -> tuple[Scheme, list[Partition]]:
    """Find the partition scheme and its partitions; ("none", []) if nothing is recognised.

    GPT is tried before MBR (a GPT disk also carries a protective MBR) and
    before APM, as `detect.py` does. A map that is recognised but broken
    (entries past the end, a GPT CRC that does not match) raises UdifError.
    """
    head = read(0, min(size, 8192))
    for lba_size in (SECTOR, 4096):
        if head[lba_size : lba_size + 8] == b"EFI PART":
            return "gpt", _gpt(read, size, lba_size, image)
    if head[0:2] == b"ER" or head[SECTOR : SECTOR + 2] == b"PM":
        partitions = _apm(read, size, head, image)
        if partitions:
            return "apm", partitions
    volume = _bare_volume(head, size)
    if volume is not None:
        return "none", [volume]
    if head[510:512] == b"\x55\xaa":
        partitions = _mbr(head, size, image)
        if partitions:
            return "mbr", partitions
    return "none", []


def _check_inside(partition: Partition, size: int, image: str, at: int) -> Partition:
    end = (partition.first_sector + partition.sector_count) * SECTOR
    if end > size:
        raise UdifError(
            image,
            at,
            f"{partition.scheme} partition {partition.index} ({partition.type}) ends at "
            f"byte {end}, past the {size}-byte disk",
        )
    return partition


# Apple Partition Map entry: pmSig, pmSigPad, pmMapBlkCnt, pmPyPartStart,
# pmPartBlkCnt, pmPartName[32], pmParType[32].
_APM_ENTRY = struct.Struct(">2sHIII32s32s")


def _apm(read: Reader, size: int, head: bytes, image: str) -> list[Partition]:
    block_size = int.from_bytes(head[2:4], "big") if head[0:2] == b"ER" else SECTOR
    # Entries sit at multiples of 512 and count in 512-byte blocks, even where the DDM
    # names 2048-byte blocks (hybrid CDs). Maps written for the DDM block size put
    # their first entry at that offset instead, and count in those blocks (Linux
    # mac.c); the DDM's block is zero past its driver list, so the two cannot clash.
    stride = SECTOR
    if (
        head[SECTOR : SECTOR + 2] != b"PM"
        and block_size in (1024, 2048, 4096)
        and head[block_size : block_size + 2] == b"PM"
    ):
        stride = block_size
    first = read(stride, SECTOR)
    if len(first) < _APM_ENTRY.size or first[0:2] != b"PM":
        return []
    (_, _, map_count, *_rest) = _APM_ENTRY.unpack_from(first)
    if not 1 <= map_count <= MAX_APM_ENTRIES or (map_count + 1) * stride > size:
        raise UdifError(image, stride, f"partition map claims {map_count} entries")
    scale = stride // SECTOR
    partitions = []
    for number in range(1, map_count + 1):
        at = number * stride
        raw = read(at, SECTOR)
        if len(raw) < _APM_ENTRY.size or raw[0:2] != b"PM":
            raise UdifError(image, at, f"partition map entry {number} has no 'PM' signature")
        _, _, _, start, count, name, kind = _APM_ENTRY.unpack_from(raw)
        partition = Partition(
            number, _c_string(name), _c_string(kind), start * scale, count * scale, "apm"
        )
        partitions.append(_check_inside(partition, size, image, at))
    return partitions


def _c_string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("mac_roman")


# GPT header fields from byte 8: revision, header size, header CRC32, reserved,
# current LBA, backup LBA, first usable, last usable, disk GUID, entries LBA,
# entry count, entry size, entries CRC32.
_GPT_HEADER = struct.Struct("<IIII QQQQ 16s QIII")
_GPT_ENTRY = struct.Struct("<16s16sQQQ72s")


def _gpt(read: Reader, size: int, lba_size: int, image: str) -> list[Partition]:
    header = read(lba_size, lba_size)
    if len(header) < 92:
        raise UdifError(image, lba_size, "GPT header is cut short by the end of the disk")
    fields = _GPT_HEADER.unpack_from(header, 8)
    header_size, header_crc = fields[1], fields[2]
    entries_lba, entry_count, entry_size, entries_crc = fields[9:13]
    if not 92 <= header_size <= lba_size:
        raise UdifError(image, lba_size, f"GPT header size {header_size}")
    check = bytearray(header[:header_size])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != header_crc:
        raise UdifError(image, lba_size + 16, "GPT header CRC32 does not match")
    table_size = entry_count * entry_size
    table_at = entries_lba * lba_size
    if entry_size < _GPT_ENTRY.size or table_size > MAX_GPT_TABLE or table_at + table_size > size:
        raise UdifError(
            image, lba_size + 72, f"GPT entry table ({entry_count} x {entry_size}) is out of range"
        )
    table = read(table_at, table_size)
    if zlib.crc32(table) != entries_crc:
        raise UdifError(image, table_at, "GPT partition entries CRC32 does not match")
    scale = lba_size // SECTOR
    partitions = []
    for number in range(entry_count):
        kind, _, first, last, _, name = _GPT_ENTRY.unpack_from(table, number * entry_size)
        if kind == bytes(16):
            continue
        type_guid = str(uuid.UUID(bytes_le=kind)).upper()
        if last < first:
            raise UdifError(
                image, table_at + number * entry_size, "GPT entry ends before it starts"
            )
        partition = Partition(
            number + 1,
            name.decode("utf-16-le", "replace").split("\0", 1)[0],
            GPT_TYPES.get(type_guid, type_guid),
            first * scale,
            (last - first + 1) * scale,
            "gpt",
        )
        partitions.append(_check_inside(partition, size, image, table_at + number * entry_size))
    return partitions


def _mbr(head: bytes, size: int, image: str) -> list[Partition]:
    partitions = []
    for number in range(4):
        at = 446 + 16 * number
        status, kind = head[at], head[at + 4]
        start, count = struct.unpack_from("<II", head, at + 8)
        if kind == 0 or status not in (0x00, 0x80):
            continue
        name = MBR_TYPES.get(kind, f"0x{kind:02X}")
        partitions.append(
            _check_inside(Partition(number + 1, "", name, start, count, "mbr"), size, image, at)
        )
    return partitions


def _bare_volume(head: bytes, size: int) -> Partition | None:
    """A file system that starts at sector 0: HFS+, HFSX, classic HFS or APFS."""
    signature = head[1024:1026]
    if signature in (b"H+", b"HX") and len(head) >= 1024 + 48:
        block_size, total_blocks = struct.unpack_from(">II", head, 1024 + 40)
        kind = "Apple_HFS" if signature == b"H+" else "Apple_HFSX"
        return Partition(0, "", kind, 0, _volume_sectors(block_size * total_blocks, size), "none")
    if signature == b"BD" and len(head) >= 1024 + 64:
        # classic HFS master directory block: the volume name (drVN, a Pascal string) at 36
        name_length = min(head[1024 + 36], 27)
        name = head[1024 + 37 : 1024 + 37 + name_length].decode("mac_roman")
        return Partition(0, name, "Apple_HFS", 0, size // SECTOR, "none")
    if head[32:36] == b"NXSB" and len(head) >= 48:
        block_size = int.from_bytes(head[36:40], "little")
        block_count = int.from_bytes(head[40:48], "little")
        sectors = _volume_sectors(block_size * block_count, size)
        return Partition(0, "", "Apple_APFS", 0, sectors, "none")
    return None


def _volume_sectors(volume_bytes: int, size: int) -> int:
    # The volume header's own size is a hint; trust the image size when it is absent or larger.
    if 0 < volume_bytes <= size:
        return volume_bytes // SECTOR
    return size // SECTOR
