"""Corrupt, truncated and lying images: each fault is a UdifError naming the image and an offset.

The matrix follows the bad inputs of issue #7: truncated trailer, wrong magic,
plist out of bounds or unparsable, bad mish tables, chunk data past the data
fork, chunks that inflate to the wrong size, zip bombs, lying checksums and
unknown chunk types. A property test then flips bytes anywhere in a small image
and checks that nothing but UdifError ever escapes.
"""

from __future__ import annotations

import io
import plistlib
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netboot.errors import UdifError
from netboot.udif.blkx import BlockTable, Chunk, ChunkType
from netboot.udif.reader import UdifImage
from netboot.udif.resources import BlkxEntry, build_resources
from netboot.udif.trailer import Checksum, Koly
from tests.test_udif_chunks import zlib_bomb
from tests.test_udif_reader_builder import Part, build_image, sample_disk, whole_disk, write

SECTOR = 512
RAW = sample_disk(64, seed=3)


def good() -> bytes:
    """Two entries, zlib chunks of 16 sectors: small enough to mutate by hand."""
    return build_image(
        [
            Part("first (Apple_HFS : 0)", -1, RAW[: 32 * SECTOR]),
            Part("second (Apple_HFS : 1)", 0, RAW[32 * SECTOR :]),
        ],
        chunk_sectors=16,
    )


def koly_of(data: bytes) -> Koly:
    return Koly.parse(data[-512:], "x", 0)


def with_koly(data: bytes, **changes: object) -> bytes:
    return data[:-512] + replace(koly_of(data), **changes).build()  # type: ignore[arg-type]


def image_of(
    chunks: list[tuple[int, int, bytes]],
    *,
    table_sectors: int | None = None,
    crc: int | None = None,
) -> bytes:
    """One entry made of explicit (type, sectors, stored bytes) chunks; checksums absent."""
    fork, entries, sector = b"", [], 0
    for kind, sectors, stored in chunks:
        entries.append(Chunk(kind, 0, sector, sectors, len(fork), len(stored)))
        fork += stored
        sector += sectors
    entries.append(Chunk(ChunkType.TERMINATOR, 0, sector, 0, len(fork), 0))
    checksum = Checksum.none() if crc is None else Checksum.of_crc32(crc)
    count = sector if table_sectors is None else table_sectors
    table = BlockTable(0, count, 0, 0, 0, checksum, tuple(entries))
    xml = build_resources([BlkxEntry(-1, "whole disk (Apple_HFS : 0)", "0x0050", table)])
    koly = replace(
        koly_of(whole_disk(bytes(SECTOR))),
        data_fork_length=len(fork),
        data_checksum=Checksum.none(),
        master_checksum=Checksum.none(),
        xml_offset=len(fork),
        xml_length=len(xml),
        sector_count=count,
    )
    return fork + xml + koly.build()


def assert_names_image_and_offset(error: UdifError, path: Path, offset: int | None = None) -> None:
    message = str(error)
    assert message.startswith(f"{path}: at byte "), message
    match = re.match(rf"{re.escape(str(path))}: at byte (\d+): ", message)
    assert match is not None and int(match.group(1)) == error.offset
    if offset is not None:
        assert error.offset == offset, message


def open_fails(tmp_path: Path, data: bytes, pattern: str, offset: int | None = None) -> UdifError:
    path = write(tmp_path, data, "bad.dmg")
    with pytest.raises(UdifError, match=pattern) as caught:
        UdifImage.open(path)
    assert_names_image_and_offset(caught.value, path, offset)
    return caught.value


def read_fails(tmp_path: Path, data: bytes, pattern: str, offset: int | None = None) -> None:
    path = write(tmp_path, data, "bad.dmg")
    with UdifImage.open(path) as image:
        with pytest.raises(UdifError, match=pattern) as caught:
            image.read(0, image.size)
        assert_names_image_and_offset(caught.value, path, offset)
        with pytest.raises(UdifError, match=pattern):
            image.copy_raw(io.BytesIO())
        report = image.verify()
    assert not report.ok
    assert "error" in [status for _, status in report.tables]
    assert any(re.search(pattern, problem) for problem in report.problems)


# -- the trailer ------------------------------------------------------------------


def test_a_file_shorter_than_a_trailer(tmp_path: Path) -> None:
    open_fails(tmp_path, good()[-300:], "truncated trailer: the file is 300 bytes", 0)


def test_a_file_cut_inside_its_trailer(tmp_path: Path) -> None:
    data = good()[:-100]
    open_fails(tmp_path, data, "no koly trailer", len(data) - 512)


def test_an_empty_file(tmp_path: Path) -> None:
    open_fails(tmp_path, b"", "truncated trailer", 0)


@pytest.mark.parametrize(
    ("at", "value", "pattern"),
    [
        (0, b"KOLY", "no koly trailer"),
        (4, b"\0\0\0\5", "koly version 5"),
        (8, b"\0\0\1\0", "header size 256"),
    ],
)
def test_a_wrong_magic_version_or_header_size(
    tmp_path: Path, at: int, value: bytes, pattern: str
) -> None:
    data = bytearray(good())
    start = len(data) - 512
    data[start + at : start + at + 4] = value
    open_fails(tmp_path, bytes(data), pattern, start + at if at else start)


def test_xml_past_the_end_of_the_file(tmp_path: Path) -> None:
    data = good()
    koly = koly_of(data)
    trailer = len(data) - 512
    for changes in (
        {"xml_offset": len(data) + 10},
        {"xml_length": koly.xml_length + 600},
        {"xml_offset": 1 << 62},
    ):
        open_fails(
            tmp_path,
            with_koly(data, **changes),
            "property list at .* runs past the trailer",
            trailer + 216,
        )


def test_data_fork_past_the_end_of_the_file(tmp_path: Path) -> None:
    data = good()
    open_fails(
        tmp_path,
        with_koly(data, data_fork_length=len(data)),
        "data fork at 0\\+\\d+ runs past the trailer",
        len(data) - 512 + 24,
    )


def test_neither_plist_nor_resource_fork(tmp_path: Path) -> None:
    data = with_koly(good(), xml_length=0)
    open_fails(tmp_path, data, "names no property list and no resource fork", len(data) - 512 + 216)


def test_segmented_images_are_refused(tmp_path: Path) -> None:
    data = with_koly(good(), segment_number=1, segment_count=3)
    open_fails(tmp_path, data, "segment 1 of 3: segmented images", len(data) - 512 + 56)


def test_an_oversized_plist_is_refused(tmp_path: Path) -> None:
    data = good()
    koly = koly_of(data)
    padding = bytes(17 << 20)
    data = data[: koly.xml_offset] + padding + data[koly.xml_offset :]
    data = with_koly(data, xml_offset=koly.xml_offset, xml_length=len(padding) + koly.xml_length)
    open_fails(tmp_path, data, "exceeds 16 MiB", koly.xml_offset)


# -- the property list --------------------------------------------------------------


def replace_xml(data: bytes, xml: bytes) -> bytes:
    koly = koly_of(data)
    body = data[: koly.xml_offset] + xml
    return body + replace(koly, xml_length=len(xml)).build()


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda xml: b"\x00garbage" * 100, "property list does not parse"),
        (lambda xml: xml[: len(xml) // 2], "property list does not parse"),
        (lambda xml: xml.replace(b"<data>", b"<data>A", 1), "property list does not parse"),
        (
            lambda xml: xml.replace(b"resource-fork", b"resource-spoon"),
            "no resource-fork dictionary",
        ),
        (lambda xml: xml.replace(b"<key>blkx</key>", b"<key>blkz</key>"), "no blkx array"),
        (
            lambda xml: xml.replace(b"<key>Data</key>", b"<key>Datum</key>", 1),
            "blkx 0: no Data blob",
        ),
        (
            lambda xml: xml.replace(b"<string>-1</string>", b"<string>minus one</string>"),
            "ID 'minus one'",
        ),
        (
            lambda xml: xml.replace(b"<!DOCTYPE", b'<!DOCTYPE x [<!ENTITY a "b">]><!DOCTYPE'),
            "property list does not parse",
        ),
    ],
    ids=[
        "garbage",
        "truncated",
        "bad base64",
        "no resource fork",
        "no blkx",
        "no data",
        "bad id",
        "entity",
    ],
)
def test_a_bad_plist(tmp_path: Path, mutate: Callable[[bytes], bytes], pattern: str) -> None:
    data = good()
    koly = koly_of(data)
    xml = data[koly.xml_offset : koly.xml_offset + koly.xml_length]
    open_fails(tmp_path, replace_xml(data, mutate(xml)), pattern, koly.xml_offset)


def mutate_mish(data: bytes, change: Callable[[bytes], bytes]) -> bytes:
    """Decode the plist, rewrite the first blkx Data blob, encode it again."""
    koly = koly_of(data)
    root = plistlib.loads(data[koly.xml_offset : koly.xml_offset + koly.xml_length])
    blob = root["resource-fork"]["blkx"][0]
    blob["Data"] = change(blob["Data"])
    return replace_xml(data, plistlib.dumps(root))


def test_a_mish_with_a_bad_signature(tmp_path: Path) -> None:
    data = mutate_mish(good(), lambda mish: b"MISH" + mish[4:])
    open_fails(tmp_path, data, "blkx 0 'first \\(Apple_HFS : 0\\)': block table signature b'MISH'")


def test_a_mish_with_a_gap_between_chunks(tmp_path: Path) -> None:
    def gap(mish: bytes) -> bytes:  # second chunk starts one sector late
        at = 204 + 40 + 8
        first = struct.unpack_from(">Q", mish, at)[0]
        return mish[:at] + struct.pack(">Q", first + 1) + mish[at + 8 :]

    open_fails(
        tmp_path, mutate_mish(good(), gap), "chunk 1 \\(type zlib\\): gap: starts at sector 17"
    )


def test_a_mish_with_overlapping_chunks(tmp_path: Path) -> None:
    def overlap(mish: bytes) -> bytes:  # first chunk claims 20 sectors instead of 16
        at = 204 + 16
        return mish[:at] + struct.pack(">Q", 20) + mish[at + 8 :]

    open_fails(tmp_path, mutate_mish(good(), overlap), "chunk 1 \\(type zlib\\): overlap")


def test_a_mish_whose_chunks_do_not_fill_it(tmp_path: Path) -> None:
    def longer(mish: bytes) -> bytes:
        return mish[:16] + struct.pack(">Q", 40) + mish[24:]

    open_fails(
        tmp_path, mutate_mish(good(), longer), "chunks cover 32 sectors, the table claims 40"
    )


def test_tables_that_overlap_each_other(tmp_path: Path) -> None:
    data = good()
    koly = koly_of(data)
    root = plistlib.loads(data[koly.xml_offset : koly.xml_offset + koly.xml_length])
    second = root["resource-fork"]["blkx"][1]
    second["Data"] = second["Data"][:8] + struct.pack(">Q", 5) + second["Data"][16:]  # 1st sector
    pattern = "blkx 0 and 1 overlap at sector 5"
    open_fails(tmp_path, replace_xml(data, plistlib.dumps(root)), pattern, koly.xml_offset)


def test_chunk_data_past_the_data_fork(tmp_path: Path) -> None:
    data = good()
    fork_length = koly_of(data).data_fork_length

    def past(mish: bytes) -> bytes:
        at = 204 + 24  # chunk 0's data offset
        return mish[:at] + struct.pack(">Q", fork_length - 10) + mish[at + 8 :]

    error = open_fails(tmp_path, mutate_mish(data, past), "runs past the data fork end")
    assert error.offset == fork_length - 10


def test_a_chunk_over_the_64_mib_cap(tmp_path: Path) -> None:
    data = image_of([(ChunkType.ZLIB, 2 * 131072, zlib.compress(b""))])
    open_fails(tmp_path, data, "exceeds the 64 MiB chunk limit", 0)


# -- chunks that do not decode as promised ----------------------------------------------


def test_a_zlib_chunk_that_inflates_to_fewer_bytes(tmp_path: Path) -> None:
    stored = zlib.compress(RAW[: 8 * SECTOR])
    data = image_of([(ChunkType.RAW, 2, RAW[:1024]), (ChunkType.ZLIB, 16, stored)])
    read_fails(tmp_path, data, "zlib chunk inflates to 4096 bytes, its entry claims 8192", 1024)


def test_a_zlib_chunk_that_inflates_to_more_bytes(tmp_path: Path) -> None:
    stored = zlib.compress(RAW[: 16 * SECTOR])
    data = image_of([(ChunkType.ZLIB, 8, stored)])
    read_fails(tmp_path, data, "zlib chunk inflates to more than the 4096 bytes", 0)


def test_a_corrupt_zlib_chunk(tmp_path: Path) -> None:
    stored = bytearray(zlib.compress(RAW[: 16 * SECTOR]))
    stored[10:30] = bytes(20)
    data = image_of([(ChunkType.RAW, 1, RAW[:512]), (ChunkType.ZLIB, 16, bytes(stored))])
    read_fails(tmp_path, data, "zlib chunk does not decode", 512)


def test_a_raw_chunk_of_the_wrong_length(tmp_path: Path) -> None:
    data = image_of([(ChunkType.RAW, 2, RAW[:1000])])
    read_fails(tmp_path, data, "raw chunk stores 1000 bytes, its entry claims 1024", 0)


def test_an_unknown_chunk_type(tmp_path: Path) -> None:
    data = image_of([(ChunkType.RAW, 1, RAW[:512]), (0x80000010, 4, b"future compression")])
    read_fails(tmp_path, data, "unknown chunk type 0x80000010", 512)


def test_a_zip_bomb_fails_fast_without_inflating(tmp_path: Path) -> None:
    bomb = zlib_bomb()  # 1 GiB of zeros in about 1 MB, claiming 2048 sectors (1 MiB)
    data = image_of([(ChunkType.ZLIB, 2048, bomb)])
    path = write(tmp_path, data, "bomb.dmg")
    with UdifImage.open(path) as image:
        with pytest.raises(UdifError, match="inflates to more than the 1048576 bytes") as caught:
            image.read(100, 10)
        assert_names_image_and_offset(caught.value, path, 0)
        report = image.verify()
    assert report.tables == [("whole disk (Apple_HFS : 0)", "error")]


# -- lying checksums: open works, verify says which ---------------------------------------


def test_a_lying_table_checksum(tmp_path: Path) -> None:
    data = mutate_mish(good(), lambda mish: mish[:72] + b"\xde\xad\xbe\xef" + mish[76:])
    path = write(tmp_path, data, "liar.dmg")
    with UdifImage.open(path) as image:
        assert image.read(0, image.size) == RAW
        report = image.verify()
    assert report.tables == [
        ("first (Apple_HFS : 0)", "invalid"),
        ("second (Apple_HFS : 1)", "valid"),
    ]
    # the master checksum covers the stored table CRCs, so it no longer matches either
    assert (report.data_fork, report.master) == ("valid", "invalid")
    assert f"{path}: blkx 0 'first (Apple_HFS : 0)': CRC32 is" in report.problems[0]
    assert "the table says DEADBEEF" in report.problems[0]


def test_a_lying_data_fork_checksum(tmp_path: Path) -> None:
    data = with_koly(good(), data_checksum=Checksum.of_crc32(0x12345678))
    with UdifImage.open(write(tmp_path, data, "liar.dmg")) as image:
        report = image.verify()
    assert (report.data_fork, report.master) == ("invalid", "valid")
    assert not report.ok
    assert "data fork CRC32 is" in report.problems[0]
    assert "the trailer says 12345678" in report.problems[0]


def test_a_lying_master_checksum(tmp_path: Path) -> None:
    data = with_koly(good(), master_checksum=Checksum.of_crc32(1))
    with UdifImage.open(write(tmp_path, data, "liar.dmg")) as image:
        report = image.verify()
    assert (report.data_fork, report.master) == ("valid", "invalid")
    assert [status for _, status in report.tables] == ["valid", "valid"]
    assert "master CRC32 is" in report.problems[0]


def test_ignore_chunks_are_left_out_of_the_table_checksum(tmp_path: Path) -> None:
    raw = RAW[: 8 * SECTOR] + bytes(8 * SECTOR) + RAW[: 8 * SECTOR]
    zeros_skipped = zlib.crc32(RAW[: 8 * SECTOR] * 2)
    with_zeros = zlib.crc32(raw)
    for crc, status in ((zeros_skipped, "valid"), (with_zeros, "invalid")):
        data = image_of(
            [
                (ChunkType.ZLIB, 8, zlib.compress(RAW[: 8 * SECTOR])),
                (ChunkType.IGNORE, 8, b""),
                (ChunkType.RAW, 8, RAW[: 8 * SECTOR]),
            ],
            crc=crc,
        )
        with UdifImage.open(write(tmp_path, data, "ignore.dmg")) as image:
            assert image.read(0, image.size) == raw
            assert image.verify().tables[0][1] == status


def test_zero_fill_chunks_count_in_the_table_checksum(tmp_path: Path) -> None:
    raw = RAW[: 8 * SECTOR] + bytes(8 * SECTOR)
    data = image_of(
        [(ChunkType.RAW, 8, RAW[: 8 * SECTOR]), (ChunkType.ZERO, 8, b"")], crc=zlib.crc32(raw)
    )
    with UdifImage.open(write(tmp_path, data, "zero.dmg")) as image:
        assert image.verify().tables[0][1] == "valid"


def test_an_unreadable_file_is_a_udif_error(tmp_path: Path) -> None:
    with pytest.raises(UdifError, match="cannot open") as caught:
        UdifImage.open(tmp_path / "missing.dmg")
    assert str(caught.value).startswith(f"{tmp_path / 'missing.dmg'}: cannot open")
    with pytest.raises(UdifError, match="Is a directory"):
        UdifImage.open(tmp_path)


# -- anything else: only UdifError -----------------------------------------------------------

SMALL = build_image(
    [
        Part("a (Apple_HFS : 0)", -1, sample_disk(6, seed=1), ChunkType.ZLIB),
        Part("b (Apple_HFS : 1)", 0, sample_disk(6, seed=2), ChunkType.BZIP2, ChunkType.ZERO),
    ],
    chunk_sectors=3,
    plst=False,
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=6)
)
def test_flipped_bytes_raise_only_udif_error(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SMALL)
    for at, value in flips:
        data[at] = value
    path = write(tmp_path, bytes(data), "fuzz.dmg")
    try:
        with UdifImage.open(path) as image:
            image.verify()
            image.read(0, min(image.size, 1 << 20))
            image.partitions()
    except UdifError as error:
        assert str(error).startswith(f"{path}: ")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, len(SMALL)))
def test_truncation_anywhere_raises_only_udif_error(tmp_path: Path, length: int) -> None:
    path = write(tmp_path, SMALL[:length], "cut.dmg")
    try:
        with UdifImage.open(path) as image:
            image.read(0, image.size)
    except UdifError as error:
        assert_names_image_and_offset(error, path)
