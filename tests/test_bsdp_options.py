"""BSDP sub-options inside option 43: byte vectors, a malformed corpus and round trips.

Vectors come from docs/protocols/bsdp.md: the layout of §4 (each
sub-option `code(1) length(1) data`, integers big-endian), the boot image ids
of 4.1, the image records of 4.2, the small vectors of 8.6 and the option-43
bodies of the packets in 8.1-8.5. Apple's encoding order (docs/protocols/bsdp.md §7):
LIST request 1, 2, [10], 5, 12, [11]; SELECT request 1, 2, [10], 5, 3, 8;
ACK[LIST] 1, 4, 7, [8], 9; ACK[SELECT] 1, 8, 130, [128, 129].
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.bsdp.options import (
    MAX_NAME_BYTES,
    BootImage,
    BsdpMessage,
    MessageType,
    SubOption,
    decode,
    encode,
    encode_sub_options,
)
from netboot.errors import MalformedPacket


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@dataclass(frozen=True)
class Vector:
    """Bytes inside option 43 and the message they decode to, both ways; `raw[:-1]` must not."""

    raw: bytes
    message: BsdpMessage

    @property
    def truncated(self) -> bytes:
        return self.raw[:-1]


HIGH_SIERRA = BootImage(0x01000001, "High Sierra")
INSTALL_MACOS = BootImage(0x81001000, "Install macOS")

SUB_OPTIONS = {
    "1 LIST": Vector(
        b"".join(
            [
                h("01"),  # code 1: message type
                h("01"),  # length 1
                h("01"),  # LIST
            ]
        ),
        BsdpMessage(message_type=MessageType.LIST),
    ),
    "1 SELECT": Vector(
        b"".join(
            [
                h("01"),  # code 1: message type
                h("01"),  # length 1
                h("02"),  # SELECT
            ]
        ),
        BsdpMessage(message_type=MessageType.SELECT),
    ),
    "1 FAILED (8.6)": Vector(
        b"".join(
            [
                h("01"),  # code 1: message type
                h("01"),  # length 1
                h("03"),  # FAILED
            ]
        ),
        BsdpMessage(message_type=MessageType.FAILED),
    ),
    "2 version 1.1": Vector(
        b"".join(
            [
                h("02"),  # code 2: version
                h("02"),  # length 2
                h("01 01"),  # 0x0101
            ]
        ),
        BsdpMessage(version=0x0101),
    ),
    "2 version 1.0 (8.6)": Vector(
        b"".join(
            [
                h("02"),  # code 2: version
                h("02"),  # length 2
                h("01 00"),  # 0x0100
            ]
        ),
        BsdpMessage(version=0x0100),
    ),
    "3 server identifier": Vector(
        b"".join(
            [
                h("03"),  # code 3: server identifier
                h("04"),  # length 4
                h("c0 00 02 0a"),  # 192.0.2.10
            ]
        ),
        BsdpMessage(server_identifier="192.0.2.10"),
    ),
    "4 server priority": Vector(
        b"".join(
            [
                h("04"),  # code 4: server priority
                h("02"),  # length 2
                h("80 00"),  # 32768, Apple's base
            ]
        ),
        BsdpMessage(server_priority=32768),
    ),
    "5 reply port": Vector(
        b"".join(
            [
                h("05"),  # code 5: reply port
                h("02"),  # length 2
                h("03 e8"),  # 1000
            ]
        ),
        BsdpMessage(reply_port=1000),
    ),
    "6 boot image list path": Vector(
        b"".join(
            [
                h("06"),  # code 6: boot image list path (defined, never used)
                h("0e"),  # length 14
                b"/Library/NetBo",  # opaque bytes
            ]
        ),
        BsdpMessage(boot_image_list_path=b"/Library/NetBo"),
    ),
    "7 default image (8.6)": Vector(
        b"".join(
            [
                h("07"),  # code 7: default boot image id
                h("04"),  # length 4
                h("03 00 00 05"),  # diagnostics, index 5
            ]
        ),
        BsdpMessage(default_image_id=0x03000005),
    ),
    "8 selected image": Vector(
        b"".join(
            [
                h("08"),  # code 8: selected boot image id
                h("04"),  # length 4
                h("81 00 10 00"),  # install Mac OS X, global index 4096
            ]
        ),
        BsdpMessage(selected_image_id=0x81001000),
    ),
    "9 two images (8.2)": Vector(
        b"".join(
            [
                h("09"),  # code 9: boot image list
                h("22"),  # length 34 = (5 + 11) + (5 + 13)
                h("01 00 00 01"),  # id 0x01000001
                h("0b"),  # name length 11
                b"High Sierra",  # name
                h("81 00 10 00"),  # id 0x81001000
                h("0d"),  # name length 13
                b"Install macOS",  # name
            ]
        ),
        BsdpMessage(images=(HIGH_SIERRA, INSTALL_MACOS)),
    ),
    "9 empty name (8.6)": Vector(
        b"".join(
            [
                h("09"),  # code 9: boot image list
                h("05"),  # length 5
                h("02 00 00 07"),  # id: Mac OS X Server, index 7
                h("00"),  # name length 0
            ]
        ),
        BsdpMessage(images=(BootImage(0x02000007, ""),)),
    ),
    "9 UTF-8 names": Vector(
        b"".join(
            [
                h("09"),  # code 9: boot image list
                h("16"),  # length 22 = (5 + 5) + (5 + 7)
                h("01 00 00 02"),  # id 0x01000002
                h("05"),  # name length 5 bytes (4 characters)
                "Café".encode(),  # name: e-acute is c3 a9
                h("01 00 10 01"),  # id 0x01001001
                h("07"),  # name length 7 bytes (3 characters)
                "日本x".encode(),  # name: two 3-byte characters and an x
            ]
        ),
        BsdpMessage(images=(BootImage(0x01000002, "Café"), BootImage(0x01001001, "日本x"))),
    ),
    "10 NetBoot 1.0 flag (8.6)": Vector(
        b"".join(
            [
                h("0a"),  # code 10: NetBoot 1.0 firmware
                h("00"),  # length 0: a flag
            ]
        ),
        BsdpMessage(netboot_1_0_firmware=True),
    ),
    "11 one filter (8.6)": Vector(
        b"".join(
            [
                h("0b"),  # code 11: attributes filter list
                h("02"),  # length 2: one value
                h("03 00"),  # non-install diagnostics
            ]
        ),
        BsdpMessage(attribute_filter=(0x0300,)),
    ),
    "11 two filters (8.6)": Vector(
        b"".join(
            [
                h("0b"),  # code 11: attributes filter list
                h("04"),  # length 4: two values
                h("01 00"),  # Mac OS X, non-install
                h("81 00"),  # Mac OS X, install
            ]
        ),
        BsdpMessage(attribute_filter=(0x0100, 0x8100)),
    ),
    "12 max message size": Vector(
        b"".join(
            [
                h("0c"),  # code 12: max message size
                h("02"),  # length 2
                h("20 00"),  # 8192
            ]
        ),
        BsdpMessage(max_message_size=8192),
    ),
    "128 shadow mount path": Vector(
        b"".join(
            [
                h("80"),  # code 128: shadow mount path
                h("2d"),  # length 45
                b"afp://nb001:p%40ss@192.0.2.10/NetBootClients0",  # URL
            ]
        ),
        BsdpMessage(shadow_mount_path="afp://nb001:p%40ss@192.0.2.10/NetBootClients0"),
    ),
    "129 shadow file path": Vector(
        b"".join(
            [
                h("81"),  # code 129: shadow file path
                h("11"),  # length 17
                b"NetBoot001/Shadow",  # path inside the mount
            ]
        ),
        BsdpMessage(shadow_file_path="NetBoot001/Shadow"),
    ),
    "130 machine name": Vector(
        b"".join(
            [
                h("82"),  # code 130: machine name
                h("0a"),  # length 10
                b"NetBoot001",  # name
            ]
        ),
        BsdpMessage(machine_name="NetBoot001"),
    ),
    "unknown codes in order": Vector(
        b"".join(
            [
                h("0d 01 aa"),  # code 13 (undefined), 1 byte
                h("c8 02 bb cc"),  # code 200 (undefined), 2 bytes
                h("0d 00"),  # code 13 again, empty
            ]
        ),
        BsdpMessage(unknown=((13, h("aa")), (200, h("bb cc")), (13, b""))),
    ),
}

# The option-43 bodies of the packets of docs/protocols/bsdp.md §8.
MESSAGES = {
    "8.1 INFORM[LIST]": Vector(
        b"".join(
            [
                h("01 01 01"),  # 1 message type: LIST
                h("02 02 01 01"),  # 2 version: 1.1
                h("05 02 03 e8"),  # 5 reply port: 1000
                h("0c 02 20 00"),  # 12 max message size: 8192
            ]
        ),
        BsdpMessage(message_type=1, version=0x0101, reply_port=1000, max_message_size=8192),
    ),
    "8.1 with flag 10 and filter 11": Vector(
        b"".join(
            [
                h("01 01 01"),  # 1 message type: LIST
                h("02 02 01 01"),  # 2 version: 1.1
                h("0a 00"),  # 10 NetBoot 1.0 firmware
                h("05 02 03 e8"),  # 5 reply port: 1000
                h("0c 02 20 00"),  # 12 max message size: 8192
                h("0b 02 03 00"),  # 11 filter: diagnostics
            ]
        ),
        BsdpMessage(
            message_type=1,
            version=0x0101,
            netboot_1_0_firmware=True,
            reply_port=1000,
            max_message_size=8192,
            attribute_filter=(0x0300,),
        ),
    ),
    "8.2 ACK[LIST]": Vector(
        b"".join(
            [
                h("01 01 01"),  # 1 message type: LIST
                h("04 02 80 00"),  # 4 priority: 32768
                h("07 04 01 00 00 01"),  # 7 default image: 0x01000001
                h("09 22"),  # 9 image list, 34 bytes
                h("01 00 00 01 0b") + b"High Sierra",  # record 1
                h("81 00 10 00 0d") + b"Install macOS",  # record 2
            ]
        ),
        BsdpMessage(
            message_type=1,
            server_priority=32768,
            default_image_id=0x01000001,
            images=(HIGH_SIERRA, INSTALL_MACOS),
        ),
    ),
    "8.3 INFORM[SELECT]": Vector(
        b"".join(
            [
                h("01 01 02"),  # 1 message type: SELECT
                h("02 02 01 01"),  # 2 version: 1.1
                h("05 02 03 e8"),  # 5 reply port: 1000
                h("03 04 c0 00 02 0a"),  # 3 server identifier: 192.0.2.10
                h("08 04 01 00 00 01"),  # 8 selected image: 0x01000001
            ]
        ),
        BsdpMessage(
            message_type=2,
            version=0x0101,
            reply_port=1000,
            server_identifier="192.0.2.10",
            selected_image_id=0x01000001,
        ),
    ),
    "8.4 ACK[SELECT]": Vector(
        b"".join(
            [
                h("01 01 02"),  # 1 message type: SELECT
                h("08 04 01 00 00 01"),  # 8 selected image: 0x01000001
                h("82 0a") + b"NetBoot001",  # 130 machine name
            ]
        ),
        BsdpMessage(message_type=2, selected_image_id=0x01000001, machine_name="NetBoot001"),
    ),
    "8.4 diskless": Vector(
        b"".join(
            [
                h("01 01 02"),  # 1 message type: SELECT
                h("08 04 01 00 00 01"),  # 8 selected image: 0x01000001
                h("82 0a") + b"NetBoot001",  # 130 machine name
                h("80 1a") + b"afp://u:p@192.0.2.10/NBC0/",  # 128 shadow mount path
                h("81 11") + b"NetBoot001/Shadow",  # 129 shadow file path
            ]
        ),
        BsdpMessage(
            message_type=2,
            selected_image_id=0x01000001,
            machine_name="NetBoot001",
            shadow_mount_path="afp://u:p@192.0.2.10/NBC0/",
            shadow_file_path="NetBoot001/Shadow",
        ),
    ),
    "8.5 ACK[FAILED]": Vector(h("01 01 03"), BsdpMessage(message_type=3)),
    "empty": Vector(b"", BsdpMessage()),
    "empty image list": Vector(h("01 01 01 09 00"), BsdpMessage(message_type=1, images=())),
}

ALL = {**SUB_OPTIONS, **MESSAGES}
all_vectors = pytest.mark.parametrize("vec", ALL.values(), ids=ALL.keys())
NON_EMPTY = {name: vec for name, vec in ALL.items() if vec.raw}


def raises_malformed(raw: bytes) -> MalformedPacket:
    """decode must raise exactly MalformedPacket: not IndexError, struct.error or a subclass."""
    with pytest.raises(MalformedPacket) as caught:
        decode(raw)
    assert type(caught.value) is MalformedPacket
    return caught.value


# -- vectors -------------------------------------------------------------------------


@all_vectors
def test_vector_decodes(vec: Vector) -> None:
    assert decode(vec.raw) == vec.message


@all_vectors
def test_vector_encodes(vec: Vector) -> None:
    assert encode(vec.message) == vec.raw


@pytest.mark.parametrize("vec", NON_EMPTY.values(), ids=NON_EMPTY.keys())
def test_truncated_twin_is_malformed(vec: Vector) -> None:
    raises_malformed(vec.truncated)


def test_message_type_decodes_to_the_enum_value() -> None:
    message_type = decode(h("01 01 02")).message_type
    assert message_type is not None
    assert MessageType(message_type) is MessageType.SELECT


def test_sub_option_codes_match_the_document() -> None:
    assert [int(code) for code in SubOption] == [*range(1, 13), 128, 129, 130]


def test_encode_sub_options_lists_each_unsplit() -> None:
    message = MESSAGES["8.2 ACK[LIST]"].message
    assert encode_sub_options(message) == [
        (1, h("01")),
        (4, h("80 00")),
        (7, h("01 00 00 01")),
        (9, h("01 00 00 01 0b") + b"High Sierra" + h("81 00 10 00 0d") + b"Install macOS"),
    ]


def test_unknown_codes_follow_the_known_ones_on_encode() -> None:
    message = BsdpMessage(message_type=1, unknown=((200, h("01")), (13, b"")))
    assert encode(message) == h("01 01 01 c8 01 01 0d 00")
    assert decode(h("c8 01 01 01 01 01 0d 00")) == message


def test_longest_name_is_246_bytes() -> None:
    assert MAX_NAME_BYTES == 246
    image = BootImage(0x01000001, "n" * 246)
    raw = encode(BsdpMessage(images=(image,)))
    assert raw[:2] == h("09 fb")  # 251 = 5 + 246
    assert decode(raw).images == (image,)
    with pytest.raises(ValueError, match="247"):
        BootImage(0x01000001, "n" * 247).encode()
    with pytest.raises(ValueError, match="248"):
        BootImage(0x01000001, "é" * 124).encode()  # 124 characters, 248 bytes


def test_encode_refuses_a_sub_option_over_255_bytes() -> None:
    images = tuple(BootImage(0x01000000 + i, "x" * 46) for i in range(1, 7))  # 6 x 51 bytes
    with pytest.raises(ValueError, match="split"):
        encode(BsdpMessage(images=images))


def test_encode_refuses_an_empty_attribute_filter() -> None:
    with pytest.raises(ValueError):
        encode(BsdpMessage(attribute_filter=()))


# -- several option-43 instances, pad and end ----------------------------------------


def test_split_list_instances_are_joined() -> None:
    # 8.2's list as a server splits it: two option-43 instances, one record in each.
    first_instance = h("01 01 01 04 02 80 00 07 04 01 00 00 01 09 10 01 00 00 01 0b") + (
        b"High Sierra"
    )
    second_instance = h("09 12 81 00 10 00 0d") + b"Install macOS"
    assert decode(first_instance + second_instance) == MESSAGES["8.2 ACK[LIST]"].message


def test_sub_option_may_straddle_option_43_instances() -> None:
    # 8.6: receivers concatenate the option-43 instances before walking sub-options.
    first_instance = h("01 01 01 09")  # sub-option 9's code at the end of the first
    second_instance = h("05 02 00 00 07 00")  # its length and data in the second
    assert decode(first_instance + second_instance) == BsdpMessage(
        message_type=1, images=(BootImage(0x02000007, ""),)
    )


def test_three_list_instances_keep_the_order() -> None:
    raw = b"".join(
        [
            h("09 06 01 00 00 01 01") + b"a",
            h("09 00"),  # an empty instance adds nothing
            h("09 0c 01 00 00 02 01") + b"b" + h("01 00 00 03 01") + b"c",
        ]
    )
    assert [image.name for image in decode(raw).images or ()] == ["a", "b", "c"]


def test_record_straddling_two_list_instances_is_joined() -> None:
    record = h("01 00 00 01 04") + b"High"  # 9 bytes
    raw = bytes((9, 3)) + record[:3] + bytes((9, 6)) + record[3:]
    assert decode(raw).images == (BootImage(0x01000001, "High"),)


def test_pads_are_skipped() -> None:
    assert decode(h("00 00 01 01 01 00 02 02 01 01 00")) == BsdpMessage(
        message_type=1, version=0x0101
    )


def test_end_stops_the_walk() -> None:
    assert decode(h("01 01 01 ff 02 02 01 01")) == BsdpMessage(message_type=1)
    assert decode(h("01 01 03 ff 07")) == BsdpMessage(message_type=3)  # junk after end
    assert decode(h("ff")) == BsdpMessage()


def test_a_repeated_fixed_sub_option_keeps_the_last() -> None:
    assert decode(h("01 01 01 01 01 02")).message_type == 2


# -- malformed corpus ----------------------------------------------------------------

MALFORMED = {
    "code without length": h("01"),
    "length past the end": h("01 05 01"),
    "message type empty": h("01 00"),
    "message type of 2 bytes": h("01 02 01 01"),
    "version of 1 byte": h("02 01 01"),
    "version of 3 bytes": h("02 03 01 01 00"),
    "server id of 3 bytes": h("03 03 c0 00 02"),
    "server id of 5 bytes": h("03 05 c0 00 02 0a 00"),
    "priority of 1 byte": h("04 01 80"),
    "reply port of 4 bytes": h("05 04 00 00 03 e8"),
    "default id of 3 bytes": h("07 03 01 00 00"),
    "selected id of 5 bytes": h("08 05 01 00 00 01 00"),
    "max size of 1 byte": h("0c 01 20"),
    "filter empty": h("0b 00"),
    "filter of 1 byte": h("0b 01 03"),
    "filter of odd length": h("0b 03 01 00 81"),
    "flag 10 with data": h("0a 01 00"),
    "image record without its name length": h("09 04 01 00 00 01"),
    "image record of 1 byte": h("09 01 01"),
    "image name cut short": h("09 07 01 00 00 01 05 41 42"),
    "second image cut short": h("09 08 01 00 00 01 00 02 00 00"),
    "image name not UTF-8": h("09 06 01 00 00 01 01 ff"),
    "image name, a lone continuation byte": h("09 07 01 00 00 01 02 41 80"),
    "shadow mount path not UTF-8": h("80 02 c3 28"),
    "shadow file path not UTF-8": h("81 01 fe"),
    "machine name not UTF-8": h("82 03 e2 82 28"),
    "good then truncated": h("01 01 01 02 02 01"),
    "unknown code truncated": h("c8 04 00 00"),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_sub_options_raise_malformed_packet(raw: bytes) -> None:
    raises_malformed(raw)


def test_malformed_reasons_name_the_fault() -> None:
    assert "not 2" in str(raises_malformed(MALFORMED["version of 3 bytes"]))
    assert "server identifier" in str(raises_malformed(MALFORMED["server id of 5 bytes"]))
    assert "cut short" in str(raises_malformed(MALFORMED["image name cut short"]))
    assert "UTF-8" in str(raises_malformed(MALFORMED["image name not UTF-8"]))


# -- properties ----------------------------------------------------------------------

uint16 = st.integers(0, 0xFFFF)
uint32 = st.integers(0, 0xFFFF_FFFF)
KNOWN = {int(code) for code in SubOption}
unknown_code = st.integers(1, 254).filter(lambda code: code not in KNOWN)
# At most 5 records of at most 5 + 40 bytes: the list stays within one 255-byte sub-option.
images = st.lists(st.builds(BootImage, uint32, st.text(max_size=10)), max_size=5).map(tuple)
text = st.text(max_size=60)  # at most 240 bytes of UTF-8

messages = st.builds(
    BsdpMessage,
    message_type=st.none() | st.integers(0, 255),
    version=st.none() | uint16,
    server_identifier=st.none() | st.ip_addresses(v=4).map(str),
    server_priority=st.none() | uint16,
    reply_port=st.none() | uint16,
    boot_image_list_path=st.none() | st.binary(max_size=255),
    default_image_id=st.none() | uint32,
    selected_image_id=st.none() | uint32,
    images=st.none() | images,
    netboot_1_0_firmware=st.booleans(),
    attribute_filter=st.none() | st.lists(uint16, min_size=1, max_size=127).map(tuple),
    max_message_size=st.none() | uint16,
    shadow_mount_path=st.none() | text,
    shadow_file_path=st.none() | text,
    machine_name=st.none() | text,
    unknown=st.lists(st.tuples(unknown_code, st.binary(max_size=255)), max_size=3).map(tuple),
)


@settings(max_examples=300)
@given(messages)
def test_decode_of_encode_is_the_message(message: BsdpMessage) -> None:
    raw = encode(message)
    assert decode(raw) == message
    assert all(len(data) <= 255 for _, data in encode_sub_options(message))


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_decode_of_any_bytes_raises_only_malformed_packet(raw: bytes) -> None:
    with contextlib.suppress(MalformedPacket):
        decode(raw)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from([*KNOWN, 13, 200]), st.binary(max_size=12)), max_size=8))
def test_decode_of_well_framed_sub_options_raises_only_malformed_packet(
    sub_options: list[tuple[int, bytes]],
) -> None:
    # Right framing, arbitrary contents: every size check is reached.
    raw = b"".join(bytes((code, len(data))) + data for code, data in sub_options)
    try:
        message = decode(raw)
    except MalformedPacket:
        return
    assert decode(encode(message)) == message
