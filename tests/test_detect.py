"""detect_format: telling disk image formats apart by their magic numbers.

Layouts: UDIF koly trailer from docs/protocols/udif.md §2 (signature,
version 4 and header size 512, big-endian, in the last 512 bytes); APM, GPT,
MBR, HFS+/HFSX and APFS offsets as documented in netboot/udif/detect.py and in
the respective on-disk specifications (Apple "Inside Macintosh: Devices" for
the Driver Descriptor Map and partition map, UEFI 2.x section 5 for GPT, TN1150
for the HFS+ volume header, Apple File System Reference for NXSB).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.udif.detect import ImageFormat, detect_format


def require_tool(name: str) -> str:
    """Path of `name` on PATH, or skip the test saying which tool is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH")
    return path


def put(buffer: bytearray, offset: int, data: bytes) -> bytearray:
    buffer[offset : offset + len(data)] = data
    return buffer


def detect(data: bytes | bytearray) -> ImageFormat:
    return detect_format(io.BytesIO(bytes(data)))


def koly_trailer(*, version: int = 4, header_size: int = 512, signature: bytes = b"koly") -> bytes:
    trailer = (
        signature  # 0: signature "koly"
        + version.to_bytes(4, "big")  # 4: version, 4
        + header_size.to_bytes(4, "big")  # 8: header size, 512
        + (1).to_bytes(4, "big")  # 12: flags, flattened
    )
    return trailer + bytes(512 - len(trailer))


def udif(
    data_fork: bytes = bytes(4096),
    *,
    version: int = 4,
    header_size: int = 512,
    signature: bytes = b"koly",
) -> bytes:
    trailer = koly_trailer(version=version, header_size=header_size, signature=signature)
    return data_fork + trailer


def ddm(block_size: int = 512) -> bytes:
    """Driver Descriptor Map, block 0 of an APM disk."""
    return (
        b"ER"  # 0: sbSig
        + block_size.to_bytes(2, "big")  # 2: sbBlkSize
        + (8).to_bytes(4, "big")  # 4: sbBlkCount
    )


def partition_map_entry() -> bytes:
    return (
        b"PM"  # 0: pmSig
        + bytes(2)  # 2: pmSigPad
        + (2).to_bytes(4, "big")  # 4: pmMapBlkCnt
        + (1).to_bytes(4, "big")  # 8: pmPyPartStart
        + (2).to_bytes(4, "big")  # 12: pmPartBlkCnt
        + b"Apple".ljust(32, b"\x00")  # 16: pmPartName
        + b"Apple_partition_map".ljust(32, b"\x00")  # 48: pmParType
    )


def apm(block_size: int = 512, size: int = 8192) -> bytes:
    buffer = put(bytearray(size), 0, ddm(block_size))
    return bytes(put(buffer, block_size, partition_map_entry()))


def protective_mbr() -> bytes:
    entry = (
        b"\x00"  # 0: status, not bootable
        + b"\x00\x02\x00"  # 1: CHS first
        + b"\xee"  # 4: type, GPT protective
        + b"\xff\xff\xff"  # 5: CHS last
        + (1).to_bytes(4, "little")  # 8: first LBA
        + (0xFFFF_FFFF).to_bytes(4, "little")  # 12: sector count
    )
    return bytes(446) + entry + bytes(48) + b"\x55\xaa"


def gpt(sector: int = 512, size: int = 16384) -> bytes:
    buffer = put(bytearray(size), 0, protective_mbr())
    header = (
        b"EFI PART"  # 0: signature
        + b"\x00\x00\x01\x00"  # 8: revision 1.0
        + (92).to_bytes(4, "little")  # 12: header size
    )
    return bytes(put(buffer, sector, header))


def mbr_entry(*, status: int = 0x80, part_type: int = 0x83) -> bytes:
    return (
        bytes([status])  # 0: status, 0x80 = active
        + b"\x20\x21\x00"  # 1: CHS first
        + bytes([part_type])  # 4: partition type
        + b"\xfe\xff\xff"  # 5: CHS last
        + (2048).to_bytes(4, "little")  # 8: first LBA
        + (4096).to_bytes(4, "little")  # 12: sector count
    )


def mbr(slot: int = 0, **entry: int) -> bytes:
    buffer = put(bytearray(8192), 446 + 16 * slot, mbr_entry(**entry))
    return bytes(put(buffer, 510, b"\x55\xaa"))


def fat_boot_sector() -> bytes:
    """A FAT16 volume boot record: jump, OEM name, BPB, boot code, 0x55AA; no table."""
    sector = (
        b"\xeb\x3c\x90"  # 0: jump to boot code
        + b"MSDOS5.0"  # 3: OEM name
        + (512).to_bytes(2, "little")  # 11: bytes per sector
        + b"\x04"  # 13: sectors per cluster
        + (4).to_bytes(2, "little")  # 14: reserved sectors
        + b"\x02"  # 16: number of FATs
        + (512).to_bytes(2, "little")  # 17: root entries
        + (16384).to_bytes(2, "little")  # 19: total sectors
        + b"\xf8"  # 21: media descriptor
        + (16).to_bytes(2, "little")  # 22: sectors per FAT
    )
    sector = sector.ljust(0x3E, b"\x00")
    sector += b"\x0e\x1f\xbe\x5b\x7c\xac\x22\xc0\x74\x0b"  # 0x3E: boot code
    sector += b"This is not a bootable disk.\r\n"
    sector = sector.ljust(510, b"\x00") + b"\x55\xaa"
    return sector + bytes(8192 - 512)


def volume_header(signature: bytes, version: int, size: int = 8192) -> bytes:
    header = signature + version.to_bytes(2, "big")  # 1024: signature, version
    return bytes(put(bytearray(size), 1024, header))


def apfs(size: int = 8192) -> bytes:
    return bytes(put(bytearray(size), 32, b"NXSB"))  # 32: nx_magic after the object header


def sparseimage(size: int = 4096) -> bytes:
    return bytes(put(bytearray(size), 0, b"sprs" + (3).to_bytes(4, "big")))


# --- one good vector per format ---------------------------------------------------------

GOOD_VECTORS = [
    pytest.param(udif(), ImageFormat.UDIF, id="udif"),
    pytest.param(koly_trailer(), ImageFormat.UDIF, id="udif-trailer-only"),
    pytest.param(udif(apm()), ImageFormat.UDIF, id="udif-wins-over-raw-apm-data-fork"),
    pytest.param(apm(512), ImageFormat.APPLE_PARTITION_MAP, id="apm-512"),
    pytest.param(apm(2048), ImageFormat.APPLE_PARTITION_MAP, id="apm-2048"),
    pytest.param(apm(1024), ImageFormat.APPLE_PARTITION_MAP, id="apm-1024"),
    pytest.param(apm(4096), ImageFormat.APPLE_PARTITION_MAP, id="apm-4096"),
    pytest.param(
        bytes(put(bytearray(ddm(2048).ljust(4096, b"\x00")), 512, b"PM")),
        ImageFormat.APPLE_PARTITION_MAP,
        id="apm-2048-ddm-with-map-at-512",
    ),
    pytest.param(
        bytes(put(bytearray(4096), 512, partition_map_entry())),
        ImageFormat.APPLE_PARTITION_MAP,
        id="apm-without-ddm",
    ),
    pytest.param(gpt(512), ImageFormat.GPT, id="gpt-512"),
    pytest.param(gpt(4096), ImageFormat.GPT, id="gpt-4096"),
    pytest.param(mbr(), ImageFormat.MBR, id="mbr-active"),
    pytest.param(mbr(status=0x00), ImageFormat.MBR, id="mbr-inactive"),
    pytest.param(mbr(slot=3, part_type=0x07), ImageFormat.MBR, id="mbr-last-slot"),
    pytest.param(protective_mbr(), ImageFormat.MBR, id="protective-mbr-without-gpt"),
    pytest.param(volume_header(b"H+", 4), ImageFormat.HFS_PLUS, id="hfs-plus"),
    pytest.param(volume_header(b"HX", 5), ImageFormat.HFSX, id="hfsx"),
    pytest.param(apfs(), ImageFormat.APFS, id="apfs"),
    pytest.param(sparseimage(), ImageFormat.SPARSE_IMAGE, id="sparseimage"),
    pytest.param(b"", ImageFormat.EMPTY, id="empty"),
]

# --- look-alikes that must not be taken for the real thing -----------------------------

NOT_QUITE_VECTORS = [
    pytest.param(b"this is a text file, not a disk image\n" * 100, id="text"),
    pytest.param(bytes(8192), id="all-zero"),
    pytest.param(fat_boot_sector(), id="fat-boot-sector-without-partitions"),
    pytest.param(bytes(510) + b"\x55\xaa", id="boot-signature-only"),
    pytest.param(mbr(status=0x12), id="mbr-entry-with-invalid-status"),
    pytest.param(mbr(part_type=0x00), id="mbr-entry-with-type-zero"),
    pytest.param(udif(version=3), id="koly-version-3"),
    pytest.param(udif(version=0x0400_0000), id="koly-version-little-endian"),
    pytest.param(udif(header_size=256), id="koly-header-size-256"),
    pytest.param(udif(signature=b"KOLY"), id="koly-upper-case"),
    pytest.param(udif() + bytes(1), id="koly-not-at-eof"),
    pytest.param(koly_trailer()[:511], id="koly-trailer-truncated"),
    pytest.param(bytes(put(bytearray(4096), 0, ddm(512))), id="ddm-without-map"),
    pytest.param(bytes(put(bytearray(4096), 513, b"PM")), id="pm-at-wrong-offset"),
    pytest.param(bytes(put(bytearray(8192), 512, b"EFI PAR")), id="efi-part-cut-short"),
    pytest.param(bytes(put(bytearray(8192), 2048, b"EFI PART")), id="efi-part-at-2048"),
    pytest.param(volume_header(b"H+", 5), id="hfs-plus-with-hfsx-version"),
    pytest.param(volume_header(b"HX", 4), id="hfsx-with-hfs-plus-version"),
    pytest.param(volume_header(b"BD", 0), id="classic-hfs"),
    pytest.param(bytes(put(bytearray(8192), 0, b"NXSB")), id="nxsb-at-0"),
    pytest.param(bytes(put(bytearray(8192), 4, b"sprs")), id="sprs-not-at-0"),
]


@pytest.mark.parametrize(("data", "expected"), GOOD_VECTORS)
def test_format_is_recognised(data: bytes, expected: ImageFormat) -> None:
    assert detect(data) is expected


@pytest.mark.parametrize("data", NOT_QUITE_VECTORS)
def test_look_alike_is_unknown(data: bytes) -> None:
    assert detect(data) is ImageFormat.UNKNOWN


@pytest.mark.parametrize("sector", [512, 4096])
def test_gpt_wins_over_its_protective_mbr(sector: int) -> None:
    data = gpt(sector)
    assert data[510:512] == b"\x55\xaa"
    assert data[446 + 4] == 0xEE
    assert detect(data) is ImageFormat.GPT


def test_koly_with_wrong_version_is_not_udif_but_head_still_counts() -> None:
    assert detect(udif(apm(), version=5)) is ImageFormat.APPLE_PARTITION_MAP


# --- short files: under 512 bytes there is no trailer and no MBR ---------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"\x00", ImageFormat.UNKNOWN, id="one-byte"),
        pytest.param(b"sprs", ImageFormat.SPARSE_IMAGE, id="sprs-only"),
        pytest.param(b"ER\x02\x00", ImageFormat.UNKNOWN, id="ddm-only"),
        pytest.param(koly_trailer()[:12], ImageFormat.UNKNOWN, id="koly-fields-only"),
        pytest.param(bytes(32) + b"NXSB", ImageFormat.APFS, id="apfs-magic-only"),
        pytest.param(bytes(511), ImageFormat.UNKNOWN, id="511-zero-bytes"),
        pytest.param(bytes(509) + b"\x55\xaa", ImageFormat.UNKNOWN, id="boot-signature-at-509"),
        pytest.param(b"x" * 100 + koly_trailer()[:12], ImageFormat.UNKNOWN, id="koly-tail"),
    ],
)
def test_file_shorter_than_a_sector_is_classified_without_error(
    data: bytes, expected: ImageFormat
) -> None:
    assert len(data) < 512
    assert detect(data) is expected


@pytest.mark.parametrize(
    ("data", "magic_end", "expected", "truncated"),
    [
        pytest.param(apm(512), 514, ImageFormat.APPLE_PARTITION_MAP, ImageFormat.UNKNOWN, id="apm"),
        pytest.param(
            volume_header(b"H+", 4), 1028, ImageFormat.HFS_PLUS, ImageFormat.UNKNOWN, id="hfs-plus"
        ),
        # Cut inside "EFI PART", what is left is the protective MBR.
        pytest.param(gpt(512), 520, ImageFormat.GPT, ImageFormat.MBR, id="gpt"),
        pytest.param(apfs(), 36, ImageFormat.APFS, ImageFormat.UNKNOWN, id="apfs"),
    ],
)
def test_truncated_twin_of_good_vector_loses_its_format(
    data: bytes, magic_end: int, expected: ImageFormat, truncated: ImageFormat
) -> None:
    assert detect(data[:magic_end]) is expected
    assert detect(data[: magic_end - 1]) is truncated


# --- is_servable ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [
        ImageFormat.UDIF,
        ImageFormat.APPLE_PARTITION_MAP,
        ImageFormat.GPT,
        ImageFormat.MBR,
        ImageFormat.HFS_PLUS,
        ImageFormat.HFSX,
        ImageFormat.APFS,
    ],
)
def test_disk_and_volume_formats_are_servable(fmt: ImageFormat) -> None:
    assert fmt.is_servable is True


@pytest.mark.parametrize("fmt", [ImageFormat.SPARSE_IMAGE, ImageFormat.EMPTY, ImageFormat.UNKNOWN])
def test_sparseimage_empty_and_unknown_are_not_servable(fmt: ImageFormat) -> None:
    assert fmt.is_servable is False


def test_every_format_has_a_good_vector() -> None:
    covered = {param.values[1] for param in GOOD_VECTORS} | {ImageFormat.UNKNOWN}
    assert covered == set(ImageFormat)


# --- real files ---------------------------------------------------------------------


def test_detects_format_of_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "NetBoot.dmg"
    path.write_bytes(udif())
    with path.open("rb") as stream:
        assert detect_format(stream) is ImageFormat.UDIF


def test_xorriso_hfsplus_image_is_apple_partition_map(tmp_path: Path) -> None:
    xorriso = require_tool("xorriso")
    content = tmp_path / "content"
    content.mkdir()
    (content / "hello.txt").write_text("hello\n")
    iso = tmp_path / "hybrid.iso"
    subprocess.run(
        [xorriso, "-as", "mkisofs", "-quiet", "-hfsplus", "-o", str(iso), str(content)],
        check=True,
        capture_output=True,
    )
    with iso.open("rb") as stream:
        fmt = detect_format(stream)
    assert fmt is ImageFormat.APPLE_PARTITION_MAP
    assert fmt.is_servable


def test_xorriso_plain_iso9660_is_unknown(tmp_path: Path) -> None:
    xorriso = require_tool("xorriso")
    content = tmp_path / "content"
    content.mkdir()
    (content / "hello.txt").write_text("hello\n")
    iso = tmp_path / "plain.iso"
    subprocess.run(
        [xorriso, "-as", "mkisofs", "-quiet", "-o", str(iso), str(content)],
        check=True,
        capture_output=True,
    )
    with iso.open("rb") as stream:
        assert detect_format(stream) is ImageFormat.UNKNOWN


# --- hypothesis -----------------------------------------------------------------------

MAGICS = [
    (0, b"sprs"),
    (0, b"ER\x02\x00"),
    (0, b"ER\x08\x00"),
    (32, b"NXSB"),
    (446, mbr_entry()),
    (510, b"\x55\xaa"),
    (512, b"PM"),
    (512, b"EFI PART"),
    (1024, b"H+\x00\x04"),
    (1024, b"HX\x00\x05"),
    (2048, b"PM"),
    (4096, b"EFI PART"),
]


@st.composite
def images_with_magic(draw: st.DrawFn) -> bytes:
    """Random bytes with some real magic numbers spliced in at their offsets."""
    buffer = bytearray(draw(st.binary(max_size=10 * 1024)))
    for offset, magic in draw(st.lists(st.sampled_from(MAGICS), max_size=4)):
        put(buffer, offset, magic)
    if draw(st.booleans()):
        del buffer[draw(st.sampled_from([0, 1, 511, 512, 513])) :]
    if draw(st.booleans()):
        buffer += koly_trailer(version=draw(st.sampled_from([3, 4])))
    return bytes(buffer)


@settings(max_examples=200)
@given(st.binary(max_size=10 * 1024))
def test_any_bytes_give_a_format_without_raising(data: bytes) -> None:
    fmt = detect(data)
    assert isinstance(fmt, ImageFormat)
    assert (fmt is ImageFormat.EMPTY) == (data == b"")


@settings(max_examples=200)
@given(images_with_magic())
def test_bytes_with_magic_numbers_give_a_format_without_raising(data: bytes) -> None:
    assert isinstance(detect(data), ImageFormat)


@settings(max_examples=100)
@given(st.binary(max_size=10 * 1024))
def test_valid_koly_trailer_at_eof_is_udif_whatever_precedes_it(data_fork: bytes) -> None:
    assert detect(udif(data_fork)) is ImageFormat.UDIF
