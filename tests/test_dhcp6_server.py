"""The DHCPv6 decision (`netboot.dhcp6.server.answer`, docs/protocols/dhcpv6.md §9 and §12).

Every reply we build is dissected by scapy (tests/scapy_dhcp6.py), the oracle,
and the assertions are made on scapy's reading: each message type in full
mode, rapid commit, pool exhaustion, Release, Decline, Confirm, relays nested
two and three deep, RFC 8415 §16's refusals, and proxy mode in the shape EDK2
takes as a proxy offer. Leases live in a SQLite file under `tmp_path`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Interface
from pathlib import Path

import pytest

from netboot.dhcp.boot import BootSettings
from netboot.dhcp.pxe import ClientKind
from netboot.dhcp6.leases import Address6Pool, IaKey, Lease6Store
from netboot.dhcp6.outcome import Arrival6, Dhcp6OutcomeKind, Outcome6
from netboot.dhcp6.server import Dhcp6Mode, Dhcp6Settings, answer, server_duid_ll
from netboot.dhcp6wire.duid import Duid, build_duid
from netboot.dhcp6wire.ia import IaAddress, IaNa, StatusCode, build_ia_na
from netboot.dhcp6wire.options import PXE_ENTERPRISE_NUMBER, DuidType, MessageType, Option, Status
from netboot.dhcp6wire.packet import (
    Dhcp6Message,
    RawOption,
    RelayMessage,
    build_message,
)
from netboot.dhcp6wire.values import (
    ClientLinkLayerAddress,
    VendorClass,
    build_client_arch_types,
    build_client_link_layer_address,
    build_user_class,
    build_vendor_class,
)
from netboot.macaddr import MacAddress
from tests.scapy_dhcp6 import scapy_read

NOW = 1_700_000_000.0
CLIENT_MAC = bytes.fromhex("525400123456")
CLIENT_LL = IPv6Address("fe80::5054:ff:fe12:3456")
SERVER = IPv6Address("fd4e:4254:0:1::1")
SERVER_DUID = server_duid_ll(MacAddress("02:00:00:00:00:01"))
POOL = Address6Pool(IPv6Address("fd4e:4254:0:1::1000"), IPv6Address("fd4e:4254:0:1::1001"))
MULTICAST = IPv6Address("ff02::1:2")
ARRIVAL = Arrival6(
    source=CLIENT_LL,
    source_port=546,
    interface="nblab0",
    interface_index=7,
    destination=MULTICAST,
    server_addresses=(IPv6Interface("fe80::1/64"), IPv6Interface(f"{SERVER}/64")),
)
BOOT = BootSettings(boot_files={"efi-x64": "ipxe.efi", "bios": "undionly.kpxe"}, http_port=8080)
FULL = Dhcp6Settings(
    mode=Dhcp6Mode.FULL,
    server_duid=SERVER_DUID,
    pool=POOL,
    lease_time=3600,
    dns_servers=(SERVER,),
    domain_search=("lab.example",),
    boot=BOOT,
)
PROXY = Dhcp6Settings(mode=Dhcp6Mode.PROXY, server_duid=SERVER_DUID, boot=BOOT)

DUID_LL = build_duid(Duid(DuidType.LL, CLIENT_MAC, hardware_type=1))
PXE = [
    (
        Option.VENDOR_CLASS,
        build_vendor_class(VendorClass(343, (b"PXEClient:Arch:00007:UNDI:003016",))),
    ),
    (Option.CLIENT_ARCH_TYPE, build_client_arch_types([7])),
]
HTTP = [
    (
        Option.VENDOR_CLASS,
        build_vendor_class(VendorClass(343, (b"HTTPClient:Arch:00016:UNDI:003016",))),
    ),
    (Option.CLIENT_ARCH_TYPE, build_client_arch_types([16])),
]
IPXE = [
    (Option.USER_CLASS, build_user_class([b"iPXE"])),
    (Option.CLIENT_ARCH_TYPE, build_client_arch_types([7])),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Lease6Store]:
    with Lease6Store(tmp_path / "leases.db", POOL, offer_hold=30, quarantine=600) as opened:
        yield opened


def message(kind: MessageType, *options: RawOption, duid: bytes | None = DUID_LL) -> Dhcp6Message:
    head = [] if duid is None else [(Option.CLIENTID.value, duid)]
    return Dhcp6Message(kind, 0x123456, (*head, *((int(c), v) for c, v in options)))


def ia_na(iaid: int = 1, *addresses: IPv6Address) -> RawOption:
    items = tuple(IaAddress(address, 0, 0) for address in addresses)
    return (Option.IA_NA, build_ia_na(IaNa(iaid, 0, 0, items)))


def ours() -> RawOption:
    return (Option.SERVERID, SERVER_DUID)


def read(outcome: Outcome6) -> tuple[int, dict[int, list[object]]]:
    """The one reply as scapy dissects it: its type, and each option's values by code."""
    assert len(outcome.replies) == 1, outcome
    msg_type, _xid, options = scapy_read(outcome.replies[0].payload)
    by_code: dict[int, list[object]] = {}
    for code, value in pairs(options):
        by_code.setdefault(code, []).append(value)
    assert isinstance(msg_type, int)
    return msg_type, by_code


def pairs(options: object) -> list[tuple[int, object]]:
    """scapy_read's option list, typed: (code, value) in wire order."""
    assert isinstance(options, tuple)
    return [(int(code), value) for code, value in options]


def run(
    msg: Dhcp6Message | RelayMessage,
    store: Lease6Store | None,
    settings: Dhcp6Settings = FULL,
    arrival: Arrival6 = ARRIVAL,
    now: float = NOW,
) -> Outcome6:
    """Through the wire first, as the service hands datagrams over."""
    return answer(build_message(msg), arrival, settings, store, now)


def the_ia(options: dict[int, list[object]]) -> IaNa:
    (ia,) = options[Option.IA_NA]
    assert isinstance(ia, IaNa)
    return ia


# --- full mode, per message type ---------------------------------------------------------


def test_solicit_gets_an_advertise_with_an_address_dns_and_preference(store: Lease6Store) -> None:
    outcome = run(message(MessageType.SOLICIT, ia_na(5)), store)
    assert outcome.kind is Dhcp6OutcomeKind.ADVERTISE
    assert outcome.addresses == (POOL.first,)
    assert outcome.mac == "52:54:00:12:34:56" and outcome.client_duid == DUID_LL
    assert outcome.client_kind is ClientKind.PLAIN and outcome.boot_url is None
    msg_type, options = read(outcome)
    assert msg_type == MessageType.ADVERTISE
    assert options[Option.SERVERID] == [Duid(DuidType.LL, bytes.fromhex("020000000001"), 1)]
    assert options[Option.CLIENTID] == [Duid(DuidType.LL, CLIENT_MAC, 1)]
    assert the_ia(options) == IaNa(5, 1800, 2880, (IaAddress(POOL.first, 3600, 3600),))
    assert options[Option.PREFERENCE] == [255]
    assert options[Option.DNS_SERVERS] == [(SERVER,)]
    assert options[Option.DOMAIN_LIST] == [("lab.example",)]
    assert Option.BOOTFILE_URL not in options
    sent = outcome.replies[0]
    assert (sent.destination, sent.port, sent.interface_index) == (CLIENT_LL, 546, 7)


def test_request_binds_what_was_advertised(store: Lease6Store) -> None:
    run(message(MessageType.SOLICIT, ia_na(1)), store)
    outcome = run(message(MessageType.REQUEST, ours(), ia_na(1, POOL.first)), store, now=NOW + 1)
    assert outcome.kind is Dhcp6OutcomeKind.BOUND
    assert outcome.addresses == (POOL.first,)
    msg_type, options = read(outcome)
    assert msg_type == MessageType.REPLY
    assert the_ia(options).addresses == (IaAddress(POOL.first, 3600, 3600),)
    lease = store.lease_for(IaKey(DUID_LL, 1))
    assert lease is not None and lease.expires == NOW + 1 + 3600


def test_rapid_commit_binds_at_once_when_allowed(store: Lease6Store) -> None:
    rapid = message(MessageType.SOLICIT, ia_na(1), (Option.RAPID_COMMIT, b""))
    outcome = run(rapid, store)
    assert outcome.kind is Dhcp6OutcomeKind.BOUND
    msg_type, options = read(outcome)
    assert msg_type == MessageType.REPLY and options[Option.RAPID_COMMIT] == [b""]
    assert Option.PREFERENCE not in options
    refused = run(rapid, store, replace(FULL, rapid_commit=False))
    assert refused.kind is Dhcp6OutcomeKind.ADVERTISE
    msg_type, options = read(refused)
    assert msg_type == MessageType.ADVERTISE and Option.RAPID_COMMIT not in options


def test_an_exhausted_pool_advertises_only_no_addrs_avail(store: Lease6Store) -> None:
    for number in range(2):
        duid = build_duid(Duid(DuidType.LL, bytes((2, 0, 0, 0, 9, number)), hardware_type=1))
        assert run(
            message(MessageType.SOLICIT, ia_na(1), (Option.RAPID_COMMIT, b""), duid=duid), store
        ).addresses
    outcome = run(message(MessageType.SOLICIT, ia_na(1)), store)
    assert outcome.kind is Dhcp6OutcomeKind.NO_ADDRS and outcome.addresses == ()
    msg_type, options = read(outcome)
    assert msg_type == MessageType.ADVERTISE
    assert options[Option.STATUS_CODE] == [
        StatusCode(Status.NO_ADDRS_AVAIL, "no address left in the pool")
    ]
    assert Option.IA_NA not in options
    request = run(message(MessageType.REQUEST, ours(), ia_na(1)), store)
    assert request.kind is Dhcp6OutcomeKind.NO_ADDRS
    assert the_ia(read(request)[1]).status == StatusCode(Status.NO_ADDRS_AVAIL, "pool exhausted")


def test_renew_and_rebind_extend_a_binding(store: Lease6Store) -> None:
    run(message(MessageType.SOLICIT, ia_na(1), (Option.RAPID_COMMIT, b"")), store)
    for kind, extra in ((MessageType.RENEW, [ours()]), (MessageType.REBIND, [])):
        outcome = run(message(kind, *extra, ia_na(1, POOL.first)), store, now=NOW + 2000)
        assert outcome.kind is Dhcp6OutcomeKind.BOUND, outcome
        assert outcome.addresses == (POOL.first,)
        assert the_ia(read(outcome)[1]) == IaNa(1, 1800, 2880, (IaAddress(POOL.first, 3600, 3600),))
    lease = store.lease_for(IaKey(DUID_LL, 1))
    assert lease is not None and lease.expires == NOW + 2000 + 3600


def test_renew_of_an_unknown_ia_is_no_binding_and_off_link_addresses_get_lifetime_0(
    store: Lease6Store,
) -> None:
    outcome = run(message(MessageType.RENEW, ours(), ia_na(3, POOL.first)), store)
    assert outcome.kind is Dhcp6OutcomeKind.NO_BINDING
    assert the_ia(read(outcome)[1]).status == StatusCode(Status.NO_BINDING, "no binding")
    elsewhere = IPv6Address("2001:db8::1")
    rebind = run(message(MessageType.REBIND, ia_na(3, elsewhere)), store)
    assert rebind.kind is Dhcp6OutcomeKind.NO_BINDING
    ia = the_ia(read(rebind)[1])
    assert ia.addresses == (IaAddress(elsewhere, 0, 0),)


def test_release_gives_the_address_back_with_success(store: Lease6Store) -> None:
    run(message(MessageType.SOLICIT, ia_na(1), (Option.RAPID_COMMIT, b"")), store)
    outcome = run(message(MessageType.RELEASE, ours(), ia_na(1, POOL.first)), store, now=NOW + 5)
    assert outcome.kind is Dhcp6OutcomeKind.RELEASED and outcome.addresses == (POOL.first,)
    _, options = read(outcome)
    assert options[Option.STATUS_CODE] == [StatusCode(Status.SUCCESS, "released")]
    assert store.holder(POOL.first, NOW + 6) is None
    again = run(message(MessageType.RELEASE, ours(), ia_na(1, POOL.first)), store, now=NOW + 6)
    assert again.kind is Dhcp6OutcomeKind.NO_BINDING
    _, options = read(again)
    assert options[Option.STATUS_CODE] == [StatusCode(Status.SUCCESS, "released")]
    assert the_ia(options).status == StatusCode(Status.NO_BINDING, "no binding")


def test_decline_quarantines_the_address(store: Lease6Store) -> None:
    run(message(MessageType.SOLICIT, ia_na(1), (Option.RAPID_COMMIT, b"")), store)
    outcome = run(message(MessageType.DECLINE, ours(), ia_na(1, POOL.first)), store, now=NOW + 5)
    assert outcome.kind is Dhcp6OutcomeKind.DECLINED
    assert read(outcome)[1][Option.STATUS_CODE] == [StatusCode(Status.SUCCESS, "declined")]
    fresh = run(message(MessageType.SOLICIT, ia_na(1)), store, now=NOW + 6)
    assert fresh.addresses == (POOL.last,)
    other = build_duid(Duid(DuidType.UUID, bytes(16)))
    assert run(message(MessageType.SOLICIT, ia_na(1), duid=other), store, now=NOW + 7).kind is (
        Dhcp6OutcomeKind.NO_ADDRS
    )


def test_confirm_says_success_on_link_and_not_on_link_elsewhere(store: Lease6Store) -> None:
    on_link = run(message(MessageType.CONFIRM, ia_na(1, IPv6Address("fd4e:4254:0:1::42"))), store)
    assert on_link.kind is Dhcp6OutcomeKind.CONFIRMED
    assert read(on_link)[1][Option.STATUS_CODE] == [StatusCode(Status.SUCCESS, "on link")]
    moved = run(message(MessageType.CONFIRM, ia_na(1, IPv6Address("2001:db8::42"))), store)
    assert moved.kind is Dhcp6OutcomeKind.NOT_ON_LINK
    assert read(moved)[1][Option.STATUS_CODE] == [
        StatusCode(Status.NOT_ON_LINK, "not on this link")
    ]
    assert run(message(MessageType.CONFIRM, ia_na(1)), store).replies == ()


def test_information_request_gets_dns_and_boot_options_for_boot_clients(store: Lease6Store) -> None:
    plain = run(message(MessageType.INFORMATION_REQUEST, duid=None), store)
    assert plain.kind is Dhcp6OutcomeKind.INFO_REPLY and plain.client_duid is None
    msg_type, options = read(plain)
    assert msg_type == MessageType.REPLY and Option.CLIENTID not in options
    assert options[Option.DNS_SERVERS] == [(SERVER,)] and Option.BOOTFILE_URL not in options
    pxe = run(message(MessageType.INFORMATION_REQUEST, *PXE), store)
    assert read(pxe)[1][Option.BOOTFILE_URL] == [f"tftp://[{SERVER}]/ipxe.efi"]


# --- boot options: the IPv4 decision written as option 59 ---------------------------------


def test_a_pxe_rom_gets_a_tftp_url_and_no_vendor_class_in_full_mode(store: Lease6Store) -> None:
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *PXE), store)
    assert outcome.kind is Dhcp6OutcomeKind.ADVERTISE
    assert outcome.client_kind is ClientKind.PXE
    assert outcome.boot_url == "tftp://[fd4e:4254:0:1::1]/ipxe.efi"
    _, options = read(outcome)
    assert options[Option.BOOTFILE_URL] == ["tftp://[fd4e:4254:0:1::1]/ipxe.efi"]
    # with PXEClient and an address EDK2 would first ask port 4011 (a BINL offer)
    assert Option.VENDOR_CLASS not in options


def test_an_http_boot_client_gets_the_http_url_and_httpclient(store: Lease6Store) -> None:
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *HTTP), store)
    _, options = read(outcome)
    assert options[Option.BOOTFILE_URL] == ["http://[fd4e:4254:0:1::1]:8080/boot/ipxe.efi"]
    assert options[Option.VENDOR_CLASS] == [VendorClass(PXE_ENTERPRISE_NUMBER, (b"HTTPClient",))]


def test_ipxe_gets_its_script_url(store: Lease6Store) -> None:
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *IPXE), store)
    assert outcome.client_kind is ClientKind.IPXE
    _, options = read(outcome)
    assert options[Option.BOOTFILE_URL] == [
        "http://[fd4e:4254:0:1::1]:8080/boot.ipxe?mac=52:54:00:12:34:56&arch=7"
    ]


def test_only_a_link_local_address_makes_a_link_local_url(store: Lease6Store) -> None:
    arrival = replace(ARRIVAL, server_addresses=(IPv6Interface("fe80::1/64"),))
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *PXE), store, arrival=arrival)
    assert outcome.boot_url == "tftp://[fe80::1]/ipxe.efi"


def test_a_boot_client_without_a_known_mac_gets_an_address_but_no_boot_file(
    store: Lease6Store,
) -> None:
    uuid = build_duid(Duid(DuidType.UUID, bytes(range(16))))
    arrival = replace(ARRIVAL, source=IPv6Address("fe80::a1b2:c3d4:e5f6:789a"))
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *PXE, duid=uuid), store, arrival=arrival)
    assert outcome.kind is Dhcp6OutcomeKind.ADVERTISE and outcome.mac is None
    assert outcome.boot_url is None and outcome.reason.startswith("boot client without a known MAC")


@pytest.mark.parametrize(
    "duid",
    [
        Duid(DuidType.LLT, CLIENT_MAC, hardware_type=1, time=0x2A2A2A2A),
        Duid(DuidType.EN, b"serial-7", enterprise_number=343),
        Duid(DuidType.UUID, bytes(range(16))),
    ],
    ids=["LLT", "EN", "UUID"],
)
def test_every_duid_type_leases_and_an_eui64_link_local_gives_the_mac(
    store: Lease6Store, duid: Duid
) -> None:
    raw = build_duid(duid)
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *PXE, duid=raw), store)
    assert outcome.addresses == (POOL.first,) and outcome.client_duid == raw
    assert outcome.mac == "52:54:00:12:34:56"  # from the DUID, or from fe80::5054:ff:fe12:3456
    assert outcome.boot_url == "tftp://[fd4e:4254:0:1::1]/ipxe.efi"
    assert read(outcome)[1][Option.CLIENTID] == [duid]


# --- relays ------------------------------------------------------------------------------

RELAY_NEAR = IPv6Address("fd4e:4254:0:2::1")
RELAY_FAR = IPv6Address("fd4e:4254:0:3::1")


def forward(
    inner: Dhcp6Message | RelayMessage,
    hop: int,
    link: IPv6Address,
    peer: IPv6Address,
    *options: RawOption,
) -> RelayMessage:
    return RelayMessage(
        MessageType.RELAY_FORW,
        hop,
        link,
        peer,
        (*((int(c), v) for c, v in options), (Option.RELAY_MSG.value, build_message(inner))),
    )


@pytest.mark.parametrize("depth", [2, 3])
def test_nested_relays_are_answered_through_every_relay(store: Lease6Store, depth: int) -> None:
    uuid = build_duid(Duid(DuidType.UUID, bytes(range(16))))
    client = message(MessageType.SOLICIT, ia_na(1), *PXE, duid=uuid)
    mac79 = build_client_link_layer_address(
        ClientLinkLayerAddress(1, bytes.fromhex("020000aabbcc"))
    )
    wrapped: Dhcp6Message | RelayMessage = forward(
        client,
        0,
        IPv6Address("fd4e:4254:0:1::ff"),
        CLIENT_LL,
        (Option.INTERFACE_ID, b"port-0"),
        (Option.CLIENT_LINKLAYER_ADDR, mac79),
    )
    for level in range(1, depth):
        wrapped = forward(
            wrapped,
            level,
            IPv6Address("::"),
            RELAY_NEAR,
            (Option.INTERFACE_ID, f"port-{level}".encode()),
        )
    arrival = replace(ARRIVAL, source=RELAY_FAR, source_port=547, destination=SERVER)
    outcome = run(wrapped, store, arrival=arrival)
    assert outcome.kind is Dhcp6OutcomeKind.ADVERTISE
    assert outcome.mac == "02:00:00:aa:bb:cc"
    sent = outcome.replies[0]
    assert (sent.destination, sent.port) == (RELAY_FAR, 547)
    layer = scapy_read(sent.payload)
    for level in reversed(range(depth)):
        msg_type, hop, _link, peer, options = layer
        assert (msg_type, hop) == (MessageType.RELAY_REPL, level)
        assert peer == (CLIENT_LL if level == 0 else RELAY_NEAR)
        assert dict(pairs(options))[Option.INTERFACE_ID] == f"port-{level}".encode()
        inner = dict(pairs(options))[Option.RELAY_MSG]
        assert isinstance(inner, tuple)
        layer = inner
    msg_type, xid, options = layer
    assert (msg_type, xid) == (MessageType.ADVERTISE, 0x123456)
    assert dict(pairs(options))[Option.BOOTFILE_URL] == f"tftp://[{SERVER}]/ipxe.efi"


# --- RFC 8415 §16: what is not answered ----------------------------------------------------


def test_messages_for_another_server_are_ignored(store: Lease6Store) -> None:
    theirs = build_duid(Duid(DuidType.LL, bytes(6), hardware_type=1))
    for kind in (MessageType.REQUEST, MessageType.RENEW, MessageType.INFORMATION_REQUEST):
        outcome = run(message(kind, (Option.SERVERID, theirs), ia_na(1)), store)
        assert outcome.kind is Dhcp6OutcomeKind.IGNORED and outcome.replies == ()
        assert outcome.reason.endswith("for another server")


@pytest.mark.parametrize(
    ("msg", "kind"),
    [
        (message(MessageType.REQUEST, ia_na(1)), Dhcp6OutcomeKind.IGNORED),
        (
            message(MessageType.SOLICIT, (Option.SERVERID, SERVER_DUID), ia_na(1)),
            Dhcp6OutcomeKind.MALFORMED,
        ),
        (message(MessageType.SOLICIT, ia_na(1), duid=None), Dhcp6OutcomeKind.MALFORMED),
        (message(MessageType.INFORMATION_REQUEST, ia_na(1)), Dhcp6OutcomeKind.MALFORMED),
        (message(MessageType.ADVERTISE, ia_na(1)), Dhcp6OutcomeKind.IGNORED),
        (message(MessageType.SOLICIT, (Option.VENDOR_CLASS, b"\x00")), Dhcp6OutcomeKind.MALFORMED),
    ],
    ids=[
        "request-without-server-id",
        "solicit-with-server-id",
        "no-client-id",
        "info-with-ia",
        "advertise",
        "bad-vendor-class",
    ],
)
def test_messages_rfc_8415_section_16_discards_are_not_answered(
    store: Lease6Store, msg: Dhcp6Message, kind: Dhcp6OutcomeKind
) -> None:
    outcome = run(msg, store)
    assert (outcome.kind, outcome.replies) == (kind, ())


def test_a_datagram_that_does_not_parse_is_malformed(store: Lease6Store) -> None:
    outcome = answer(b"\x01\x00", ARRIVAL, FULL, store, NOW)
    assert outcome.kind is Dhcp6OutcomeKind.MALFORMED and outcome.replies == ()


def test_unicast_requests_are_told_to_multicast_and_unicast_solicits_dropped(
    store: Lease6Store,
) -> None:
    unicast = replace(ARRIVAL, destination=SERVER)
    renew = run(message(MessageType.RENEW, ours(), ia_na(1, POOL.first)), store, arrival=unicast)
    assert renew.kind is Dhcp6OutcomeKind.IGNORED
    msg_type, options = read(renew)
    assert msg_type == MessageType.REPLY
    assert options[Option.STATUS_CODE] == [StatusCode(Status.USE_MULTICAST, "use ff02::1:2")]
    assert set(options) == {Option.SERVERID, Option.CLIENTID, Option.STATUS_CODE}
    solicit = run(message(MessageType.SOLICIT, ia_na(1)), store, arrival=unicast)
    assert (solicit.kind, solicit.replies) == (Dhcp6OutcomeKind.IGNORED, ())


def test_off_mode_answers_nothing(store: Lease6Store) -> None:
    off = Dhcp6Settings(mode=Dhcp6Mode.OFF, server_duid=SERVER_DUID)
    assert run(message(MessageType.SOLICIT, ia_na(1), *PXE), store, off).replies == ()


# --- proxy mode: boot information only, docs/protocols/dhcpv6.md §12 -------------------------


def test_proxy_mode_offers_pxe_boot_options_without_an_address() -> None:
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *PXE), None, PROXY)
    assert outcome.kind is Dhcp6OutcomeKind.BOOT_INFO and outcome.addresses == ()
    msg_type, options = read(outcome)
    assert msg_type == MessageType.ADVERTISE
    # EDK2's proxy offer: no IA_NA at all (an IA_NA with a status is dropped or taken
    # for an address offer), PXEClient of enterprise 343, and the boot file URL.
    assert Option.IA_NA not in options and Option.STATUS_CODE not in options
    assert options[Option.VENDOR_CLASS] == [VendorClass(PXE_ENTERPRISE_NUMBER, (b"PXEClient",))]
    assert options[Option.BOOTFILE_URL] == [f"tftp://[{SERVER}]/ipxe.efi"]


def test_proxy_mode_answers_edk2s_boot_service_request_on_port_4011() -> None:
    arrival = replace(ARRIVAL, destination=SERVER, source_port=4011)
    request = message(MessageType.REQUEST, ours(), *PXE)
    outcome = run(request, None, PROXY, arrival)
    assert outcome.kind is Dhcp6OutcomeKind.BOOT_INFO
    msg_type, options = read(outcome)
    assert msg_type == MessageType.REPLY
    assert options[Option.BOOTFILE_URL] == [f"tftp://[{SERVER}]/ipxe.efi"]
    sent = outcome.replies[0]
    assert (sent.destination, sent.port) == (CLIENT_LL, 4011)


def test_proxy_mode_leaves_plain_clients_and_address_messages_to_the_site_server() -> None:
    plain = run(message(MessageType.SOLICIT, ia_na(1)), None, PROXY)
    assert (plain.kind, plain.replies) == (Dhcp6OutcomeKind.IGNORED, ())
    assert plain.reason == "plain client in proxy mode"
    renew = run(message(MessageType.RENEW, ours(), ia_na(1), *PXE), None, PROXY)
    assert (renew.kind, renew.replies) == (Dhcp6OutcomeKind.IGNORED, ())
    rapid = run(
        message(MessageType.SOLICIT, ia_na(1), (Option.RAPID_COMMIT, b""), *HTTP), None, PROXY
    )
    msg_type, options = read(rapid)
    assert msg_type == MessageType.ADVERTISE and Option.RAPID_COMMIT not in options
    assert options[Option.VENDOR_CLASS] == [VendorClass(PXE_ENTERPRISE_NUMBER, (b"HTTPClient",))]


def test_proxy_mode_without_a_boot_file_stays_silent() -> None:
    bios_only = replace(PROXY, boot=BootSettings(boot_files={"bios": "undionly.kpxe"}))
    outcome = run(message(MessageType.SOLICIT, ia_na(1), *PXE), None, bios_only)
    assert (outcome.kind, outcome.replies) == (Dhcp6OutcomeKind.IGNORED, ())
    assert "no boot file configured for efi-x64" in outcome.reason


# --- settings ----------------------------------------------------------------------------


def test_the_server_duid_is_a_duid_ll_of_the_interface_mac() -> None:
    assert server_duid_ll(MacAddress("02:00:00:00:00:01")).hex() == "00030001020000000001"


def test_settings_refuse_what_no_answer_could_use() -> None:
    with pytest.raises(ValueError, match="needs an address pool"):
        Dhcp6Settings(mode=Dhcp6Mode.FULL, server_duid=SERVER_DUID)
    with pytest.raises(ValueError, match="preference 256"):
        replace(FULL, preference=256)
    with pytest.raises(ValueError, match="lease_time"):
        replace(FULL, lease_time=0)
    assert (replace(FULL, lease_time=1000).t1, replace(FULL, lease_time=1000).t2) == (500, 800)


def test_proxy_mode_answers_a_boot_clients_information_request() -> None:
    outcome = run(message(MessageType.INFORMATION_REQUEST, *IPXE), None, PROXY)
    assert outcome.kind is Dhcp6OutcomeKind.BOOT_INFO
    msg_type, options = read(outcome)
    assert msg_type == MessageType.REPLY
    assert options[Option.BOOTFILE_URL] == [
        "http://[fd4e:4254:0:1::1]:8080/boot.ipxe?mac=52:54:00:12:34:56&arch=7"
    ]
    plain = run(message(MessageType.INFORMATION_REQUEST), None, PROXY)
    assert (plain.kind, plain.replies) == (Dhcp6OutcomeKind.IGNORED, ())
