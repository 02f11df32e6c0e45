"""Who is asking on port 547 (`netboot.dhcp6.classify`, docs/protocols/dhcpv6.md §11).

A byte vector of a PXE Solicit read field by field; the boot class is the one
the IPv4 classifier gives for the same facts (one decision table for both
families); the MAC from each DUID type, from a relay's option 79, and from an
EUI-64 link-local address; option 79's codec against scapy.
"""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from scapy.layers.dhcp6 import DHCP6OptClientLinkLayerAddr

from netboot.dhcp.pxe import BootClient, ClientKind, classify_fields
from netboot.dhcp.pxe import classify as classify_v4
from netboot.dhcp6.classify import MacSource, boot_client, classify, eui64_mac
from netboot.dhcp6wire.duid import Duid, build_duid
from netboot.dhcp6wire.options import (
    PXE_ENTERPRISE_NUMBER,
    DuidType,
    MessageType,
    Option,
)
from netboot.dhcp6wire.packet import (
    Dhcp6Message,
    RawOption,
    RelayMessage,
    build_message,
    parse_message,
)
from netboot.dhcp6wire.values import (
    ClientLinkLayerAddress,
    VendorClass,
    build_client_arch_types,
    build_client_link_layer_address,
    build_user_class,
    build_vendor_class,
    parse_client_link_layer_address,
)
from netboot.dhcpwire.options import BOOTREQUEST
from netboot.dhcpwire.options import Option as Option4
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket
from netboot.macaddr import MacAddress

MAC = bytes.fromhex("525400123456")
LINK_LOCAL_EUI64 = IPv6Address("fe80::5054:ff:fe12:3456")
"""The modified EUI-64 link-local address of 52:54:00:12:34:56 (U/L bit flipped)."""
GLOBAL = IPv6Address("fd4e:4254:0:1::99")

# A UEFI PXE ROM's Solicit, written by hand from RFC 8415 §8 and RFC 5970:
# Solicit, xid 0x0a0b0c, CLIENTID DUID-LL 52:54:00:12:34:56, IA_NA IAID 1 T1 0 T2 0,
# ORO 59 60 23, option 61 arch 7, option 16 enterprise 343 "PXEClient:Arch:00007:UNDI:003016".
PXE_SOLICIT = bytes.fromhex(
    "01 0a0b0c"
    "0001 000a 0003 0001 525400123456"
    "0003 000c 00000001 00000000 00000000"
    "0006 0006 003b 003c 0017"
    "003d 0002 0007"
    "0010 0026 00000157 0020" + b"PXEClient:Arch:00007:UNDI:003016".hex()
)


def solicit(*options: RawOption) -> Dhcp6Message:
    return Dhcp6Message(MessageType.SOLICIT, 0x0A0B0C, tuple((int(c), v) for c, v in options))


def duid_ll(mac: bytes = MAC) -> bytes:
    return build_duid(Duid(DuidType.LL, mac, hardware_type=1))


def vendor(text: bytes, enterprise: int = PXE_ENTERPRISE_NUMBER) -> RawOption:
    return (Option.VENDOR_CLASS, build_vendor_class(VendorClass(enterprise, (text,))))


def arch(*codes: int) -> RawOption:
    return (Option.CLIENT_ARCH_TYPE, build_client_arch_types(codes))


def relay(inner: bytes, peer: IPv6Address, *options: RawOption) -> RelayMessage:
    return RelayMessage(
        MessageType.RELAY_FORW,
        0,
        IPv6Address("fd4e:4254:0:2::1"),
        peer,
        (*((int(c), v) for c, v in options), (Option.RELAY_MSG.value, inner)),
    )


def test_the_pxe_solicit_vector_reads_field_by_field() -> None:
    message = parse_message(PXE_SOLICIT)
    assert isinstance(message, Dhcp6Message)
    client = classify(message, (), GLOBAL)
    assert client.duid == Duid(DuidType.LL, MAC, hardware_type=1)
    assert client.duid_bytes == duid_ll()
    assert client.mac == MacAddress("52:54:00:12:34:56")
    assert client.mac_source is MacSource.DUID
    assert [ia.iaid for ia in client.ia_nas] == [1]
    assert client.oro == (59, 60, 23)
    assert client.boot.kind is ClientKind.PXE
    assert client.boot.arch is not None and client.boot.arch.family == "efi-x64"
    assert client.server_duid is None
    assert not client.rapid_commit


def discover_v4(*options: tuple[int, bytes]) -> DhcpPacket:
    packet = DhcpPacket(
        op=BOOTREQUEST, xid=1, chaddr=MAC + bytes(10), options=((53, b"\x01"), *options)
    )
    return parse_packet(build_packet(packet))


@pytest.mark.parametrize(
    ("v6", "v4", "kind"),
    [
        (
            [vendor(b"PXEClient:Arch:00007:UNDI:003016"), arch(7)],
            [(Option4.VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016"), (93, b"\x00\x07")],
            ClientKind.PXE,
        ),
        (
            [vendor(b"HTTPClient:Arch:00016:UNDI:003016"), arch(16)],
            [(Option4.VENDOR_CLASS, b"HTTPClient:Arch:00016:UNDI:003016"), (93, b"\x00\x10")],
            ClientKind.HTTP_BOOT,
        ),
        (
            [(Option.USER_CLASS, build_user_class([b"iPXE"])), arch(7)],
            [(Option4.USER_CLASS, b"iPXE"), (93, b"\x00\x07")],
            ClientKind.IPXE,
        ),
        (
            [vendor(b"PXEClient:Arch:00000:UNDI:002001")],
            [(Option4.VENDOR_CLASS, b"PXEClient:Arch:00000:UNDI:002001")],
            ClientKind.PXE,
        ),
        ([], [], ClientKind.PLAIN),
    ],
)
def test_a_client_is_the_same_boot_client_in_both_families(
    v6: list[RawOption], v4: list[tuple[int, bytes]], kind: ClientKind
) -> None:
    mine = boot_client(solicit(*v6))
    assert mine.kind is kind
    theirs = classify_v4(discover_v4(*v4))
    assert (mine.kind, mine.arch, mine.user_class) == (theirs.kind, theirs.arch, theirs.user_class)


def test_a_vendor_class_of_another_enterprise_is_not_pxe() -> None:
    assert boot_client(solicit(vendor(b"PXEClient:Arch:00007", 9))).kind is ClientKind.PLAIN


def test_architecture_problems_name_the_dhcpv6_options() -> None:
    client = boot_client(solicit(vendor(b"PXEClient")))
    assert client.arch is None
    assert client.arch_problem == "no option 61 and no Arch: field in option 16"
    http_with_pxe_arch = boot_client(solicit(vendor(b"HTTPClient:Arch:00016"), arch(7)))
    assert http_with_pxe_arch.arch_problem == "HTTPClient with the PXE architecture 7"


def test_classify_fields_is_what_the_ipv4_classify_uses() -> None:
    packet = discover_v4((Option4.VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016"))
    assert classify_v4(packet) == classify_fields(
        vendor_class=b"PXEClient:Arch:00007:UNDI:003016",
        user_class=b"",
        ipxe_options=None,
        architectures=None,
    )
    assert isinstance(classify_v4(packet), BootClient)


# --- the MAC, docs/protocols/dhcpv6.md §11 -------------------------------------------------

DUIDS = {
    "LL": (Duid(DuidType.LL, MAC, hardware_type=1), "52:54:00:12:34:56"),
    "LLT": (Duid(DuidType.LLT, MAC, hardware_type=1, time=0x2A2A2A2A), "52:54:00:12:34:56"),
    "EN": (Duid(DuidType.EN, b"serial-42", enterprise_number=343), None),
    "UUID": (Duid(DuidType.UUID, bytes(range(16))), None),
    "LL of another link type": (Duid(DuidType.LL, b"\x01\x02\x03\x04", hardware_type=6), None),
}


@pytest.mark.parametrize("name", DUIDS)
def test_only_an_ethernet_duid_ll_or_llt_carries_the_mac(name: str) -> None:
    duid, mac = DUIDS[name]
    client = classify(solicit((Option.CLIENTID, build_duid(duid))), (), GLOBAL)
    assert client.duid == duid
    assert client.mac == mac
    assert client.mac_source is (MacSource.DUID if mac else None)


def test_a_direct_client_without_a_mac_duid_is_known_by_its_eui64_link_local() -> None:
    uuid = build_duid(Duid(DuidType.UUID, bytes(16)))
    client = classify(solicit((Option.CLIENTID, uuid)), (), LINK_LOCAL_EUI64)
    assert client.mac == "52:54:00:12:34:56"
    assert client.mac_source is MacSource.LINK_LOCAL


@pytest.mark.parametrize(
    ("address", "mac"),
    [
        ("fe80::5054:ff:fe12:3456", "52:54:00:12:34:56"),
        ("fe80::200:ff:fe00:1", "00:00:00:00:00:01"),
        ("fe80::1", None),  # no ff:fe in the middle: not EUI-64
        ("fe80::a1b2:c3d4:e5f6:789a", None),  # a privacy / RFC 7217 identifier
        ("fd00::5054:ff:fe12:3456", None),  # not link-local: the ID may be anything
    ],
)
def test_eui64_mac(address: str, mac: str | None) -> None:
    assert eui64_mac(IPv6Address(address)) == mac


def test_a_relayed_client_is_known_by_option_79_of_the_nearest_relay() -> None:
    en = build_duid(Duid(DuidType.EN, b"x", enterprise_number=1))
    inner = PXE_SOLICIT.replace(bytes.fromhex("0001 000a 0003 0001 525400123456"), b"")
    inner = inner[:4] + bytes.fromhex("0001") + len(en).to_bytes(2, "big") + en + inner[4:]
    mac79 = ClientLinkLayerAddress(1, bytes.fromhex("020000aabbcc"))
    nearest = relay(
        inner,
        LINK_LOCAL_EUI64,
        (Option.CLIENT_LINKLAYER_ADDR, build_client_link_layer_address(mac79)),
    )
    outer = relay(build_message(nearest), IPv6Address("fd4e:4254:0:2::1"))
    message = nearest.innermost
    client = classify(message, (outer, nearest), IPv6Address("fd4e:4254:0:3::1"))
    assert client.mac == "02:00:00:aa:bb:cc"
    assert client.mac_source is MacSource.RELAY_OPTION
    without_79 = relay(inner, LINK_LOCAL_EUI64)
    client = classify(message, (without_79,), IPv6Address("fd4e:4254:0:2::1"))
    assert client.mac == "52:54:00:12:34:56"
    assert client.mac_source is MacSource.LINK_LOCAL


def test_option_79_round_trips_and_scapy_reads_what_we_build() -> None:
    value = ClientLinkLayerAddress(1, MAC)
    raw = build_client_link_layer_address(value)
    assert raw == bytes.fromhex("0001 525400123456")
    assert parse_client_link_layer_address(raw) == value
    layer = DHCP6OptClientLinkLayerAddr(bytes.fromhex("004f0008") + raw)
    assert (layer.lltype, layer.clladdr) == (1, "52:54:00:12:34:56")
    with pytest.raises(MalformedPacket, match="option 79"):
        parse_client_link_layer_address(b"\x00\x01")
    with pytest.raises(ValueError, match="option 79"):
        build_client_link_layer_address(ClientLinkLayerAddress(1, b""))


def test_an_undecodable_option_the_decision_reads_is_malformed() -> None:
    with pytest.raises(MalformedPacket, match="option 16"):
        classify(solicit((Option.VENDOR_CLASS, b"\x00\x00")), (), GLOBAL)
    with pytest.raises(MalformedPacket, match="CLIENTID"):
        classify(solicit((Option.CLIENTID, b"\x00")), (), GLOBAL)
