"""Who is asking (netboot.dhcp.pxe.classify) and the server-side encoders of options 43 and 175.

The classifier rows are those of the decision table of docs/protocols/pxe.md §8,
the architecture codes those of docs/protocols/pxe.md §3 (IANA
"Processor Architecture Types", 0-41). Every request crosses the wire once
(`build_packet` then `parse_packet`), as it does in the service. The encoder
vectors are copied from the byte examples of docs/protocols/pxe.md §2.4 and
docs/protocols/pxe.md §6.1, without the
option's own code and length (`2B 0A`, `AF 06`), which the packet builder adds.
"""

from __future__ import annotations

import pytest

from netboot.dhcp.pxe import (
    ARCHITECTURES,
    ClientKind,
    Transport,
    classify,
    decode_tlvs,
    encode_tlvs,
    ipxe_settings,
    pxe_boot_item_echo,
    pxe_boot_now,
    pxe_menu,
)
from netboot.dhcpwire.options import BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket

MAC = bytes.fromhex("525400123456")
UUID = bytes(1) + bytes(range(16))
BIOS_CLASS = b"PXEClient:Arch:00000:UNDI:002001"
OVMF_CLASS = b"PXEClient:Arch:00007:UNDI:003000"
HTTP_X64_CLASS = b"HTTPClient:Arch:00016:UNDI:003000"
BSDP_CLASS = b"AAPLBSDPC/i386/MacBookPro11,1"
# iPXE's 175 as a BIOS build sends it: TFTP, HTTP, bzImage features, then version 1.21.1.
IPXE_FEATURES_HTTP = bytes.fromhex("15 01 01 13 01 01 18 01 01 eb 03 01 15 01")
IPXE_FEATURES_TFTP_ONLY = bytes.fromhex("15 01 01 18 01 01 eb 03 01 15 01")


def arch93(*codes: int) -> bytes:
    return b"".join(code.to_bytes(2, "big") for code in codes)


def discover(*options: tuple[int, bytes]) -> DhcpPacket:
    """A DISCOVER with these options, after one trip over the wire."""
    packet = DhcpPacket(
        op=BOOTREQUEST,
        xid=0x1A2B3C4D,
        chaddr=MAC + bytes(10),
        flags=0x8000,
        options=((Option.MESSAGE_TYPE, bytes((MessageType.DISCOVER,))), *options),
    )
    return parse_packet(build_packet(packet))


# --- docs/protocols/pxe.md §8: one case per row the classifier decides -------------------

CLASSIFIER_ROWS = [
    # (options, kind, arch code, ipxe_http, has_ipxe_options)
    pytest.param(
        [(60, BIOS_CLASS), (93, arch93(0)), (94, b"\x01\x02\x01")],
        ClientKind.PXE,
        0,
        False,
        False,
        id="rows-1-2-bios-pxe-rom",
    ),
    pytest.param(
        [(60, OVMF_CLASS), (93, arch93(7)), (94, b"\x01\x03\x00")],
        ClientKind.PXE,
        7,
        False,
        False,
        id="rows-3-4-uefi-x64-pxe",
    ),
    pytest.param(
        [(60, b"PXEClient:Arch:00006:UNDI:003000"), (93, arch93(6))],
        ClientKind.PXE,
        6,
        False,
        False,
        id="rows-3-4-uefi-ia32-pxe",
    ),
    pytest.param(
        [(60, b"PXEClient:Arch:00009:UNDI:003000"), (93, arch93(9))],
        ClientKind.PXE,
        9,
        False,
        False,
        id="rows-3-4-ebc-code-9",
    ),
    pytest.param(
        [
            (60, b"PXEClient:Arch:00007:UNDI:003010"),
            (77, b"iPXE"),
            (93, arch93(7)),
            (175, IPXE_FEATURES_HTTP),
        ],
        ClientKind.IPXE,
        7,
        True,
        True,
        id="rows-5-6-ipxe-with-http",
    ),
    pytest.param(
        [(60, BIOS_CLASS), (77, b"iPXE"), (93, arch93(0)), (175, IPXE_FEATURES_TFTP_ONLY)],
        ClientKind.IPXE,
        0,
        False,
        True,
        id="row-7-ipxe-without-http",
    ),
    pytest.param(
        [(60, BIOS_CLASS), (77, b"iPXE"), (93, arch93(0))],
        ClientKind.IPXE,
        0,
        False,
        False,
        id="row-8-rom-ipxe-user-class-only",
    ),
    pytest.param(
        [(60, HTTP_X64_CLASS), (93, arch93(16))],
        ClientKind.HTTP_BOOT,
        16,
        False,
        False,
        id="rows-9-10-uefi-http-x64",
    ),
    pytest.param(
        [(60, b"PXEClient:Arch:00011:UNDI:003000"), (93, arch93(11))],
        ClientKind.PXE,
        11,
        False,
        False,
        id="row-11-arm64-pxe",
    ),
    pytest.param(
        [(60, b"HTTPClient:Arch:00019:UNDI:003000"), (93, arch93(19))],
        ClientKind.HTTP_BOOT,
        19,
        False,
        False,
        id="row-12-arm64-http",
    ),
]


@pytest.mark.parametrize(("options", "kind", "code", "ipxe_http", "has_175"), CLASSIFIER_ROWS)
def test_classify_recognises_each_boot_row_of_the_decision_table(
    options: list[tuple[int, bytes]],
    kind: ClientKind,
    code: int,
    ipxe_http: bool,
    has_175: bool,
) -> None:
    client = classify(discover(*options))
    assert client.kind is kind
    assert client.arch is ARCHITECTURES[code]
    assert client.arch_problem is None
    assert (client.ipxe_http, client.has_ipxe_options) == (ipxe_http, has_175)
    assert client.wants_boot


@pytest.mark.parametrize(
    "options",
    [
        pytest.param([(60, BSDP_CLASS)], id="bsdp-class"),
        pytest.param([(60, BSDP_CLASS), (93, arch93(7))], id="bsdp-with-93"),
        pytest.param([(60, BSDP_CLASS), (77, b"iPXE"), (175, IPXE_FEATURES_HTTP)], id="bsdp-first"),
    ],
)
def test_row_13_bsdp_vendor_class_is_bsdp_before_any_pxe_rule(
    options: list[tuple[int, bytes]],
) -> None:
    client = classify(discover(*options))
    assert client.kind is ClientKind.BSDP
    assert client.arch is None
    assert not client.wants_boot


@pytest.mark.parametrize(
    "options",
    [
        pytest.param([], id="no-options"),
        pytest.param([(60, b"MSFT 5.0")], id="windows-class"),
        pytest.param([(60, b"udhcp 1.36.1"), (12, b"host")], id="busybox-class"),
        pytest.param([(93, arch93(7))], id="93-without-pxe-class"),
        pytest.param([(60, b"pxeclient:Arch:00000")], id="lower-case-prefix"),
        pytest.param([(77, b"pixiecore"), (60, b"linux")], id="other-user-class"),
    ],
)
def test_rows_14_15_plain_client_is_plain_without_architecture(
    options: list[tuple[int, bytes]],
) -> None:
    client = classify(discover(*options))
    assert client.kind is ClientKind.PLAIN
    assert client.arch is None
    assert not client.wants_boot


@pytest.mark.parametrize(
    ("options", "kind", "problem"),
    [
        pytest.param(
            [(60, b"PXEClient")],
            ClientKind.PXE,
            "no option 93 and no Arch: field in option 60",
            id="no-93-no-digits",
        ),
        pytest.param(
            [(60, OVMF_CLASS), (93, b"")],
            ClientKind.PXE,
            "option 93 of 0 bytes is not a list of 16-bit codes",
            id="empty-93",
        ),
        pytest.param(
            [(60, OVMF_CLASS), (93, b"\x07")],
            ClientKind.PXE,
            "option 93 of 1 bytes is not a list of 16-bit codes",
            id="one-byte-93",
        ),
        pytest.param(
            [(60, OVMF_CLASS), (93, b"\x00\x07\x00")],
            ClientKind.PXE,
            "option 93 of 3 bytes is not a list of 16-bit codes",
            id="odd-93",
        ),
        pytest.param(
            [(60, b"PXEClient:Arch:00002:UNDI:003000"), (93, arch93(2))],
            ClientKind.PXE,
            "no bootable architecture among option 93 codes [2]",
            id="itanium",
        ),
        pytest.param(
            [(60, b"PXEClient"), (93, arch93(1, 0x00FF))],
            ClientKind.PXE,
            "no bootable architecture among option 93 codes [1, 255]",
            id="unbootable-and-unknown-codes",
        ),
        pytest.param(
            [(60, b"PXEClient:Arch:00041:UNDI:003000")],
            ClientKind.PXE,
            "architecture 41 of option 60 is not bootable",
            id="rpiboot-digits",
        ),
        pytest.param(
            [(60, b"PXEClient:Arch:00099:UNDI:003000")],
            ClientKind.PXE,
            "architecture 99 of option 60 is not bootable",
            id="unknown-digits",
        ),
        pytest.param(
            [(60, b"HTTPClient:Arch:00007:UNDI:003000"), (93, arch93(7))],
            ClientKind.HTTP_BOOT,
            "HTTPClient with the PXE architecture 7",
            id="http-class-with-pxe-arch",
        ),
        pytest.param(
            [(77, b"iPXE"), (93, b"\x00")],
            ClientKind.IPXE,
            "option 93 of 1 bytes is not a list of 16-bit codes",
            id="ipxe-odd-93",
        ),
    ],
)
def test_rows_16_17_boot_class_without_usable_architecture_names_the_problem(
    options: list[tuple[int, bytes]], kind: ClientKind, problem: str
) -> None:
    client = classify(discover(*options))
    assert client.kind is kind
    assert client.arch is None
    assert client.arch_problem == problem
    assert client.wants_boot


# --- docs/protocols/pxe.md §3: every architecture code ------------------------------------

# docs/protocols/pxe.md §3: the HTTP-boot codes, and the family each bootable code uses.
HTTP_CODES = {15, 16, 17, 18, 19, 20, 23, 24, 26, 28, 30, 38, 40}
FAMILIES = {
    0: "bios",
    6: "efi-ia32",
    7: "efi-x64",
    9: "efi-x64",  # EBC: treated as x64 (RFC 4578 erratum, pixiecore)
    10: "efi-arm32",
    11: "efi-arm64",
    15: "efi-ia32",
    16: "efi-x64",
    17: "efi-x64",
    18: "efi-arm32",
    19: "efi-arm64",
    20: "bios",
    25: "efi-riscv32",
    26: "efi-riscv32",
    27: "efi-riscv64",
    28: "efi-riscv64",
    39: "efi-loong64",
    40: "efi-loong64",
}


def test_architecture_table_covers_codes_0_to_41_in_order() -> None:
    assert list(ARCHITECTURES) == list(range(42))
    assert all(arch.code == code for code, arch in ARCHITECTURES.items())


@pytest.mark.parametrize("code", list(ARCHITECTURES))
def test_architecture_code_maps_to_family_and_transport(code: int) -> None:
    arch = ARCHITECTURES[code]
    assert arch.family == FAMILIES.get(code)
    assert arch.transport is (Transport.HTTP if code in HTTP_CODES else Transport.TFTP)


@pytest.mark.parametrize("code", list(ARCHITECTURES))
def test_classify_takes_each_code_from_option_93(code: int) -> None:
    """HTTP codes come with `HTTPClient`, the others with `PXEClient` (docs/protocols/pxe.md §3)."""
    prefix = b"HTTPClient" if code in HTTP_CODES else b"PXEClient"
    vendor_class = prefix + f":Arch:{code:05d}:UNDI:003000".encode()
    client = classify(discover((60, vendor_class), (93, arch93(code))))
    if code in FAMILIES:
        assert client.arch is ARCHITECTURES[code]
        assert client.arch_problem is None
    else:
        assert client.arch is None
        assert client.arch_problem == f"no bootable architecture among option 93 codes [{code}]"


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        pytest.param((7, 0), 7, id="x64-then-bios"),
        pytest.param((0, 7), 0, id="bios-then-x64"),
        pytest.param((2, 11), 11, id="itanium-skipped"),
        pytest.param((0x1234, 16), 16, id="unknown-code-skipped"),
        pytest.param((9, 6), 9, id="ebc-first"),
    ],
)
def test_option_93_with_two_codes_takes_the_first_bootable(
    codes: tuple[int, int], expected: int
) -> None:
    client = classify(discover((60, b"PXEClient"), (93, arch93(*codes))))
    assert client.arch is ARCHITECTURES[expected]


@pytest.mark.parametrize(
    ("vendor_class", "option93", "expected"),
    [
        pytest.param(OVMF_CLASS, None, 7, id="no-93-digits-of-60"),
        pytest.param(BIOS_CLASS, None, 0, id="no-93-bios-digits"),
        pytest.param(b"PXEClient:Arch:00011", None, 11, id="short-60-20-bytes"),
        pytest.param(b"PXEClient:Arch:00000:UNDI:002", None, 0, id="short-60-cut-in-undi"),
        pytest.param(b"HTTPClient:Arch:00019", None, 19, id="short-http-60"),
        pytest.param(b"PXEClient", arch93(7), 7, id="bare-9-byte-60-with-93"),
        pytest.param(BIOS_CLASS, arch93(7), 7, id="93-wins-over-digits"),
    ],
)
def test_option_60_digits_are_the_fallback_when_93_is_missing(
    vendor_class: bytes, option93: bytes | None, expected: int
) -> None:
    options = [(60, vendor_class)] + ([(93, option93)] if option93 is not None else [])
    client = classify(discover(*options))
    assert client.arch is ARCHITECTURES[expected]


# --- iPXE markers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "ipxe_http", "has_175"),
    [
        pytest.param([(77, b"iPXE")], False, False, id="77-without-175"),
        pytest.param([(77, b"iPXE"), (175, IPXE_FEATURES_HTTP)], True, True, id="77-and-175-http"),
        pytest.param([(175, IPXE_FEATURES_HTTP)], True, True, id="175-http-without-77"),
        pytest.param([(175, bytes.fromhex("13 01 01"))], True, True, id="175-only-http"),
        pytest.param([(175, IPXE_FEATURES_TFTP_ONLY)], False, True, id="175-without-http"),
        pytest.param([(175, bytes.fromhex("00 13 01 01 ff"))], True, True, id="175-padded"),
        pytest.param([(175, bytes.fromhex("15 01 01 13 05 01"))], False, True, id="175-truncated"),
        pytest.param(
            [(175, bytes.fromhex("eb 03 01 13 01"))], False, True, id="0x13-inside-a-value"
        ),
    ],
)
def test_ipxe_is_recognised_by_user_class_or_option_175_and_http_by_175_19(
    options: list[tuple[int, bytes]], ipxe_http: bool, has_175: bool
) -> None:
    client = classify(discover((60, BIOS_CLASS), (93, arch93(0)), *options))
    assert client.kind is ClientKind.IPXE
    assert (client.ipxe_http, client.has_ipxe_options) == (ipxe_http, has_175)


@pytest.mark.parametrize(
    ("vendor_class", "kind"),
    [
        pytest.param(HTTP_X64_CLASS, ClientKind.IPXE, id="ipxe-before-httpclient"),
        pytest.param(OVMF_CLASS, ClientKind.IPXE, id="ipxe-before-pxeclient"),
    ],
)
def test_ipxe_markers_are_tested_before_the_vendor_class(
    vendor_class: bytes, kind: ClientKind
) -> None:
    client = classify(discover((60, vendor_class), (77, b"iPXE"), (93, arch93(7))))
    assert client.kind is kind


def test_classify_keeps_user_class_and_uuid_for_the_reply() -> None:
    client = classify(discover((60, BIOS_CLASS), (77, b"iPXE"), (93, arch93(0)), (97, UUID)))
    assert (client.user_class, client.uuid) == (b"iPXE", UUID)


@pytest.mark.parametrize(
    ("option43", "boot_item"),
    [
        pytest.param(bytes.fromhex("47 04 80 00 00 00 ff"), b"\x80\x00\x00\x00", id="doc-43-71"),
        pytest.param(
            bytes.fromhex("06 01 08 47 04 00 00 00 01 ff"), b"\x00\x00\x00\x01", id="after-6"
        ),
        pytest.param(bytes.fromhex("47 03 80 00 00 ff"), None, id="three-byte-item"),
        pytest.param(bytes.fromhex("47 04 80 00"), None, id="truncated"),
        pytest.param(bytes.fromhex("06 01 08 ff"), None, id="no-71"),
    ],
)
def test_boot_item_43_71_is_read_only_when_well_formed(
    option43: bytes, boot_item: bytes | None
) -> None:
    client = classify(discover((60, OVMF_CLASS), (93, arch93(7)), (43, option43)))
    assert client.boot_item == boot_item


# --- encoders ----------------------------------------------------------------------------


def test_pxe_boot_now_is_pypxe_proxy_43() -> None:
    # docs/protocols/pxe.md §2.4: 2B 0A | 06 01 08 | 0A 04 00 50 58 45 | FF
    assert pxe_boot_now() == bytes.fromhex("06 01 08 0A 04 00 50 58 45 FF")


def test_pxe_menu_reproduces_the_documented_41_byte_menu() -> None:
    expected = bytes.fromhex(
        "06 01 07"  # no bcast, no mcast, list only
        "08 07 80 00 01 C0 A8 01 0A"  # type 0x8000, 1 server 192.168.1.10
        "09 10 80 00 05 4C 69 6E 75 78"  # type 0x8000, "Linux"
        "00 00 05 4C 6F 63 61 6C"  # type 0, "Local"
        "0A 08 05 50 72 65 73 73 46 38"  # 5 s, "PressF8"
        "FF"
    )
    menu = pxe_menu(
        0x07,
        [(0x8000, ["192.168.1.10"])],
        [(0x8000, "Linux"), (0, "Local")],
        (5, "PressF8"),
    )
    assert len(menu) == 0x29
    assert menu == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param((0x08, [], [], None), "06 01 08 FF", id="pixiecore-minimal"),
        pytest.param(
            (0x04, [(0x8000, ["10.0.0.1", "10.0.0.2"])], [], None),
            "06 01 04 08 0B 80 00 02 0A 00 00 01 0A 00 00 02 FF",
            id="two-servers",
        ),
        pytest.param((0x08, [], [], (0, "PXE")), "06 01 08 0A 04 00 50 58 45 FF", id="boot-now"),
    ],
)
def test_pxe_menu_omits_empty_parts(
    args: tuple[int, list[tuple[int, list[str]]], list[tuple[int, str]], tuple[int, str] | None],
    expected: str,
) -> None:
    assert pxe_menu(*args) == bytes.fromhex(expected)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(b"\x80\x00\x00\x00", "47 04 80 00 00 00 FF", id="doc-type-8000-layer-0"),
        pytest.param(b"\x00\x00\x80\x01", "47 04 00 00 80 01 FF", id="credentials-layer-1"),
    ],
)
def test_pxe_boot_item_echo_is_43_71_with_end(item: bytes, expected: str) -> None:
    assert pxe_boot_item_echo(item) == bytes.fromhex(expected)


@pytest.mark.parametrize(
    ("priority", "no_proxydhcp", "expected"),
    [
        pytest.param(1, True, "01 01 01 B0 01 01", id="doc-6-1-example"),
        pytest.param(1, False, "01 01 01", id="priority-only"),
        pytest.param(-1, True, "01 01 FF B0 01 01", id="negative-priority-signed"),
        pytest.param(127, False, "01 01 7F", id="highest-priority"),
    ],
)
def test_ipxe_settings_encodes_175_without_end(
    priority: int, no_proxydhcp: bool, expected: str
) -> None:
    assert ipxe_settings(priority, no_proxydhcp) == bytes.fromhex(expected)


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([], id="empty"),
        pytest.param([(6, b"\x08")], id="one"),
        pytest.param([(6, b"\x08"), (10, b"\x00PXE")], id="boot-now"),
        pytest.param([(71, b"\x80\x00\x00\x00"), (1, b"")], id="empty-value"),
        pytest.param([(200, bytes(255))], id="longest-value"),
    ],
)
def test_decode_tlvs_round_trips_encode_tlvs(items: list[tuple[int, bytes]]) -> None:
    encoded = encode_tlvs(items)
    assert encoded.endswith(b"\xff")
    assert decode_tlvs(encoded) == items


@pytest.mark.parametrize(
    ("data", "items"),
    [
        pytest.param(pxe_boot_now(), [(6, b"\x08"), (10, b"\x00PXE")], id="boot-now"),
        pytest.param(b"\x00\x00\x06\x01\x08\x00\xff", [(6, b"\x08")], id="pads-skipped"),
        pytest.param(b"\x06\x01\x08", [(6, b"\x08")], id="no-end"),
        pytest.param(b"\x06\x01\x08\xff\x07\x09", [(6, b"\x08")], id="stops-at-end"),
        pytest.param(b"", [], id="empty"),
    ],
)
def test_decode_tlvs_reads_sub_options(data: bytes, items: list[tuple[int, bytes]]) -> None:
    assert decode_tlvs(data) == items


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x06", id="code-without-length"),
        pytest.param(b"\x06\x02\x08", id="length-past-end"),
        pytest.param(bytes.fromhex("06 01 08 0A 04 00 50 58"), id="second-cut-short"),
        pytest.param(pxe_boot_now()[:-2], id="boot-now-cut"),
    ],
)
def test_decode_tlvs_raises_malformed_packet_on_truncation(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_tlvs(data)


def test_encode_tlvs_refuses_a_value_over_255_bytes() -> None:
    with pytest.raises(ValueError, match="over 255"):
        encode_tlvs([(9, bytes(256))])


def test_every_architecture_maps_to_a_known_firmware_family_or_none() -> None:
    """One family table (netboot.firmware): boot_files, PCArchitectures and option 93 agree."""
    from netboot.firmware import FAMILIES

    families = {arch.family for arch in ARCHITECTURES.values()} - {None}
    assert families == set(FAMILIES)
