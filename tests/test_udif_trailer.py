"""The koly trailer, checksum records and mish tables: byte vectors and round trips.

The vectors are the worked example of docs/protocols/udif.md §9 (a 1 MiB
disk, one zlib chunk; it gives every non-zero row of both structures),
written here one field per line. Offsets are those of §2 and §5.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.errors import UdifError
from netboot.udif.blkx import BlockTable, Chunk, ChunkType, chunk_type_name
from netboot.udif.trailer import KOLY_SIZE, Checksum, Koly

U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def crc_record(value: int) -> bytes:
    return u32(2) + u32(32) + u32(value) + bytes(124)  # type CRC32, 32 bits, value, padding


# docs/protocols/udif.md §9, trailer.
EXAMPLE_KOLY = (
    b"koly"  # 0: signature
    + u32(4)  # 4: version
    + u32(512)  # 8: header size
    + u32(1)  # 12: flags, flattened
    + u64(0)  # 16: running data fork offset
    + u64(0)  # 24: data fork offset
    + u64(0x422)  # 32: data fork length, 1058
    + u64(0)  # 40: resource fork offset
    + u64(0)  # 48: resource fork length
    + u32(1)  # 56: segment number
    + u32(1)  # 60: segment count
    + bytes.fromhex("00112233445566778899aabbccddeeff")  # 64: segment id
    + crc_record(0x48316F01)  # 80: data fork checksum
    + u64(0x422)  # 216: XML offset
    + u64(0xF4C)  # 224: XML length, 3916
    + bytes(64)  # 232: reserved
    + u64(0)  # 296: code signature offset
    + u64(0)  # 304: code signature length
    + bytes(40)  # 312: reserved
    + crc_record(0xF7F3FE84)  # 352: master checksum
    + u32(1)  # 488: image variant, device image
    + u64(0x800)  # 492: sector count, 2048
    + bytes(12)  # 500: reserved
)
EXAMPLE_KOLY_FIELDS = Koly(
    version=4,
    flags=1,
    data_fork_offset=0,
    data_fork_length=1058,
    rsrc_fork_offset=0,
    rsrc_fork_length=0,
    segment_number=1,
    segment_count=1,
    segment_id=bytes.fromhex("00112233445566778899aabbccddeeff"),
    data_checksum=Checksum(2, 32, bytes.fromhex("48316f01")),
    xml_offset=1058,
    xml_length=3916,
    code_signature_offset=0,
    code_signature_length=0,
    master_checksum=Checksum(2, 32, bytes.fromhex("f7f3fe84")),
    image_variant=1,
    sector_count=2048,
)

# docs/protocols/udif.md §9, the mish blob (284 bytes = 204 + 2 x 40).
EXAMPLE_MISH = (
    b"mish"  # 0: signature
    + u32(1)  # 4: version
    + u64(0)  # 8: first sector
    + u64(0x800)  # 16: sector count
    + u64(0)  # 24: data start
    + u32(0x808)  # 32: decompress buffer, 2048 + 8 sectors
    + u32(0xFFFFFFFF)  # 36: blocks descriptor, -1
    + bytes(24)  # 40: reserved
    + crc_record(0xC12019B5)  # 64: CRC32 of the expanded partition
    + u32(2)  # 200: chunk count
    # chunk 0: zlib, comment 0, sectors 0..2047, data 0+1058
    + u32(0x80000005)
    + u32(0)
    + u64(0)
    + u64(0x800)
    + u64(0)
    + u64(0x422)
    # chunk 1: terminator at sector 2048, data offset 1058, length 0
    + u32(0xFFFFFFFF)
    + u32(0)
    + u64(0x800)
    + u64(0)
    + u64(0x422)
    + u64(0)
)
EXAMPLE_TABLE = BlockTable(
    first_sector=0,
    sector_count=2048,
    data_start=0,
    buffer_sectors=0x808,
    descriptor=0xFFFFFFFF,
    checksum=Checksum.of_crc32(0xC12019B5),
    chunks=(
        Chunk(ChunkType.ZLIB, 0, 0, 2048, 0, 1058),
        Chunk(ChunkType.TERMINATOR, 0, 2048, 0, 1058, 0),
    ),
)


def test_example_vectors_have_the_documented_sizes() -> None:
    assert len(EXAMPLE_KOLY) == KOLY_SIZE
    assert len(EXAMPLE_MISH) == 284


def test_koly_parses_the_worked_example() -> None:
    assert Koly.parse(EXAMPLE_KOLY, "example.dmg", 4974) == EXAMPLE_KOLY_FIELDS


def test_koly_builds_the_worked_example() -> None:
    assert EXAMPLE_KOLY_FIELDS.build() == EXAMPLE_KOLY


def test_checksum_crc32_reads_the_big_endian_value() -> None:
    assert EXAMPLE_KOLY_FIELDS.data_checksum.crc32 == 0x48316F01
    assert Checksum.none().crc32 is None
    assert Checksum(1, 32, bytes(4)).crc32 is None  # another type: not a CRC32
    assert Checksum(2, 16, bytes(2)).crc32 is None  # wrong size


def test_checksum_records_of_unknown_types_survive_a_round_trip() -> None:
    md5ish = Checksum(4, 128, bytes(range(16)))
    raw = md5ish.build()
    assert len(raw) == 136
    assert Checksum.parse(raw) == md5ish


def test_checksum_size_is_clamped_to_the_record() -> None:
    raw = u32(9) + u32(0xFFFFFFFF) + bytes(128)
    assert len(Checksum.parse(raw).value) == 128


@pytest.mark.parametrize("length", [0, 4, 511, 513])
def test_koly_of_the_wrong_length_is_a_truncated_trailer(length: int) -> None:
    with pytest.raises(UdifError, match=r"image\.dmg: at byte 77: truncated trailer"):
        Koly.parse(EXAMPLE_KOLY.ljust(length, b"\0")[:length], "image.dmg", 77)


@pytest.mark.parametrize(
    ("at", "value", "message", "where"),
    [
        (0, b"kolx", "no koly trailer", 100),
        (4, u32(3), "koly version 3", 104),
        (8, u32(1024), "koly header size 1024", 108),
    ],
)
def test_koly_rejects_a_wrong_signature_version_or_size(
    at: int, value: bytes, message: str, where: int
) -> None:
    raw = EXAMPLE_KOLY[:at] + value + EXAMPLE_KOLY[at + len(value) :]
    with pytest.raises(UdifError, match=message) as caught:
        Koly.parse(raw, "x.dmg", 100)
    assert caught.value.offset == where
    assert str(caught.value).startswith(f"x.dmg: at byte {where}: ")


def test_koly_build_refuses_fields_that_do_not_fit() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="segment id"):
        replace(EXAMPLE_KOLY_FIELDS, segment_id=b"short").build()
    with pytest.raises(ValueError, match="out of range"):
        replace(EXAMPLE_KOLY_FIELDS, sector_count=1 << 64).build()


checksums = st.one_of(
    st.just(Checksum.none()),
    U32.map(Checksum.of_crc32),
    st.integers(1, 128).flatmap(
        lambda size: st.builds(
            Checksum, U32, st.just(size * 8), st.binary(min_size=size, max_size=size)
        )
    ),
)


@settings(max_examples=150)
@given(
    st.builds(
        Koly,
        version=st.just(4),
        flags=U32,
        data_fork_offset=U64,
        data_fork_length=U64,
        rsrc_fork_offset=U64,
        rsrc_fork_length=U64,
        segment_number=U32,
        segment_count=U32,
        segment_id=st.binary(min_size=16, max_size=16),
        data_checksum=checksums,
        xml_offset=U64,
        xml_length=U64,
        code_signature_offset=U64,
        code_signature_length=U64,
        master_checksum=checksums,
        image_variant=U32,
        sector_count=U64,
        running_data_fork_offset=U64,
    )
)
def test_koly_round_trips(koly: Koly) -> None:
    raw = koly.build()
    assert len(raw) == KOLY_SIZE
    assert Koly.parse(raw, "x", 0) == koly


def test_mish_parses_the_worked_example() -> None:
    assert BlockTable.parse(EXAMPLE_MISH, "example.dmg", 1058) == EXAMPLE_TABLE


def test_mish_builds_the_worked_example() -> None:
    assert EXAMPLE_TABLE.build() == EXAMPLE_MISH


def test_mish_data_chunks_leave_out_markers() -> None:
    assert EXAMPLE_TABLE.data_chunks == (EXAMPLE_TABLE.chunks[0],)
    assert EXAMPLE_TABLE.chunks[0].has_data and not EXAMPLE_TABLE.chunks[1].has_data


@pytest.mark.parametrize("length", [0, 100, 203, 204, 243, 283])
def test_truncated_mish_is_refused(length: int) -> None:
    with pytest.raises(UdifError, match=r"t\.dmg: at byte 9: "):
        BlockTable.parse(EXAMPLE_MISH[:length], "t.dmg", 9)


def test_mish_with_a_bad_signature_or_version_is_refused() -> None:
    with pytest.raises(UdifError, match="signature b'mesh'"):
        BlockTable.parse(b"mesh" + EXAMPLE_MISH[4:], "t.dmg", 0)
    with pytest.raises(UdifError, match="version 2"):
        BlockTable.parse(EXAMPLE_MISH[:4] + u32(2) + EXAMPLE_MISH[8:], "t.dmg", 0)


def table_of(*chunks: Chunk, sectors: int) -> BlockTable:
    return BlockTable(0, sectors, 0, 0, 0, Checksum.none(), chunks)


def test_chunks_must_tile_the_table() -> None:
    zlib, end = ChunkType.ZLIB, ChunkType.TERMINATOR
    good = table_of(
        Chunk(ChunkType.COMMENT, 0x2B626567, 0, 0, 0, 0),  # "+beg" at the current end
        Chunk(zlib, 0, 0, 8, 0, 10),
        Chunk(ChunkType.IGNORE, 0, 8, 4, 0, 0),
        Chunk(end, 0, 12, 0, 0, 0),
        sectors=12,
    )
    good.validate("t", 0)
    assert BlockTable.parse(good.build(), "t", 0) == good
    cases = {
        "gap": table_of(Chunk(zlib, 0, 0, 8, 0, 1), Chunk(zlib, 0, 9, 3, 0, 1), sectors=12),
        "overlap": table_of(Chunk(zlib, 0, 0, 8, 0, 1), Chunk(zlib, 0, 7, 5, 0, 1), sectors=12),
        "cover 8 sectors": table_of(Chunk(zlib, 0, 0, 8, 0, 1), sectors=12),
        "terminator before": table_of(
            Chunk(end, 0, 0, 0, 0, 0), Chunk(zlib, 0, 0, 12, 0, 1), sectors=12
        ),
        "comment at sector 2": table_of(
            Chunk(zlib, 0, 0, 8, 0, 1),
            Chunk(ChunkType.COMMENT, 0, 2, 0, 0, 0),
            Chunk(zlib, 0, 8, 4, 0, 1),
            sectors=12,
        ),
    }
    for message, table in cases.items():
        with pytest.raises(UdifError, match=message):
            BlockTable.parse(table.build(), "t.dmg", 5)


def test_mish_claiming_more_chunks_than_it_holds_is_refused() -> None:
    raw = EXAMPLE_MISH[:200] + u32(3) + EXAMPLE_MISH[204:]
    with pytest.raises(UdifError, match="claims 3 chunks but holds room for 2"):
        BlockTable.parse(raw, "t.dmg", 0)


def test_chunk_type_names() -> None:
    assert chunk_type_name(0x80000005) == "zlib"
    assert chunk_type_name(2) == "ignore"
    assert chunk_type_name(0x80000009) == "0x80000009"


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(ChunkType)[:8]), st.integers(1, 4096), U32), max_size=20
    ),
    U64,
    U32,
)
def test_mish_round_trips(
    runs: list[tuple[ChunkType, int, int]], data_start: int, descriptor: int
) -> None:
    chunks, sector = [], 0
    for kind, count, length in runs:
        chunks.append(Chunk(kind, 0, sector, count, sector * 7, length))
        sector += count
    chunks.append(Chunk(ChunkType.TERMINATOR, 0, sector, 0, 0, 0))
    table = BlockTable(
        12, sector, data_start, 2056, descriptor, Checksum.of_crc32(sector), tuple(chunks)
    )
    assert BlockTable.parse(table.build(), "t", 0) == table
