"""Partition maps inside images: APM (as NetBoot.dmg has), GPT, MBR and bare volumes.

The APM disk follows docs/protocols/udif.md §6 (DDM in sector 0, the map
in 1-63, an ATAPI driver in 64-71, the HFS+ volume from 72, ten free sectors at
the end), with structures from "Inside Macintosh: Devices". The GPT disk follows
UEFI 2.x section 5. 7-Zip's APM and GPT handlers are the independent readers
whose offsets and sizes ours must match.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.errors import UdifError
from netboot.udif.blkx import ChunkType
from netboot.udif.detect import ImageFormat, detect_format
from netboot.udif.partitions import Partition, read_partitions
from netboot.udif.reader import UdifImage
from tests.test_udif_reader_builder import Part, build_image, require_tool, write

SECTOR = 512
HFS_SECTORS = 2048
TOTAL = 1 + 63 + 8 + HFS_SECTORS + 10  # 2130, as libdmg-hfsplus lays it out


def reader_of(disk: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, size: disk[offset : offset + size]


def hfs_plus_volume(sectors: int, signature: bytes = b"H+", version: int = 4) -> bytes:
    """Just enough of an HFS+ volume: the header at 1024 with block size and count (TN1150)."""
    volume = bytearray(sectors * SECTOR)
    header = signature + version.to_bytes(2, "big") + bytes(36)  # signature, version, ...
    header += (4096).to_bytes(4, "big")  # 40: blockSize
    header += (sectors * SECTOR // 4096).to_bytes(4, "big")  # 44: totalBlocks
    volume[1024 : 1024 + len(header)] = header
    volume[4096:4200] = b"volume contents " * 6 + b"12345678"
    return bytes(volume)


def apm_entry(map_count: int, start: int, count: int, name: bytes, kind: bytes) -> bytes:
    return (
        b"PM"  # pmSig
        + bytes(2)  # pmSigPad
        + map_count.to_bytes(4, "big")  # pmMapBlkCnt
        + start.to_bytes(4, "big")  # pmPyPartStart
        + count.to_bytes(4, "big")  # pmPartBlkCnt
        + name.ljust(32, b"\0")  # pmPartName
        + kind.ljust(32, b"\0")  # pmParType
        + (0).to_bytes(4, "big")  # pmLgDataStart
        + count.to_bytes(4, "big")  # pmDataCnt
        + (0x37).to_bytes(4, "big")  # pmPartStatus: valid, allocated, in use, readable, writable
    ).ljust(SECTOR, b"\0")


APM_LAYOUT = [  # (name, type, first sector, sectors)
    (b"Apple", b"Apple_partition_map", 1, 63),
    (b"Macintosh", b"Apple_Driver_ATAPI", 64, 8),
    (b"Mac_OS_X", b"Apple_HFS", 72, HFS_SECTORS),
    (b"", b"Apple_Free", 72 + HFS_SECTORS, 10),
]


def apm_disk() -> bytes:
    ddm = (
        b"ER"  # sbSig
        + (512).to_bytes(2, "big")  # sbBlkSize
        + TOTAL.to_bytes(4, "big")  # sbBlkCount
        + bytes(8)  # device type, id, data
        + (1).to_bytes(2, "big")  # sbDrvrCount
        + (64).to_bytes(4, "big")  # ddBlock: the driver partition
        + (8).to_bytes(2, "big")  # ddSize
        + (0x0701).to_bytes(2, "big")  # ddType
    ).ljust(SECTOR, b"\0")
    entries = b"".join(
        apm_entry(len(APM_LAYOUT), start, count, name, kind)
        for name, kind, start, count in APM_LAYOUT
    )
    apm = entries.ljust(63 * SECTOR, b"\0")
    return ddm + apm + bytes(8 * SECTOR) + hfs_plus_volume(HFS_SECTORS) + bytes(10 * SECTOR)


APM_EXPECTED = [
    Partition(number, name.decode(), kind.decode(), start, count, "apm")
    for number, (name, kind, start, count) in enumerate(APM_LAYOUT, start=1)
]


def apm_udif() -> bytes:
    """The APM disk as NetBoot.dmg: one blkx entry per map entry, plus the DDM."""
    disk = apm_disk()

    def part(name: str, ident: int, start: int, count: int, zero: int | None = 2) -> Part:
        return Part(name, ident, disk[start * SECTOR : (start + count) * SECTOR], 0x80000005, zero)

    return build_image(
        [
            part("Driver Descriptor Map (DDM : 0)", -1, 0, 1),
            part("Apple (Apple_partition_map : 1)", 0, 1, 63),
            part("Macintosh (Apple_Driver_ATAPI : 2)", 1, 64, 8),
            part("Mac_OS_X (Apple_HFS : 3)", 2, 72, HFS_SECTORS),
            Part(" (Apple_Free : 4)", 3, bytes(10 * SECTOR), ChunkType.ZLIB, ChunkType.IGNORE),
        ]
    )


def test_apm_of_a_raw_disk() -> None:
    disk = apm_disk()
    assert detect_format(io.BytesIO(disk)) == ImageFormat.APPLE_PARTITION_MAP
    assert read_partitions(reader_of(disk), len(disk)) == ("apm", APM_EXPECTED)


def test_apm_inside_a_udzo_image(tmp_path: Path) -> None:
    path = write(tmp_path, apm_udif())
    with UdifImage.open(path) as image:
        assert image.size == TOTAL * SECTOR
        assert image.partitions() == APM_EXPECTED
        assert [name for name, _ in image.verify().tables] == [
            "Driver Descriptor Map (DDM : 0)",
            "Apple (Apple_partition_map : 1)",
            "Macintosh (Apple_Driver_ATAPI : 2)",
            "Mac_OS_X (Apple_HFS : 3)",
            " (Apple_Free : 4)",
        ]
        hfs = APM_EXPECTED[2]
        volume = image.read(hfs.first_sector * SECTOR, hfs.sector_count * SECTOR)
    assert volume == hfs_plus_volume(HFS_SECTORS)


def sevenzip_partitions(path: Path, kind: str) -> list[tuple[int, int]]:
    """(byte offset, byte size) of each partition as 7-Zip's `kind` handler lists them."""
    listing = subprocess.run(
        [require_tool("7zz"), "l", "-slt", f"-t{kind}", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sizes = [int(value) for value in re.findall(r"^Size = (\d+)$", listing, re.MULTILINE)]
    offsets = [int(value) for value in re.findall(r"^Offset = (\d+)$", listing, re.MULTILINE)]
    return sorted(zip(offsets, sizes, strict=True))


def test_7zip_and_dmg2img_see_the_same_apm(tmp_path: Path) -> None:
    dmg2img = require_tool("dmg2img")
    path = write(tmp_path, apm_udif())
    raw = tmp_path / "disk.img"
    subprocess.run([dmg2img, "-s", str(path), str(raw)], capture_output=True, check=True)
    assert raw.read_bytes() == apm_disk()
    ours = [(p.first_sector * SECTOR, p.sector_count * SECTOR) for p in APM_EXPECTED]
    assert sevenzip_partitions(raw, "apm") == ours


def test_apm_on_2048_byte_blocks_counts_in_those_blocks() -> None:
    # No entry at 512: the map was written for 2048-byte blocks (Linux mac.c reads
    # entries at multiples of the DDM block size, counting in those blocks).
    disk = bytearray(64 * 2048)
    disk[0:8] = b"ER" + (2048).to_bytes(2, "big") + (64).to_bytes(4, "big")
    disk[2048 : 2048 + SECTOR] = apm_entry(2, 1, 2, b"Apple", b"Apple_partition_map")
    disk[4096 : 4096 + SECTOR] = apm_entry(2, 10, 20, b"CD", b"Apple_HFS")
    assert read_partitions(reader_of(bytes(disk)), len(disk)) == (
        "apm",
        [
            Partition(1, "Apple", "Apple_partition_map", 4, 8, "apm"),
            Partition(2, "CD", "Apple_HFS", 40, 80, "apm"),
        ],
    )


def test_apm_with_2048_byte_ddm_but_512_byte_entries() -> None:
    disk = bytearray(apm_disk())
    disk[2:4] = (2048).to_bytes(2, "big")  # entries are still at 512, 1024, ...
    assert read_partitions(reader_of(bytes(disk)), len(disk)) == ("apm", APM_EXPECTED)


# -- GPT ---------------------------------------------------------------------------

HFS_GUID = "48465300-0000-11AA-AA11-00306543ECAC"
APFS_GUID = "7C3457EF-0000-11AA-AA11-00306543ECAC"
EFI_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ODD_GUID = "01234567-89AB-CDEF-0123-456789ABCDEF"


def gpt_disk(
    partitions: list[tuple[str, int, int, str]], sectors: int = 4096, lba: int = SECTOR
) -> bytearray:
    """A GPT disk: protective MBR, header in LBA 1, 128 entries of 128 bytes from LBA 2."""
    disk = bytearray(sectors * SECTOR)
    mbr_entry = b"\x00" + bytes(3) + b"\xee" + bytes(3) + struct.pack("<II", 1, sectors - 1)
    disk[446:462] = mbr_entry
    disk[510:512] = b"\x55\xaa"
    table = bytearray(128 * 128)
    for number, (kind, first, last, name) in enumerate(partitions):
        table[number * 128 : (number + 1) * 128] = (
            uuid.UUID(kind).bytes_le  # partition type GUID
            + uuid.UUID(int=number + 1).bytes_le  # unique partition GUID
            + struct.pack("<QQQ", first, last, 0)  # first LBA, last LBA, attributes
            + name.encode("utf-16-le").ljust(72, b"\0")  # name
        )
    header = bytearray(
        b"EFI PART"
        + struct.pack("<IIII", 0x00010000, 92, 0, 0)  # revision, size, CRC (later), reserved
        + struct.pack("<QQQQ", 1, sectors * SECTOR // lba - 1, 34, sectors * SECTOR // lba - 34)
        + uuid.UUID(int=99).bytes_le  # disk GUID
        + struct.pack("<QIII", 2, 128, 128, zlib.crc32(table))  # entries LBA, count, size, CRC
    )
    header[16:20] = zlib.crc32(header).to_bytes(4, "little")
    disk[lba : lba + len(header)] = header
    disk[2 * lba : 2 * lba + len(table)] = table
    return disk


GPT_LAYOUT = [
    (EFI_GUID, 40, 409, "EFI System Partition"),
    (HFS_GUID, 410, 2409, "Mac_OS_X"),
    (APFS_GUID, 2410, 3409, "Macintosh HD"),
    (ODD_GUID, 3410, 4000, "unknown"),
]
GPT_EXPECTED = [
    Partition(1, "EFI System Partition", "EFI System", 40, 370, "gpt"),
    Partition(2, "Mac_OS_X", "Apple_HFS", 410, 2000, "gpt"),
    Partition(3, "Macintosh HD", "Apple_APFS", 2410, 1000, "gpt"),
    Partition(4, "unknown", ODD_GUID, 3410, 591, "gpt"),
]


def test_gpt_of_a_raw_disk() -> None:
    disk = bytes(gpt_disk(GPT_LAYOUT))
    assert detect_format(io.BytesIO(disk)) == ImageFormat.GPT
    assert read_partitions(reader_of(disk), len(disk)) == ("gpt", GPT_EXPECTED)


def test_gpt_inside_a_udif_image_matches_7zip(tmp_path: Path) -> None:
    disk = bytes(gpt_disk(GPT_LAYOUT))
    path = write(tmp_path, build_image([Part("whole disk (GUID_partition_scheme : 0)", -1, disk)]))
    with UdifImage.open(path) as image:
        assert image.partitions() == GPT_EXPECTED
    raw = write(tmp_path, disk, "disk.img")
    ours = [(p.first_sector * SECTOR, p.sector_count * SECTOR) for p in GPT_EXPECTED]
    assert sevenzip_partitions(raw, "gpt") == ours


def test_gpt_on_4096_byte_sectors() -> None:
    disk = bytes(gpt_disk([(HFS_GUID, 6, 105, "big")], sectors=8192, lba=4096))
    assert read_partitions(reader_of(disk), len(disk)) == (
        "gpt",
        [Partition(1, "big", "Apple_HFS", 48, 800, "gpt")],
    )


def test_gpt_with_a_bad_header_crc_is_refused() -> None:
    disk = gpt_disk(GPT_LAYOUT)
    disk[512 + 40] ^= 1  # first usable LBA changed after the CRC was computed
    with pytest.raises(UdifError, match=r"disk\.img: at byte 528: GPT header CRC32"):
        read_partitions(reader_of(bytes(disk)), len(disk), "disk.img")


def test_gpt_with_a_bad_entries_crc_is_refused() -> None:
    disk = gpt_disk(GPT_LAYOUT)
    disk[1024 + 40] ^= 1
    with pytest.raises(UdifError, match="at byte 1024: GPT partition entries CRC32"):
        read_partitions(reader_of(bytes(disk)), len(disk), "disk.img")


def test_gpt_partition_past_the_disk_is_refused() -> None:
    disk = bytes(gpt_disk([(HFS_GUID, 40, 9999, "too big")]))
    with pytest.raises(UdifError, match="past the 2097152-byte disk"):
        read_partitions(reader_of(disk), len(disk), "disk.img")


# -- MBR and bare volumes --------------------------------------------------------------


def test_mbr_partitions() -> None:
    disk = bytearray(4096 * SECTOR)
    disk[446:462] = b"\x80" + bytes(3) + b"\x0c" + bytes(3) + struct.pack("<II", 2048, 1024)
    disk[462:478] = b"\x00" + bytes(3) + b"\x83" + bytes(3) + struct.pack("<II", 3072, 1024)
    disk[478:494] = b"\x00" + bytes(3) + b"\x42" + bytes(3) + struct.pack("<II", 100, 10)
    disk[510:512] = b"\x55\xaa"
    assert read_partitions(reader_of(bytes(disk)), len(disk)) == (
        "mbr",
        [
            Partition(1, "", "FAT32", 2048, 1024, "mbr"),
            Partition(2, "", "Linux", 3072, 1024, "mbr"),
            Partition(3, "", "0x42", 100, 10, "mbr"),
        ],
    )


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        (hfs_plus_volume(64), Partition(0, "", "Apple_HFS", 0, 64, "none")),
        (hfs_plus_volume(64, b"HX", 5), Partition(0, "", "Apple_HFSX", 0, 64, "none")),
    ],
)
def test_bare_hfs_plus_volume(volume: bytes, expected: Partition) -> None:
    assert read_partitions(reader_of(volume), len(volume)) == ("none", [expected])


def test_bare_apfs_container() -> None:
    volume = bytearray(128 * SECTOR)
    volume[32:36] = b"NXSB"  # after the 32-byte object header
    volume[36:40] = (4096).to_bytes(4, "little")  # nx_block_size
    volume[40:48] = (8).to_bytes(8, "little")  # nx_block_count
    assert read_partitions(reader_of(bytes(volume)), len(volume)) == (
        "none",
        [Partition(0, "", "Apple_APFS", 0, 64, "none")],
    )


def test_bare_classic_hfs_volume_names_itself() -> None:
    volume = bytearray(64 * SECTOR)
    volume[1024:1026] = b"BD"  # drSigWord
    volume[1024 + 36 : 1024 + 44] = b"\x07NetBoot"  # drVN
    assert read_partitions(reader_of(bytes(volume)), len(volume)) == (
        "none",
        [Partition(0, "NetBoot", "Apple_HFS", 0, 64, "none")],
    )


def test_unrecognised_content_has_no_partitions() -> None:
    assert read_partitions(reader_of(bytes(4096)), 4096) == ("none", [])
    assert read_partitions(reader_of(b""), 0) == ("none", [])


def test_broken_apm_maps_are_refused() -> None:
    disk = bytearray(apm_disk())
    disk[512 + 4 : 512 + 8] = (100000).to_bytes(4, "big")  # map count
    with pytest.raises(UdifError, match="at byte 512: partition map claims 100000 entries"):
        read_partitions(reader_of(bytes(disk)), len(disk), "disk.img")
    disk = bytearray(apm_disk())
    disk[3 * 512 : 3 * 512 + 2] = b"XX"  # entry 3 lost its signature
    with pytest.raises(UdifError, match="at byte 1536: partition map entry 3 has no 'PM'"):
        read_partitions(reader_of(bytes(disk)), len(disk), "disk.img")
    disk = bytearray(apm_disk())
    disk[3 * 512 + 12 : 3 * 512 + 16] = (99999).to_bytes(4, "big")  # HFS partition size
    with pytest.raises(UdifError, match=r"apm partition 3 \(Apple_HFS\) ends at byte"):
        read_partitions(reader_of(bytes(disk)), len(disk), "disk.img")


SIGNATURES = [
    (0, b"ER"),
    (512, b"PM"),
    (512, b"EFI PART"),
    (1024, b"H+"),
    (1024, b"BD"),
    (32, b"NXSB"),
    (510, b"\x55\xaa"),
]


@settings(max_examples=300)
@given(
    st.binary(min_size=0, max_size=6000),
    st.lists(st.sampled_from(SIGNATURES), max_size=3),
)
def test_any_bytes_give_partitions_or_udif_error(
    noise: bytes, planted: list[tuple[int, bytes]]
) -> None:
    disk = bytearray(noise)
    for at, signature in planted:
        disk[at : at + len(signature)] = signature
    try:
        scheme, partitions = read_partitions(reader_of(bytes(disk)), len(disk), "fuzz.img")
    except UdifError as error:
        assert str(error).startswith("fuzz.img: at byte ")
    else:
        assert scheme in ("apm", "gpt", "mbr", "none")
        for partition in partitions:
            assert (partition.first_sector + partition.sector_count) * SECTOR <= len(disk)
