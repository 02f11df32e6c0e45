"""UdifImage: the worked example, random access, whole-image passes, and other readers' views.

Images come from the hand-layout builder in test_udif_reader_builder (not from
the project's writer). The worked example of docs/protocols/udif.md §9 is
rebuilt byte for byte from its documented koly and mish bytes. 7-Zip, dmg2img
and qemu-img are the independent readers the expanded bytes are compared with.
"""

from __future__ import annotations

import io
import plistlib
import struct
import subprocess
import threading
import tracemalloc
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netboot.errors import UdifError
from netboot.udif import reader as reader_module
from netboot.udif.blkx import BlockTable, Chunk, ChunkType
from netboot.udif.chunks import decode_chunk
from netboot.udif.reader import CACHE_BYTES, UdifImage
from netboot.udif.resources import BlkxEntry, build_resources, parse_resource_fork
from netboot.udif.trailer import Checksum, Koly
from tests.test_udif_reader_builder import (
    Part,
    build_image,
    require_tool,
    sample_disk,
    whole_disk,
    write,
)
from tests.test_udif_trailer import (
    EXAMPLE_KOLY,
    EXAMPLE_KOLY_FIELDS,
    EXAMPLE_MISH,
    EXAMPLE_TABLE,
)

SECTOR = 512

# -- the worked example (docs/protocols/udif.md §9) ----------------------------

EXAMPLE_RAW = b"NETBOOT-UDIF-EX\n" + bytes(1048576 - 16)
EXAMPLE_NAME = "whole disk (Apple_HFS : 0)"


def example_plist() -> bytes:
    """The 3916-byte plist: one blkx entry with the example mish, and a 1804-byte zero plst."""
    blkx = {
        "Attributes": "0x0050",
        "CFName": EXAMPLE_NAME,
        "Data": EXAMPLE_MISH,
        "ID": "-1",
        "Name": EXAMPLE_NAME,
    }
    plst = {"Attributes": "0x0050", "Data": bytes(1804), "ID": "0", "Name": ""}
    return plistlib.dumps({"resource-fork": {"blkx": [blkx], "plst": [plst]}})


def example_file() -> bytes:
    chunk = zlib.compress(EXAMPLE_RAW, 9)
    return chunk + example_plist() + EXAMPLE_KOLY


def test_the_worked_example_has_the_documented_sizes_and_crcs() -> None:
    chunk = zlib.compress(EXAMPLE_RAW, 9)
    assert len(chunk) == 1058
    assert len(example_plist()) == 3916
    assert len(example_file()) == 5486
    assert zlib.crc32(EXAMPLE_RAW) == 0xC12019B5
    assert zlib.crc32(chunk) == 0x48316F01
    assert zlib.crc32(bytes.fromhex("c12019b5")) == 0xF7F3FE84


def test_build_resources_writes_the_example_plist() -> None:
    entry = BlkxEntry(-1, EXAMPLE_NAME, "0x0050", EXAMPLE_TABLE)
    assert build_resources([entry]) == example_plist()


def test_the_builder_reproduces_the_example_byte_for_byte() -> None:
    assert whole_disk(EXAMPLE_RAW) == example_file()


def test_the_worked_example_opens_verifies_and_reads_back(tmp_path: Path) -> None:
    path = write(tmp_path, example_file(), "example.dmg")
    with UdifImage.open(path) as image:
        assert image.koly == EXAMPLE_KOLY_FIELDS
        assert image.size == 1048576
        assert [(e.id, e.name, e.attributes, e.table) for e in image.entries] == [
            (-1, EXAMPLE_NAME, "0x0050", EXAMPLE_TABLE)
        ]
        report = image.verify()
        assert report.ok, report.problems
        assert (report.data_fork, report.master) == ("valid", "valid")
        assert report.tables == [(EXAMPLE_NAME, "valid")]
        assert image.read(0, 16) == b"NETBOOT-UDIF-EX\n"
        assert image.read(0, image.size) == EXAMPLE_RAW
        assert image.read(image.size - 4, 100) == bytes(4)  # short at the end
        assert image.read(image.size, 10) == b""
        assert image.chunk_counts() == {"zlib": 1, "terminator": 1}
        assert image.partitions() == []


def test_the_worked_example_expands_the_same_in_7zip_and_dmg2img(tmp_path: Path) -> None:
    path = write(tmp_path, example_file(), "example.dmg")
    sevenzip, dmg2img = require_tool("7zz"), require_tool("dmg2img")
    tested = subprocess.run(
        [sevenzip, "t", "-tdmg", str(path)], capture_output=True, text=True, check=False
    )
    assert "Everything is Ok" in tested.stdout, tested.stdout
    out = tmp_path / "example.img"
    subprocess.run([dmg2img, "-s", str(path), str(out)], capture_output=True, check=True)
    assert out.read_bytes() == EXAMPLE_RAW


# -- a mixed image for random access ----------------------------------------------

MIXED_PARTS = [
    Part("Driver Descriptor Map (DDM : 0)", -1, b"ER" + bytes(510), ChunkType.RAW),
    Part("Apple (Apple_partition_map : 1)", 0, sample_disk(40, seed=1), ChunkType.ZLIB),
    Part("bzip (Apple_HFS : 2)", 1, sample_disk(100, seed=2), ChunkType.BZIP2, ChunkType.ZERO),
    Part("adc (Apple_HFS : 3)", 2, sample_disk(60, seed=3), ChunkType.ADC, skip=9),
    Part("lzfse (Apple_HFS : 4)", 3, sample_disk(70, seed=4), ChunkType.LZFSE),
    Part("xz (Apple_HFS : 5)", 4, sample_disk(50, seed=5), ChunkType.LZMA, None),
    Part(" (Apple_Free : 6)", 5, bytes(10 * SECTOR), ChunkType.ZLIB, ChunkType.IGNORE),
]
MIXED_RAW = b"".join(bytes(part.skip * SECTOR) + part.data for part in MIXED_PARTS)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = build_image(MIXED_PARTS, chunk_sectors=7, lead=b"LEAD" * 100, data_start=24)
    return write(tmp_path_factory.mktemp("mixed"), data, "mixed.dmg")


def test_mixed_image_reads_whole(mixed: Path) -> None:
    with UdifImage.open(mixed) as image:
        assert image.size == len(MIXED_RAW)
        assert image.read(0, image.size) == MIXED_RAW
        assert image.verify().ok


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, len(MIXED_RAW) + 600), st.integers(0, 9000))
def test_random_reads_match_the_raw_bytes(mixed: Path, offset: int, size: int) -> None:
    with UdifImage.open(mixed) as image:
        assert image.read(offset, size) == MIXED_RAW[offset : offset + size]


def test_reads_across_every_chunk_boundary(mixed: Path) -> None:
    with UdifImage.open(mixed) as image:
        for start, length, _, _ in image.iter_chunks():
            for at in (start - 1, start, start + length - 1):
                if at >= 0:
                    assert image.read(at, 3) == MIXED_RAW[at : at + 3]


def test_negative_offsets_are_a_programming_error(mixed: Path) -> None:
    with UdifImage.open(mixed) as image, pytest.raises(ValueError, match="negative"):
        image.read(-1, 4)


def test_iter_chunks_covers_the_tables_in_disk_order(mixed: Path) -> None:
    with UdifImage.open(mixed) as image:
        position = 0
        for start, length, chunk, entry in image.iter_chunks():
            if start != position:  # the 9 sectors no table covers, before the adc entry
                assert (position, start - position) == (141 * SECTOR, 9 * SECTOR)
                assert entry.name.startswith("adc")
            assert length == chunk.sector_count * SECTOR
            assert chunk.type not in (ChunkType.COMMENT, ChunkType.TERMINATOR)
            assert image.decoded(chunk, entry) == MIXED_RAW[start : start + length]
            position = start + length
        assert position == image.size


def test_chunk_counts_list_every_entry_type(mixed: Path) -> None:
    with UdifImage.open(mixed) as image:
        counts = image.chunk_counts()
    assert counts["terminator"] == 7
    assert counts["raw"] == 1
    assert {"zlib", "bzip2", "adc", "lzfse", "lzma", "ignore"} <= set(counts)


def test_long_zero_runs_come_out_in_one_mib_pieces(tmp_path: Path) -> None:
    raw = bytes(8192 * SECTOR) + b"tail" * 128
    path = write(tmp_path, whole_disk(raw, chunk_sectors=8192))
    with UdifImage.open(path) as image:
        pieces = list(image.iter_chunks())
        assert [length for _, length, _, _ in pieces] == [1 << 20] * 4 + [512]
        assert [chunk.first_sector for _, _, chunk, _ in pieces] == [0, 2048, 4096, 6144, 8192]
        assert image.read(0, image.size) == raw


def test_decoded_chunks_are_cached_within_a_bound(
    mixed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = decode_chunk

    def counting(kind: int, data: bytes, size: int, image: str, offset: int) -> bytes:
        calls.append(offset)
        return real(kind, data, size, image, offset)

    monkeypatch.setattr(reader_module, "decode_chunk", counting)
    with UdifImage.open(mixed) as image:
        image.read(1000, 10)
        image.read(1010, 10)
        assert len(calls) == 1
        image.read(0, image.size)
        assert image._cache_bytes <= CACHE_BYTES


def test_concurrent_reads_from_threads(mixed: Path) -> None:
    failures: list[int] = []
    with UdifImage.open(mixed) as image:

        def worker(seed: int) -> None:
            for step in range(200):
                offset = (seed * 7919 + step * 104729) % len(MIXED_RAW)
                if image.read(offset, 3000) != MIXED_RAW[offset : offset + 3000]:
                    failures.append(offset)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


# -- whole-image passes -------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_copy_raw_writes_the_expanded_image(mixed: Path, workers: int) -> None:
    out = io.BytesIO()
    progress: list[int] = []
    with UdifImage.open(mixed) as image:
        image.copy_raw(out, progress.append, workers=workers)
    assert out.getvalue() == MIXED_RAW
    assert sum(progress) == len(MIXED_RAW)


def test_copy_raw_pads_to_the_trailer_sector_count(tmp_path: Path) -> None:
    raw = sample_disk(100)
    path = write(tmp_path, whole_disk(raw, sector_count=150))
    out = io.BytesIO()
    with UdifImage.open(path) as image:
        assert image.size == 150 * SECTOR
        image.copy_raw(out)
    assert out.getvalue() == raw + bytes(50 * SECTOR)


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.crc = 0
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.crc = zlib.crc32(data, self.crc)
        self.count += len(data)
        return len(data)


def test_copy_raw_memory_stays_bounded(tmp_path: Path) -> None:
    raw = sample_disk(96 * 2048, seed=11)  # 96 MiB, 96 chunks
    path = write(tmp_path, whole_disk(raw))
    sink = _Sink()
    with UdifImage.open(path) as image:
        tracemalloc.start()
        try:
            image.copy_raw(sink, workers=2)  # type: ignore[arg-type]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (sink.count, sink.crc) == (len(raw), zlib.crc32(raw))
    assert peak < 16 << 20  # 2 x 2 chunks of 1 MiB in flight, plus buffers


def test_copy_raw_stops_at_a_corrupt_chunk(tmp_path: Path) -> None:
    raw = sample_disk(300)
    data = bytearray(whole_disk(raw, chunk_sectors=64))
    data[200:260] = bytes(60)  # inside the first zlib chunk
    path = write(tmp_path, bytes(data))
    with UdifImage.open(path) as image, pytest.raises(UdifError, match="zlib chunk"):
        image.copy_raw(io.BytesIO(), workers=2)


def test_verify_reports_progress_over_the_expanded_size(mixed: Path) -> None:
    progress: list[int] = []
    with UdifImage.open(mixed) as image:
        report = image.verify(progress.append)
    assert report.ok
    assert sum(progress) == len(MIXED_RAW) - 9 * SECTOR  # the uncovered gap is not checked
    assert [status for _, status in report.tables] == ["valid"] * 7


def test_verify_says_absent_and_unknown_type(tmp_path: Path) -> None:
    raw = sample_disk(20)
    data = bytearray(whole_disk(raw))
    trailer = len(data) - 512
    data[trailer + 80 : trailer + 88] = bytes(8)  # data fork checksum: type 0, 0 bits
    data[trailer + 352 : trailer + 360] = struct.pack(">II", 9, 32)  # master: type 9
    path = write(tmp_path, bytes(data))
    with UdifImage.open(path) as image:
        report = image.verify()
    assert (report.data_fork, report.master) == ("absent", "unknown type")
    assert report.ok


def test_a_libdmg_style_zero_sector_count_is_tolerated_and_reported(tmp_path: Path) -> None:
    raw = sample_disk(20)
    path = write(tmp_path, whole_disk(raw, sector_count=0))
    with UdifImage.open(path) as image:
        assert image.size == len(raw)
        assert image.read(0, image.size) == raw
        report = image.verify()
    assert not report.ok
    assert "trailer sector count 0, the tables end at sector 20" in report.problems[0]


# -- binary resource fork (pre-10.2 images) -------------------------------------------


def resource_fork(blobs: list[tuple[int, str, bytes]]) -> bytes:
    """A classic Mac resource fork holding `blobs` as `blkx` resources (id, name, data)."""
    data = b"".join(len(blob).to_bytes(4, "big") + blob for _, _, blob in blobs)
    names = b"".join(bytes([len(name)]) + name.encode("mac_roman") for _, name, _ in blobs)
    type_list = (
        (0).to_bytes(2, "big")  # one type, minus one
        + b"blkx"
        + (len(blobs) - 1).to_bytes(2, "big")
        + (10).to_bytes(2, "big")  # reference list: right after this 10-byte type list
    )
    refs, data_at, name_at = b"", 0, 0
    for ident, name, blob in blobs:
        refs += struct.pack(">hHB", ident, name_at, 0x50) + data_at.to_bytes(3, "big") + bytes(4)
        data_at += 4 + len(blob)
        name_at += 1 + len(name)
    map_body = bytes(16) + bytes(4) + bytes(2) + bytes(2)  # header copy, handle, ref, attributes
    type_list_at = len(map_body) + 4
    name_list_at = type_list_at + len(type_list) + len(refs)
    resource_map = (
        map_body + struct.pack(">HH", type_list_at, name_list_at) + type_list + refs + names
    )
    header = struct.pack(">IIII", 256, 256 + len(data), len(data), len(resource_map))
    return header + bytes(240) + data + resource_map


def test_a_binary_resource_fork_stands_in_for_the_plist(tmp_path: Path) -> None:
    raw = sample_disk(40)
    modern = UdifImage.open(write(tmp_path, whole_disk(raw), "modern.dmg"))
    with modern:
        koly, entry = modern.koly, modern.entries[0]
    data_fork = build_image([Part(entry.name, -1, raw)])[: koly.data_fork_length]
    rsrc = resource_fork([(-1, entry.name, entry.table.build())])
    old = Koly(
        **{
            **koly.__dict__,
            "rsrc_fork_offset": len(data_fork),
            "rsrc_fork_length": len(rsrc),
            "xml_offset": 0,
            "xml_length": 0,
        }
    )
    path = write(tmp_path, data_fork + rsrc + old.build(), "old.dmg")
    with UdifImage.open(path) as image:
        assert [(e.id, e.name, e.attributes) for e in image.entries] == [(-1, entry.name, "0x0050")]
        assert image.read(0, image.size) == raw
        assert image.verify().ok


def test_a_resource_fork_without_blkx_resources_is_refused() -> None:
    fork = bytearray(resource_fork([(-1, "x", b"")]))
    fork[fork.index(b"blkx")] = ord("c")
    with pytest.raises(UdifError, match="no blkx resources"):
        parse_resource_fork(bytes(fork), "old.dmg", 10)
    with pytest.raises(UdifError, match=r"old\.dmg: at byte 10: resource fork"):
        parse_resource_fork(b"\0\0\0", "old.dmg", 10)


# -- what independent readers expand ---------------------------------------------------


def test_dmg2img_and_7zip_expand_the_mixed_image_as_we_do(mixed: Path, tmp_path: Path) -> None:
    # dmg2img 1.6.7 knows neither LZFSE nor LZMA chunks (it skips them, "Unsupported or
    # corrupted block"), so the copy for it holds the other types, each in its own entry.
    dmg2img, sevenzip = require_tool("dmg2img"), require_tool("7zz")
    parts = [
        replace(part, skip=0)
        for part in MIXED_PARTS
        if part.kind not in (ChunkType.LZFSE, ChunkType.LZMA)
    ]
    raw = b"".join(part.data for part in parts)
    path = write(tmp_path, build_image(parts, chunk_sectors=7), "plain.dmg")
    out = tmp_path / "out.img"
    subprocess.run([dmg2img, "-s", str(path), str(out)], capture_output=True, check=True)
    ours = io.BytesIO()
    with UdifImage.open(path) as image:
        image.copy_raw(ours)
    assert out.read_bytes() == ours.getvalue() == raw
    tested = subprocess.run(
        [sevenzip, "t", "-tdmg", str(path)], capture_output=True, text=True, check=False
    )
    assert "Everything is Ok" in tested.stdout, tested.stdout


def test_qemu_img_converts_to_the_same_raw_bytes(tmp_path: Path) -> None:
    qemu_img = require_tool("qemu-img")
    raw = sample_disk(3000)
    path = write(tmp_path, whole_disk(raw, chunk_sectors=256))
    out = tmp_path / "qemu.raw"
    result = subprocess.run(
        [qemu_img, "convert", "-f", "dmg", "-O", "raw", str(path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == raw


def test_chunks_stored_out_of_partition_order_are_found_by_offset(tmp_path: Path) -> None:
    """hdiutil stores chunks out of partition order; only the recorded offsets count."""
    raw_a, raw_b = sample_disk(30, seed=1), sample_disk(30, seed=2)
    zipped_a, zipped_b = zlib.compress(raw_a), zlib.compress(raw_b)
    fork = zipped_b + zipped_a  # the second entry's chunk first

    def entry(
        ident: int, name: str, first: int, offset: int, stored: bytes, raw: bytes
    ) -> BlkxEntry:
        chunks = (
            Chunk(ChunkType.ZLIB, 0, 0, 30, offset, len(stored)),
            Chunk(ChunkType.TERMINATOR, 0, 30, 0, 0, 0),
        )
        table = BlockTable(
            first, 30, 0, 38, ident & 0xFFFFFFFF, Checksum.of_crc32(zlib.crc32(raw)), chunks
        )
        return BlkxEntry(ident, name, "0x0050", table)

    entries = [
        entry(-1, "a (Apple_HFS : 0)", 0, len(zipped_b), zipped_a, raw_a),
        entry(0, "b (Apple_HFS : 1)", 30, 0, zipped_b, raw_b),
    ]
    xml = build_resources(entries)
    master = zlib.crc32(struct.pack(">II", zlib.crc32(raw_a), zlib.crc32(raw_b)))
    koly = Koly(
        **{
            **EXAMPLE_KOLY_FIELDS.__dict__,
            "data_fork_length": len(fork),
            "data_checksum": Checksum.of_crc32(zlib.crc32(fork)),
            "xml_offset": len(fork),
            "xml_length": len(xml),
            "master_checksum": Checksum.of_crc32(master),
            "sector_count": 60,
        }
    )
    path = write(tmp_path, fork + xml + koly.build())
    with UdifImage.open(path) as image:
        assert image.read(0, image.size) == raw_a + raw_b
        assert image.verify().ok


class _Counter(io.RawIOBase):
    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.count += len(data)
        return len(data)


def test_a_sparse_16_gib_image_streams_in_bounded_memory(tmp_path: Path) -> None:
    sectors = 32 << 20  # 16 GiB, one ignore chunk and one sector of data
    chunks = (
        Chunk(ChunkType.RAW, 0, 0, 1, 0, SECTOR),
        Chunk(ChunkType.IGNORE, 0, 1, sectors - 1, 0, 0),
        Chunk(ChunkType.TERMINATOR, 0, sectors, 0, 0, 0),
    )
    table = BlockTable(0, sectors, 0, 9, 0, Checksum.of_crc32(zlib.crc32(b"S" * SECTOR)), chunks)
    xml = build_resources([BlkxEntry(-1, "sparse (Apple_HFS : 0)", "0x0050", table)])
    koly = Koly(
        **{
            **EXAMPLE_KOLY_FIELDS.__dict__,
            "data_fork_length": SECTOR,
            "data_checksum": Checksum.of_crc32(zlib.crc32(b"S" * SECTOR)),
            "xml_offset": SECTOR,
            "xml_length": len(xml),
            "master_checksum": Checksum.none(),
            "sector_count": sectors,
        }
    )
    path = write(tmp_path, b"S" * SECTOR + xml + koly.build())
    sink = _Counter()
    with UdifImage.open(path) as image:
        assert image.read(SECTOR - 2, 4) == b"SS\0\0"
        tracemalloc.start()
        try:
            image.copy_raw(sink)  # type: ignore[arg-type]
            report = image.verify()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert sink.count == 16 << 30
    assert report.ok, report.problems
    assert peak < 8 << 20
