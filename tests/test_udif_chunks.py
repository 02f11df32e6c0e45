"""decode_chunk: every chunk type of docs/protocols/udif.md §5.2, its size checks and its bounds.

Hand-built vectors where the format is simple enough to write by hand: a zlib
stream made of one stored deflate block (RFC 1950/1951), an LZFSE stream made of
one uncompressed `bvx-` block (reference `lzfse_internal.h`), ADC tokens. The
others come from the stdlib and the `lzfse` package's encoders.
"""

from __future__ import annotations

import bz2
import lzma
import tracemalloc
import zlib
from collections.abc import Callable

import lzfse
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.errors import UdifError
from netboot.udif import chunks
from netboot.udif.blkx import ChunkType
from netboot.udif.chunks import CHUNK_NAMES, MAX_CHUNK_SIZE, decode_chunk

SECTOR_TEXT = b"UDIF chunk text " * 32  # one sector, period 16


def stored_zlib(data: bytes) -> bytes:
    """A zlib stream holding `data` in one stored (uncompressed) deflate block."""
    assert len(data) < 65536
    return (
        b"\x78\x01"  # CMF (deflate, 32 KiB window), FLG (check bits, fastest)
        + b"\x01"  # BFINAL=1, BTYPE=00 stored
        + len(data).to_bytes(2, "little")  # LEN
        + (len(data) ^ 0xFFFF).to_bytes(2, "little")  # NLEN
        + data
        + zlib.adler32(data).to_bytes(4, "big")  # ADLER32 of the expanded data
    )


def raw_lzfse(data: bytes) -> bytes:
    """An LZFSE stream holding `data` in one uncompressed block."""
    return b"bvx-" + len(data).to_bytes(4, "little") + data + b"bvx$"


def decode(kind: int, data: bytes, size: int) -> bytes:
    return decode_chunk(kind, data, size, "vector.dmg", 4096)


def test_hand_built_vectors_are_what_the_libraries_read() -> None:
    assert zlib.decompress(stored_zlib(SECTOR_TEXT)) == SECTOR_TEXT
    assert lzfse.decompress(raw_lzfse(SECTOR_TEXT)) == SECTOR_TEXT


@pytest.mark.parametrize(
    ("kind", "stored"),
    [
        (ChunkType.RAW, SECTOR_TEXT * 2),
        (ChunkType.ZLIB, stored_zlib(SECTOR_TEXT * 2)),
        (ChunkType.ZLIB, zlib.compress(SECTOR_TEXT * 2, 9)),
        (ChunkType.BZIP2, bz2.compress(SECTOR_TEXT * 2)),
        (ChunkType.LZFSE, raw_lzfse(SECTOR_TEXT * 2)),
        (ChunkType.LZFSE, lzfse.compress(SECTOR_TEXT * 2)),
        (ChunkType.LZMA, lzma.compress(SECTOR_TEXT * 2, format=lzma.FORMAT_XZ)),
        (ChunkType.LZMA, lzma.compress(SECTOR_TEXT * 2, format=lzma.FORMAT_ALONE)),
        # ADC: a 128-byte literal, then 3-byte copies of 64 bytes from 16 back (the text's period)
        (ChunkType.ADC, b"\xff" + SECTOR_TEXT[:128] + b"\x7c\x00\x0f" * 14),
    ],
    ids=lambda value: CHUNK_NAMES.get(value, "") if isinstance(value, int) else "",
)
def test_every_data_chunk_type_decodes(kind: int, stored: bytes) -> None:
    assert decode(kind, stored, 1024) == SECTOR_TEXT * 2


@pytest.mark.parametrize("kind", [ChunkType.ZERO, ChunkType.IGNORE])
def test_zero_fill_and_ignore_read_as_zeros(kind: int) -> None:
    assert decode(kind, b"", 2048) == bytes(2048)


@pytest.mark.parametrize("kind", [ChunkType.COMMENT, ChunkType.TERMINATOR])
def test_markers_decode_to_nothing(kind: int) -> None:
    assert decode(kind, b"", 0) == b""
    with pytest.raises(UdifError, match="inflates to 0 bytes, its entry claims 512"):
        decode(kind, b"", 512)


def test_unknown_chunk_type_is_named() -> None:
    with pytest.raises(
        UdifError, match=r"vector\.dmg: at byte 4096: unknown chunk type 0x80000009"
    ):
        decode(0x80000009, b"data", 512)


def test_chunk_names_cover_every_type() -> None:
    assert CHUNK_NAMES[0x80000005] == "zlib"
    assert CHUNK_NAMES[0x80000008] == "lzma"
    assert set(CHUNK_NAMES) == {kind.value for kind in ChunkType}


def test_chunks_over_the_qemu_limit_are_refused_before_decoding() -> None:
    with pytest.raises(UdifError, match="exceeds the 64 MiB limit"):
        decode(ChunkType.ZERO, b"", MAX_CHUNK_SIZE + 512)


Encoder = Callable[[bytes], bytes]
ENCODERS: dict[int, Encoder] = {
    ChunkType.RAW: lambda raw: raw,
    ChunkType.ZLIB: zlib.compress,
    ChunkType.BZIP2: bz2.compress,
    ChunkType.LZFSE: lzfse.compress,
    ChunkType.LZMA: lambda raw: lzma.compress(raw, format=lzma.FORMAT_XZ),
    ChunkType.ADC: lambda raw: b"".join(
        bytes([0x80 | (len(raw[i : i + 128]) - 1)]) + raw[i : i + 128]
        for i in range(0, len(raw), 128)
    ),
}
SIZE_CASES = [(kind, delta) for kind in ENCODERS for delta in (-512, -1, 1, 512)]


@pytest.mark.parametrize(
    ("kind", "delta"), SIZE_CASES, ids=[f"{CHUNK_NAMES[k]}{d:+d}" for k, d in SIZE_CASES]
)
def test_a_chunk_of_the_wrong_size_is_refused(kind: int, delta: int) -> None:
    stored = ENCODERS[kind](SECTOR_TEXT * 4)
    with pytest.raises(UdifError) as caught:
        decode(kind, stored, 2048 + delta)
    message = str(caught.value)
    assert message.startswith("vector.dmg: at byte 4096: ")
    assert CHUNK_NAMES[kind] in message
    if kind != ChunkType.ADC:
        expected = "more than" if delta < 0 else "inflates to 2048 bytes"
        if kind == ChunkType.RAW:
            expected = "stores 2048 bytes"
        assert expected in message


@pytest.mark.parametrize("kind", [k for k in ENCODERS if k != ChunkType.RAW])
def test_truncated_and_garbled_streams_are_refused(kind: int) -> None:
    stored = ENCODERS[kind](SECTOR_TEXT * 4)
    for broken in (stored[: len(stored) // 2], stored[:-1], b"\xa5" * 64 + stored[64:]):
        with pytest.raises(UdifError, match=r"vector\.dmg: at byte 4096: "):
            decode(kind, broken, 2048)


@settings(max_examples=300)
@given(st.sampled_from([*sorted(ENCODERS), 0x7FFFFFFE, 0, 7]), st.binary(max_size=600))
def test_any_bytes_decode_or_raise_udif_error(kind: int, stored: bytes) -> None:
    try:
        assert len(decode(kind, stored, 1024)) == 1024
    except UdifError as error:
        assert "vector.dmg: at byte 4096" in str(error)


# -- zip bombs --------------------------------------------------------------------


def zlib_bomb(mib: int = 1024) -> bytes:
    """About 1 kB per MiB of zlib that inflates to `mib` MiB of zeros, without making them.

    Each 1 MiB of zeros compressed after a full flush gives the same bytes, so
    the stream is the first block, the repeats, a final empty block and the
    Adler-32 of the whole.
    """
    compressor, zeros = zlib.compressobj(9), bytes(1 << 20)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(mib):
        adler = zlib.adler32(zeros, adler)
    final_empty_fixed_block = b"\x03\x00"
    return first + repeat * (mib - 1) + final_empty_fixed_block + adler.to_bytes(4, "big")


def test_the_zlib_bomb_is_a_valid_stream_of_zeros() -> None:
    assert zlib.decompress(zlib_bomb(16)) == bytes(16 << 20)
    assert len(zlib_bomb()) < 1_100_000  # for 1 GiB


BOMBS: dict[int, Callable[[], bytes]] = {
    ChunkType.ZLIB: zlib_bomb,
    ChunkType.BZIP2: lambda: bz2.compress(bytes(64 << 20)),
    ChunkType.LZMA: lambda: lzma.compress(bytes(64 << 20), format=lzma.FORMAT_XZ),
    ChunkType.LZFSE: lambda: _lzfse_bomb(),
}


def _lzfse_bomb() -> bytes:
    # 24 copies of one 1 MiB-of-zeros stream, end markers removed: 24 MiB of blocks.
    one: bytes = lzfse.compress(bytes(1 << 20))
    assert one.endswith(b"bvx$")
    return one[:-4] * 24 + b"bvx$"


@pytest.mark.parametrize("kind", list(BOMBS), ids=lambda kind: CHUNK_NAMES[kind])
def test_a_bomb_claiming_2048_sectors_fails_fast_in_bounded_memory(kind: int) -> None:
    bomb = BOMBS[kind]()
    tracemalloc.start()
    try:
        with pytest.raises(UdifError, match="inflates to more than the 1048576 bytes"):
            decode(kind, bomb, 2048 * 512)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output buffer of expected + 1 bytes, the decompressor's state (XZ: its
    # 8 MiB dictionary) and the input: nowhere near the 64 MiB or 1 GiB inflated.
    assert peak < (16 << 20) + 2 * len(bomb)


def test_lzfse_without_the_bounded_decoder_checks_the_declared_block_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunks, "_DECODE_BUFFER", None)
    stored = lzfse.compress(SECTOR_TEXT * 4)
    assert decode(ChunkType.LZFSE, stored, 2048) == SECTOR_TEXT * 4
    assert decode(ChunkType.LZFSE, raw_lzfse(SECTOR_TEXT), 512) == SECTOR_TEXT
    with pytest.raises(UdifError, match="declares more than"):
        decode(ChunkType.LZFSE, _lzfse_bomb(), 2048 * 512)
    with pytest.raises(UdifError, match="unknown LZFSE block magic"):
        decode(ChunkType.LZFSE, b"bvxQ" + bytes(12), 512)
    with pytest.raises(UdifError, match="cut short"):
        decode(ChunkType.LZFSE, b"bvx-\x00", 512)
