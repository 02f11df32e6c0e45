"""decmpfs: every supported type, stored blocks, random access, and the guards on hostile counts.

Payloads come from tests/hfs_payloads.py (zlib from Python, LZVN from Apple's
encoder, layouts as 7-Zip parses them); corrupt variants are edits of those.
"""

from __future__ import annotations

import random
import struct
import zlib

import lzfse
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.hfs.decmpfs import (
    DecmpfsFile,
    DecmpfsHeader,
    decmpfs_blocks,
    decmpfs_read,
)
from netboot.hfs.errors import HfsCompressionError, HfsUnsupportedError
from tests.hfs_payloads import (
    BytesFork,
    CompressedFile,
    apple_lzvn,
    blocks_of,
    decmpfs_header,
    lzfse_in_resource_fork,
    lzfse_inline,
    lzvn_in_resource_fork,
    lzvn_inline,
    offset_table_fork,
    zlib_in_resource_fork,
    zlib_inline,
    zlib_resource_fork,
)
from tests.udif_disks import content

WHERE = "vol.hfs: /System/kernel"
PLAIN = content(random.Random(7), 150_000)  # three blocks, the last one short


def decode(file: CompressedFile) -> bytes:
    header = DecmpfsHeader.parse(file.attribute, WHERE)
    fork = None if file.resource_fork is None else BytesFork(file.resource_fork)
    blocks = list(decmpfs_blocks(header, fork, WHERE))
    assert all(len(block) == 65536 for block in blocks[:-1])
    return b"".join(blocks)


def with_fork(file: CompressedFile, fork: bytes) -> CompressedFile:
    return CompressedFile(file.attribute, fork, file.plain)


def test_header_parse_reads_the_little_endian_fields() -> None:
    header = DecmpfsHeader.parse(decmpfs_header(8, 123_456_789_012) + b"tail", WHERE)
    assert (header.compression_type, header.uncompressed_size, header.payload) == (
        8,
        123_456_789_012,
        b"tail",
    )
    assert header.in_resource_fork
    assert not DecmpfsHeader.parse(decmpfs_header(7, 1), WHERE).in_resource_fork


@pytest.mark.parametrize(
    ("value", "message"),
    [(b"fpmc\x03\x00", "6 bytes, under its header's 16"), (b"cmpf" + bytes(12), "starts b'cmpf'")],
)
def test_header_parse_refuses_a_bad_attribute(value: bytes, message: str) -> None:
    with pytest.raises(HfsCompressionError, match=message):
        DecmpfsHeader.parse(value, WHERE)


@pytest.mark.parametrize(
    "file",
    [
        zlib_inline(PLAIN[:20_000]),
        zlib_inline(bytes(300_000)),  # one inline zlib stream spanning several blocks
        lzvn_inline(PLAIN[:3000]),
        zlib_in_resource_fork(PLAIN),
        zlib_in_resource_fork(PLAIN, stored=frozenset({1})),
        zlib_in_resource_fork(PLAIN[:65536], stored=frozenset({0})),
        lzvn_in_resource_fork(PLAIN),
        lzvn_in_resource_fork(PLAIN, stored=frozenset({0, 2})),
        lzfse_inline(PLAIN[:30_000]),
        lzfse_in_resource_fork(PLAIN),
        lzfse_in_resource_fork(PLAIN, stored=frozenset({1})),
    ],
    ids=[
        "3-zlib-inline",
        "3-zlib-inline-multiblock",
        "7-lzvn-inline",
        "4-zlib-rsrc",
        "4-zlib-rsrc-stored-middle",
        "4-zlib-rsrc-exactly-one-stored-block",
        "8-lzvn-rsrc",
        "8-lzvn-rsrc-stored-first-last",
        "11-lzfse-inline",
        "12-lzfse-rsrc",
        "12-lzfse-rsrc-stored-middle",
    ],
)
def test_each_type_decodes_to_the_plain_file(file: CompressedFile) -> None:
    assert decode(file) == file.plain


@pytest.mark.parametrize(
    ("marker", "type_"), [(b"\xff", 3), (b"\x0f", 3), (b"\x06", 7), (b"\xcc", 9)]
)
def test_inline_stored_payload_after_its_marker(marker: bytes, type_: int) -> None:
    plain = PLAIN[:1000]
    assert (
        decode(CompressedFile(decmpfs_header(type_, 1000) + marker + plain, None, plain)) == plain
    )


def test_type_10_is_stored_blocks_in_the_offset_table() -> None:
    fork = offset_table_fork([b"\xcc" + block for block in blocks_of(PLAIN)])
    assert decode(CompressedFile(decmpfs_header(10, len(PLAIN)), fork, PLAIN)) == PLAIN


def test_zlib_block_without_its_adler32_trailer_is_accepted() -> None:
    blocks = [zlib.compress(block)[:-4] for block in blocks_of(PLAIN)]
    fork = zlib_resource_fork(blocks)
    assert decode(CompressedFile(decmpfs_header(4, len(PLAIN)), fork, PLAIN)) == PLAIN


def test_zlib_block_with_a_wrong_adler32_trailer_is_refused() -> None:
    blocks = [zlib.compress(block) for block in blocks_of(PLAIN)]
    blocks[1] = blocks[1][:-1] + bytes([blocks[1][-1] ^ 1])
    fork = zlib_resource_fork(blocks)
    with pytest.raises(HfsCompressionError, match=r"decmpfs block 1 at resource-fork byte \d+"):
        decode(CompressedFile(decmpfs_header(4, len(PLAIN)), fork, PLAIN))


def test_empty_file_yields_nothing_and_needs_no_table() -> None:
    assert decode(CompressedFile(decmpfs_header(8, 0), offset_table_fork([]), b"")) == b""
    assert decode(CompressedFile(decmpfs_header(3, 0), None, b"")) == b""


def test_lzfse_block_that_would_overflow_its_share_is_refused() -> None:
    # The bomb guard holds for LZFSE too: the reference decoder writes into a buffer of
    # the block's share plus one byte, never more, whatever the stream declares.
    fork = offset_table_fork([lzfse.compress(bytes(65537)), lzfse.compress(b"x")])
    with pytest.raises(HfsCompressionError, match=r"LZFSE data: .*more"):
        decode(CompressedFile(decmpfs_header(12, 65537), fork, b""))


def test_corrupt_lzfse_is_an_error_not_a_hang() -> None:
    # Cut streams: LZFSE has no checksum, so a cut (not a flipped byte) is what must fail.
    good = lzfse.compress(PLAIN[:40_000])
    for cut in (8, 12, len(good) // 2):
        broken = decmpfs_header(11, 40_000) + good[:cut] + b"bvx$"
        with pytest.raises(HfsCompressionError, match="LZFSE data"):
            decode(CompressedFile(broken, None, b""))


@pytest.mark.parametrize("type_", [0, 1, 5, 13, 14, 0xFFFFFFFF])
def test_unknown_types_are_unsupported_naming_the_type(type_: int) -> None:
    header = DecmpfsHeader.parse(decmpfs_header(type_, 10), WHERE)
    with pytest.raises(HfsUnsupportedError, match=rf"compression type {type_} is not known"):
        list(decmpfs_blocks(header, BytesFork(b""), WHERE))


def test_resource_type_without_a_resource_fork_is_an_error() -> None:
    header = DecmpfsHeader.parse(decmpfs_header(8, 10), WHERE)
    with pytest.raises(HfsCompressionError, match="needs a resource fork; it has none"):
        list(decmpfs_blocks(header, None, WHERE))


def lzvn_fork_with_table(offsets: list[int], body: bytes) -> bytes:
    return struct.pack(f"<{len(offsets)}I", *offsets) + body


TWO_BLOCKS = PLAIN[:100_000]
LZVN_TWO = lzvn_in_resource_fork(TWO_BLOCKS)
ZLIB_TWO = zlib_in_resource_fork(TWO_BLOCKS)
LZVN_TABLE = list(struct.unpack_from("<3I", LZVN_TWO.resource_fork or b""))


@pytest.mark.parametrize(
    ("file", "message"),
    [
        # The header claims more blocks than the table holds: the table runs into the blocks.
        (
            CompressedFile(decmpfs_header(8, 200_000), LZVN_TWO.resource_fork, b""),
            r"resource-fork byte 0: first block at 12, but a table of 4 blocks ends at 20",
        ),
        (
            CompressedFile(decmpfs_header(8, 2**40), LZVN_TWO.resource_fork, b""),
            r"block offset table \(resource-fork bytes 0\.\.67108868\) runs past",
        ),
        (
            with_fork(LZVN_TWO, (LZVN_TWO.resource_fork or b"")[:-1]),
            r"resource-fork byte 8: block 1 ends at \d+, outside",
        ),
        (
            with_fork(
                LZVN_TWO,
                lzvn_fork_with_table([12, LZVN_TABLE[1], 12], (LZVN_TWO.resource_fork or b"")[12:]),
            ),
            r"resource-fork byte 8: block 1 ends at 12",
        ),
        (
            CompressedFile(decmpfs_header(4, 200_000), ZLIB_TWO.resource_fork, b""),
            r"resource-fork byte 260: block table holds 2 blocks, the file's size needs 4",
        ),
        (
            CompressedFile(
                decmpfs_header(8, 70_000),
                offset_table_fork([b"\x06" + bytes(65536) + b"x", b"\x06" + bytes(4464)]),
                b"",
            ),
            r"decmpfs block 0 at resource-fork byte 12 is 65538 bytes; a block holds 1 to 65537",
        ),
        (
            CompressedFile(
                decmpfs_header(8, 70_000),
                offset_table_fork([b"\x06" + bytes(65536), b"\x06" + bytes(4463)]),
                b"",
            ),
            r"decmpfs block 1 at resource-fork byte 65549: stored block holds 4463 bytes, "
            r"expected 4464",
        ),
    ],
    ids=[
        "more-blocks-than-table",
        "huge-size-table-past-fork",
        "fork-cut-short",
        "offsets-going-backwards",
        "zlib-count-mismatch",
        "block-too-big",
        "stored-block-wrong-length",
    ],
)
def test_bad_block_table_is_an_error_naming_the_fork_offset(
    file: CompressedFile, message: str
) -> None:
    with pytest.raises(HfsCompressionError, match=message):
        decode(file)


def test_zlib_block_that_would_overflow_its_share_is_refused() -> None:
    # Zip-bomb guard: a block may decode to 64 KiB, never more, whatever the stream holds.
    fork = zlib_resource_fork([zlib.compress(bytes(65537)), zlib.compress(b"x")])
    with pytest.raises(HfsCompressionError, match="decodes to more than the 65536 bytes"):
        decode(CompressedFile(decmpfs_header(4, 65537), fork, b""))


def test_zlib_block_that_ends_early_is_refused() -> None:
    fork = zlib_resource_fork([zlib.compress(bytes(65535)), zlib.compress(b"x")])
    with pytest.raises(HfsCompressionError, match=r"zlib stream ends after 65535 of 65536 bytes"):
        decode(CompressedFile(decmpfs_header(4, 65537), fork, b""))


def test_lzvn_block_error_names_the_block_and_the_stream_offset() -> None:
    stream = bytearray(apple_lzvn(TWO_BLOCKS[65536:]))
    stream[0] = 0x7A  # undefined
    fork = offset_table_fork([b"\x06" + TWO_BLOCKS[:65536], bytes(stream)])
    with pytest.raises(
        HfsCompressionError,
        match=r"decmpfs block 1 at resource-fork byte 65549: at LZVN byte 0: undefined opcode 0x7a",
    ):
        decode(CompressedFile(decmpfs_header(8, len(TWO_BLOCKS)), fork, TWO_BLOCKS))


def test_inline_zlib_longer_than_its_size_is_refused() -> None:
    value = decmpfs_header(3, 100) + zlib.compress(bytes(101))
    with pytest.raises(
        HfsCompressionError, match="inline decmpfs data: zlib stream decodes to more"
    ):
        decode(CompressedFile(value, None, b""))


def test_type_9_without_its_marker_is_refused() -> None:
    with pytest.raises(HfsCompressionError, match="starts 0x61, not the 0xCC marker"):
        decode(CompressedFile(decmpfs_header(9, 3) + b"abc", None, b""))


RANDOM_ACCESS_FILES = {
    "4": zlib_in_resource_fork(PLAIN, stored=frozenset({1})),
    "8": lzvn_in_resource_fork(PLAIN),
    "3": zlib_inline(PLAIN),
    "7": lzvn_inline(PLAIN[:9000]),
}


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(sorted(RANDOM_ACCESS_FILES)), st.integers(0, 160_000), st.integers(0, 140_000)
)
def test_read_at_any_offset_is_the_slice_of_the_plain_file(
    kind: str, offset: int, size: int
) -> None:
    file = RANDOM_ACCESS_FILES[kind]
    header = DecmpfsHeader.parse(file.attribute, WHERE)
    fork = None if file.resource_fork is None else BytesFork(file.resource_fork)
    expected = file.plain[offset : offset + size]
    assert decmpfs_read(header, fork, offset, size, WHERE) == expected
    kept = DecmpfsFile(header, fork, WHERE)
    assert kept.size == len(file.plain)
    assert kept.read(offset, size) == expected
    assert kept.read(offset, size) == expected  # again, through the remembered block


def test_file_reads_each_resource_block_once_for_sequential_reads() -> None:
    file = lzvn_in_resource_fork(PLAIN)
    reads: list[tuple[int, int]] = []

    class CountingFork(BytesFork):
        def read(self, offset: int, size: int) -> bytes:
            reads.append((offset, size))
            return super().read(offset, size)

    assert file.resource_fork is not None
    kept = DecmpfsFile(
        DecmpfsHeader.parse(file.attribute, WHERE), CountingFork(file.resource_fork), WHERE
    )
    assert b"".join(kept.read(offset, 4096) for offset in range(0, len(PLAIN), 4096)) == PLAIN
    assert len(reads) == 1 + 3  # the table, then each block once
