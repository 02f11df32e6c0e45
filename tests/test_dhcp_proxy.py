"""proxyDHCP replies on the wire (netboot.dhcp.proxy.proxy_answer).

Every reply is built with `build_packet` and parsed again, so the checks are on
what a client would receive. The rules are those of docs/protocols/pxe.md §4
(the two-phase exchange), docs/protocols/pxe.md §2.2 (which options a proxy
writes and which it never does) and the unit-test list of docs/protocols/pxe.md §9.
`BIOS_DISCOVER` and
`BIOS_PROXY_OFFER` are written byte by byte, with a comment per field group, from
the BOOTP layout of docs/protocols/pxe.md §1, not from our encoder.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from netboot.dhcp.boot import BootSettings
from netboot.dhcp.proxy import Answer, Silence, proxy_answer
from netboot.dhcp.pxe import classify
from netboot.dhcpwire.options import BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet

SERVER = "192.0.2.10"
CLIENT_IP = "192.0.2.77"
RELAY = "198.51.100.1"
MAC = bytes.fromhex("525400123456")
UUID = bytes(1) + bytes(range(16))
XID = 0x1A2B3C4D
SETTINGS = BootSettings(
    boot_files={"bios": "undionly.kpxe", "efi-x64": "ipxe.efi", "efi-arm64": "ipxe-arm64.efi"},
    http_port=8080,
)
BROADCAST_68 = ("255.255.255.255", 68)
FROM_CLIENT = ("0.0.0.0", 68)
# 43.71 of docs/protocols/pxe.md §2.4: type 0x8000, layer 0.
BOOT_ITEM_43 = bytes.fromhex("47 04 80 00 00 00 ff")
NETWORK_OPTIONS = (1, 3, 6, 15, 51, 58, 59)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- the byte vector ---------------------------------------------------------------------

# A BIOS PXE 2.1 ROM's DISCOVER (QEMU's, minus the options that do not matter here).
BIOS_DISCOVER = b"".join(
    [
        h("01"),  # 0 op: BOOTREQUEST
        h("01 06 00"),  # 1 htype Ethernet, hlen 6, hops 0
        h("1a 2b 3c 4d"),  # 4 xid
        h("00 04"),  # 8 secs: 4 (the second try)
        h("80 00"),  # 10 flags: broadcast
        h("00 00 00 00"),  # 12 ciaddr
        h("00 00 00 00"),  # 16 yiaddr
        h("00 00 00 00"),  # 20 siaddr
        h("00 00 00 00"),  # 24 giaddr: not relayed
        h("52 54 00 12 34 56") + bytes(10),  # 28 chaddr, padded to 16
        bytes(64),  # 44 sname
        bytes(128),  # 108 file
        h("63 82 53 63"),  # 236 magic cookie
        h("35 01 01"),  # 53 DISCOVER
        h("39 02 05 c0"),  # 57 max message size 1472
        h("37 0a 01 03 06 2b 3c 42 43 80 81 82"),  # 55: 1 3 6 43 60 66 67 128-130
        h("5d 02 00 00"),  # 93 arch 0, x86 BIOS
        h("5e 03 01 02 01"),  # 94 UNDI 2.1
        h("3c 20") + b"PXEClient:Arch:00000:UNDI:002001",  # 60, 32 bytes
        h("61 11 00") + bytes(range(16)),  # 97 UUID type 0
        h("ff"),  # END
    ]
)

# What the proxy answers on port 67 (docs/protocols/pxe.md §4.1, variant A for BIOS).
BIOS_PROXY_OFFER = b"".join(
    [
        h("02"),  # 0 op: BOOTREPLY
        h("01 06 00"),  # 1 htype and hlen copied; hops 0
        h("1a 2b 3c 4d"),  # 4 xid copied (iPXE drops a reply whose xid differs)
        h("00 00"),  # 8 secs: 0 in a reply
        h("80 00"),  # 10 flags copied: broadcast
        h("00 00 00 00"),  # 12 ciaddr copied (0)
        h("00 00 00 00"),  # 16 yiaddr 0: a proxy never offers an address
        h("c0 00 02 0a"),  # 20 siaddr 192.0.2.10: the TFTP server, next to the file name
        h("00 00 00 00"),  # 24 giaddr copied (0)
        h("52 54 00 12 34 56") + bytes(10),  # 28 chaddr copied
        bytes(64),  # 44 sname: empty, never overloaded
        b"undionly.kpxe".ljust(128, b"\x00"),  # 108 file: the BIOS loader, NUL-padded
        h("63 82 53 63"),  # 236 magic cookie
        h("35 01 02"),  # 53 OFFER
        h("36 04 c0 00 02 0a"),  # 54 server identifier 192.0.2.10
        h("3c 09") + b"PXEClient",  # 60 PXEClient, 9 bytes: without it no client takes the offer
        h("43 0d") + b"undionly.kpxe",  # 67 the same name as the file field
        h("2b 0a 06 01 08 0a 04 00 50 58 45 ff"),  # 43: 6 = 0x08 boot now, 10 = 0 s "PXE", END
        h("61 11 00") + bytes(range(16)),  # 97 the client's UUID echoed
        h("ff"),  # END; 307 bytes in all, over the 300 of BOOTP, so no padding
    ]
)


def test_bios_discover_vector_parses_as_written() -> None:
    request = parse_packet(BIOS_DISCOVER)
    assert (request.op, request.xid, request.flags, request.secs) == (1, XID, 0x8000, 4)
    assert request.chaddr == MAC + bytes(10)
    assert request.message_type == MessageType.DISCOVER
    assert request.option(Option.CLIENT_UUID) == UUID


def test_bios_proxy_offer_is_the_expected_datagram_byte_for_byte() -> None:
    request = parse_packet(BIOS_DISCOVER)
    answer = proxy_answer(request, classify(request), SERVER, 67, FROM_CLIENT, SETTINGS)
    assert isinstance(answer, Answer)
    assert answer.destination == BROADCAST_68
    assert build_packet(answer.packet) == BIOS_PROXY_OFFER
    assert len(BIOS_PROXY_OFFER) == 307


# --- requests ----------------------------------------------------------------------------

BIOS = ((60, b"PXEClient:Arch:00000:UNDI:002001"), (93, h("00 00")), (94, h("01 02 01")))
UEFI_X64 = ((60, b"PXEClient:Arch:00007:UNDI:003000"), (93, h("00 07")), (94, h("01 03 00")))
UEFI_ARM64 = ((60, b"PXEClient:Arch:00011:UNDI:003000"), (93, h("00 0b")))
IPXE = ((60, b"PXEClient:Arch:00007:UNDI:003010"), (77, b"iPXE"), (93, h("00 07")))
IPXE_HTTP = (*IPXE, (175, h("13 01 01 15 01 01")))
HTTP_BOOT = ((60, b"HTTPClient:Arch:00016:UNDI:003000"), (93, h("00 10")))
PLAIN = ((60, b"MSFT 5.0"), (12, b"desktop"))
NO_ARCH = ((60, b"PXEClient"),)


def request(
    message: MessageType,
    *options: tuple[int, bytes],
    flags: int = 0x8000,
    ciaddr: str = "0.0.0.0",
    giaddr: str = "0.0.0.0",
    max_size: int | None = 1472,
    uuid: bool = True,
) -> DhcpPacket:
    """A client request as the server dissects it (one trip over the wire)."""
    extra: list[tuple[int, bytes]] = []
    if max_size is not None:
        extra.append((Option.MAX_MESSAGE_SIZE, max_size.to_bytes(2, "big")))
    if uuid:
        extra.append((Option.CLIENT_UUID, UUID))
    packet = DhcpPacket(
        op=BOOTREQUEST,
        xid=XID,
        chaddr=MAC + bytes(10),
        flags=flags,
        ciaddr=ciaddr,
        giaddr=giaddr,
        hops=1 if giaddr != "0.0.0.0" else 0,
        options=((Option.MESSAGE_TYPE, bytes((message,))), *extra, *options),
    )
    return parse_packet(build_packet(packet))


def answer(
    packet: DhcpPacket, port: int = 67, source: tuple[str, int] = FROM_CLIENT
) -> Answer | Silence:
    return proxy_answer(packet, classify(packet), SERVER, port, source, SETTINGS)


def on_the_wire(result: Answer | Silence) -> tuple[bytes, DhcpPacket]:
    assert isinstance(result, Answer), result
    datagram = build_packet(result.packet)
    return datagram, parse_packet(datagram)


# --- the proxy OFFER on port 67 ----------------------------------------------------------

OFFERED = [
    pytest.param(BIOS, b"PXEClient", b"undionly.kpxe", id="bios"),
    pytest.param(UEFI_X64, b"PXEClient", b"ipxe.efi", id="uefi-x64"),
    pytest.param(UEFI_ARM64, b"PXEClient", b"ipxe-arm64.efi", id="uefi-arm64"),
    pytest.param(
        IPXE,
        b"PXEClient",
        f"http://{SERVER}:8080/boot.ipxe?mac=52:54:00:12:34:56&arch=7".encode(),
        id="ipxe",
    ),
    pytest.param(
        HTTP_BOOT, b"HTTPClient", f"http://{SERVER}:8080/boot/ipxe.efi".encode(), id="http-boot"
    ),
]


@pytest.mark.parametrize("giaddr", ["0.0.0.0", RELAY])
@pytest.mark.parametrize(("options", "vendor_class", "file"), OFFERED)
def test_proxy_offer_carries_boot_fields_and_no_network_configuration(
    options: tuple[tuple[int, bytes], ...], vendor_class: bytes, file: bytes, giaddr: str
) -> None:
    discover = request(MessageType.DISCOVER, *options, giaddr=giaddr)
    datagram, offer = on_the_wire(answer(discover))
    assert offer.op == 2
    assert offer.message_type == MessageType.OFFER
    assert offer.yiaddr == "0.0.0.0"
    assert [code for code, _ in offer.options if code in NETWORK_OPTIONS] == []
    assert offer.option(Option.VENDOR_CLASS) == vendor_class
    assert offer.option(Option.SERVER_IDENTIFIER) == bytes((192, 0, 2, 10))
    assert offer.siaddr == SERVER
    assert offer.file == file
    assert offer.option(Option.BOOTFILE_NAME) == file
    assert offer.option(Option.CLIENT_UUID) == UUID
    copied = (offer.xid, offer.chaddr, offer.flags, offer.giaddr, offer.htype, offer.hlen)
    assert copied == (discover.xid, discover.chaddr, discover.flags, giaddr, 1, 6)
    unpadded = build_packet(offer, pad_to=0)
    assert unpadded.endswith(b"\xff")
    assert datagram.rstrip(b"\x00") == unpadded.rstrip(b"\x00")
    assert len(datagram) + 28 <= 1472


@pytest.mark.parametrize(("options", "vendor_class", "file"), OFFERED)
def test_proxy_offer_fits_the_576_bytes_of_a_client_without_option_57(
    options: tuple[tuple[int, bytes], ...], vendor_class: bytes, file: bytes
) -> None:
    datagram, _ = on_the_wire(answer(request(MessageType.DISCOVER, *options, max_size=None)))
    assert len(datagram) + 28 <= 576


@pytest.mark.parametrize(
    ("options", "option43"),
    [
        pytest.param(BIOS, h("06 01 08 0a 04 00 50 58 45 ff"), id="bios-boot-now"),
        pytest.param(UEFI_X64, None, id="uefi-variant-b-asks-4011"),
        pytest.param(IPXE, None, id="ipxe-needs-no-43"),
        pytest.param(HTTP_BOOT, None, id="http-boot-no-43"),
    ],
)
def test_proxy_offer_option_43_by_client(
    options: tuple[tuple[int, bytes], ...], option43: bytes | None
) -> None:
    _, offer = on_the_wire(answer(request(MessageType.DISCOVER, *options)))
    assert offer.option(Option.VENDOR_SPECIFIC) == option43
    assert offer.option(175) is None  # 175 only in full mode


def test_proxy_offer_without_a_client_uuid_sends_none() -> None:
    _, offer = on_the_wire(answer(request(MessageType.DISCOVER, *BIOS, uuid=False)))
    assert offer.option(Option.CLIENT_UUID) is None


@pytest.mark.parametrize(
    ("flags", "ciaddr", "giaddr", "destination"),
    [
        pytest.param(0x8000, "0.0.0.0", "0.0.0.0", BROADCAST_68, id="broadcast-flag"),
        pytest.param(0, "0.0.0.0", "0.0.0.0", BROADCAST_68, id="no-flag-no-ciaddr"),
        pytest.param(0x8000, "0.0.0.0", RELAY, (RELAY, 67), id="relayed"),
        pytest.param(0, "0.0.0.0", RELAY, (RELAY, 67), id="relayed-no-flag"),
    ],
)
def test_proxy_offer_destination(
    flags: int, ciaddr: str, giaddr: str, destination: tuple[str, int]
) -> None:
    discover = request(MessageType.DISCOVER, *BIOS, flags=flags, ciaddr=ciaddr, giaddr=giaddr)
    result = answer(discover)
    assert isinstance(result, Answer)
    assert result.destination == destination


@pytest.mark.parametrize(
    "message",
    [MessageType.REQUEST, MessageType.INFORM, MessageType.RELEASE, MessageType.DECLINE],
)
@pytest.mark.parametrize("options", [BIOS, UEFI_X64, IPXE, HTTP_BOOT])
def test_port_67_answers_only_discover(
    message: MessageType, options: tuple[tuple[int, bytes], ...]
) -> None:
    result = answer(request(message, (54, h("c0 00 02 01")), (50, h("c0 00 02 4d")), *options))
    assert isinstance(result, Silence)
    assert not result.loud


@pytest.mark.parametrize(
    ("options", "loud"),
    [
        pytest.param(PLAIN, True, id="plain-client"),
        pytest.param((), True, id="no-options"),
        pytest.param(NO_ARCH, True, id="pxe-without-architecture"),
        pytest.param((*BIOS[:1], (93, h("00"))), True, id="pxe-odd-93"),
        pytest.param(((60, b"PXEClient:Arch:00027"), (93, h("00 1b"))), True, id="no-file-riscv"),
    ],
)
def test_proxy_stays_silent_without_a_boot_file(
    options: tuple[tuple[int, bytes], ...], loud: bool
) -> None:
    result = answer(request(MessageType.DISCOVER, *options))
    assert isinstance(result, Silence)
    assert result.loud is loud


# --- the boot-server ACK on port 4011 ----------------------------------------------------

SOURCE_4011 = (CLIENT_IP, 68)


def boot_server_request(*options: tuple[int, bytes]) -> DhcpPacket:
    """The unicast REQUEST from the client's new address (docs/protocols/pxe.md §4.2)."""
    return request(MessageType.REQUEST, *options, flags=0, ciaddr=CLIENT_IP)


@pytest.mark.parametrize(
    ("options", "sent43", "echoed43"),
    [
        pytest.param(UEFI_X64, None, None, id="no-boot-item"),
        pytest.param(UEFI_X64, BOOT_ITEM_43, BOOT_ITEM_43, id="boot-item-echoed"),
        pytest.param(
            UEFI_X64,
            h("47 04 ab cd 80 01 ff"),
            h("47 04 ab cd 80 01 ff"),
            id="vendor-type-credentials-layer",
        ),
        pytest.param(UEFI_X64, h("06 01 08 47 04 80 00 00 00 ff"), BOOT_ITEM_43, id="only-71"),
        pytest.param(BIOS, None, None, id="bios-boot-now-not-sent"),
        pytest.param(BIOS, BOOT_ITEM_43, BOOT_ITEM_43, id="bios-boot-item"),
        pytest.param(UEFI_X64, h("47 03 80 00 00 ff"), None, id="malformed-item-not-echoed"),
    ],
)
def test_4011_request_gets_an_ack_echoing_43_71_exactly(
    options: tuple[tuple[int, bytes], ...], sent43: bytes | None, echoed43: bytes | None
) -> None:
    extra = [(43, sent43)] if sent43 is not None else []
    req = boot_server_request(*options, *extra)
    result = answer(req, 4011, SOURCE_4011)
    assert isinstance(result, Answer)
    assert result.destination == SOURCE_4011
    _, ack = on_the_wire(result)
    assert ack.message_type == MessageType.ACK
    assert ack.option(Option.VENDOR_SPECIFIC) == echoed43
    assert ack.all_of(Option.VENDOR_SPECIFIC) == ([echoed43] if echoed43 else [])
    assert ack.sname == SERVER.encode()
    assert ack.siaddr == SERVER
    assert (ack.yiaddr, ack.ciaddr) == ("0.0.0.0", CLIENT_IP)
    assert ack.option(Option.SERVER_IDENTIFIER) == bytes((192, 0, 2, 10))
    assert ack.option(Option.VENDOR_CLASS) == b"PXEClient"
    assert ack.file == ack.option(Option.BOOTFILE_NAME) != b""
    assert ack.option(Option.CLIENT_UUID) == UUID
    assert (ack.xid, ack.chaddr) == (req.xid, req.chaddr)
    assert [code for code, _ in ack.options if code in NETWORK_OPTIONS] == []


@pytest.mark.parametrize(
    ("options", "file"),
    [
        pytest.param(UEFI_X64, b"ipxe.efi", id="uefi-x64"),
        pytest.param(UEFI_ARM64, b"ipxe-arm64.efi", id="arm64"),
        pytest.param(BIOS, b"undionly.kpxe", id="bios"),
    ],
)
def test_4011_ack_names_the_loader_for_the_requests_architecture(
    options: tuple[tuple[int, bytes], ...], file: bytes
) -> None:
    _, ack = on_the_wire(answer(boot_server_request(*options), 4011, SOURCE_4011))
    assert ack.file == file


def test_4011_inform_is_answered_like_a_request() -> None:
    inform = request(MessageType.INFORM, *UEFI_X64, flags=0, ciaddr=CLIENT_IP)
    _, ack = on_the_wire(answer(inform, 4011, SOURCE_4011))
    assert ack.message_type == MessageType.ACK


def test_4011_ack_goes_back_to_the_source_address_and_port() -> None:
    source = (CLIENT_IP, 1234)
    result = answer(boot_server_request(*UEFI_X64), 4011, source)
    assert isinstance(result, Answer)
    assert result.destination == source


@pytest.mark.parametrize(
    ("message", "options"),
    [
        pytest.param(MessageType.DISCOVER, UEFI_X64, id="discover-on-4011"),
        pytest.param(MessageType.RELEASE, UEFI_X64, id="release-on-4011"),
        pytest.param(MessageType.REQUEST, PLAIN, id="plain-request"),
        pytest.param(MessageType.REQUEST, NO_ARCH, id="row-19-no-architecture"),
        pytest.param(
            MessageType.REQUEST,
            ((60, b"PXEClient:Arch:00027"), (93, h("00 1b"))),
            id="row-19-no-file-for-arch",
        ),
    ],
)
def test_4011_stays_silent_for_what_it_did_not_offer(
    message: MessageType, options: tuple[tuple[int, bytes], ...]
) -> None:
    req = request(message, *options, flags=0, ciaddr=CLIENT_IP)
    assert isinstance(answer(req, 4011, SOURCE_4011), Silence)


def test_4011_ack_with_public_host_still_names_our_address() -> None:
    settings = replace(SETTINGS, public_host="boot.example")
    req = boot_server_request(*UEFI_X64)
    result = proxy_answer(req, classify(req), SERVER, 4011, SOURCE_4011, settings)
    _, ack = on_the_wire(result)
    assert (ack.siaddr, ack.sname) == (SERVER, SERVER.encode())
