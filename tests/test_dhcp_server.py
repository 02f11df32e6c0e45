"""Full DHCP (netboot.dhcp.server.LeaseServer) over a real lease store.

The store is an SQLite file under `tmp_path` with a fake clock; the pool is
192.0.2.100-102 on 192.0.2.0/24 with the server at 192.0.2.10. Requests cross
the wire once before the server sees them, and replies are built and parsed
again, so the checks are on the bytes a client would get. The message states
(selecting, init-reboot, renewing) are those of RFC 2131 section 4.3.2 and
table 4; the boot fields those of docs/protocols/pxe.md §8, rows 2, 4, 6, 10
and 15; the full-mode behaviour is docs/protocols/pxe.md §11.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from netboot.dhcp.boot import BootSettings
from netboot.dhcp.lease_store import LeaseStoreUnavailable
from netboot.dhcp.leases import AddressPool, LeaseState, LeaseStore
from netboot.dhcp.peers import PeerView
from netboot.dhcp.proxy import Answer, Silence, SilenceReason
from netboot.dhcp.pxe import classify
from netboot.dhcp.server import Event, LeaseServer, NetworkSettings, client_identifier
from netboot.dhcpwire.options import BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket
from netboot.macaddr import mac_from_bytes

SERVER = "192.0.2.10"
OTHER_SERVER = "192.0.2.11"
ROUTER = "192.0.2.1"
FIRST, SECOND, THIRD = "192.0.2.100", "192.0.2.101", "192.0.2.102"
POOL_RELAY = "192.0.2.1"
FOREIGN_RELAY = "198.51.100.1"
BROADCAST_68 = ("255.255.255.255", 68)
START = 1_700_000_000.0
LEASE_TIME = 3600
BOOT_NOW = bytes.fromhex("06 01 08 0a 04 00 50 58 45 ff")
BOOT = BootSettings(boot_files={"bios": "undionly.kpxe", "efi-x64": "ipxe.efi"}, http_port=8080)
NETWORK = NetworkSettings(
    subnet=IPv4Network("192.0.2.0/24"),
    lease_time=LEASE_TIME,
    router=ROUTER,
    dns_servers=("192.0.2.1", "192.0.2.2"),
    domain_name="lab.test",
    boot=BOOT,
)

PXE_BIOS = ((60, b"PXEClient:Arch:00000:UNDI:002001"), (93, b"\x00\x00"))
PXE_X64 = ((60, b"PXEClient:Arch:00007:UNDI:003000"), (93, b"\x00\x07"))
IPXE = ((60, b"PXEClient:Arch:00007:UNDI:003010"), (77, b"iPXE"), (93, b"\x00\x07"))
HTTP_BOOT = ((60, b"HTTPClient:Arch:00016:UNDI:003000"), (93, b"\x00\x10"))


def ip(text: str) -> bytes:
    return IPv4Address(text).packed


def mac(n: int) -> bytes:
    return bytes.fromhex("525400000000")[:5] + bytes((n,))


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class LeaseRig:
    """A lease server, its store and a clock the test moves: DHCP exchanges without sockets."""

    server: LeaseServer
    store: LeaseStore
    clock: FakeClock

    def send(
        self,
        message: int,
        *options: tuple[int, bytes],
        client: int = 1,
        ciaddr: str = "0.0.0.0",
        giaddr: str = "0.0.0.0",
        flags: int = 0x8000,
        server: str = SERVER,
    ) -> tuple[Answer | Silence, Event | None]:
        packet = DhcpPacket(
            op=BOOTREQUEST,
            xid=0x1000 + client,
            chaddr=mac(client) + bytes(10),
            flags=flags,
            ciaddr=ciaddr,
            giaddr=giaddr,
            options=((Option.MESSAGE_TYPE, bytes((message,))), *options),
        )
        request = parse_packet(build_packet(packet))
        return self.server.answer(request, classify(request), server)

    def discover(self, *options: tuple[int, bytes], client: int = 1) -> DhcpPacket:
        result, _ = self.send(MessageType.DISCOVER, *options, client=client)
        return reply(result)

    def select(self, address: str, *options: tuple[int, bytes], client: int = 1) -> DhcpPacket:
        result, _ = self.send(
            MessageType.REQUEST, (54, ip(SERVER)), (50, ip(address)), *options, client=client
        )
        return reply(result)

    def lease(self, *options: tuple[int, bytes], client: int = 1) -> str:
        """DISCOVER then REQUEST: the address the client is now bound to."""
        address = self.discover(*options, client=client).yiaddr
        assert self.select(address, *options, client=client).message_type == MessageType.ACK
        return address

    def state_of(self, address: str) -> LeaseState | None:
        lease = self.store.lease_at(IPv4Address(address))
        return None if lease is None else lease.state


def reply(result: Answer | Silence) -> DhcpPacket:
    assert isinstance(result, Answer), result
    return parse_packet(build_packet(result.packet))


@contextmanager
def make_lab(path: Path, last: str = THIRD) -> Iterator[LeaseRig]:
    clock = FakeClock()
    pool = AddressPool(IPv4Address(FIRST), IPv4Address(last))
    with LeaseStore(path / "leases.sqlite", pool, clock) as store:
        yield LeaseRig(LeaseServer(store, NETWORK, clock), store, clock)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LeaseRig]:
    with make_lab(tmp_path) as made:
        yield made


NETWORK_OPTIONS = {
    Option.SERVER_IDENTIFIER: ip(SERVER),
    Option.LEASE_TIME: (3600).to_bytes(4, "big"),
    Option.RENEWAL_TIME: (1800).to_bytes(4, "big"),
    Option.REBINDING_TIME: (3150).to_bytes(4, "big"),
    Option.SUBNET_MASK: ip("255.255.255.0"),
    Option.ROUTER: ip(ROUTER),
    Option.DNS_SERVERS: ip("192.0.2.1") + ip("192.0.2.2"),
    Option.DOMAIN_NAME: b"lab.test",
}


# --- DISCOVER and REQUEST ----------------------------------------------------------------


def test_discover_gets_an_offer_from_the_pool_with_the_network_options(lab: LeaseRig) -> None:
    result, event = lab.send(MessageType.DISCOVER)
    offer = reply(result)
    assert offer.message_type == MessageType.OFFER
    assert offer.yiaddr == FIRST
    for code, value in NETWORK_OPTIONS.items():
        assert offer.option(code) == value, code
    assert isinstance(result, Answer)
    assert result.destination == BROADCAST_68
    assert isinstance(result, Answer)
    assert (result.kind, event) == (OutcomeKind.OFFER, Event(FIRST))
    assert lab.state_of(FIRST) == LeaseState.OFFERED


def test_plain_client_offer_has_no_boot_fields(lab: LeaseRig) -> None:
    offer = lab.discover()
    assert (offer.siaddr, offer.file) == ("0.0.0.0", b"")
    for code in (43, 60, 67, 175):
        assert offer.option(code) is None


def test_request_selecting_us_is_acked_with_the_offered_address(lab: LeaseRig) -> None:
    address = lab.discover().yiaddr
    result, event = lab.send(MessageType.REQUEST, (54, ip(SERVER)), (50, ip(address)))
    ack = reply(result)
    assert ack.message_type == MessageType.ACK
    assert ack.yiaddr == address == FIRST
    for code, value in NETWORK_OPTIONS.items():
        assert ack.option(code) == value, code
    assert isinstance(result, Answer)
    assert (result.kind, event) == (OutcomeKind.ACK, Event(FIRST))
    assert lab.state_of(FIRST) == LeaseState.BOUND


def test_request_naming_another_server_is_silence_and_releases_our_offer(lab: LeaseRig) -> None:
    address = lab.discover().yiaddr
    result, event = lab.send(MessageType.REQUEST, (54, ip(OTHER_SERVER)), (50, ip("192.0.2.200")))
    assert isinstance(result, Silence)
    assert event is None
    assert lab.state_of(address) == LeaseState.RELEASED


def test_with_peers_a_request_naming_another_server_leaves_the_shared_row_alone(
    lab: LeaseRig,
) -> None:
    """The peer the client chose may already have bound the row we offered (both
    offered after a takeover): releasing it would free a lease a client holds."""
    address = lab.discover().yiaddr
    lab.server.peers = PeerView(lab.store.server_id, tuple(sorted({lab.store.server_id, "peer"})))
    result, _ = lab.send(MessageType.REQUEST, (54, ip(OTHER_SERVER)), (50, ip(address)))
    assert isinstance(result, Silence)
    assert lab.state_of(address) == LeaseState.OFFERED


def test_request_naming_us_without_an_address_is_nak(lab: LeaseRig) -> None:
    lab.discover()
    result, _ = lab.send(MessageType.REQUEST, (54, ip(SERVER)))
    assert reply(result).message_type == MessageType.NAK


def test_second_client_is_offered_another_address_while_the_first_offer_is_held(
    lab: LeaseRig,
) -> None:
    assert [lab.discover(client=n).yiaddr for n in (1, 2, 3)] == [FIRST, SECOND, THIRD]


def test_option_61_is_the_lease_key_when_sent(lab: LeaseRig) -> None:
    first = lab.discover((61, b"\x01one"), client=1).yiaddr
    second = lab.discover((61, b"\x01two"), client=1).yiaddr
    assert first != second


def test_client_identifier_is_htype_and_chaddr_without_option_61() -> None:
    packet = DhcpPacket(op=BOOTREQUEST, xid=1, chaddr=mac(7) + bytes(10))
    assert client_identifier(packet) == b"\x01" + mac(7)


# --- INIT-REBOOT -------------------------------------------------------------------------


def test_init_reboot_with_its_own_address_is_acked(lab: LeaseRig) -> None:
    address = lab.lease()
    result, event = lab.send(MessageType.REQUEST, (50, ip(address)))
    ack = reply(result)
    assert (ack.message_type, ack.yiaddr) == (MessageType.ACK, address)
    assert isinstance(result, Answer)
    assert (result.kind, event) == (OutcomeKind.ACK, Event(address))


@pytest.mark.parametrize(
    "foreign",
    [
        pytest.param("10.9.9.9", id="another-network"),
        pytest.param("192.0.2.250", id="outside-the-pool"),
    ],
)
def test_init_reboot_with_a_foreign_address_is_a_broadcast_nak(lab: LeaseRig, foreign: str) -> None:
    lab.lease()
    result, event = lab.send(MessageType.REQUEST, (50, ip(foreign)))
    nak = reply(result)
    assert nak.message_type == MessageType.NAK
    assert (nak.ciaddr, nak.yiaddr) == ("0.0.0.0", "0.0.0.0")
    assert nak.option(Option.SERVER_IDENTIFIER) == ip(SERVER)
    assert nak.option(Option.MESSAGE)
    assert [code for code, _ in nak.options if code in (1, 3, 6, 51, 58, 59)] == []
    assert isinstance(result, Answer)
    assert result.destination == BROADCAST_68
    assert event is None


def test_init_reboot_with_an_address_another_client_holds_is_nak(lab: LeaseRig) -> None:
    taken = lab.lease(client=2)
    lab.lease(client=1)
    result, _ = lab.send(MessageType.REQUEST, (50, ip(taken)), client=1)
    assert reply(result).message_type == MessageType.NAK
    assert lab.store.holder(IPv4Address(taken)) is not None


def test_init_reboot_from_an_unknown_client_is_silence(lab: LeaseRig) -> None:
    result, event = lab.send(MessageType.REQUEST, (50, ip(FIRST)), client=9)
    assert isinstance(result, Silence)
    assert event is None
    assert lab.state_of(FIRST) is None


# --- RENEWING, RELEASE, DECLINE ---------------------------------------------------------


def test_renewing_is_acked_unicast_to_ciaddr(lab: LeaseRig) -> None:
    address = lab.lease()
    lab.clock.now += LEASE_TIME / 2
    result, event = lab.send(MessageType.REQUEST, ciaddr=address, flags=0)
    ack = reply(result)
    assert (ack.message_type, ack.yiaddr, ack.ciaddr) == (MessageType.ACK, address, address)
    assert isinstance(result, Answer)
    assert result.destination == (address, 68)
    assert isinstance(result, Answer)
    assert (result.kind, event) == (OutcomeKind.ACK, Event(address))
    lease = lab.store.lease_at(IPv4Address(address))
    assert lease is not None
    assert lease.expires == lab.clock.now + LEASE_TIME


def test_renewing_someone_elses_address_is_a_broadcast_nak_without_ciaddr(lab: LeaseRig) -> None:
    taken = lab.lease(client=2)
    result, _ = lab.send(MessageType.REQUEST, ciaddr=taken, flags=0, client=1)
    nak = reply(result)
    assert (nak.message_type, nak.ciaddr) == (MessageType.NAK, "0.0.0.0")
    assert isinstance(result, Answer)
    assert result.destination == BROADCAST_68


def test_relayed_nak_goes_to_the_relay(lab: LeaseRig) -> None:
    result, _ = lab.send(MessageType.REQUEST, (50, ip("10.9.9.9")), giaddr=POOL_RELAY)
    assert isinstance(result, Answer)
    assert result.destination == (POOL_RELAY, 67)


def test_release_then_discover_gets_the_same_address(lab: LeaseRig) -> None:
    address = lab.lease()
    result, event = lab.send(MessageType.RELEASE, (54, ip(SERVER)), ciaddr=address, flags=0)
    assert isinstance(result, Silence)
    assert (result.code, event) == (SilenceReason.RELEASED, Event(address))
    assert lab.state_of(address) == LeaseState.RELEASED
    lab.discover(client=2)  # another client meanwhile takes the next never-used address
    assert lab.discover().yiaddr == address


def test_release_of_an_address_not_held_changes_nothing(lab: LeaseRig) -> None:
    taken = lab.lease(client=2)
    result, event = lab.send(MessageType.RELEASE, ciaddr=taken, flags=0, client=1)
    assert isinstance(result, Silence)
    assert event is None
    assert lab.state_of(taken) == LeaseState.BOUND


def test_decline_quarantines_the_address(lab: LeaseRig) -> None:
    address = lab.lease()
    result, event = lab.send(MessageType.DECLINE, (54, ip(SERVER)), (50, ip(address)))
    assert isinstance(result, Silence)
    assert result.loud
    assert (result.code, event) == (SilenceReason.DECLINED, Event(address))
    assert lab.state_of(address) == LeaseState.DECLINED
    offered = {lab.discover(client=n).yiaddr for n in (1, 2)}
    assert address not in offered
    assert offered == {SECOND, THIRD}


def test_decline_by_a_client_that_does_not_hold_the_address_is_ignored(lab: LeaseRig) -> None:
    taken = lab.lease(client=2)
    result, event = lab.send(MessageType.DECLINE, (50, ip(taken)), client=1)
    assert isinstance(result, Silence)
    assert event is None
    assert lab.state_of(taken) == LeaseState.BOUND


def test_pool_exhaustion_is_loud_silence(lab: LeaseRig) -> None:
    for n in (1, 2, 3):
        lab.discover(client=n)
    result, event = lab.send(MessageType.DISCOVER, client=4)
    assert isinstance(result, Silence)
    assert result.loud
    assert result.code is SilenceReason.POOL_EXHAUSTED
    assert "exhausted" in result.reason
    assert event is None


def test_an_expired_offer_is_given_to_the_next_client(tmp_path: Path) -> None:
    with make_lab(tmp_path, last=FIRST) as lab:
        lab.discover(client=1)
        assert isinstance(lab.send(MessageType.DISCOVER, client=2)[0], Silence)
        lab.clock.now += 31  # the store's offer hold is 30 s
        assert lab.discover(client=2).yiaddr == FIRST


# --- INFORM ----------------------------------------------------------------------------


def test_inform_gets_an_ack_without_lease_time_or_yiaddr(lab: LeaseRig) -> None:
    result, event = lab.send(MessageType.INFORM, ciaddr="192.0.2.50", flags=0)
    ack = reply(result)
    assert ack.message_type == MessageType.ACK
    assert ack.yiaddr == "0.0.0.0"
    assert ack.option(Option.LEASE_TIME) is None
    assert ack.option(Option.SUBNET_MASK) == ip("255.255.255.0")
    assert ack.option(Option.ROUTER) == ip(ROUTER)
    assert ack.all_of(Option.SERVER_IDENTIFIER) == [ip(SERVER)]
    assert isinstance(result, Answer)
    assert result.destination == ("192.0.2.50", 68)
    assert event is None
    assert lab.store.leases() == []


def test_inform_from_a_pxe_client_carries_its_boot_file(lab: LeaseRig) -> None:
    result, _ = lab.send(MessageType.INFORM, *PXE_BIOS, ciaddr="192.0.2.50", flags=0)
    ack = reply(result)
    assert (ack.siaddr, ack.file) == (SERVER, b"undionly.kpxe")
    assert ack.all_of(Option.SERVER_IDENTIFIER) == [ip(SERVER)]


def test_inform_without_ciaddr_is_silence(lab: LeaseRig) -> None:
    result, _ = lab.send(MessageType.INFORM)
    assert isinstance(result, Silence)


# --- boot fields in full mode -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "file", "vendor_class", "option43", "option175"),
    [
        pytest.param(PXE_BIOS, b"undionly.kpxe", b"PXEClient", BOOT_NOW, None, id="row-2-bios"),
        pytest.param(PXE_X64, b"ipxe.efi", b"PXEClient", BOOT_NOW, None, id="row-4-uefi-x64"),
        pytest.param(
            IPXE,
            f"http://{SERVER}:8080/boot.ipxe?mac=52:54:00:00:00:01&arch=7".encode(),
            b"PXEClient",
            None,
            bytes.fromhex("01 01 01 b0 01 01"),
            id="row-6-ipxe",
        ),
        pytest.param(
            HTTP_BOOT,
            f"http://{SERVER}:8080/boot/ipxe.efi".encode(),
            b"HTTPClient",
            None,
            None,
            id="row-10-http-boot",
        ),
    ],
)
@pytest.mark.parametrize("message", ["offer", "ack"])
def test_boot_client_offer_and_ack_carry_lease_and_boot_fields(
    lab: LeaseRig,
    options: tuple[tuple[int, bytes], ...],
    file: bytes,
    vendor_class: bytes,
    option43: bytes | None,
    option175: bytes | None,
    message: str,
) -> None:
    packet = lab.discover(*options)
    if message == "ack":
        packet = lab.select(packet.yiaddr, *options)
    assert packet.yiaddr == FIRST
    assert packet.option(Option.LEASE_TIME) == (3600).to_bytes(4, "big")
    assert packet.siaddr == SERVER
    assert packet.file == file
    assert packet.option(Option.BOOTFILE_NAME) == file
    assert packet.option(Option.VENDOR_CLASS) == vendor_class
    assert packet.option(Option.VENDOR_SPECIFIC) == option43
    assert packet.option(175) == option175
    assert packet.all_of(Option.SERVER_IDENTIFIER) == [ip(SERVER)]


def test_boot_client_without_usable_architecture_is_leased_without_boot_fields(
    lab: LeaseRig,
) -> None:
    offer = lab.discover((60, b"PXEClient"), (93, b"\x00"))
    assert offer.yiaddr == FIRST
    assert (offer.siaddr, offer.file, offer.option(60), offer.option(43)) == (
        "0.0.0.0",
        b"",
        None,
        None,
    )


# --- malformed and relayed -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "options"),
    [
        pytest.param(MessageType.DISCOVER, ((50, b"\xc0\x00\x02"),), id="discover-50"),
        pytest.param(
            MessageType.REQUEST, ((54, ip(SERVER)), (50, b"\xc0\x00\x02")), id="request-50"
        ),
        pytest.param(MessageType.REQUEST, ((54, b"\xc0\x00"),), id="request-54"),
        pytest.param(MessageType.DECLINE, ((50, b"\xc0\x00\x02\x64\x00"),), id="decline-50"),
    ],
)
def test_malformed_address_option_raises_malformed_packet(
    lab: LeaseRig, message: MessageType, options: tuple[tuple[int, bytes], ...]
) -> None:
    with pytest.raises(MalformedPacket, match="not an IPv4 address"):
        lab.send(message, *options)


def test_relayed_discover_from_a_foreign_subnet_is_silence(lab: LeaseRig) -> None:
    result, event = lab.send(MessageType.DISCOVER, giaddr=FOREIGN_RELAY)
    assert isinstance(result, Silence)
    assert event is None
    assert lab.store.leases() == []


def test_relayed_discover_from_the_pool_subnet_is_offered_via_the_relay(lab: LeaseRig) -> None:
    result, event = lab.send(MessageType.DISCOVER, giaddr=POOL_RELAY)
    offer = reply(result)
    assert (offer.yiaddr, offer.giaddr) == (FIRST, POOL_RELAY)
    assert isinstance(result, Answer)
    assert result.destination == (POOL_RELAY, 67)
    assert isinstance(result, Answer)
    assert (result.kind, event) == (OutcomeKind.OFFER, Event(FIRST))


def test_server_on_another_subnet_than_the_pool_offers_nothing_directly(lab: LeaseRig) -> None:
    result, _ = lab.send(MessageType.DISCOVER, server="198.51.100.10")
    assert isinstance(result, Silence)


@pytest.mark.parametrize("message", [MessageType.OFFER, MessageType.ACK, MessageType.NAK, 99])
def test_server_messages_are_not_answered(lab: LeaseRig, message: int) -> None:
    result, event = lab.send(message)
    assert isinstance(result, Silence)
    assert event is None


# --- several daemons on one store, and the store's outages (issue #21) --------------------


@contextmanager
def two_daemons(path: Path) -> Iterator[tuple[LeaseRig, LeaseRig]]:
    """Daemons "a" (SERVER) and "b" (OTHER_SERVER) on one lease file, each aware of both."""
    clock = FakeClock()
    pool = AddressPool(IPv4Address(FIRST), IPv4Address(THIRD))
    with (
        LeaseStore(path / "leases.sqlite", pool, clock, server_id="a") as store_a,
        LeaseStore(path / "leases.sqlite", pool, clock, server_id="b") as store_b,
    ):
        rigs = []
        for store in (store_a, store_b):
            server = LeaseServer(store, NETWORK, clock)
            server.peers = PeerView(store.server_id, ("a", "b"))
            rigs.append(LeaseRig(server, store, clock))
        yield rigs[0], rigs[1]


def owned_by(name: str) -> int:
    """A client number whose MAC falls to daemon `name` of ("a", "b")."""
    view = PeerView(name, ("a", "b"))
    return next(n for n in range(1, 100) if view.owner(mac_from_bytes(mac(n))) == name)


def test_each_new_client_is_answered_by_exactly_one_daemon(tmp_path: Path) -> None:
    with two_daemons(tmp_path) as (a, b):
        for client in range(1, 4):  # the pool's three addresses
            results = [rig.send(MessageType.DISCOVER, client=client)[0] for rig in (a, b)]
            answered = [r for r in results if isinstance(r, Answer)]
            silent = [r for r in results if isinstance(r, Silence)]
            assert len(answered) == 1, client
            assert silent[0].code is SilenceReason.PEER_SHARE


def test_a_waiting_client_is_answered_by_any_daemon(tmp_path: Path) -> None:
    client = owned_by("b")
    with two_daemons(tmp_path) as (a, _):
        packet = DhcpPacket(
            op=BOOTREQUEST,
            xid=7,
            secs=NETWORK.takeover_after,
            chaddr=mac(client) + bytes(10),
            flags=0x8000,
            options=((Option.MESSAGE_TYPE, bytes((MessageType.DISCOVER,))),),
        )
        request = parse_packet(build_packet(packet))
        result, _ = a.server.answer(request, classify(request), SERVER)
        assert reply(result).message_type == MessageType.OFFER


def test_a_request_naming_a_peer_leaves_the_peers_offer_alone(tmp_path: Path) -> None:
    client = owned_by("b")
    with two_daemons(tmp_path) as (a, b):
        offered = reply(b.send(MessageType.DISCOVER, client=client, server=OTHER_SERVER)[0])
        chose_b = ((54, ip(OTHER_SERVER)), (50, ip(offered.yiaddr)))
        result, _ = a.send(MessageType.REQUEST, *chose_b, client=client)
        assert isinstance(result, Silence) and result.code is SilenceReason.OTHER_SERVER
        assert a.state_of(offered.yiaddr) == LeaseState.OFFERED
        ack = reply(b.send(MessageType.REQUEST, *chose_b, client=client, server=OTHER_SERVER)[0])
        assert ack.message_type == MessageType.ACK
        lease = b.store.lease_at(IPv4Address(offered.yiaddr))
        assert lease is not None and lease.server_id == "b"


def test_a_rebinding_client_goes_to_its_share_or_to_the_daemon_that_leased_it(
    tmp_path: Path,
) -> None:
    client = owned_by("b")
    with two_daemons(tmp_path) as (a, b):
        address = reply(b.send(MessageType.DISCOVER, client=client, server=OTHER_SERVER)[0]).yiaddr
        chose_b = ((54, ip(OTHER_SERVER)), (50, ip(address)))
        reply(b.send(MessageType.REQUEST, *chose_b, client=client, server=OTHER_SERVER)[0])
        rebind = {"client": client, "ciaddr": address, "flags": 0}
        result, _ = a.send(MessageType.REQUEST, **rebind)  # type: ignore[arg-type]
        assert isinstance(result, Silence) and result.code is SilenceReason.PEER_SHARE
        a.server.peers = PeerView("a", ("a",))  # b has died: a takes its clients over
        ack = reply(a.send(MessageType.REQUEST, **rebind)[0])  # type: ignore[arg-type]
        assert (ack.message_type, ack.yiaddr) == (MessageType.ACK, address)
        a.server.peers = PeerView("a", ("a", "b"))  # b is back; a wrote the lease now
        again = reply(a.send(MessageType.REQUEST, **rebind)[0])  # type: ignore[arg-type]
        assert again.message_type == MessageType.ACK


class FailingStore(LeaseStore):
    """A real store that can be made to fail as an unreachable database does."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise LeaseStoreUnavailable("lease database down: test")

    @property
    def up(self) -> bool:
        return not self.down

    def offer(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return super().offer(*args, **kwargs)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return super().bind(*args, **kwargs)

    def lease_for(self, client_id: bytes) -> Any:
        self._check()
        return super().lease_for(client_id)

    def holder(self, address: IPv4Address) -> Any:
        self._check()
        return super().holder(address)


def test_with_the_store_down_a_lease_granted_here_renews_for_what_it_has_left(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    pool = AddressPool(IPv4Address(FIRST), IPv4Address(THIRD))
    with FailingStore(tmp_path / "leases.sqlite", pool, clock, server_id="a") as store:
        rig = LeaseRig(LeaseServer(store, NETWORK, clock), store, clock)
        address = rig.lease(client=1)
        clock.now += 1000
        store.down = True
        renewed = reply(rig.send(MessageType.REQUEST, client=1, ciaddr=address, flags=0)[0])
        assert (renewed.message_type, renewed.yiaddr) == (MessageType.ACK, address)
        left = LEASE_TIME - 1000
        assert renewed.option(Option.LEASE_TIME) == left.to_bytes(4, "big")
        assert renewed.option(Option.RENEWAL_TIME) == (left // 2).to_bytes(4, "big")
        for silent in (
            rig.send(MessageType.DISCOVER, client=2)[0],
            rig.send(MessageType.REQUEST, client=2, ciaddr=SECOND, flags=0)[0],
            rig.send(MessageType.REQUEST, (54, ip(SERVER)), (50, ip(address)), client=1)[0],
        ):
            assert isinstance(silent, Silence) and silent.code is SilenceReason.STORE_DOWN
        clock.now += LEASE_TIME
        expired = rig.send(MessageType.REQUEST, client=1, ciaddr=address, flags=0)[0]
        assert isinstance(expired, Silence), "never past what the database holds"
        store.down = False
        assert reply(rig.send(MessageType.DISCOVER, client=2)[0]).message_type == MessageType.OFFER
