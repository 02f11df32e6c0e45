"""BootImageId: the 32-bit BSDP boot image id and its bit layout.

Vectors come from docs/protocols/nbi.md §3 ("Image id a server must send =
(IsInstall ? 0x8000 : 0) | (Kind << 8) in the high 16 bits, Index in the low 16
bits"; the minimal HTTP plist of 3.1 gives 0x01000001). On the wire the id is a
big-endian 32-bit integer, so each vector also states its four bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.nbi.image_id import BootImageId

# (constructor arguments, int value, wire bytes big-endian)
VECTORS = [
    pytest.param(
        {"index": 1, "kind": 1},
        0x0100_0001,
        bytes(
            [
                0x01,  # install bit clear, kind 1 (Mac OS X)
                0x00,  # reserved bits 16-23
                0x00,  # index, high byte
                0x01,  # index, low byte: 1
            ]
        ),
        id="macosx-index-1",
    ),
    pytest.param(
        {"index": 7, "kind": 1, "is_install": True},
        0x8100_0007,
        bytes(
            [
                0x81,  # install bit (0x80) | kind 1
                0x00,  # reserved
                0x00,  # index, high byte
                0x07,  # index, low byte: 7
            ]
        ),
        id="install-macosx-index-7",
    ),
    pytest.param(
        {"index": 4096, "kind": 3},
        0x0300_1000,
        bytes(
            [
                0x03,  # kind 3 (hardware diagnostics)
                0x00,  # reserved
                0x10,  # index, high byte: 4096 = 0x1000
                0x00,  # index, low byte
            ]
        ),
        id="diagnostics-shared-index-4096",
    ),
    pytest.param(
        {"index": 1, "kind": 0},
        0x0000_0001,
        bytes(
            [
                0x00,  # kind 0 (Mac OS 9)
                0x00,  # reserved
                0x00,  # index, high byte
                0x01,  # index, low byte
            ]
        ),
        id="macos9-index-1",
    ),
    pytest.param(
        {"index": 0xFFFF, "kind": 0x7F, "is_install": True},
        0xFF00_FFFF,
        bytes(
            [
                0xFF,  # install bit | kind 127 (the largest)
                0x00,  # reserved
                0xFF,  # index, high byte: 65535 (the largest)
                0xFF,  # index, low byte
            ]
        ),
        id="every-field-at-its-maximum",
    ),
]

valid_ids = st.builds(
    BootImageId,
    index=st.integers(min_value=1, max_value=0xFFFF),
    kind=st.integers(min_value=0, max_value=0x7F),
    is_install=st.booleans(),
)


@st.composite
def valid_wire_values(draw: st.DrawFn) -> int:
    install = draw(st.sampled_from([0, 0x8000_0000]))
    kind = draw(st.integers(min_value=0, max_value=0x7F))
    index = draw(st.integers(min_value=1, max_value=0xFFFF))
    return install | kind << 24 | index


@pytest.mark.parametrize(("fields", "value", "wire"), VECTORS)
def test_image_id_encodes_to_documented_value(
    fields: dict[str, Any], value: int, wire: bytes
) -> None:
    image_id = BootImageId(**fields)
    assert int(image_id) == value
    assert int(image_id).to_bytes(4, "big") == wire


@pytest.mark.parametrize(("fields", "value", "wire"), VECTORS)
def test_image_id_decodes_from_documented_value(
    fields: dict[str, Any], value: int, wire: bytes
) -> None:
    assert BootImageId.from_int(int.from_bytes(wire, "big")) == BootImageId(**fields)
    assert BootImageId.from_int(value) == BootImageId(**fields)


def test_install_defaults_to_false() -> None:
    assert BootImageId(index=1, kind=1).is_install is False


def test_str_is_zero_padded_hex() -> None:
    assert str(BootImageId(index=1, kind=1)) == "0x01000001"
    assert str(BootImageId(index=1, kind=0)) == "0x00000001"
    assert str(BootImageId(index=7, kind=1, is_install=True)) == "0x81000007"


@pytest.mark.parametrize("index", [0, -1, 0x1_0000, 0x10_0000])
def test_index_out_of_range_is_rejected(index: int) -> None:
    with pytest.raises(ValueError, match="index"):
        BootImageId(index=index, kind=1)


@pytest.mark.parametrize("index", [1, 4095, 4096, 0xFFFF])
def test_index_at_range_edges_is_accepted(index: int) -> None:
    assert BootImageId(index=index, kind=1).index == index


@pytest.mark.parametrize("kind", [-1, 0x80, 0xFF, 0x100])
def test_kind_out_of_range_is_rejected(kind: int) -> None:
    with pytest.raises(ValueError, match="kind"):
        BootImageId(index=1, kind=kind)


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 0x7F])
def test_kind_in_range_is_accepted(kind: int) -> None:
    assert BootImageId(index=1, kind=kind).kind == kind


@pytest.mark.parametrize(
    "value",
    [
        0x0001_0001,  # bit 16
        0x0080_0001,  # bit 23
        0x00FF_0001,  # all of 16-23
        0x8101_0007,  # a valid install id plus bit 16
    ],
)
def test_from_int_rejects_reserved_bits(value: int) -> None:
    with pytest.raises(ValueError, match="reserved"):
        BootImageId.from_int(value)


@pytest.mark.parametrize("value", [-1, 0x1_0000_0000, 0x1_0100_0001, 2**64])
def test_from_int_rejects_values_outside_32_bits(value: int) -> None:
    with pytest.raises(ValueError, match="32 bits"):
        BootImageId.from_int(value)


@pytest.mark.parametrize("value", [0, 0x0100_0000, 0x8100_0000])
def test_from_int_rejects_index_zero(value: int) -> None:
    with pytest.raises(ValueError, match="index"):
        BootImageId.from_int(value)


@pytest.mark.parametrize(
    ("index", "shared"),
    [(1, False), (4095, False), (4096, True), (0xFFFF, True)],
)
def test_is_shared_starts_at_index_4096(index: int, shared: bool) -> None:
    assert BootImageId(index=index, kind=1).is_shared is shared


def test_install_bit_distinguishes_otherwise_equal_ids() -> None:
    plain = BootImageId(index=1, kind=1)
    install = BootImageId(index=1, kind=1, is_install=True)
    assert plain != install
    assert int(plain) != int(install)


def test_image_id_is_hashable_and_immutable() -> None:
    image_id = BootImageId(index=1, kind=1)
    assert {image_id: "a"}[BootImageId(index=1, kind=1)] == "a"
    with pytest.raises(AttributeError):
        image_id.index = 2  # type: ignore[misc]


@settings(max_examples=200)
@given(valid_ids)
def test_from_int_of_int_is_identity(image_id: BootImageId) -> None:
    assert BootImageId.from_int(int(image_id)) == image_id


@settings(max_examples=200)
@given(valid_wire_values())
def test_int_of_from_int_is_identity(value: int) -> None:
    assert int(BootImageId.from_int(value)) == value


@settings(max_examples=200)
@given(valid_ids)
def test_encoded_id_fits_32_bits_and_leaves_reserved_bits_clear(image_id: BootImageId) -> None:
    value = int(image_id)
    assert 0 < value <= 0xFFFF_FFFF
    assert value & 0x00FF_0000 == 0
    assert value & 0xFFFF == image_id.index
    assert (value >> 24) & 0x7F == image_id.kind
    assert bool(value >> 31) is image_id.is_install


@settings(max_examples=200)
@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_from_int_of_any_integer_round_trips_or_raises_value_error(value: int) -> None:
    try:
        image_id = BootImageId.from_int(value)
    except ValueError:
        valid = 0 <= value <= 0xFFFF_FFFF and value & 0x00FF_0000 == 0 and value & 0xFFFF != 0
        assert not valid
    else:
        assert int(image_id) == value
