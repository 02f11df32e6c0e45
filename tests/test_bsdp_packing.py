"""Packing a boot image list into option-43 instances and ACK[LIST] replies.

The limits come from docs/protocols/bsdp.md: an option-43 instance holds at
most 255 bytes, an image record (`id(4) name_length(1) name`) is never split
(4.2), and a reply's options area is `size - 28 - 236 - 4` bytes (4.4), from
which options 53 (3 bytes), 54 (6), 60 `AAPLBSDPC` (11) and END (1) take 21.
Every reply must carry the header sub-options on its own (packing.py, rule 3).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.bsdp.options import BootImage, BsdpMessage, MessageType, decode, encode
from netboot.bsdp.packing import pack_list_replies
from netboot.dhcpwire.packet import option_space

FIXED_OPTIONS = 3 + 6 + 11 + 1
"""53 ACK, 54 server id, 60 AAPLBSDPC and END."""
SIZES = [576, 1500, 8192]
COUNTS = [1, 40, 400]

HEADER = BsdpMessage(
    message_type=MessageType.LIST,
    server_priority=32768,
    default_image_id=0x01000001,
)
BOUND_HEADER = replace(HEADER, selected_image_id=0x01000002)


def space_for(size: int) -> int:
    return option_space(size) - FIXED_OPTIONS


def catalog(count: int, name: str = "Image {:03d}") -> list[BootImage]:
    return [BootImage(0x01000000 + index, name.format(index)) for index in range(1, count + 1)]


def check_replies(
    header: BsdpMessage, images: list[BootImage], space: int, replies: list[list[bytes]]
) -> None:
    """Every rule of packing.py, checked from the bytes alone."""
    assert replies
    head = encode(header)
    seen: list[BootImage] = []
    for reply in replies:
        assert reply, "a reply without option 43"
        assert all(len(instance) <= 255 for instance in reply)
        assert sum(2 + len(instance) for instance in reply) <= space
        assert reply[0].startswith(head)
        # Decoding each instance alone proves no record (nor sub-option) is split.
        for instance in reply:
            decode(instance)
        message = decode(b"".join(reply))
        assert replace(message, images=None) == header
        seen.extend(message.images or ())
    assert seen == images


def check_replies_are_full(images: list[BootImage], space: int, replies: list[list[bytes]]) -> None:
    """A reply is closed only when the next record fits neither its last instance nor a new one."""
    taken = 0
    for reply, following in itertools.pairwise(replies):
        taken += len(decode(b"".join(reply)).images or ())
        record = len(images[taken].encode())
        used = sum(2 + len(instance) for instance in reply)
        assert used + 2 + 2 + record > space
        assert len(reply[-1]) + record > 255 or used + record > space
        assert following


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("header", [HEADER, BOUND_HEADER], ids=["no binding", "bound"])
def test_list_is_packed_within_every_limit(header: BsdpMessage, count: int, size: int) -> None:
    images = catalog(count)
    replies = pack_list_replies(header, images, space_for(size))
    check_replies(header, images, space_for(size), replies)
    check_replies_are_full(images, space_for(size), replies)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("count", COUNTS)
def test_packing_is_deterministic(count: int, size: int) -> None:
    first = pack_list_replies(HEADER, catalog(count), space_for(size))
    again = pack_list_replies(HEADER, catalog(count), space_for(size))
    assert first == again


def test_one_image_is_one_reply_of_one_instance() -> None:
    replies = pack_list_replies(HEADER, catalog(1), space_for(576))
    assert replies == [
        [
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
            )
        ]
    ]


def test_the_two_vector_images_pack_as_in_8_2() -> None:
    images = [BootImage(0x01000001, "High Sierra"), BootImage(0x81001000, "Install macOS")]
    replies = pack_list_replies(HEADER, images, space_for(576))
    option_43 = bytes.fromhex("01 01 01 04 02 80 00 07 04 01 00 00 01 09 22")
    option_43 += bytes.fromhex("01 00 00 01 0b") + b"High Sierra"
    option_43 += bytes.fromhex("81 00 10 00 0d") + b"Install macOS"
    assert replies == [[option_43]]


def test_more_replies_for_smaller_messages() -> None:
    counts = [len(pack_list_replies(HEADER, catalog(400), space_for(size))) for size in SIZES]
    assert counts[0] > counts[1] > counts[2] >= 1
    assert len(pack_list_replies(HEADER, catalog(40), space_for(576))) > 1
    assert len(pack_list_replies(HEADER, catalog(40), space_for(1500))) == 1


def test_a_long_list_spreads_over_several_instances_in_one_reply() -> None:
    replies = pack_list_replies(HEADER, catalog(40), space_for(1500))
    assert len(replies) == 1
    assert len(replies[0]) > 1
    # Only the first instance carries the header; the others start with sub-option 9.
    assert all(instance[0] == 9 for instance in replies[0][1:])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "name", ["n" * 246, "é" * 123, "日本語" * 27 + "xxx"], ids=["ascii", "2-byte", "3-byte"]
)
def test_names_of_246_bytes(name: str, size: int) -> None:
    assert len(name.encode()) == 246
    images = [BootImage(0x01000000 + index, name) for index in range(1, 13)]
    replies = pack_list_replies(HEADER, images, space_for(size))
    check_replies(HEADER, images, space_for(size), replies)
    check_replies_are_full(images, space_for(size), replies)
    # A 251-byte record fills an instance of its own (253 bytes with the sub-option header).
    for reply in replies:
        assert all(len(instance) == 253 for instance in reply[1:])


def test_no_images_gives_one_reply_with_the_header_only() -> None:
    assert pack_list_replies(HEADER, [], space_for(576)) == [[encode(HEADER)]]


def test_image_that_cannot_fit_an_empty_reply_raises() -> None:
    with pytest.raises(ValueError, match="does not fit an empty reply"):
        pack_list_replies(HEADER, [BootImage(0x01000001, "n" * 246)], 100)


def test_header_that_cannot_fit_raises() -> None:
    with pytest.raises(ValueError, match="header"):
        pack_list_replies(HEADER, catalog(1), 10)


def test_smallest_space_for_the_longest_record() -> None:
    # Header instance (2 + 13) plus an instance of one 246-byte-name record (2 + 2 + 251).
    images = [BootImage(0x01000001, "n" * 246)]
    assert len(pack_list_replies(HEADER, images, 270)) == 1
    with pytest.raises(ValueError):
        pack_list_replies(HEADER, images, 269)


def test_header_images_are_ignored() -> None:
    header = replace(HEADER, images=(BootImage(0x01000099, "stale"),))
    assert pack_list_replies(header, catalog(3), space_for(576)) == pack_list_replies(
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
    replies = pack_list_replies(header, images, space)
    check_replies(header, images, space, replies)
    check_replies_are_full(images, space, replies)
    assert pack_list_replies(header, images, space) == replies
