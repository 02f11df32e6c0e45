"""The DHCPv6 codec (`netboot.dhcp6wire`): hand-written byte vectors from the
RFC layouts, round trips, refusals that name the option and offset, and scapy's
DHCPv6 layers as the oracle (tests/scapy_dhcp6.py): what scapy builds we read
as scapy does, and what we build scapy dissects into the same fields and
re-encodes to the same bytes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp6 import (
    DUID_LL,
    DUID_LLT,
    VENDOR_CLASS_DATA,
    DHCP6_Advertise,
    DHCP6_RelayForward,
    DHCP6_Solicit,
    DHCP6OptBootFileUrl,
    DHCP6OptClientArchType,
    DHCP6OptClientId,
    DHCP6OptDNSDomains,
    DHCP6OptDNSServers,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptRelayMsg,
    DHCP6OptServerId,
    DHCP6OptStatusCode,
    DHCP6OptVendorClass,
    dhcp6opts_by_code,
)

from netboot.dhcp6wire.duid import Duid, build_duid, parse_duid
from netboot.dhcp6wire.ia import (
    IaAddress,
    IaNa,
    StatusCode,
    build_ia_na,
    build_status_code,
    parse_ia_na,
    parse_status_code,
)
from netboot.dhcp6wire.options import (
    MAX_RELAY_DEPTH,
    PXE_ENTERPRISE_NUMBER,
    MessageType,
    Option,
    Status,
)
from netboot.dhcp6wire.packet import (
    Dhcp6Message,
    RelayMessage,
    build_message,
    parse_message,
    relay_reply_to,
)
from netboot.dhcp6wire.values import (
    NetworkInterfaceId,
    VendorClass,
    build_bootfile_params,
    build_bootfile_url,
    build_client_arch_types,
    build_dns_servers,
    build_domain_list,
    build_elapsed_time,
    build_network_interface_id,
    build_oro,
    build_user_class,
    build_vendor_class,
    parse_bootfile_params,
    parse_bootfile_url,
    parse_client_arch_types,
    parse_dns_servers,
    parse_domain_list,
    parse_elapsed_time,
    parse_network_interface_id,
    parse_oro,
    parse_user_class,
    parse_vendor_class,
)
from netboot.errors import MalformedPacket
from tests.scapy_dhcp6 import scapy_read

READERS: dict[int, Callable[[bytes], object]] = {
    Option.CLIENTID: parse_duid,
    Option.SERVERID: parse_duid,
    Option.IA_NA: parse_ia_na,
    Option.ORO: parse_oro,
    Option.ELAPSED_TIME: parse_elapsed_time,
    Option.STATUS_CODE: parse_status_code,
    Option.USER_CLASS: parse_user_class,
    Option.VENDOR_CLASS: parse_vendor_class,
    Option.DNS_SERVERS: parse_dns_servers,
    Option.DOMAIN_LIST: parse_domain_list,
    Option.BOOTFILE_URL: parse_bootfile_url,
    Option.BOOTFILE_PARAM: parse_bootfile_params,
    Option.CLIENT_ARCH_TYPE: parse_client_arch_types,
    Option.NII: parse_network_interface_id,
}


def our_read(datagram: bytes) -> tuple[object, ...]:
    """Our reading of a datagram, in `scapy_read`'s shape."""
    return _read(parse_message(datagram))


def _read(message: Dhcp6Message | RelayMessage) -> tuple[object, ...]:
    if isinstance(message, RelayMessage):
        header: tuple[object, ...] = (
            message.msg_type,
            message.hop_count,
            message.link_address,
            message.peer_address,
        )
    else:
        header = (message.msg_type, message.transaction_id)
    values: list[tuple[int, object]] = []
    for code, value in message.options:
        if code == Option.RELAY_MSG:
            values.append((code, our_read(value)))
        elif code in READERS and code != Option.BOOTFILE_PARAM:  # scapy has no layer for 60
            values.append((code, READERS[code](value)))
        else:
            values.append((code, value))
    return (*header, tuple(values))


# Byte vectors, written by hand from RFC 8415 §8, §9, §11, §21 and RFC 5970 §3.

PXE_CLASS = b"PXEClient:Arch:00007:UNDI:003016"
SOLICIT = (
    bytes.fromhex(
        "01 123456"
        "0001 000a 0003 0001 525400123456"  # CLIENTID, DUID-LL, Ethernet
        "0003 000c 00000001 00000000 00000000"  # IA_NA, IAID 1, T1 = T2 = 0
        "0008 0002 0000"  # ELAPSED_TIME 0
        "0006 0006 003b 003c 0017"  # ORO: 59, 60, 23
        "003d 0002 0007"  # CLIENT_ARCH_TYPE: x64 UEFI
        "0010 0026 00000157 0020"  # VENDOR_CLASS: enterprise 343, one 32-byte string
    )
    + PXE_CLASS
)
ADVERTISE = (
    bytes.fromhex(
        "02 123456"
        "0002 000e 0001 0001 30393a63 525400abcdef"  # SERVERID, DUID-LLT
        "0003 0030 00000001 00000e10 00001c20"  # IA_NA, IAID 1, T1 3600, T2 7200
        "0005 0020 fd000000000000000000000000000064 00001c20 00002a30"  # IAADDR fd00::64
        "000d 0004 0000 6f6b"  # its STATUS_CODE Success, "ok"
        "003b 0019"  # BOOTFILE_URL
    )
    + b"tftp://[fd00::1]/ipxe.efi"
    + bytes.fromhex(
        "003c 000c 0004 726f6f74 0004 3d2f646f"  # BOOTFILE_PARAM: "root", "=/do"
        "0018 000d 076578616d706c6503636f6d00"  # DOMAIN_LIST: example.com
    )
)
RELAYED = (
    bytes.fromhex(
        "0c 00 fd000000000000000000000000000001 fe800000000000005054 00fffe123456"
        "0012 0003 657468"  # INTERFACE_ID "eth"
    )
    + (9).to_bytes(2, "big")
    + len(SOLICIT).to_bytes(2, "big")
    + SOLICIT
)


def test_a_hand_written_solicit_reads_field_by_field() -> None:
    message = parse_message(SOLICIT)
    assert isinstance(message, Dhcp6Message)
    assert (message.kind, message.transaction_id) == (MessageType.SOLICIT, 0x123456)
    duid = parse_duid(message.option(Option.CLIENTID) or b"")
    assert duid == Duid(3, bytes.fromhex("525400123456"), hardware_type=1)
    assert duid.mac == "52:54:00:12:34:56"
    assert parse_ia_na(message.option(Option.IA_NA) or b"") == IaNa(1, 0, 0)
    assert parse_elapsed_time(message.option(Option.ELAPSED_TIME) or b"") == 0
    assert parse_oro(message.option(Option.ORO) or b"") == (59, 60, 23)
    assert parse_client_arch_types(message.option(Option.CLIENT_ARCH_TYPE) or b"") == (7,)
    vendor = parse_vendor_class(message.option(Option.VENDOR_CLASS) or b"")
    assert vendor == VendorClass(PXE_ENTERPRISE_NUMBER, (PXE_CLASS,))
    assert build_message(message) == SOLICIT


def test_a_hand_written_advertise_reads_field_by_field() -> None:
    message = parse_message(ADVERTISE)
    assert isinstance(message, Dhcp6Message)
    duid = parse_duid(message.option(Option.SERVERID) or b"")
    assert (duid.time, duid.mac) == (0x30393A63, "52:54:00:ab:cd:ef")
    ia = parse_ia_na(message.option(Option.IA_NA) or b"")
    assert (ia.iaid, ia.t1, ia.t2, ia.status) == (1, 3600, 7200, None)
    (address,) = ia.addresses
    assert address == IaAddress(IPv6Address("fd00::64"), 7200, 10800, (StatusCode(0, "ok"),))
    assert parse_bootfile_url(message.option(59) or b"") == "tftp://[fd00::1]/ipxe.efi"
    assert parse_bootfile_params(message.option(60) or b"") == ("root", "=/do")
    assert parse_domain_list(message.option(24) or b"") == ("example.com",)
    assert build_message(message) == ADVERTISE
    assert build_ia_na(ia) == message.option(Option.IA_NA)


def test_a_hand_written_relay_forward_carries_the_solicit() -> None:
    relay = parse_message(RELAYED)
    assert isinstance(relay, RelayMessage)
    assert (relay.msg_type, relay.hop_count) == (MessageType.RELAY_FORW, 0)
    assert relay.link_address == IPv6Address("fd00::1")
    assert relay.peer_address == IPv6Address("fe80::5054:ff:fe12:3456")
    assert relay.option(Option.INTERFACE_ID) == b"eth"
    assert relay.relayed == relay.innermost == parse_message(SOLICIT)
    assert build_message(relay) == RELAYED


def test_a_relay_reply_copies_the_relay_fields_and_interface_id() -> None:
    forward = parse_message(RELAYED)
    assert isinstance(forward, RelayMessage)
    answer = parse_message(ADVERTISE)
    reply = relay_reply_to(forward, answer)
    assert (reply.msg_type, reply.hop_count) == (MessageType.RELAY_REPL, 0)
    assert (reply.link_address, reply.peer_address) == (forward.link_address, forward.peer_address)
    assert reply.options == ((18, b"eth"), (9, ADVERTISE))
    assert parse_message(build_message(reply)) == reply


# Refusals name the option and the offset.


@pytest.mark.parametrize(
    ("datagram", "complaint"),
    [
        (b"\x01\x12\x34", "3 bytes is too short for a DHCPv6 message"),
        (SOLICIT[:-1], "option 16 (VENDOR_CLASS) at byte 56 claims 38 bytes, only 37 follow"),
        (SOLICIT + b"\x00\x01", "2 stray bytes at byte 98"),
        (RELAYED[:33], "33 bytes is too short for a RELAY_FORW"),
        (
            RELAYED[:-1],
            "RELAY_FORW: option 9 (RELAY_MSG) at byte 41 claims 98 bytes, only 97 follow",
        ),
        (RELAYED[:41], "RELAY_FORW with 0 RELAY_MSG options, not one"),
        (RELAYED + RELAYED[41:], "RELAY_FORW with 2 RELAY_MSG options, not one"),
        (RELAYED[:34] + b"\x00\x09\x00\x00", "option 9: 0 bytes is too short"),
    ],
)
def test_malformed_messages_are_refused_saying_where(datagram: bytes, complaint: str) -> None:
    with pytest.raises(MalformedPacket, match=re.escape(complaint)):
        parse_message(datagram)


@pytest.mark.parametrize(
    ("reader", "value", "complaint"),
    [
        (parse_duid, b"\x00\x03\x00", "DUID type 3 (LL) of 3 bytes, its fixed fields need 4"),
        (
            parse_duid,
            b"\x00\x04" + bytes(15),
            "DUID type 4 (UUID) of 17 bytes, its fixed fields need 18",
        ),
        (parse_duid, b"\x00\x04" + bytes(17), "DUID-UUID of 19 bytes, not 18"),
        (parse_duid, b"\x00\x02" + bytes(129), "DUID: 131 bytes, over 2 + 128"),
        (parse_ia_na, bytes(11), "option 3 (IA_NA): 11 bytes, an IA_NA needs 12"),
        (
            parse_ia_na,
            bytes(12) + b"\x00\x05\x00\x18" + bytes(23),
            "option 3 (IA_NA): option 5 (IAADDR) at byte 12 claims 24 bytes, only 23 follow",
        ),
        (
            parse_ia_na,
            bytes(12) + b"\x00\x05\x00\x1a" + bytes(24) + b"\x00\x0d",
            "IAADDR at byte 12: 2 stray bytes at byte 24",
        ),
        (
            parse_ia_na,
            bytes(12) + b"\x00\x0d\x00\x03\x00\x00\xff",
            "IA_NA): STATUS_CODE at byte 12: message not UTF-8 at byte 2",
        ),
        (parse_oro, b"\x00\x17\x00", "option 6 (ORO): 3 bytes is not a list"),
        (parse_client_arch_types, b"", "option 61 (CLIENT_ARCH_TYPE): empty"),
        (
            parse_vendor_class,
            b"\x00\x00\x01\x57\x00\x05abc",
            "option 16 (VENDOR_CLASS): item at byte 4 claims 5 bytes, only 3 follow",
        ),
        (parse_user_class, b"\x00\x01a\x00", "a stray byte at byte 3"),
        (parse_bootfile_params, b"\x00\x02\xc3\x28", "parameter 0: not UTF-8 at byte 0"),
        (parse_dns_servers, bytes(17), "option 23 (DNS_SERVERS): 17 bytes"),
        (parse_domain_list, b"\x03com", "name at byte 0 has no root label"),
        (parse_domain_list, b"\x00\xc0\x00", "label length 0xc0 at byte 1"),
        (parse_domain_list, b"\x05ab", "label at byte 0 runs past the option"),
        (parse_domain_list, b"\x03a.b\x00", "label at byte 0 is not a dot-free ASCII label"),
        (parse_domain_list, (b"\x3f" + b"a" * 63) * 4 + b"\x00", "is 257 bytes, over 255"),
        (parse_elapsed_time, b"\x00", "option 8 (ELAPSED_TIME): 1 bytes, not 2"),
        (parse_network_interface_id, b"\x01\x03", "option 62 (NII): 2 bytes, not 3"),
    ],
)
def test_malformed_option_values_are_refused_saying_where(
    reader: Callable[[bytes], object], value: bytes, complaint: str
) -> None:
    with pytest.raises(MalformedPacket, match=re.escape(complaint)):
        reader(value)


def _wrapped(depth: int) -> bytes:
    datagram = SOLICIT
    for hop in range(depth):
        relay = RelayMessage(12, hop, IPv6Address("::"), IPv6Address("fe80::1"), ((9, datagram),))
        datagram = build_message(relay)
    return datagram


def test_nine_relay_layers_are_read_and_a_tenth_is_refused() -> None:
    nine = parse_message(_wrapped(MAX_RELAY_DEPTH))
    assert isinstance(nine, RelayMessage)
    assert nine.hop_count == 8
    assert nine.innermost == parse_message(SOLICIT)
    with pytest.raises(MalformedPacket, match="nested deeper than 9 relay layers"):
        parse_message(_wrapped(MAX_RELAY_DEPTH + 1))


@pytest.mark.parametrize(
    "message",
    [
        Dhcp6Message(1, 1 << 24),
        Dhcp6Message(12, 1),
        Dhcp6Message(1, 1, ((1 << 16, b""),)),
        Dhcp6Message(1, 1, ((1, bytes(1 << 16)),)),
        RelayMessage(1, 0, IPv6Address("::"), IPv6Address("::"), ((9, SOLICIT),)),
        RelayMessage(12, 256, IPv6Address("::"), IPv6Address("::"), ((9, SOLICIT),)),
        RelayMessage(12, 0, IPv6Address("::"), IPv6Address("::")),
        RelayMessage(12, 0, IPv6Address("::"), IPv6Address("::"), ((9, SOLICIT),) * 2),
    ],
)
def test_building_refuses_fields_that_do_not_fit(message: Dhcp6Message | RelayMessage) -> None:
    with pytest.raises(ValueError, match=r"fit|type|over 65535|exactly one RELAY_MSG"):
        build_message(message)


def test_builders_refuse_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="DUID-UUID is 16 bytes"):
        build_duid(Duid(4, bytes(15)))
    with pytest.raises(ValueError, match="hardware type"):
        build_duid(Duid(3, bytes(6)))
    with pytest.raises(ValueError, match=r"label ''"):
        build_domain_list(["a..b"])
    with pytest.raises(ValueError, match="one architecture type"):
        build_client_arch_types([])
    with pytest.raises(ValueError, match="IAID"):
        build_ia_na(IaNa(1 << 32, 0, 0))


def test_a_duid_gives_a_mac_only_for_ethernet_link_layer_types() -> None:
    mac = bytes.fromhex("525400123456")
    assert Duid(1, mac, hardware_type=1, time=0).mac == "52:54:00:12:34:56"
    assert Duid(3, mac, hardware_type=6).mac is None
    assert Duid(2, mac, enterprise_number=343).mac is None
    assert parse_duid(b"\x00\x07abc") == Duid(7, b"abc")  # an unknown type is kept whole
    assert StatusCode(2).status is Status.NO_ADDRS_AVAIL
    assert StatusCode(99).status is None


# Properties: what we build reads back as itself; garbage is only ever MalformedPacket.

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addresses = st.integers(0, 2**128 - 1).map(IPv6Address)
statuses = st.builds(StatusCode, u16, st.text(max_size=12))
ia_addresses = st.builds(IaAddress, addresses, u32, u32, st.lists(statuses, max_size=1).map(tuple))
ia_nas = st.builds(
    IaNa, u32, u32, u32, st.lists(st.one_of(ia_addresses, statuses), max_size=3).map(tuple)
)
ethernet_duids = st.one_of(
    st.builds(Duid, st.just(3), st.binary(min_size=6, max_size=6), hardware_type=u16),
    st.builds(Duid, st.just(1), st.binary(min_size=6, max_size=6), hardware_type=u16, time=u32),
    st.builds(Duid, st.just(2), st.binary(max_size=20), enterprise_number=u32),
    st.builds(Duid, st.just(4), st.binary(min_size=16, max_size=16)),
)
any_duids = st.one_of(
    ethernet_duids,
    st.builds(Duid, st.just(3), st.binary(min_size=1, max_size=16), hardware_type=u16),
    st.builds(Duid, st.integers(5, 0xFFFF), st.binary(min_size=1, max_size=128)),
)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
unknown_codes = st.integers(200, 0xFFFF).filter(lambda code: code not in dhcp6opts_by_code)


def typed(
    code: int, values: st.SearchStrategy[object], build: Callable[..., bytes]
) -> st.SearchStrategy[tuple[int, object, bytes]]:
    """Options as (code, the value drawn, its bytes); code 0 draws an unknown option whole."""
    return values.map(lambda value: (code, value, build(value)))


typed_options = st.one_of(
    typed(1, ethernet_duids, build_duid),
    typed(2, ethernet_duids, build_duid),
    typed(3, ia_nas, build_ia_na),
    typed(6, st.lists(u16, max_size=6).map(tuple), build_oro),
    typed(8, u16, build_elapsed_time),
    typed(13, statuses, build_status_code),
    typed(
        15, st.lists(st.binary(min_size=1, max_size=12), max_size=3).map(tuple), build_user_class
    ),
    typed(
        16,
        st.builds(
            VendorClass, u32, st.lists(st.binary(min_size=1, max_size=40), max_size=3).map(tuple)
        ),
        build_vendor_class,
    ),
    typed(23, st.lists(addresses, max_size=3).map(tuple), build_dns_servers),
    typed(24, st.lists(domains, max_size=3).map(tuple), build_domain_list),
    typed(59, st.text(max_size=60), build_bootfile_url),
    typed(61, st.lists(u16, min_size=1, max_size=4).map(tuple), build_client_arch_types),
    typed(
        62,
        st.builds(NetworkInterfaceId, *[st.integers(0, 255)] * 3),
        build_network_interface_id,
    ),
    typed(0, st.tuples(unknown_codes, st.binary(max_size=20)), lambda pair: pair[1]),
)


def _expected(option: tuple[int, object, bytes]) -> tuple[int, object]:
    code, value, raw = option
    if code == 0:
        assert isinstance(value, tuple)
        return (value[0], raw)
    return (code, value)


def _raw(option: tuple[int, object, bytes]) -> tuple[int, bytes]:
    return _expected(option)[0], option[2]


client_messages = st.builds(
    lambda kind, xid, options: (kind, xid, options),
    st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
    st.integers(0, 0xFFFFFF),
    st.lists(typed_options, max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(client_messages)
def test_scapy_dissects_what_we_build_into_the_same_fields(
    drawn: tuple[int, int, list[tuple[int, object, bytes]]],
) -> None:
    kind, xid, options = drawn
    message = Dhcp6Message(kind, xid, tuple(_raw(option) for option in options))
    datagram = build_message(message)
    expected = (kind, xid, tuple(_expected(option) for option in options))
    assert our_read(datagram) == expected
    assert scapy_read(datagram) == expected
    assert parse_message(datagram) == message


@settings(max_examples=150, deadline=None)
@given(client_messages, st.lists(st.tuples(st.integers(0, 8), addresses, addresses), max_size=4))
def test_relayed_messages_read_alike_through_every_layer(
    drawn: tuple[int, int, list[tuple[int, object, bytes]]],
    layers: list[tuple[int, IPv6Address, IPv6Address]],
) -> None:
    kind, xid, options = drawn
    message: Dhcp6Message | RelayMessage = Dhcp6Message(kind, xid, tuple(map(_raw, options)))
    for hop_count, link, peer in layers:
        message = RelayMessage(12, hop_count, link, peer, ((9, build_message(message)),))
    datagram = build_message(message)
    assert parse_message(datagram) == message
    assert our_read(datagram) == scapy_read(datagram)


@settings(max_examples=200, deadline=None)
@given(any_duids)
def test_every_duid_reads_back_as_itself(duid: Duid) -> None:
    assert parse_duid(build_duid(duid)) == duid


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(max_size=20), max_size=4),
    st.lists(st.binary(max_size=20), max_size=4),
    st.lists(domains.map(lambda name: name + "."), max_size=3),
)
def test_list_values_read_back_as_themselves(
    params: list[str], classes: list[bytes], names: list[str]
) -> None:
    assert parse_bootfile_params(build_bootfile_params(params)) == tuple(params)
    assert parse_user_class(build_user_class(classes)) == tuple(classes)
    assert parse_domain_list(build_domain_list(names)) == tuple(n[:-1] for n in names)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        Dhcp6Message,
        st.integers(0, 255).filter(lambda kind: kind not in (12, 13)),
        st.integers(0, 0xFFFFFF),
        st.lists(st.tuples(u16, st.binary(max_size=30)), max_size=8).map(tuple),
    )
)
def test_any_client_message_reads_back_as_itself(message: Dhcp6Message) -> None:
    assert parse_message(build_message(message)) == message


PARSERS: list[Callable[[bytes], object]] = [parse_message, *READERS.values()]


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(PARSERS), st.sampled_from([b"", b"\x0c\x00", b"\x01"]), st.binary(max_size=120)
)
def test_random_bytes_raise_nothing_but_malformed_packet(
    parser: Callable[[bytes], object], prefix: bytes, tail: bytes
) -> None:
    with contextlib.suppress(MalformedPacket):
        parser(prefix + tail)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([SOLICIT, ADVERTISE, RELAYED]), st.data())
def test_mutated_messages_raise_nothing_but_malformed_packet(
    datagram: bytes, data: st.DataObject
) -> None:
    mutated = bytearray(datagram[: data.draw(st.integers(0, len(datagram)), label="cut")])
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if mutated:
            at = data.draw(st.integers(0, len(mutated) - 1), label="at")
            mutated[at] = data.draw(st.integers(0, 255), label="byte")
    try:
        message = parse_message(bytes(mutated))
    except MalformedPacket:
        return
    assert build_message(message) == bytes(mutated)
    for code, value in message.options:
        if code in READERS:
            with contextlib.suppress(MalformedPacket):
                READERS[code](value)


# scapy builds, we read.


def test_a_pxe_solicit_built_by_scapy_reads_as_scapy_says() -> None:
    solicit = (
        DHCP6_Solicit(trid=0xABCDEF)
        / DHCP6OptClientId(duid=DUID_LLT(timeval=12345, lladdr="52:54:00:12:34:56"))
        / DHCP6OptIA_NA(iaid=0x1234, T1=0, T2=0)
        / DHCP6OptClientArchType(archtypes=[16, 7])
        / DHCP6OptVendorClass(
            enterprisenum=343, vcdata=[VENDOR_CLASS_DATA(data=b"HTTPClient:Arch:00016:UNDI:003016")]
        )
    )
    datagram = bytes(solicit)
    message = parse_message(datagram)
    assert isinstance(message, Dhcp6Message)
    assert message.kind is MessageType.SOLICIT
    duid = parse_duid(message.option(Option.CLIENTID) or b"")
    assert (duid.duid_type, duid.time, duid.mac) == (1, 12345, "52:54:00:12:34:56")
    assert parse_ia_na(message.option(Option.IA_NA) or b"") == IaNa(0x1234, 0, 0)
    assert parse_client_arch_types(message.option(61) or b"") == (16, 7)
    vendor = parse_vendor_class(message.option(16) or b"")
    assert vendor.data == (b"HTTPClient:Arch:00016:UNDI:003016",)
    assert our_read(datagram) == scapy_read(datagram)
    assert build_message(message) == datagram


def test_a_relayed_advertise_built_by_scapy_reads_as_scapy_says() -> None:
    advertise = (
        DHCP6_Advertise(trid=7)
        / DHCP6OptServerId(duid=DUID_LL(lladdr="52:54:00:ab:cd:ef"))
        / DHCP6OptIA_NA(
            iaid=1,
            T1=3600,
            T2=7200,
            ianaopts=[DHCP6OptIAAddress(addr="fd00::64", preflft=7200, validlft=10800)],
        )
        / DHCP6OptStatusCode(statuscode=0, statusmsg=b"all done")
        / DHCP6OptBootFileUrl(optdata=b"http://[fd00::1]:8080/boot.efi")
        / DHCP6OptDNSServers(dnsservers=["fd00::53"])
        / DHCP6OptDNSDomains(dnsdomains=["lab.example."])
    )
    forward = DHCP6_RelayForward(hopcount=1, linkaddr="::", peeraddr="fe80::2") / (
        DHCP6OptRelayMsg(
            message=DHCP6_RelayForward(hopcount=0, linkaddr="fd00::1", peeraddr="fe80::3")
            / DHCP6OptRelayMsg(message=advertise)
        )
    )
    datagram = bytes(forward)
    relay = parse_message(datagram)
    assert isinstance(relay, RelayMessage)
    assert (relay.hop_count, relay.peer_address) == (1, IPv6Address("fe80::2"))
    inner = relay.relayed
    assert isinstance(inner, RelayMessage)
    assert inner.link_address == IPv6Address("fd00::1")
    answer = relay.innermost
    assert answer.kind is MessageType.ADVERTISE
    assert parse_bootfile_url(answer.option(59) or b"") == "http://[fd00::1]:8080/boot.efi"
    assert parse_dns_servers(answer.option(23) or b"") == (IPv6Address("fd00::53"),)
    assert parse_domain_list(answer.option(24) or b"") == ("lab.example",)
    status = parse_status_code(answer.option(13) or b"")
    assert (status.status, status.message) == (Status.SUCCESS, "all done")
    assert our_read(datagram) == scapy_read(datagram)
    assert build_message(relay) == datagram
