"""Packing a boot image list into the option-43 instances of one ACK[LIST].

The limits come from docs/protocols/bsdp.md: an option-43 instance holds at
most 255 bytes, an image record (`id(4) name_length(1) name`) is never split
(4.2), and a reply's options area is `size - 28 - 236 - 4` bytes (4.4), from
which options 53 (3 bytes), 54 (6), 60 `AAPLBSDPC` (11) and END (1) take 21.
A list that does not fit is cut, never continued in a second reply (5.4):
what is listed is a prefix of the default image, the bound image, then the
others in the order given, and the cut comes only where the next record fits
neither the last instance nor a new one.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.bsdp.options import BootImage, BsdpMessage, MessageType, decode, encode
from netboot.bsdp.packing import PackedList, list_order, pack_list
from netboot.bsdp.policy import list_option_space
from netboot.dhcpwire.packet import option_space

FIXED_OPTIONS = 3 + 6 + 11 + 1
"""53 ACK, 54 server id, 60 AAPLBSDPC and END."""
SIZES = [576, 1500, 8192]
COUNTS = [1, 40, 400, 1000]
CAPACITY = {576: 17, 1500: 78, 8192: 517}
"""Records of 10-character names one reply holds (docs/protocols/bsdp.md §5.4)."""

HEADER = BsdpMessage(
    message_type=MessageType.LIST,
    server_priority=32768,
    default_image_id=0x01000001,
)


def bound_to(count: int) -> BsdpMessage:
    """A header for a client bound to the last of `count` images: packed second."""
    return replace(HEADER, selected_image_id=0x01000000 + count)


def capacity(header: BsdpMessage, space: int, record: int = 15) -> int:
    """Records of `record` bytes one reply holds, counted by instances rather than packed.

    The first instance holds the header and a sub-option 9; each further one
    holds 253 bytes of records, the last one what the space has left.
    """
    head = len(encode(header))
    first = (255 - head - 2) // record
    left = space - (2 + head + 2 + first * record)
    per_instance = 253 // record
    full = left // (4 + per_instance * record)
    last = max(0, (left - full * (4 + per_instance * record) - 4) // record)
    return first + full * per_instance + last


def space_for(size: int) -> int:
    return option_space(size) - FIXED_OPTIONS


def catalog(count: int, name: str = "Image {:04d}") -> list[BootImage]:
    return [BootImage(0x01000000 + index, name.format(index)) for index in range(1, count + 1)]


def check_packed(
    header: BsdpMessage, images: list[BootImage], space: int, packed: PackedList
) -> None:
    """Every rule of packing.py, checked from the bytes alone."""
    instances = packed.instances
    assert instances, "a reply without option 43"
    assert all(len(instance) <= 255 for instance in instances)
    used = sum(2 + len(instance) for instance in instances)
    assert used <= space
    assert instances[0].startswith(encode(header))
    # Decoding each instance alone proves no record (nor sub-option) is split.
    listed: list[BootImage] = []
    for instance in instances:
        listed.extend(decode(instance).images or ())
    message = decode(b"".join(instances))
    assert replace(message, images=None) == header
    assert listed == list(message.images or ()) == list(packed.images)
    ordered = list_order(header, images)
    assert listed == ordered[: len(listed)]
    assert packed.offered == len(images)
    assert packed.truncated == (len(listed) < len(images))
    if packed.truncated:
        # Cut only where the next record fits neither the last instance nor a new one.
        record = len(ordered[len(listed)].encode())
        last = instances[-1]
        in_last = record + (0 if len(instances) > 1 or 9 in _codes(last) else 2)
        assert used + 2 + 2 + record > space
        assert len(last) + in_last > 255 or used + in_last > space


def _codes(instance: bytes) -> list[int]:
    codes, at = [], 0
    while at < len(instance):
        codes.append(instance[at])
        at += 2 + instance[at + 1]
    return codes


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("bound", [False, True], ids=["no binding", "bound to the last"])
def test_one_reply_holds_what_fits_within_every_limit(count: int, size: int, bound: bool) -> None:
    header = bound_to(count) if bound else HEADER
    images = catalog(count)
    packed = pack_list(header, images, space_for(size))
    check_packed(header, images, space_for(size), packed)
    assert len(packed.images) == min(count, capacity(header, space_for(size)))
    ids = [image.image_id for image in packed.images]
    assert ids[0] == 0x01000001  # the default, first
    if bound and count > 1:
        assert ids[1] == 0x01000000 + count  # the bound image, next
    assert packed == pack_list(header, images, space_for(size))  # deterministic


@pytest.mark.parametrize("size", SIZES)
def test_the_space_is_what_the_policy_leaves_for_option_43(size: int) -> None:
    assert list_option_space(size) == space_for(size)
    assert capacity(HEADER, space_for(size)) == CAPACITY[size]
    assert len(pack_list(HEADER, catalog(1000), space_for(size)).images) == CAPACITY[size]


def test_one_image_is_one_instance() -> None:
    packed = pack_list(HEADER, catalog(1, "Image {:03d}"), space_for(576))
    assert packed.instances == (
        b"".join(
            [
                bytes.fromhex("01 01 01"),  # 1 message type: LIST
                bytes.fromhex("04 02 80 00"),  # 4 priority: 32768
                bytes.fromhex("07 04 01 00 00 01"),  # 7 default image
                bytes.fromhex("09 0e"),  # 9 image list, 14 bytes
                bytes.fromhex("01 00 00 01"),  # image id 0x01000001
                bytes.fromhex("09"),  # name length 9
                b"Image 001",  # name
            ]
        ),
    )
    assert not packed.truncated


def test_the_two_vector_images_pack_as_in_8_2() -> None:
    images = [BootImage(0x01000001, "High Sierra"), BootImage(0x81001000, "Install macOS")]
    option_43 = bytes.fromhex("01 01 01 04 02 80 00 07 04 01 00 00 01 09 22")
    option_43 += bytes.fromhex("01 00 00 01 0b") + b"High Sierra"
    option_43 += bytes.fromhex("81 00 10 00 0d") + b"Install macOS"
    assert pack_list(HEADER, images, space_for(576)).instances == (option_43,)


def test_a_long_list_spreads_over_several_instances_in_one_reply() -> None:
    packed = pack_list(HEADER, catalog(40), space_for(1500))
    assert not packed.truncated
    assert len(packed.instances) > 1
    # Only the first instance carries the header; the others start with sub-option 9.
    assert all(instance[0] == 9 for instance in packed.instances[1:])


def test_the_default_and_the_bound_image_lead_wherever_they_are_in_the_catalog() -> None:
    images = catalog(1000)
    header = replace(HEADER, default_image_id=0x01000000 + 700, selected_image_id=0x01000000 + 900)
    packed = pack_list(header, images, space_for(576))
    ids = [image.image_id - 0x01000000 for image in packed.images]
    assert ids == [700, 900, *range(1, CAPACITY[576] - 1)]


def test_list_order_without_a_binding_or_with_the_default_bound() -> None:
    images = catalog(4)
    assert list_order(replace(HEADER, default_image_id=0x01000003), images) == [
        images[2],
        images[0],
        images[1],
        images[3],
    ]
    both = replace(HEADER, default_image_id=0x01000002, selected_image_id=0x01000002)
    assert list_order(both, images) == [images[1], images[0], images[2], images[3]]
    # A bound image the client may no longer see is not in the list to pin.
    gone = replace(HEADER, selected_image_id=0x01000099)
    assert list_order(gone, images) == images


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "name", ["n" * 246, "é" * 123, "日本語" * 27 + "xxx"], ids=["ascii", "2-byte", "3-byte"]
)
def test_names_of_246_bytes(name: str, size: int) -> None:
    assert len(name.encode()) == 246
    images = [BootImage(0x01000000 + index, name) for index in range(1, 40)]
    packed = pack_list(HEADER, images, space_for(size))
    check_packed(HEADER, images, space_for(size), packed)
    assert packed.truncated
    assert len(packed.images) == {576: 1, 1500: 4, 8192: 30}[size]
    # A 251-byte record fills an instance of its own (253 bytes with the sub-option header).
    assert all(len(instance) == 253 for instance in packed.instances[1:])


def test_no_images_gives_the_header_only() -> None:
    packed = pack_list(HEADER, [], space_for(576))
    assert packed.instances == (encode(HEADER),)
    assert not packed.truncated


def test_a_space_too_small_for_any_record_lists_none() -> None:
    packed = pack_list(HEADER, [BootImage(0x01000001, "n" * 246)], 100)
    assert packed.instances == (encode(HEADER),)
    assert packed.images == ()
    assert packed.truncated


def test_header_that_cannot_fit_raises() -> None:
    with pytest.raises(ValueError, match="header"):
        pack_list(HEADER, catalog(1), 10)


def test_smallest_space_for_the_longest_record() -> None:
    # Header instance (2 + 13) plus an instance of one 246-byte-name record (2 + 2 + 251).
    images = [BootImage(0x01000001, "n" * 246)]
    assert not pack_list(HEADER, images, 270).truncated
    assert pack_list(HEADER, images, 269).truncated


def test_header_images_are_ignored() -> None:
    header = replace(HEADER, images=(BootImage(0x01000099, "stale"),))
    assert pack_list(header, catalog(3), space_for(576)) == pack_list(
        HEADER, catalog(3), space_for(576)
    )


# -- properties ----------------------------------------------------------------------

names = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="xé日", min_size=60, max_size=82).filter(lambda n: len(n.encode()) <= 246),
    st.integers(200, 246).map(lambda length: "n" * length),
)
image_lists = st.lists(st.builds(BootImage, st.integers(0, 0xFFFF_FFFF), names), max_size=60)
headers = st.builds(
    BsdpMessage,
    message_type=st.just(int(MessageType.LIST)),
    server_priority=st.integers(0, 0xFFFF),
    default_image_id=st.integers(1, 0xFFFF_FFFF),
    selected_image_id=st.none() | st.integers(1, 0xFFFF_FFFF),
)


# 276 = header instance with sub-option 8 (2 + 19) + one instance of a 251-byte record (2 + 253).
@settings(max_examples=200, deadline=None)
@given(headers, image_lists, st.integers(276, 8000))
def test_any_list_packs_within_every_limit(
    header: BsdpMessage, images: list[BootImage], space: int
) -> None:
    packed = pack_list(header, images, space)
    check_packed(header, images, space, packed)
    assert pack_list(header, images, space) == packed
    # The default image, when offered, always fits: 276 bytes hold any one record.
    if any(image.image_id == header.default_image_id for image in images):
        assert packed.images[0].image_id == header.default_image_id


@settings(max_examples=100, deadline=None)
@given(headers, st.lists(st.integers(1, 30), min_size=1, max_size=400), st.sampled_from(SIZES))
def test_default_and_bound_images_are_listed_when_short_names_are_cut(
    header: BsdpMessage, name_lengths: list[int], size: int
) -> None:
    """With names up to 30 bytes the two pinned records always fit, whatever is cut."""
    images = [BootImage(0x0100_0000 + at, "n" * n) for at, n in enumerate(name_lengths)]
    pinned = [header.default_image_id, header.selected_image_id]
    images += [BootImage(i, "pinned") for i in pinned if i is not None]
    packed = pack_list(header, images, space_for(size))
    check_packed(header, images, space_for(size), packed)
    listed = {image.image_id for image in packed.images}
    assert {i for i in pinned if i is not None} <= listed
