"""The BSDP client side: INFORM builders against the documented packets, reading ACKs.

The reference packets are the byte-by-byte vectors of docs/protocols/bsdp.md §8
defined in tests/test_dhcp_packet.py (8.1 INFORM[LIST], 8.2 ACK[LIST],
8.3 INFORM[SELECT], 8.4 ACK[SELECT], 8.5 ACK[FAILED]); the client's option order
is Apple's (docs/protocols/bsdp.md §7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from netboot.bsdp.client import (
    Answer,
    ServerListing,
    describe_image,
    inform_list,
    inform_select,
    preferred,
    read_answer,
)
from netboot.bsdp.options import BootImage, BsdpMessage, MessageType, decode, encode
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket
from tests.test_dhcp_packet import (
    ACK_FAILED,
    ACK_LIST,
    ACK_SELECT,
    BOOTER,
    CLIENT_MAC,
    INFORM_LIST,
    INFORM_SELECT,
    ROOT_PATH,
    bootp_header,
    h,
)

LIST_XID = 0x12345678
SELECT_XID = 0x12345679
CLIENT_IP = "192.0.2.50"
SERVER_IP = "192.0.2.10"
HIGH_SIERRA = BootImage(0x01000001, "High Sierra")
INSTALL_MACOS = BootImage(0x81001000, "Install macOS")
DIAGNOSTICS = BootImage(0x03000005, "Diagnostics")


def vector_inform_list(**overrides: object) -> DhcpPacket:
    arguments: dict[str, object] = {
        "xid": LIST_XID,
        "mac": CLIENT_MAC,
        "ciaddr": CLIENT_IP,
        "arch": "i386",
        "model": "MacBookPro11,1",
        "reply_port": 1000,
    }
    arguments.update(overrides)
    return inform_list(**arguments)  # type: ignore[arg-type]


def vector_inform_select(**overrides: object) -> DhcpPacket:
    arguments: dict[str, object] = {
        "xid": SELECT_XID,
        "mac": CLIENT_MAC,
        "ciaddr": CLIENT_IP,
        "arch": "i386",
        "model": "MacBookPro11,1",
        "server_identifier": SERVER_IP,
        "image_id": 0x01000001,
        "reply_port": 1000,
    }
    arguments.update(overrides)
    return inform_select(**arguments)  # type: ignore[arg-type]


# -- INFORM builders -----------------------------------------------------------------


def test_inform_list_has_exactly_the_options_of_8_1() -> None:
    assert vector_inform_list().options == parse_packet(INFORM_LIST.datagram).options


def test_inform_list_builds_to_the_bytes_of_8_1() -> None:
    assert build_packet(vector_inform_list()) == INFORM_LIST.datagram


def test_inform_select_has_exactly_the_options_of_8_3() -> None:
    assert vector_inform_select().options == parse_packet(INFORM_SELECT.datagram).options


def test_inform_select_builds_to_the_bytes_of_8_3() -> None:
    assert build_packet(vector_inform_select()) == INFORM_SELECT.datagram


@pytest.mark.parametrize("build", [vector_inform_list, vector_inform_select])
def test_inform_header_is_a_request_from_the_clients_address(
    build: Callable[[], DhcpPacket],
) -> None:
    packet = build()
    assert packet.op == 1
    assert packet.ciaddr == CLIENT_IP
    assert (packet.yiaddr, packet.siaddr, packet.giaddr) == ("0.0.0.0",) * 3
    assert packet.mac == "00:16:cb:12:34:56"
    assert (packet.sname, packet.file) == (b"", b"")
    assert [code for code, _ in packet.options] == [53, 55, 57, 60, 43]
    assert packet.message_type == 8


def test_inform_list_without_reply_port() -> None:
    packet = vector_inform_list(reply_port=None)
    assert packet.option(43) == b"".join(
        [
            h("01 01 01"),  # 1 message type: LIST
            h("02 02 01 01"),  # 2 version: 1.1
            h("0c 02 20 00"),  # 12 max message size: 8192
        ]
    )


def test_inform_list_with_a_filter_puts_it_last() -> None:
    packet = vector_inform_list(attribute_filter=(0x0100, 0x8100))
    assert packet.option(43) == b"".join(
        [
            h("01 01 01"),  # 1 message type: LIST
            h("02 02 01 01"),  # 2 version: 1.1
            h("05 02 03 e8"),  # 5 reply port: 1000
            h("0c 02 20 00"),  # 12 max message size: 8192
            h("0b 04 01 00 81 00"),  # 11 filter: OS X, install or not
        ]
    )


def test_inform_select_without_reply_port() -> None:
    packet = vector_inform_select(reply_port=None, image_id=0x81001000)
    assert packet.option(43) == b"".join(
        [
            h("01 01 02"),  # 1 message type: SELECT
            h("02 02 01 01"),  # 2 version: 1.1
            h("03 04 c0 00 02 0a"),  # 3 server identifier: 192.0.2.10
            h("08 04 81 00 10 00"),  # 8 selected image: 0x81001000
        ]
    )


def test_inform_class_id_follows_arch_and_model() -> None:
    packet = vector_inform_list(arch="ppc", model="PowerMac3,1")
    assert packet.option(60) == b"AAPLBSDPC/ppc/PowerMac3,1"


# -- read_answer ---------------------------------------------------------------------


def test_read_answer_of_the_ack_list() -> None:
    answer = read_answer(parse_packet(ACK_LIST.datagram), LIST_XID)
    assert answer == Answer(
        server_id=SERVER_IP,
        message=BsdpMessage(
            message_type=MessageType.LIST,
            server_priority=32768,
            default_image_id=0x01000001,
            images=(HIGH_SIERRA, INSTALL_MACOS),
        ),
        siaddr=SERVER_IP,
        file="",
        root_path=None,
    )


def test_read_answer_of_the_ack_select() -> None:
    answer = read_answer(parse_packet(ACK_SELECT.datagram), SELECT_XID)
    assert answer == Answer(
        server_id=SERVER_IP,
        message=BsdpMessage(
            message_type=MessageType.SELECT,
            selected_image_id=0x01000001,
            machine_name="NetBoot001",
        ),
        siaddr=SERVER_IP,
        file=BOOTER.decode(),
        root_path=ROOT_PATH.decode(),
    )


def test_read_answer_of_the_ack_failed() -> None:
    answer = read_answer(parse_packet(ACK_FAILED.datagram), SELECT_XID)
    assert answer is not None
    assert answer.message == BsdpMessage(message_type=MessageType.FAILED)
    assert (answer.server_id, answer.file, answer.root_path) == (SERVER_IP, "", None)


def test_read_answer_joins_option_43_instances() -> None:
    first = h("01 01 01 04 02 80 00 07 04 01 00 00 01 09 10 01 00 00 01 0b") + b"High Sierra"
    second = h("09 12 81 00 10 00 0d") + b"Install macOS"
    packet = replace(
        parse_packet(ACK_LIST.datagram),
        options=(
            (53, h("05")),
            (54, h("c0 00 02 0a")),
            (60, b"AAPLBSDPC"),
            (43, first),
            (43, second),
        ),
    )
    answer = read_answer(parse_packet(build_packet(packet)), LIST_XID)
    assert answer is not None
    assert answer.message.images == (HIGH_SIERRA, INSTALL_MACOS)
    assert answer.message.default_image_id == 0x01000001


@pytest.mark.parametrize(
    ("datagram", "xid"),
    [
        (ACK_LIST.datagram, SELECT_XID),
        (ACK_LIST.datagram, 0),
        (ACK_SELECT.datagram, LIST_XID),
        (ACK_FAILED.datagram, LIST_XID),
    ],
    ids=["list, select xid", "list, xid 0", "select, list xid", "failed, list xid"],
)
def test_read_answer_ignores_other_transactions(datagram: bytes, xid: int) -> None:
    assert read_answer(parse_packet(datagram), xid) is None


def _ack_list_with(options: tuple[tuple[int, bytes], ...], op: int = 2) -> DhcpPacket:
    return replace(parse_packet(ACK_LIST.datagram), op=op, options=options)


LIST_43 = parse_packet(ACK_LIST.datagram).option(43) or b""
NOT_ANSWERS = {
    "our own INFORM[LIST]": parse_packet(INFORM_LIST.datagram),
    "a request with 53=ACK": _ack_list_with(parse_packet(ACK_LIST.datagram).options, op=1),
    "an OFFER": _ack_list_with(
        ((53, h("02")), (54, h("c0 00 02 0a")), (60, b"AAPLBSDPC"), (43, LIST_43))
    ),
    "a NAK": _ack_list_with(((53, h("06")), (54, h("c0 00 02 0a")), (60, b"AAPLBSDPC"))),
    "an INFORM echoed as a reply": _ack_list_with(
        ((53, h("08")), (54, h("c0 00 02 0a")), (60, b"AAPLBSDPC"), (43, LIST_43))
    ),
    "no message type": _ack_list_with(((54, h("c0 00 02 0a")), (60, b"AAPLBSDPC"), (43, LIST_43))),
    "an ACK of a plain DHCP server": _ack_list_with(((53, h("05")), (54, h("c0 00 02 01")))),
    "an ACK with a client class": _ack_list_with(
        ((53, h("05")), (54, h("c0 00 02 0a")), (60, b"AAPLBSDPC/i386/X"), (43, LIST_43))
    ),
}


@pytest.mark.parametrize("packet", NOT_ANSWERS.values(), ids=NOT_ANSWERS.keys())
def test_read_answer_ignores_what_is_not_a_bsdp_ack(packet: DhcpPacket) -> None:
    xid = packet.xid
    assert read_answer(packet, xid) is None


def test_read_answer_refuses_an_ack_without_server_identifier() -> None:
    packet = _ack_list_with(((53, h("05")), (60, b"AAPLBSDPC"), (43, LIST_43)))
    with pytest.raises(MalformedPacket, match="server identifier"):
        read_answer(packet, LIST_XID)


def test_read_answer_refuses_garbage_in_option_43() -> None:
    packet = _ack_list_with(
        ((53, h("05")), (54, h("c0 00 02 0a")), (60, b"AAPLBSDPC"), (43, h("02 03 01")))
    )
    with pytest.raises(MalformedPacket):
        read_answer(packet, LIST_XID)


# -- ServerListing -------------------------------------------------------------------


def _ack_list_datagram(images: list[BootImage], priority: int = 32768) -> bytes:
    """An ACK[LIST] like docs/protocols/bsdp.md §8.2 with another image list, same header."""
    body = encode(
        BsdpMessage(
            message_type=MessageType.LIST,
            server_priority=priority,
            default_image_id=0x01000001,
            images=tuple(images),
        )
    )
    return b"".join(
        [
            bootp_header(op="02", xid="12 34 56 78", siaddr="c0 00 02 0a"),
            h("35 01 05"),  # 53 ACK
            h("36 04 c0 00 02 0a"),  # 54 server identifier: 192.0.2.10
            h("3c 09") + b"AAPLBSDPC",  # 60 server class
            bytes((43, len(body))) + body,  # 43 BSDP
            h("ff"),  # end
        ]
    )


def test_a_second_ack_list_replaces_the_first_as_bsdpc_does() -> None:
    """Apple's bsdpc keeps a server's latest reply (removeExistingServer); so do we."""
    listing = ServerListing(SERVER_IP)
    for datagram in (ACK_LIST.datagram, _ack_list_datagram([INSTALL_MACOS, DIAGNOSTICS], 1000)):
        answer = read_answer(parse_packet(datagram), LIST_XID)
        assert answer is not None
        assert answer.server_id == listing.server_id
        listing.add(answer.message)
    assert listing.images == [INSTALL_MACOS, DIAGNOSTICS]
    assert listing.replies == 2
    assert listing.priority == 1000
    assert listing.default_image_id == 0x01000001
    assert listing.selected_image_id is None


def test_listing_of_the_same_reply_twice_has_each_image_once() -> None:
    listing = ServerListing(SERVER_IP)
    message = decode(parse_packet(ACK_LIST.datagram).option(43) or b"")
    listing.add(message)
    listing.add(message)
    assert listing.images == [HIGH_SIERRA, INSTALL_MACOS]
    assert listing.replies == 2


def test_listing_as_json() -> None:
    listing = ServerListing(SERVER_IP)
    listing.add(
        BsdpMessage(
            message_type=MessageType.LIST,
            server_priority=32768,
            default_image_id=0x01000001,
            selected_image_id=0x81001000,
            images=(HIGH_SIERRA, INSTALL_MACOS),
        )
    )
    assert listing.as_json() == {
        "server_id": "192.0.2.10",
        "priority": 32768,
        "default_image_id": 0x01000001,
        "selected_image_id": 0x81001000,
        "replies": 1,
        "images": [
            {"id": 0x01000001, "index": 1, "kind": 1, "is_install": False, "name": "High Sierra"},
            {
                "id": 0x81001000,
                "index": 4096,
                "kind": 1,
                "is_install": True,
                "name": "Install macOS",
            },
        ],
    }


def test_read_answer_merges_the_option_43_instances_of_one_packet() -> None:
    head = encode(BsdpMessage(MessageType.LIST, server_priority=7, default_image_id=0x01000001))
    first = HIGH_SIERRA.encode()
    second = INSTALL_MACOS.encode() + DIAGNOSTICS.encode()
    packet = _ack_list_with(
        (
            (53, h("05")),
            (54, h("c0 00 02 0a")),
            (60, b"AAPLBSDPC"),
            (43, head + bytes((9, len(first))) + first),
            (43, bytes((9, len(second))) + second),
        )
    )
    answer = read_answer(packet, LIST_XID)
    assert answer is not None
    assert answer.message.images == (HIGH_SIERRA, INSTALL_MACOS, DIAGNOSTICS)
    assert answer.message.server_priority == 7


def test_read_answer_refuses_a_sub_option_cut_across_two_instances() -> None:
    """A Mac parses each option-43 instance on its own (dhcpol_parse_vendor)."""
    body = encode(BsdpMessage(MessageType.LIST, server_priority=7, images=(HIGH_SIERRA,)))
    options = ((53, h("05")), (54, h("c0 00 02 0a")), (60, b"AAPLBSDPC"))
    whole = _ack_list_with((*options, (43, body)))
    cut = _ack_list_with((*options, (43, body[:-4]), (43, body[-4:])))
    answer = read_answer(whole, LIST_XID)
    assert answer is not None and answer.message.images == (HIGH_SIERRA,)
    with pytest.raises(MalformedPacket):
        read_answer(cut, LIST_XID)


def test_listing_of_a_reply_without_a_list() -> None:
    listing = ServerListing(SERVER_IP)
    listing.add(BsdpMessage(message_type=MessageType.LIST, server_priority=7))
    assert listing.images == []
    assert listing.priority == 7


@pytest.mark.parametrize(
    ("image", "described"),
    [
        (HIGH_SIERRA, (1, 1, False)),
        (INSTALL_MACOS, (4096, 1, True)),
        (DIAGNOSTICS, (5, 3, False)),
        (BootImage(0x02000007, ""), (7, 2, False)),
        (BootImage(0xFF00FFFF, "top"), (0xFFFF, 0x7F, True)),
    ],
    ids=["local OS X", "global install", "diagnostics", "server, empty name", "all bits"],
)
def test_describe_image(image: BootImage, described: tuple[int, int, bool]) -> None:
    index, kind, is_install = described
    assert describe_image(image) == {
        "id": image.image_id,
        "index": index,
        "kind": kind,
        "is_install": is_install,
        "name": image.name,
    }


@pytest.mark.parametrize(
    "image_id",
    [0x00000000, 0x01000000, 0x01010001, 0x00FF0001],
    ids=["null", "index 0", "reserved", "reserved byte"],
)
def test_describe_image_of_an_invalid_id(image_id: int) -> None:
    assert describe_image(BootImage(image_id, "odd")) == {
        "id": image_id,
        "index": None,
        "kind": None,
        "is_install": None,
        "name": "odd",
    }


def _listing(server_id: str, priority: int | None, selected: int | None = None) -> ServerListing:
    listing = ServerListing(server_id)
    listing.add(BsdpMessage(MessageType.LIST, server_priority=priority, selected_image_id=selected))
    return listing


def test_a_mac_picks_the_least_busy_server_the_first_heard_on_a_tie() -> None:
    """Each server's priority is its base minus the clients bound to it, so the
    highest priority is the least busy server (docs/protocols/bsdp.md §7, step 3)."""
    busy, idle, also_idle = (
        _listing("192.0.2.10", 32760),
        _listing("192.0.2.11", 32767),
        _listing("192.0.2.12", 32767),
    )
    assert preferred([busy, idle, also_idle]) is idle
    assert preferred([busy, also_idle, idle]) is also_idle
    assert preferred([_listing("192.0.2.13", None), busy]) is busy
    assert preferred([]) is None


def test_a_mac_stays_with_the_server_that_holds_its_selection() -> None:
    """A reply naming this Mac's selected image (sub-option 8) wins over any priority."""
    bound = _listing("192.0.2.10", 100, selected=0x0100_1000)
    idle = _listing("192.0.2.11", 32768)
    assert preferred([idle, bound]) is bound
    assert preferred([bound, idle]) is bound
