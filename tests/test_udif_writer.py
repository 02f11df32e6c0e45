"""The UDIF writer: byte layout, checksums, chunk rules, layouts, and OUT never half-written.

Expected values come from docs/protocols/udif.md: the worked example of §9
(trailer and mish byte for byte), the checksum rules of §3, the chunk rules of
§5 and the SPUD layout of §6. Reading back uses the project's reader and
partition parser, which are written from the same document but not from this
code.
"""

from __future__ import annotations

import os
import plistlib
import random
import shutil
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pytest

from netboot.errors import UdifError
from netboot.udif.blkx import ChunkType
from netboot.udif.conversion import LayoutKind, OutputFormat
from netboot.udif.detect import ImageFormat
from netboot.udif.layout import plan_layout, plan_root_layout
from netboot.udif.partitions import read_partitions
from netboot.udif.reader import UdifImage
from netboot.udif.source import RawSource, SourceKind, open_source
from netboot.udif.writer import write_image
from tests.udif_disks import (
    content,
    hfs_volume,
    several_partitions_apm,
    small_gpt,
)

SECTOR = 512
MIB = 1 << 20
EXAMPLE_SEGMENT_ID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff").bytes


def raw_file(tmp_path: Path, data: bytes, name: str = "in.raw") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expanded(path: Path) -> bytes:
    with UdifImage.open(path) as image:
        return image.read(0, image.size)


def leftovers(directory: Path) -> list[str]:
    """Temporary files the writer would have left beside OUT."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# -- the worked example (docs/protocols/udif.md §9) ------------------------------------


def test_worked_example_is_reproduced_byte_for_byte(tmp_path: Path) -> None:
    source = raw_file(tmp_path, b"NETBOOT-UDIF-EX\n" + bytes(MIB - 16))
    out = tmp_path / "example.dmg"
    write_image(source, out, "UDZO", layout="bare", level=9, segment_id=EXAMPLE_SEGMENT_ID)
    image = out.read_bytes()
    koly = image[-512:]
    assert koly[0x00:0x10] == bytes.fromhex("6b6f6c79 00000004 00000200 00000001")
    assert koly[0x20:0x28] == (1058).to_bytes(8, "big")  # data fork length
    assert koly[0x38:0x40] == bytes.fromhex("00000001 00000001")  # segment 1 of 1
    assert koly[0x40:0x50] == EXAMPLE_SEGMENT_ID
    assert koly[0x50:0x5C] == bytes.fromhex("00000002 00000020 48316f01")  # data fork CRC32
    assert koly[0xD8:0xE0] == (1058).to_bytes(8, "big")  # XML right after the data fork
    assert koly[0x160:0x16C] == bytes.fromhex("00000002 00000020 f7f3fe84")  # master CRC32
    assert koly[0x1E8:0x1F4] == bytes.fromhex("00000001 0000000000000800")  # variant, sectors
    xml_length = int.from_bytes(koly[0xE0:0xE8], "big")
    assert 1058 + xml_length + 512 == len(image)
    with UdifImage.open(out) as udif:
        mish = udif.entries[0].table.build()
    assert mish == bytes.fromhex(
        "6d697368 00000001 0000000000000000 0000000000000800 0000000000000000"
        "00000808 ffffffff" + "00" * 24 + "00000002 00000020 c12019b5" + "00" * 124 + "00000002"
        "80000005 00000000 0000000000000000 0000000000000800 0000000000000000 0000000000000422"
        "ffffffff 00000000 0000000000000800 0000000000000000 0000000000000422 0000000000000000"
    )


def test_the_plist_follows_the_data_fork_and_ends_the_way_dmg2img_needs(tmp_path: Path) -> None:
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, hfs_volume(random.Random(1), 3 * MIB)), out, layout="apm")
    image = out.read_bytes()
    koly = image[-512:]
    data_length = int.from_bytes(koly[0x20:0x28], "big")
    xml_offset, xml_length = struct.unpack(">QQ", koly[0xD8:0xE8])
    assert xml_offset == data_length
    assert xml_offset + xml_length == len(image) - 512
    xml = image[xml_offset : xml_offset + xml_length]
    assert xml.endswith(b"</plist>\n")
    assert b'<plist version="1.0">' in xml
    fork = plistlib.loads(xml)["resource-fork"]
    assert [e["ID"] for e in fork["blkx"]] == ["-1", "0", "1", "2", "3"]
    assert all(e["Attributes"] == "0x0050" and e["CFName"] == e["Name"] for e in fork["blkx"])


# -- chunks and checksums -----------------------------------------------------------------


def test_zero_runs_become_one_ignore_chunk_and_random_runs_are_stored(tmp_path: Path) -> None:
    rng = random.Random(2)
    data = rng.randbytes(MIB) + bytes(5 * MIB) + (b"text " * 500_000)[: 2 * MIB]
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, data), out, layout="bare")
    with UdifImage.open(out) as image:
        chunks = image.entries[0].table.chunks
    kinds = [(c.type, c.first_sector, c.sector_count, c.data_length) for c in chunks]
    assert kinds[0] == (ChunkType.RAW, 0, 2048, MIB)  # zlib would not shrink random bytes
    assert kinds[1] == (ChunkType.IGNORE, 2048, 5 * 2048, 0)  # merged, stores nothing
    assert [k[0] for k in kinds[2:]] == [ChunkType.ZLIB, ChunkType.ZLIB, ChunkType.TERMINATOR]
    assert all(c.sector_count <= 2048 for c in chunks if c.type != ChunkType.IGNORE)
    assert expanded(out) == data


def test_table_checksum_skips_ignore_chunks_and_master_covers_the_tables(tmp_path: Path) -> None:
    rng = random.Random(3)
    data = hfs_volume(rng, MIB) + bytes(2 * MIB) + rng.randbytes(100_000)
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, data), out, layout="apm")
    with UdifImage.open(out) as image:
        tables = [e.table for e in image.entries]
        volume = tables[3]
        assert volume.checksum.crc32 == zlib.crc32(
            data[:MIB] + data[3 * MIB :] + bytes(-len(data) % SECTOR)
        )
        free = tables[4]
        assert [c.type for c in free.chunks] == [ChunkType.IGNORE, ChunkType.TERMINATOR]
        assert free.checksum.crc32 == 0 and free.buffer_sectors == 0
        assert volume.buffer_sectors == 2048 + 8
        master = zlib.crc32(b"".join(t.checksum.crc32.to_bytes(4, "big") for t in tables))  # type: ignore[union-attr]
        assert image.koly.master_checksum.crc32 == master
        report = image.verify()
    assert report.ok, report.problems
    assert (report.data_fork, report.master) == ("valid", "valid")
    assert {status for _, status in report.tables} == {"valid"}


def test_data_fork_checksum_is_over_the_stored_bytes(tmp_path: Path) -> None:
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, content(random.Random(4), 2 * MIB)), out)
    image = out.read_bytes()
    koly = image[-512:]
    length = int.from_bytes(koly[0x20:0x28], "big")
    assert int.from_bytes(koly[0x58:0x5C], "big") == zlib.crc32(image[:length])


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [("UDZO", ChunkType.ZLIB), ("UDRO", ChunkType.RAW), ("UDBZ", ChunkType.BZIP2),
     ("ULFO", ChunkType.LZFSE)],
)  # fmt: skip
def test_each_format_uses_its_chunk_type(tmp_path: Path, fmt: str, kind: ChunkType) -> None:
    data = (b"compressible " * 200_000)[: 2 * MIB]
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, data), out, fmt, layout="bare")
    with UdifImage.open(out) as image:
        assert {c.type for c in image.entries[0].table.data_chunks} == {kind}
        assert image.read(0, image.size) == data


def test_workers_do_not_change_a_single_byte(tmp_path: Path) -> None:
    source = raw_file(tmp_path, content(random.Random(5), 5 * MIB + 123))
    one, four = tmp_path / "one.dmg", tmp_path / "four.dmg"
    write_image(source, one, segment_id=EXAMPLE_SEGMENT_ID, workers=1)
    write_image(source, four, segment_id=EXAMPLE_SEGMENT_ID, workers=4)
    assert one.read_bytes() == four.read_bytes()


def test_smaller_chunks_make_more_entries_and_read_the_same(tmp_path: Path) -> None:
    data = content(random.Random(6), MIB)
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, data), out, layout="bare", chunk_sectors=64)
    with UdifImage.open(out) as image:
        data_chunks = [c for c in image.entries[0].table.chunks if c.has_data]
        assert len(data_chunks) > 1 and max(c.sector_count for c in data_chunks) <= 64
        assert image.entries[0].table.buffer_sectors == 64 + 8
        assert image.read(0, image.size) == data


def test_a_partial_last_sector_is_padded_with_zeros_and_its_length_kept(tmp_path: Path) -> None:
    out, back = tmp_path / "x.dmg", tmp_path / "back.raw"
    write_image(raw_file(tmp_path, b"\x01" * 513), out, layout="bare")
    assert expanded(out) == b"\x01" * 513 + bytes(511)
    write_image(out, back, OutputFormat.RAW)
    assert back.read_bytes() == b"\x01" * 513


def test_empty_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UdifError, match="empty"):
        write_image(raw_file(tmp_path, b""), tmp_path / "x.dmg")
    assert not (tmp_path / "x.dmg").exists()


@pytest.mark.parametrize("bad", [{"chunk_sectors": 0}, {"chunk_sectors": 4096}, {"workers": 0}])
def test_out_of_range_options_are_refused(tmp_path: Path, bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        write_image(raw_file(tmp_path, b"x" * 512), tmp_path / "x.dmg", **bad)  # type: ignore[arg-type]


def test_a_level_for_a_format_without_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UdifError, match="no compression level"):
        write_image(raw_file(tmp_path, b"x" * 512), tmp_path / "x.dmg", "UDRO", level=5)


def test_ulfo_without_lzfse_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lzfse", None)  # the import then raises ImportError
    with pytest.raises(UdifError, match="pip install lzfse"):
        write_image(raw_file(tmp_path, b"x" * 512), tmp_path / "x.dmg", "ULFO")
    assert not (tmp_path / "x.dmg").exists()


# -- layouts ------------------------------------------------------------------------------


def test_apm_layout_is_a_real_apple_partition_map(tmp_path: Path) -> None:
    volume = hfs_volume(random.Random(7), 2 * MIB)
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, volume), out, layout="apm")
    disk = expanded(out)
    volume_sectors = len(volume) // SECTOR
    total = 72 + volume_sectors + 10
    assert len(disk) == total * SECTOR
    assert disk[0:8] == b"ER" + struct.pack(">HI", 512, total)
    assert disk[72 * SECTOR : 72 * SECTOR + len(volume)] == volume
    scheme, partitions = read_partitions(lambda o, n: disk[o : o + n], len(disk))
    assert scheme == "apm"
    assert [(p.name, p.type, p.first_sector, p.sector_count) for p in partitions] == [
        ("Apple", "Apple_partition_map", 1, 63),
        ("Macintosh", "Apple_Driver_ATAPI", 64, 8),
        ("disk image", "Apple_HFS", 72, volume_sectors),
        ("", "Apple_Free", 72 + volume_sectors, 10),
    ]
    with UdifImage.open(out) as image:
        names = [(e.id, e.name, e.table.first_sector, e.table.sector_count) for e in image.entries]
        assert image.koly.sector_count == total
    assert names == [
        (-1, "Driver Descriptor Map (DDM : 0)", 0, 1),
        (0, "Apple (Apple_partition_map : 1)", 1, 63),
        (1, "Macintosh (Apple_Driver_ATAPI : 2)", 64, 8),
        (2, "disk image (Apple_HFS : 3)", 72, volume_sectors),
        (3, " (Apple_Free : 4)", 72 + volume_sectors, 10),
    ]


def test_bare_layout_is_one_whole_disk_entry(tmp_path: Path) -> None:
    volume = hfs_volume(random.Random(8), MIB)
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, volume), out, layout="bare")
    with UdifImage.open(out) as image:
        assert [(e.id, e.name) for e in image.entries] == [(-1, "whole disk (Apple_HFS : 0)")]
        assert image.read(0, image.size) == volume


def test_keep_layout_has_one_entry_per_apm_entry_and_keeps_every_byte(tmp_path: Path) -> None:
    disk = several_partitions_apm(random.Random(9))
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, disk), out)  # auto: a partitioned disk is kept
    with UdifImage.open(out) as image:
        spans = [(e.name, e.table.first_sector, e.table.sector_count) for e in image.entries]
        assert image.read(0, image.size) == disk
    assert spans == [
        ("Driver Descriptor Map (DDM : 0)", 0, 1),
        ("Apple (Apple_partition_map : 1)", 1, 63),
        ("Macintosh (Apple_Driver43 : 2)", 64, 56),
        (" (Apple_Free : 3)", 120, 8),  # unclaimed by the map, still written
        ("First (Apple_HFS : 4)", 128, 3000),
        (" (Apple_Free : 5)", 3128, 72),
        ("Second (Apple_HFS : 6)", 3200, 4000),
        (" (Apple_Free : 7)", 7200, 992),
    ]


def test_keep_layout_names_the_gpt_structures_as_hdiutil_does(tmp_path: Path) -> None:
    disk = small_gpt(random.Random(10))
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, disk), out, layout="keep")
    with UdifImage.open(out) as image:
        spans = [(e.id, e.name, e.table.first_sector, e.table.sector_count) for e in image.entries]
        assert image.read(0, image.size) == disk
    assert spans == [
        (-1, "Protective Master Boot Record (MBR : 0)", 0, 1),
        (0, "GPT Header (Primary GPT Header : 1)", 1, 1),
        (1, "GPT Partition Data (Primary GPT Table : 2)", 2, 32),
        (2, " (Apple_Free : 3)", 34, 6),
        (3, "Mac (Apple_HFS : 4)", 40, 2000),
        (4, " (Apple_Free : 5)", 2040, 8),
        (5, "linux (Linux filesystem : 6)", 2048, 2000),
        (6, " (Apple_Free : 7)", 4048, 15),
        (7, "GPT Partition Data (Backup GPT Table : 8)", 4063, 32),
        (8, "GPT Header (Backup GPT Header : 9)", 4095, 1),
    ]


def test_keep_layout_of_an_mbr_disk(tmp_path: Path) -> None:
    disk = bytearray(content(random.Random(18), MIB))
    disk[446:512] = bytes(66)
    for number, (kind, start, count) in enumerate([(0x83, 63, 700), (0x0C, 1024, 1000)]):
        struct.pack_into("<B3sB3sII", disk, 446 + 16 * number, 0, b"", kind, b"", start, count)
    disk[510:512] = b"\x55\xaa"
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, bytes(disk)), out)
    with UdifImage.open(out) as image:
        spans = [(e.name, e.table.first_sector, e.table.sector_count) for e in image.entries]
        assert image.read(0, image.size) == disk
    assert spans == [
        ("Master Boot Record (MBR : 0)", 0, 1),
        (" (Apple_Free : 1)", 1, 62),
        (" (Linux : 2)", 63, 700),
        (" (Apple_Free : 3)", 763, 261),
        (" (FAT32 : 4)", 1024, 1000),
        (" (Apple_Free : 5)", 2024, 24),
    ]


def test_keep_layout_of_a_udif_input_keeps_its_entries(tmp_path: Path) -> None:
    first = tmp_path / "first.dmg"
    write_image(raw_file(tmp_path, hfs_volume(random.Random(11), MIB)), first, layout="apm")
    second = tmp_path / "second.dmg"
    write_image(first, second, "UDRO")
    with UdifImage.open(first) as a, UdifImage.open(second) as b:
        assert [(e.id, e.name, e.table.first_sector) for e in a.entries] == [
            (e.id, e.name, e.table.first_sector) for e in b.entries
        ]
        assert a.read(0, a.size) == b.read(0, b.size)


def test_apm_around_a_partitioned_disk_is_refused(tmp_path: Path) -> None:
    source = raw_file(tmp_path, several_partitions_apm(random.Random(12)))
    with pytest.raises(UdifError, match="already has a partition map"):
        write_image(source, tmp_path / "x.dmg", layout="apm")


def test_auto_layout_keeps_a_bare_volume_bare_and_a_root_gets_the_map(tmp_path: Path) -> None:
    volume = hfs_volume(random.Random(13), MIB)
    with open_source(raw_file(tmp_path, volume)) as source:
        assert plan_layout(source).scheme == "bare"
        assert plan_root_layout(source).kind is LayoutKind.APM


@pytest.mark.parametrize("fmt", [OutputFormat.UDZO, OutputFormat.UDRO, OutputFormat.UDBZ])
@pytest.mark.parametrize("size", [1, 511, 512, 1_000_000, 3 * MIB])
@pytest.mark.parametrize("kind", ["random", "volume", "partitioned"])
def test_default_conversion_round_trips_every_input_to_the_byte(
    tmp_path: Path, fmt: OutputFormat, size: int, kind: str
) -> None:
    """What `hdiutil convert` promises: the disk's bytes never change (issue #18)."""
    rng = random.Random(size)
    data = {
        "random": lambda: rng.randbytes(size),
        "volume": lambda: hfs_volume(rng, max(size, 4096)),
        "partitioned": lambda: several_partitions_apm(rng),
    }[kind]()
    source, dmg, back = raw_file(tmp_path, data), tmp_path / "x.dmg", tmp_path / "back.raw"
    write_image(source, dmg, fmt)
    write_image(dmg, back, OutputFormat.RAW)
    assert back.read_bytes() == data
    again = tmp_path / "again.dmg"
    write_image(back, again, fmt)
    assert expanded(again)[: len(data)] == data


def test_apm_around_what_is_no_volume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UdifError, match="no HFS\\+, HFSX or APFS volume"):
        write_image(raw_file(tmp_path, random.Random(3).randbytes(MIB)), tmp_path / "x.dmg",
                    layout="apm")  # fmt: skip
    assert not (tmp_path / "x.dmg").exists()


def test_bare_layout_of_unknown_bytes_claims_no_partition_type(tmp_path: Path) -> None:
    out = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, random.Random(4).randbytes(4096)), out)
    with UdifImage.open(out) as image:
        names = [(e.id, e.name) for e in image.entries]
    assert names == [(-1, "whole disk (unknown partition : 0)")]


# -- raw output ---------------------------------------------------------------------------


def test_raw_output_is_the_expanded_disk_and_sparse(tmp_path: Path) -> None:
    volume = hfs_volume(random.Random(14), MIB) + bytes(16 * MIB)
    dmg = tmp_path / "x.dmg"
    write_image(raw_file(tmp_path, volume), dmg, layout="apm")
    raw = tmp_path / "x.raw"
    write_image(dmg, raw, "raw")
    assert raw.read_bytes() == expanded(dmg)
    assert raw.stat().st_blocks * 512 < 4 * MIB  # the 16 MiB of zeros are a hole
    wrapped = tmp_path / "wrapped.raw"
    write_image(tmp_path / "in.raw", wrapped, OutputFormat.RAW, layout="apm")
    assert wrapped.read_bytes() == raw.read_bytes()


# -- OUT is all or nothing ----------------------------------------------------------------


def test_existing_out_is_refused_then_replaced_with_overwrite(tmp_path: Path) -> None:
    source = raw_file(tmp_path, b"y" * 4096)
    out = tmp_path / "x.dmg"
    out.write_bytes(b"precious")
    with pytest.raises(UdifError, match="already exists"):
        write_image(source, out)
    assert out.read_bytes() == b"precious"
    write_image(source, out, overwrite=True)
    assert expanded(out) == b"y" * 4096  # auto: the input as it is
    assert leftovers(tmp_path) == []


class FailingSource(RawSource):
    """A raw source that fails (or is interrupted) once reading passes `fail_at`."""

    def __init__(self, path: Path, fail_at: int, error: BaseException):
        fd = os.open(path, os.O_RDONLY)
        super().__init__(str(path), fd, path.stat().st_size, SourceKind.RAW, ImageFormat.UNKNOWN)
        self.fail_at = fail_at
        self.error = error

    def read(self, offset: int, size: int) -> bytes:
        if offset + size > self.fail_at:
            raise self.error
        return super().read(offset, size)


@pytest.mark.parametrize(
    "error", [UdifError("in.raw", 3 * MIB, "read failed: Input/output error"), KeyboardInterrupt()]
)
@pytest.mark.parametrize("fmt", ["UDZO", "raw"])
def test_a_failure_half_way_leaves_no_out_and_no_temporary(
    tmp_path: Path, error: BaseException, fmt: str
) -> None:
    path = raw_file(tmp_path, content(random.Random(15), 6 * MIB))
    out = tmp_path / "x.dmg"
    with FailingSource(path, 3 * MIB, error) as source, pytest.raises(type(error)):
        write_image(source, out, fmt, layout="bare", workers=2)
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_a_failure_keeps_an_existing_out_as_it_was(tmp_path: Path) -> None:
    path = raw_file(tmp_path, content(random.Random(16), 4 * MIB))
    out = tmp_path / "x.dmg"
    out.write_bytes(b"old")
    failure = UdifError("in.raw", None, "boom")
    with FailingSource(path, MIB, failure) as source, pytest.raises(UdifError):
        write_image(source, out, overwrite=True)
    assert out.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


# -- sources ------------------------------------------------------------------------------


def test_sources_refuse_what_is_not_a_disk(tmp_path: Path) -> None:
    with pytest.raises(UdifError, match="is a directory"):
        open_source(tmp_path)
    with pytest.raises(UdifError, match="No such file"):
        open_source(tmp_path / "missing")
    sparse = raw_file(tmp_path, b"sprs" + bytes(8188), "x.sparseimage")
    with pytest.raises(UdifError, match="sparse image"):
        open_source(sparse)


def test_raw_source_reads_short_only_at_the_end(tmp_path: Path) -> None:
    with open_source(raw_file(tmp_path, bytes(range(256)) * 4)) as source:
        assert source.kind is SourceKind.RAW and source.size == 1024
        assert source.read(1000, 100) == (bytes(range(256)) * 4)[1000:]
        assert b"".join(source.iter_blocks(300)) == bytes(range(256)) * 4


@pytest.mark.root
def test_a_block_device_is_a_source(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup for a loop device")
    volume = hfs_volume(random.Random(17), 2 * MIB)
    backing = raw_file(tmp_path, volume)
    attached = subprocess.run(
        ["losetup", "--find", "--show", "--read-only", str(backing)],
        capture_output=True,
        text=True,
        check=False,
    )
    if attached.returncode != 0:
        pytest.skip(f"no loop device: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        with open_source(device) as source:
            assert (source.kind, source.size) == (SourceKind.DEVICE, len(volume))
        out = tmp_path / "x.dmg"
        write_image(device, out, layout="bare")
        assert expanded(out) == volume
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
