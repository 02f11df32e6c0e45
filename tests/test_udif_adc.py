"""ADC (Apple Data Compression, UDCO chunks): hand-built token streams and independent decoders.

Token layout as decoded by libdmg-hfsplus `dmg/adc.c` (and documented in
netboot/udif/adc.py): `1nnnnnnn` literal of n+1 bytes; `0nnnnodd dddddddd`
copy n+3 bytes from distance d+1; `01nnnnnn dddddddd dddddddd` copy n+4 bytes
from distance d+1. The streams below are written token by token; the last
tests hand them to 7-Zip and dmg2img inside a UDCO image, so the layout is
confirmed by two decoders that are not ours.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.udif.adc import AdcError, adc_compress, adc_decompress
from netboot.udif.blkx import ChunkType
from tests.test_udif_reader_builder import COMPRESSORS, Part, build_image, require_tool, write


def literal(data: bytes) -> bytes:
    assert 1 <= len(data) <= 128
    return bytes([0x80 | (len(data) - 1)]) + data


def short_copy(length: int, distance: int) -> bytes:
    assert 3 <= length <= 18 and 1 <= distance <= 1024
    offset = distance - 1
    return bytes([((length - 3) << 2) | (offset >> 8), offset & 0xFF])


def long_copy(length: int, distance: int) -> bytes:
    assert 4 <= length <= 67 and 1 <= distance <= 65536
    offset = distance - 1
    return bytes([0x40 | (length - 4), offset >> 8, offset & 0xFF])


# (stream, expanded bytes), one behaviour each.
VECTORS = {
    "literal": (b"\x82abc", b"abc"),
    "longest literal": (b"\xff" + bytes(range(128)), bytes(range(128))),
    "short copy": (b"\x83abcd" + b"\x00\x03", b"abcdabc"),  # 3 bytes from distance 4
    "short copy, longest": (
        literal(b"0123456789abcdefgh") + b"\x3c\x11",
        b"0123456789abcdefgh" * 2,
    ),
    "short copy, farthest": (
        literal(b"Q") + literal(bytes(128)) * 7 + literal(bytes(127)) + b"\x03\xff",
        b"Q" + bytes(1023) + b"Q" + bytes(2),  # distance 1024 reaches back to the Q
    ),
    "run by overlap": (b"\x80a" + b"\x1c\x00", b"a" * 11),  # 10 bytes from distance 1
    "long copy": (b"\x82xyz" + b"\x41\x00\x02", b"xyzxyzxy"),  # 5 bytes from distance 3
    "long copy, longest": (b"\x80z" + b"\x7f\x00\x00", b"z" * 68),
}


@pytest.mark.parametrize("name", list(VECTORS))
def test_hand_built_streams_decode(name: str) -> None:
    stream, expanded = VECTORS[name]
    assert adc_decompress(stream, len(expanded)) == expanded


def test_builders_agree_with_the_hand_written_tokens() -> None:
    assert literal(b"abc") == b"\x82abc"
    assert short_copy(3, 4) == b"\x00\x03"
    assert short_copy(18, 18) == b"\x3c\x11"
    assert short_copy(3, 1024) == b"\x03\xff"
    assert long_copy(5, 3) == b"\x41\x00\x02"
    assert long_copy(67, 65536) == b"\x7f\xff\xff"


def test_long_copy_reaches_64_kib_back() -> None:
    head = bytes(range(256)) * 256  # 65536 bytes
    stream = b"".join(literal(head[i : i + 128]) for i in range(0, len(head), 128))
    stream += long_copy(67, 65536)
    assert adc_decompress(stream, 65536 + 67) == head + head[:67]


@pytest.mark.parametrize(
    ("stream", "size", "message"),
    [
        (b"\x00\x00", 3, "before start"),  # a copy with no output yet
        (b"\x80a" + long_copy(4, 2), 5, "before start"),
        (b"\x85abc", 6, "cut short"),  # literal of 6 with 3 bytes left
        (b"\x80a\x1c", 11, "cut short"),  # 2-byte copy missing its second byte
        (b"\x80a\x40\x00", 5, "cut short"),  # 3-byte copy missing a byte
        (b"\x82abc", 2, "exceeds 2"),
        (b"\x80a\x1c\x00", 5, "exceeds 5"),
        (b"\x82abc", 4, "decodes to 3 bytes, expected 4"),
        (b"", 1, "decodes to 0 bytes"),
    ],
)
def test_malformed_streams_raise_adc_error(stream: bytes, size: int, message: str) -> None:
    with pytest.raises(AdcError, match=message):
        adc_decompress(stream, size)


def test_output_is_bounded_by_the_expected_size() -> None:
    # 1000 maximal overlapping copies would make 67 kB; the decoder stops at the cap.
    bomb = b"\x80a" + long_copy(67, 1) * 1000
    with pytest.raises(AdcError, match="exceeds 4096"):
        adc_decompress(bomb, 4096)


@settings(max_examples=200)
@given(
    st.binary(max_size=3000)
    | st.lists(st.sampled_from([b"ab", b"NetBoot", b"\0" * 40, b"x"]), max_size=200).map(b"".join)
)
def test_compress_round_trips(data: bytes) -> None:
    assert adc_decompress(adc_compress(data), len(data)) == data


def test_compress_shrinks_repetitive_data() -> None:
    data = b"The quick brown fox. " * 500
    assert len(adc_compress(data)) < len(data) // 10


@settings(max_examples=200)
@given(st.binary(max_size=200), st.integers(0, 400))
def test_any_bytes_decode_or_raise_adc_error(stream: bytes, size: int) -> None:
    with contextlib.suppress(AdcError):
        assert len(adc_decompress(stream, size)) == size


# -- independent decoders -------------------------------------------------------

HAND_STREAM = b"".join(stream for stream, _ in VECTORS.values())
HAND_EXPANDED = b"".join(expanded for _, expanded in VECTORS.values())


def hand_udco(tmp_path: Path) -> tuple[Path, bytes]:
    """A UDCO image whose only data chunk is HAND_STREAM (padded with a literal to 1 sector).

    Each vector's stream only refers back into its own output, so the
    concatenation decodes to the concatenated expansions.
    """
    pad = 512 - len(HAND_EXPANDED) % 512
    stream = HAND_STREAM + b"".join(literal(b"P" * min(128, pad - n)) for n in range(0, pad, 128))
    expanded = HAND_EXPANDED + b"P" * pad
    assert adc_decompress(stream, len(expanded)) == expanded
    original = COMPRESSORS[ChunkType.ADC]
    COMPRESSORS[ChunkType.ADC] = lambda raw: stream
    try:
        image = build_image(
            [Part("whole disk (Apple_HFS : 0)", -1, expanded, ChunkType.ADC)], chunk_sectors=4096
        )
    finally:
        COMPRESSORS[ChunkType.ADC] = original
    return write(tmp_path, image, "udco.dmg"), expanded


def test_7zip_decodes_the_hand_built_stream_like_we_do(tmp_path: Path) -> None:
    sevenzip = require_tool("7zz")
    image, expanded = hand_udco(tmp_path)
    result = subprocess.run(
        [sevenzip, "x", "-tdmg", "-so", str(image)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expanded


def test_dmg2img_decodes_the_hand_built_stream_like_we_do(tmp_path: Path) -> None:
    dmg2img = require_tool("dmg2img")
    image, expanded = hand_udco(tmp_path)
    out = tmp_path / "out.img"
    subprocess.run([dmg2img, "-s", str(image), str(out)], capture_output=True, check=True)
    assert out.read_bytes() == expanded
