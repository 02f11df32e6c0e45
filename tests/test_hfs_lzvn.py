"""The LZVN decoder: every opcode class by hand, Apple's encoder and decoder as the oracle.

Hand-built streams pin each opcode's fields; each expected output is written
out here and also checked against Apple's reference decoder (PyPI `lzfse`), so
a wrong expectation cannot pass. Round trips go through Apple's encoder.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.errors import HfsError
from netboot.hfs.errors import HfsCompressionError
from netboot.hfs.lzvn import lzvn_decode
from tests.hfs_payloads import EOS, apple_lzvn, reference_lzvn_decode
from tests.udif_disks import content

TWENTY = bytes(range(65, 85))

HAND_VECTORS = {
    # sml_l (1110LLLL) then sml_d (LLMMMDDD DDDDDDDD): L=0, M=5, D=3 overlaps its own output
    "sml_l, sml_d overlapping": (b"\xe3abc\x10\x03", b"abcabcab"),
    # sml_d with a 2-byte literal before its match: L=2, M=3, D=2
    "sml_d with literal": (b"\x80\x02ab", b"ababa"),
    # pre_d (LLMMM110) reuses D=2: L=1, M=4
    "pre_d": (b"\x80\x02ab\x4ex", b"ababaxaxax"),
    # lrg_d (LLMMM111 D16 LE): L=1, M=3, D=5
    "lrg_d": (b"\xe5hello\x47\x05\x00!", b"hello!ell"),
    # med_d (101LLMMM, w=LE16): L=1, M=((0<<2)|(w&3))+3=4, D=w>>2=3 with w=13
    "med_d": (b"\xe4abcd\xa8\x0d\x00e", b"abcdecdec"),
    # sml_m (1111MMMM) reuses D=3 from the sml_d before it: M=4
    "sml_m": (b"\xe3xyz\x00\x03\xf4", b"xyzxyzxyzx"),
    # lrg_m (0xF0, M-16) reuses D=1: M=20
    "lrg_m": (b"\xe1z\x00\x01\xf0\x04", b"z" * 24),
    # lrg_l (0xE0, L-16): 20 literal bytes
    "lrg_l": (b"\xe0\x04" + TWENTY, TWENTY),
    # nop (0x0E, 0x16) anywhere
    "nop": (b"\x0e\xe2hi\x16", b"hi"),
}

UNDEFINED = sorted({0x1E, 0x26, 0x2E, 0x36, 0x3E, *range(0x70, 0x80), *range(0xD0, 0xE0)})


@pytest.mark.parametrize("name", sorted(HAND_VECTORS))
def test_hand_built_stream_decodes_as_apple_decodes_it(name: str) -> None:
    body, expected = HAND_VECTORS[name]
    stream = body + EOS
    assert lzvn_decode(stream, len(expected)) == expected
    assert reference_lzvn_decode(stream, len(expected)) == expected


def test_empty_stream_is_just_eos() -> None:
    assert lzvn_decode(EOS, 0) == b""


@pytest.mark.parametrize("opcode", UNDEFINED)
def test_undefined_opcode_is_an_error_naming_it_and_its_offset(opcode: int) -> None:
    with pytest.raises(
        HfsCompressionError, match=rf"at LZVN byte 2: undefined opcode 0x{opcode:02x}"
    ):
        lzvn_decode(b"\xe1a" + bytes([opcode]) + EOS, 1)


@pytest.mark.parametrize(
    ("stream", "size", "message"),
    [
        (b"\xe2ab\x00\x03" + EOS, 5, r"at LZVN byte 3: match distance 3 reaches before the output"),
        (b"\xe2ab\x00\x00" + EOS, 5, r"at LZVN byte 3: match distance 0"),
        (b"\xf3" + EOS, 3, r"at LZVN byte 0: match distance 0"),  # sml_m before any distance
        (b"\xe2ab\x0e", 2, r"at LZVN byte 4: stream ends without an end-of-stream opcode"),
        (b"\xe2ab", 2, r"at LZVN byte 0: opcode 0xe2 and its literal run past the stream"),
        (b"\xe2ab\x06\x00\x00", 2, r"at LZVN byte 3: end-of-stream opcode is cut short"),
        (b"\xe3abc" + EOS, 2, r"at LZVN byte 0: output would exceed 2 bytes"),
        (b"\xe2ab" + EOS, 3, r"at LZVN byte 3: stream decodes to 2 bytes, expected 3"),
        (b"\xe5ab", 5, r"at LZVN byte 0: opcode 0xe5 and its literal run past the stream"),
        (b"\xe1a\x80", 3, r"at LZVN byte 2: opcode 0x80 and its literal run past the stream"),
        (b"\xe1a\xf0", 3, r"at LZVN byte 2: opcode 0xf0 and its literal run past the stream"),
        (b"", 1, r"at LZVN byte 0: 0 bytes cannot decode to 1"),
    ],
)
def test_corrupt_stream_is_an_error_naming_the_offset(
    stream: bytes, size: int, message: str
) -> None:
    with pytest.raises(HfsCompressionError, match=message) as caught:
        lzvn_decode(stream, size, where="vol.hfs: /kernel block 2")
    assert isinstance(caught.value, HfsError)
    assert str(caught.value).startswith("vol.hfs: /kernel block 2: ")


def test_claimed_size_beyond_any_expansion_is_refused_before_allocating() -> None:
    # 136 x the stream is the most LZVN can produce; 2**50 must not reach bytearray().
    with pytest.raises(HfsCompressionError, match="cannot decode to"):
        lzvn_decode(b"\xe1z\x00\x01\xf0\xff" + EOS, 2**50)


@pytest.mark.parametrize("seed", range(4))
def test_64k_blocks_from_apples_encoder_round_trip(seed: int) -> None:
    block = content(random.Random(seed), 65536)
    stream = apple_lzvn(block)
    assert len(stream) < len(block)
    assert lzvn_decode(stream, len(block)) == block
    assert reference_lzvn_decode(stream, len(block)) == block


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=300),
            st.tuples(st.binary(min_size=1, max_size=8), st.integers(1, 400)).map(
                lambda run: run[0] * run[1]
            ),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_generated_data_round_trips_through_apples_encoder(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    stream = apple_lzvn(data)
    assert lzvn_decode(stream, len(data)) == data == reference_lzvn_decode(stream, len(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 5000))
def test_arbitrary_bytes_decode_or_raise_hfs_compression_error(stream: bytes, size: int) -> None:
    try:
        decoded = lzvn_decode(stream, size)
    except HfsCompressionError:
        return
    assert len(decoded) == size


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.data())
def test_damaged_apple_stream_decodes_to_its_size_or_raises(seed: int, data: st.DataObject) -> None:
    block = content(random.Random(seed), 6000)
    stream = bytearray(apple_lzvn(block))
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    try:
        decoded = lzvn_decode(bytes(stream), len(block))
    except HfsCompressionError:
        return
    assert len(decoded) == len(block)
