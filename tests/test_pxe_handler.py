"""The PXE handler on the port-67 pipeline (netboot_services.pxe.PxeHandler), without sockets.

Datagrams go into a `DhcpDispatcher` with an `Arrival` saying where they came in
(port 67, the boot-server port 4011, or overheard on 68); what would be sent
comes back as `Outgoing` datagrams, parsed again here. A recording handler after
the PXE handler shows what it passes on (BSDP, plain DHCP in proxy mode). Full
mode runs over a real lease store in `tmp_path` on a Twisted `Clock`. Rival
warnings are read from the global log publisher.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from netboot.admin.machines import MachineRegistry
from netboot.dhcp.boot import BootSettings
from netboot.dhcp.leases import AddressPool, LeaseStore
from netboot.dhcp.proxy import SilenceReason
from netboot.dhcp.server import LeaseServer, NetworkSettings
from netboot.dhcpwire.options import BOOTREPLY, BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.port67.outcome import NO_LOCAL_ADDRESS
from netboot.port67.pxe import pxe_outcome, rival_server
from netboot_services.dhcp import Arrival, DhcpDispatcher, HandlerResult, Outgoing
from netboot_services.pxe import RIVAL_WARNING_INTERVAL, SERVERS_REMEMBERED, PxeHandler

SERVER = "192.0.2.10"
CLIENT_IP = "192.0.2.77"
RIVAL = "192.0.2.1"
FIRST = "192.0.2.100"
START = 1_700_000_000.0
MAC = bytes.fromhex("525400123456")
BOOT = BootSettings(boot_files={"bios": "undionly.kpxe", "efi-x64": "ipxe.efi"}, http_port=8080)
NETWORK = NetworkSettings(subnet=IPv4Network("192.0.2.0/24"), boot=BOOT)

ON_67 = Arrival(("0.0.0.0", 68), SERVER, 2)
ON_4011 = Arrival((CLIENT_IP, 68), SERVER, 2, boot_server=True)
NO_PKTINFO = Arrival(("0.0.0.0", 68), "0.0.0.0", 0)

BIOS = ((60, b"PXEClient:Arch:00000:UNDI:002001"), (93, b"\x00\x00"))
UEFI_X64 = ((60, b"PXEClient:Arch:00007:UNDI:003000"), (93, b"\x00\x07"))
IPXE = ((60, b"PXEClient:Arch:00007:UNDI:003010"), (77, b"iPXE"), (93, b"\x00\x07"))
HTTP_BOOT = ((60, b"HTTPClient:Arch:00016:UNDI:003000"), (93, b"\x00\x10"))
BSDP = ((60, b"AAPLBSDPC/i386/MacBookPro11,1"),)
PLAIN = ((60, b"MSFT 5.0"),)
BOOT_ITEM_43 = bytes.fromhex("47 04 80 00 00 00 ff")


def datagram(
    message: int,
    *options: tuple[int, bytes],
    op: int = BOOTREQUEST,
    ciaddr: str = "0.0.0.0",
    yiaddr: str = "0.0.0.0",
    giaddr: str = "0.0.0.0",
    mac: bytes = MAC,
) -> bytes:
    packet = DhcpPacket(
        op=op,
        xid=0x1A2B3C4D,
        chaddr=mac + bytes(10),
        flags=0x8000 if ciaddr == "0.0.0.0" else 0,
        ciaddr=ciaddr,
        yiaddr=yiaddr,
        giaddr=giaddr,
        options=((Option.MESSAGE_TYPE, bytes((message,))), *options),
    )
    return build_packet(packet)


def offer_from(server_id: str, yiaddr: str, message: int = MessageType.OFFER) -> bytes:
    """Another server's reply as overheard on port 68."""
    return datagram(
        message, (54, IPv4Address(server_id).packed), op=BOOTREPLY, yiaddr=yiaddr, mac=MAC
    )


@dataclass
class Recorder:
    """A handler after the PXE handler: claims whatever reaches it."""

    name: str = "bsdp"
    seen: list[DhcpPacket] = field(default_factory=list)

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None:
        self.seen.append(packet)
        return HandlerResult()


class Pipeline:
    def __init__(self, store: LeaseStore | None = None, own: set[str] | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        lease_server = LeaseServer(store, NETWORK) if store is not None else None
        self.handler = PxeHandler(
            BOOT, self.clock.seconds, lease_server, lambda: own if own is not None else {SERVER}
        )
        self.after = Recorder()
        self.dispatcher = DhcpDispatcher([self.handler, self.after], self.clock.seconds)

    def receive(self, data: bytes, arrival: Arrival = ON_67) -> list[Outgoing]:
        return self.dispatcher.receive(data, arrival)

    def one_reply(self, data: bytes, arrival: Arrival = ON_67) -> tuple[DhcpPacket, Outgoing]:
        (out,) = self.receive(data, arrival)
        return parse_packet(out.datagram), out

    def stages(self) -> dict[str, list[str]]:
        return {c["address"]: list(c["stages"]) for c in self.handler.clients.recent()}


@pytest.fixture
def proxy() -> Pipeline:
    return Pipeline()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LeaseStore]:
    clock = Clock()
    clock.advance(START)
    pool = AddressPool(IPv4Address(FIRST), IPv4Address("192.0.2.101"))
    with LeaseStore(tmp_path / "leases.sqlite", pool, clock.seconds) as leases:
        yield leases


@pytest.fixture
def full(store: LeaseStore) -> Pipeline:
    return Pipeline(store)


def critical(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("log_level") == LogLevel.critical]


# --- proxy mode ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [PLAIN, (), ((93, b"\x00\x07"),)])
@pytest.mark.parametrize("message", [MessageType.DISCOVER, MessageType.REQUEST])
def test_proxy_mode_leaves_plain_dhcp_unclaimed(
    proxy: Pipeline, options: tuple[tuple[int, bytes], ...], message: int
) -> None:
    assert proxy.receive(datagram(message, *options)) == []
    assert len(proxy.after.seen) == 1
    assert proxy.handler.counters.requests == 0


def test_proxy_mode_leaves_plain_dhcp_unclaimed_by_the_dispatcher() -> None:
    pipeline = Pipeline()
    pipeline.dispatcher.handlers = [pipeline.handler]
    assert pipeline.receive(datagram(MessageType.DISCOVER, *PLAIN)) == []
    assert pipeline.dispatcher.counters.unclaimed == 1


@pytest.mark.parametrize(
    ("options", "file"),
    [
        pytest.param(BIOS, b"undionly.kpxe", id="bios"),
        pytest.param(UEFI_X64, b"ipxe.efi", id="uefi-x64"),
        pytest.param(
            IPXE, b"http://192.0.2.10:8080/boot.ipxe?mac=52:54:00:12:34:56&arch=7", id="ipxe"
        ),
        pytest.param(HTTP_BOOT, b"http://192.0.2.10:8080/boot/ipxe.efi", id="http-boot"),
    ],
)
def test_proxy_mode_answers_pxe_discover_with_a_proxy_offer(
    proxy: Pipeline, options: tuple[tuple[int, bytes], ...], file: bytes
) -> None:
    reply, out = proxy.one_reply(datagram(MessageType.DISCOVER, *options))
    assert out.destination == ("255.255.255.255", 68)
    assert (reply.message_type, reply.yiaddr, reply.file) == (MessageType.OFFER, "0.0.0.0", file)
    assert proxy.handler.counters.proxy_offers == 1
    assert proxy.handler.counters.requests == 1
    assert proxy.after.seen == []
    assert proxy.stages() == {"52:54:00:12:34:56": ["proxy offer"]}


def test_proxy_mode_pxe_request_on_67_is_claimed_but_not_answered(proxy: Pipeline) -> None:
    assert proxy.receive(datagram(MessageType.REQUEST, *BIOS)) == []
    assert proxy.after.seen == []
    assert proxy.handler.counters.ignored == 1


@pytest.mark.parametrize(
    ("sent43", "echoed43"),
    [pytest.param(None, None, id="no-item"), pytest.param(BOOT_ITEM_43, BOOT_ITEM_43, id="item")],
)
def test_port_4011_request_is_acked_to_its_source(
    proxy: Pipeline, sent43: bytes | None, echoed43: bytes | None
) -> None:
    extra = [(43, sent43)] if sent43 is not None else []
    request = datagram(MessageType.REQUEST, *UEFI_X64, *extra, ciaddr=CLIENT_IP)
    reply, out = proxy.one_reply(request, ON_4011)
    assert out.destination == (CLIENT_IP, 68)
    assert reply.message_type == MessageType.ACK
    assert (reply.file, reply.sname) == (b"ipxe.efi", SERVER.encode())
    assert reply.option(Option.VENDOR_SPECIFIC) == echoed43
    assert proxy.handler.counters.boot_server_acks == 1
    assert proxy.stages() == {CLIENT_IP: ["4011 ack"]}


@pytest.mark.parametrize(
    ("options", "firmware", "architecture"),
    [
        pytest.param(BIOS, "bios", "bios", id="bios"),
        pytest.param(UEFI_X64, "efi-x64", "efi-x64", id="uefi"),
        pytest.param(IPXE, "ipxe", "efi-x64", id="ipxe"),
    ],
)
def test_the_machines_registry_learns_the_pcs_firmware(
    proxy: Pipeline, options: tuple[tuple[int, bytes], ...], firmware: str, architecture: str
) -> None:
    registry = MachineRegistry()
    proxy.handler.clients.registry = registry
    proxy.receive(datagram(MessageType.DISCOVER, *options))
    (machine,) = registry.machines()
    assert (machine["mac"], machine["kind"], machine["model"]) == ("52:54:00:12:34:56", "pc", None)
    assert (machine["firmware"], machine["architecture"]) == (firmware, architecture)
    assert machine["address"] is None  # filed by its MAC: it has no address yet
    assert [step["stage"] for step in machine["journeys"][0]["steps"]] == ["proxy offer"]


def test_a_mac_leased_in_full_mode_is_a_mac_and_a_plain_client_no_pc(full: Pipeline) -> None:
    registry = MachineRegistry()
    full.handler.clients.registry = registry
    full.receive(datagram(MessageType.DISCOVER, *BSDP))
    full.receive(datagram(MessageType.DISCOVER, *PLAIN, mac=bytes.fromhex("525400000002")))
    kinds = {machine["mac"]: machine["kind"] for machine in registry.machines()}
    assert kinds == {"52:54:00:12:34:56": "mac", "52:54:00:00:00:02": None}


def test_port_4011_discover_is_not_answered(proxy: Pipeline) -> None:
    assert proxy.receive(datagram(MessageType.DISCOVER, *UEFI_X64), ON_4011) == []


def test_uefi_proxy_offer_then_4011_ack_is_the_whole_variant_b_exchange(proxy: Pipeline) -> None:
    offer, _ = proxy.one_reply(datagram(MessageType.DISCOVER, *UEFI_X64))
    assert offer.option(Option.VENDOR_SPECIFIC) is None  # ask 4011
    ack, _ = proxy.one_reply(datagram(MessageType.REQUEST, *UEFI_X64, ciaddr=CLIENT_IP), ON_4011)
    assert ack.file == offer.file == b"ipxe.efi"
    counters = proxy.handler.counters
    assert (counters.proxy_offers, counters.boot_server_acks) == (1, 1)


# --- full mode ----------------------------------------------------------------------------


def test_full_mode_leases_a_plain_client(full: Pipeline) -> None:
    offer, out = full.one_reply(datagram(MessageType.DISCOVER, *PLAIN))
    assert (offer.message_type, offer.yiaddr) == (MessageType.OFFER, FIRST)
    assert out.destination == ("255.255.255.255", 68)
    ack, _ = full.one_reply(
        datagram(
            MessageType.REQUEST,
            (54, IPv4Address(SERVER).packed),
            (50, IPv4Address(FIRST).packed),
            *PLAIN,
        )
    )
    assert (ack.message_type, ack.yiaddr) == (MessageType.ACK, FIRST)
    counters = full.handler.counters
    assert (counters.offers, counters.acks, counters.proxy_offers) == (1, 1, 0)
    assert full.stages() == {FIRST: ["dhcp offer", "dhcp ack"]}
    assert full.after.seen == []


def test_full_mode_pxe_client_gets_lease_and_boot_file_in_one_offer(full: Pipeline) -> None:
    offer, _ = full.one_reply(datagram(MessageType.DISCOVER, *BIOS))
    assert (offer.yiaddr, offer.siaddr, offer.file) == (FIRST, SERVER, b"undionly.kpxe")
    assert full.handler.counters.offers == 1


def test_full_mode_nak_is_counted(full: Pipeline) -> None:
    full.receive(datagram(MessageType.DISCOVER, *PLAIN))
    nak, _ = full.one_reply(
        datagram(MessageType.REQUEST, (50, IPv4Address("10.9.9.9").packed), *PLAIN)
    )
    assert nak.message_type == MessageType.NAK
    assert full.handler.counters.naks == 1


def test_full_mode_exhaustion_is_counted_and_warned(
    full: Pipeline, events: list[dict[str, Any]]
) -> None:
    for n in (1, 2):
        assert full.receive(datagram(MessageType.DISCOVER, mac=MAC[:5] + bytes((n,)))) != []
    assert full.receive(datagram(MessageType.DISCOVER, mac=MAC[:5] + b"\x03")) == []
    assert full.handler.counters.exhausted == 1
    warnings = [e for e in events if e.get("log_level") == LogLevel.warn]
    assert len(warnings) == 1
    assert "exhausted" in warnings[0]["reason"]


def test_full_mode_inform_is_counted_as_inform(full: Pipeline) -> None:
    ack, out = full.one_reply(datagram(MessageType.INFORM, *PLAIN, ciaddr=CLIENT_IP))
    assert ack.message_type == MessageType.ACK
    assert out.destination == (CLIENT_IP, 68)
    counters = full.handler.counters
    assert (counters.informs, counters.acks) == (1, 0)


def test_full_mode_release_and_decline_are_counted(full: Pipeline) -> None:
    full.receive(datagram(MessageType.DISCOVER, *PLAIN))
    full.receive(
        datagram(
            MessageType.REQUEST,
            (54, IPv4Address(SERVER).packed),
            (50, IPv4Address(FIRST).packed),
        )
    )
    assert full.receive(datagram(MessageType.DECLINE, (50, IPv4Address(FIRST).packed))) == []
    assert full.handler.counters.declines == 1
    address = full.one_reply(datagram(MessageType.DISCOVER))[0].yiaddr
    full.receive(
        datagram(
            MessageType.REQUEST,
            (54, IPv4Address(SERVER).packed),
            (50, IPv4Address(address).packed),
        )
    )
    assert full.receive(datagram(MessageType.RELEASE, ciaddr=address)) == []
    assert full.handler.counters.releases == 1


def test_full_mode_boot_server_arrival_takes_the_4011_path(full: Pipeline) -> None:
    request = datagram(MessageType.REQUEST, *UEFI_X64, ciaddr=CLIENT_IP)
    reply, out = full.one_reply(request, ON_4011)
    assert out.destination == (CLIENT_IP, 68)
    assert (reply.message_type, reply.yiaddr, reply.sname) == (
        MessageType.ACK,
        "0.0.0.0",
        SERVER.encode(),
    )
    counters = full.handler.counters
    assert (counters.boot_server_acks, counters.acks) == (1, 0)
    assert full.handler.lease_server is not None
    assert full.handler.lease_server.store.leases() == []


def test_full_mode_plain_client_from_a_foreign_relay_is_passed_on(full: Pipeline) -> None:
    relayed = datagram(MessageType.DISCOVER, *PLAIN, giaddr="198.51.100.1")
    assert full.receive(relayed, Arrival(("198.51.100.1", 67), SERVER, 2)) == []
    assert len(full.after.seen) == 1


def test_full_mode_pxe_client_from_a_foreign_relay_gets_a_proxy_offer(full: Pipeline) -> None:
    relayed = datagram(MessageType.DISCOVER, *BIOS, giaddr="198.51.100.1")
    reply, out = full.one_reply(relayed, Arrival(("198.51.100.1", 67), SERVER, 2))
    assert out.destination == ("198.51.100.1", 67)
    assert (reply.yiaddr, reply.file) == ("0.0.0.0", b"undionly.kpxe")
    assert full.handler.counters.proxy_offers == 1


def test_full_mode_malformed_option_50_is_counted_as_malformed(full: Pipeline) -> None:
    assert full.receive(datagram(MessageType.DISCOVER, (50, b"\xc0\x00\x02"))) == []
    assert full.dispatcher.counters.malformed == 1
    assert full.after.seen == []


# --- both modes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("proxy", MessageType.INFORM),
        ("proxy", MessageType.DISCOVER),
        ("full", MessageType.INFORM),
    ],
)
def test_bsdp_packets_are_passed_to_the_bsdp_handler(
    mode: str, message: int, request: pytest.FixtureRequest
) -> None:
    pipeline: Pipeline = request.getfixturevalue(mode)
    data = datagram(message, *BSDP, ciaddr=CLIENT_IP)
    assert pipeline.handler.handle(parse_packet(data), ON_67) is None
    assert pipeline.receive(data) == []
    assert [p.option(60) for p in pipeline.after.seen] == [BSDP[0][1]]
    assert pipeline.handler.counters.requests == 0


@pytest.mark.parametrize("mode", ["proxy", "full"])
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(datagram(MessageType.DISCOVER, *BIOS), id="pxe-discover"),
        pytest.param(datagram(MessageType.DISCOVER, *PLAIN), id="plain-discover"),
        pytest.param(offer_from(RIVAL, "192.0.2.200"), id="rival-offer"),
    ],
)
def test_watch_only_arrivals_never_produce_replies(
    mode: str, data: bytes, request: pytest.FixtureRequest
) -> None:
    pipeline: Pipeline = request.getfixturevalue(mode)
    watch = Arrival((RIVAL, 67), SERVER, 2, watch_only=True)
    assert pipeline.receive(data, watch) == []
    assert pipeline.after.seen == []
    counters = pipeline.handler.counters
    assert (counters.offers, counters.proxy_offers, counters.requests) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["proxy", "full"])
def test_pxe_request_without_pktinfo_is_malformed(
    mode: str, request: pytest.FixtureRequest
) -> None:
    pipeline: Pipeline = request.getfixturevalue(mode)
    assert pipeline.receive(datagram(MessageType.DISCOVER, *BIOS), NO_PKTINFO) == []
    assert pipeline.dispatcher.counters.malformed == 1


# --- rival servers -------------------------------------------------------------------------

WATCH_RIVAL = Arrival((RIVAL, 67), SERVER, 2, watch_only=True)


def test_rival_offer_is_counted_recorded_and_logged_critical_once_per_interval(
    full: Pipeline, events: list[dict[str, Any]]
) -> None:
    full.receive(offer_from(RIVAL, "192.0.2.200"), WATCH_RIVAL)
    assert full.handler.counters.rival_offers == 1
    assert full.handler.rivals == {RIVAL: START}
    (line,) = critical(events)
    assert (line["rival"], line["address"], line["mac"]) == (
        RIVAL,
        "192.0.2.200",
        "52:54:00:12:34:56",
    )
    full.clock.advance(RIVAL_WARNING_INTERVAL - 1)
    full.receive(offer_from(RIVAL, "192.0.2.201", MessageType.ACK), WATCH_RIVAL)
    assert full.handler.counters.rival_offers == 2
    assert full.handler.rivals == {RIVAL: START + RIVAL_WARNING_INTERVAL - 1}
    assert len(critical(events)) == 1
    full.clock.advance(1)
    full.receive(offer_from(RIVAL, "192.0.2.202"), WATCH_RIVAL)
    assert len(critical(events)) == 2


def test_two_rivals_are_each_logged(full: Pipeline, events: list[dict[str, Any]]) -> None:
    full.receive(offer_from(RIVAL, "192.0.2.200"), WATCH_RIVAL)
    full.receive(offer_from("192.0.2.2", "192.0.2.201"), Arrival(("192.0.2.2", 67), SERVER, 2))
    assert set(full.handler.rivals) == {RIVAL, "192.0.2.2"}
    assert len(critical(events)) == 2


def test_forged_server_identifiers_never_grow_the_tables_past_their_bound(
    full: Pipeline,
) -> None:
    """Option 54 is whatever a sender writes: the least recently heard are forgotten, and
    a server heard again keeps its place (the real rival survives the flood)."""
    full.receive(offer_from(RIVAL, "192.0.2.200"), WATCH_RIVAL)
    for n in range(SERVERS_REMEMBERED * 3):
        forged = f"198.51.{n // 256}.{n % 256}"
        full.clock.advance(1)
        full.receive(offer_from(forged, "192.0.2.201"), WATCH_RIVAL)
        if n % 16 == 0:
            full.receive(offer_from(RIVAL, "192.0.2.200"), WATCH_RIVAL)
    for table in (full.handler.rivals, full.handler.replies_heard):
        assert len(table) == SERVERS_REMEMBERED
        assert RIVAL in table
        last = SERVERS_REMEMBERED * 3 - 1
        assert f"198.51.{last // 256}.{last % 256}" in table


def test_rival_without_option_54_is_named_by_its_source(full: Pipeline) -> None:
    data = datagram(MessageType.OFFER, op=BOOTREPLY, yiaddr="192.0.2.200")
    full.receive(data, WATCH_RIVAL)
    assert set(full.handler.rivals) == {RIVAL}


@pytest.mark.parametrize(
    ("data", "arrival"),
    [
        pytest.param(offer_from(SERVER, FIRST), WATCH_RIVAL, id="our-server-id"),
        pytest.param(
            offer_from("192.0.2.3", FIRST),
            Arrival((SERVER, 67), SERVER, 2, watch_only=True),
            id="from-our-address",
        ),
        pytest.param(offer_from(RIVAL, "0.0.0.0"), WATCH_RIVAL, id="proxy-offer-yiaddr-0"),
        pytest.param(offer_from(RIVAL, "192.0.2.200", MessageType.NAK), WATCH_RIVAL, id="nak"),
    ],
)
def test_not_a_rival(
    full: Pipeline, events: list[dict[str, Any]], data: bytes, arrival: Arrival
) -> None:
    assert full.receive(data, arrival) == []
    assert full.handler.counters.rival_offers == 0
    assert full.handler.rivals == {}
    assert critical(events) == []


def test_proxy_mode_does_not_look_for_rivals(proxy: Pipeline, events: list[dict[str, Any]]) -> None:
    assert proxy.receive(offer_from(RIVAL, "192.0.2.200"), WATCH_RIVAL) == []
    assert proxy.handler.counters.rival_offers == 0
    assert proxy.handler.rivals == {}
    assert critical(events) == []


PEER = "192.0.2.9"


def test_a_peers_offer_is_heard_on_the_link_and_is_no_rival(
    full: Pipeline, events: list[dict[str, Any]]
) -> None:
    full.handler.peer_addresses = lambda: {PEER}
    full.receive(offer_from(PEER, "192.0.2.150"), Arrival((PEER, 67), SERVER, 2, watch_only=True))
    assert full.handler.rivals == {}
    assert critical(events) == []
    assert full.handler.replies_heard == {PEER: START}


def test_every_other_servers_reply_is_heard_and_ours_are_not(full: Pipeline) -> None:
    full.receive(offer_from(RIVAL, "192.0.2.200"), WATCH_RIVAL)
    full.clock.advance(2)
    full.receive(offer_from(RIVAL, "0.0.0.0"), WATCH_RIVAL)  # a proxy's offer: heard, no rival
    full.receive(offer_from(SERVER, FIRST), WATCH_RIVAL)  # ours, by identifier
    full.receive(offer_from("192.0.2.3", FIRST), Arrival((SERVER, 67), SERVER, 2, watch_only=True))
    assert full.handler.replies_heard == {RIVAL: START + 2}
    full.receive(datagram(MessageType.DISCOVER, *BIOS))  # a request is nobody's reply
    assert full.handler.replies_heard == {RIVAL: START + 2}


def test_full_mode_leases_an_address_to_a_mac_that_asks_for_one(full: Pipeline) -> None:
    """A Mac DISCOVERs with its BSDP class; in full mode it gets an address (no boot file)."""
    (out,) = full.receive(datagram(MessageType.DISCOVER, *BSDP))
    offer = parse_packet(out.datagram)
    assert offer.message_type == MessageType.OFFER
    assert offer.yiaddr != "0.0.0.0"
    assert offer.file == b""


# --- the decision without the adapter ---------------------------------------------------


def decide(
    data: bytes, arrival: Arrival = ON_67, lease_server: LeaseServer | None = None
) -> OutcomeKind | None:
    outcome = pxe_outcome(parse_packet(data), arrival, BOOT, lease_server, lambda: {SERVER})
    return None if outcome is None else outcome.kind


@pytest.mark.parametrize(
    ("data", "arrival", "kind"),
    [
        pytest.param(
            datagram(MessageType.DISCOVER, *BIOS), ON_67, OutcomeKind.PROXY_OFFER, id="pxe"
        ),
        pytest.param(
            datagram(MessageType.REQUEST, *UEFI_X64, ciaddr=CLIENT_IP),
            ON_4011,
            OutcomeKind.BOOT_SERVER_ACK,
            id="4011",
        ),
        pytest.param(
            datagram(MessageType.REQUEST, *BIOS), ON_67, OutcomeKind.IGNORED, id="request"
        ),
        pytest.param(datagram(MessageType.DISCOVER, *PLAIN), ON_67, None, id="plain"),
        pytest.param(datagram(MessageType.INFORM, *BSDP), ON_67, None, id="bsdp"),
        pytest.param(
            datagram(MessageType.DISCOVER, *BIOS),
            NO_PKTINFO,
            OutcomeKind.MALFORMED,
            id="no-pktinfo",
        ),
        pytest.param(
            datagram(MessageType.DISCOVER, *BIOS),
            Arrival((RIVAL, 67), SERVER, 2, watch_only=True),
            OutcomeKind.OVERHEARD,
            id="watch-only",
        ),
        pytest.param(offer_from(RIVAL, "192.0.2.200"), ON_67, OutcomeKind.OVERHEARD, id="reply"),
    ],
)
def test_proxy_mode_outcome_kinds(data: bytes, arrival: Arrival, kind: OutcomeKind | None) -> None:
    assert decide(data, arrival) == kind


def test_a_request_without_pktinfo_says_why_it_is_malformed() -> None:
    data = datagram(MessageType.DISCOVER, *BIOS)
    outcome = pxe_outcome(parse_packet(data), NO_PKTINFO, BOOT, None, set)
    assert outcome is not None
    assert (outcome.kind, outcome.summary, outcome.replies) == (
        OutcomeKind.MALFORMED,
        NO_LOCAL_ADDRESS,
        (),
    )


def test_full_mode_outcomes_carry_the_leased_address_and_the_reason(store: LeaseStore) -> None:
    server = LeaseServer(store, NETWORK)
    discover = parse_packet(datagram(MessageType.DISCOVER, *BIOS))
    offer = pxe_outcome(discover, ON_67, BOOT, server, set)
    assert offer is not None
    assert (offer.kind, offer.address, offer.reason) == (OutcomeKind.OFFER, FIRST, None)
    assert offer.client is not None and offer.client.wants_boot
    request = (54, IPv4Address(SERVER).packed), (50, IPv4Address(FIRST).packed)
    ack = pxe_outcome(
        parse_packet(datagram(MessageType.REQUEST, *request)), ON_67, BOOT, server, set
    )
    assert ack is not None
    assert (ack.kind, ack.address, ack.destination) == (
        OutcomeKind.ACK,
        FIRST,
        ("255.255.255.255", 68),
    )
    release = datagram(MessageType.RELEASE, ciaddr=FIRST)
    released = pxe_outcome(parse_packet(release), ON_67, BOOT, server, set)
    assert released is not None
    assert (released.kind, released.reason, released.address, released.replies) == (
        OutcomeKind.RELEASED,
        SilenceReason.RELEASED,
        FIRST,
        (),
    )


def test_the_log_line_of_an_answer_carries_its_kind_and_address(
    full: Pipeline, events: list[dict[str, Any]]
) -> None:
    full.receive(datagram(MessageType.DISCOVER, *PLAIN))
    full.receive(
        datagram(
            MessageType.REQUEST, (54, IPv4Address(SERVER).packed), (50, IPv4Address(FIRST).packed)
        )
    )
    lines = [e for e in events if e.get("log_namespace") == "netboot.pxe"]
    assert [(e["outcome"], e["address"], e["summary"]) for e in lines] == [
        ("offer", FIRST, f"OFFER {FIRST}"),
        ("ack", FIRST, f"ACK {FIRST}"),
    ]


@pytest.mark.parametrize(
    ("data", "source", "rival"),
    [
        pytest.param(offer_from(RIVAL, "192.0.2.200"), RIVAL, RIVAL, id="offer"),
        pytest.param(
            offer_from(RIVAL, "192.0.2.200", MessageType.ACK), "192.0.2.9", RIVAL, id="ack-relayed"
        ),
        pytest.param(
            datagram(MessageType.OFFER, op=BOOTREPLY, yiaddr="192.0.2.200"),
            RIVAL,
            RIVAL,
            id="no-54",
        ),
        pytest.param(offer_from(SERVER, FIRST), RIVAL, None, id="our-id"),
        pytest.param(offer_from("192.0.2.3", FIRST), SERVER, None, id="our-source"),
        pytest.param(offer_from(RIVAL, "0.0.0.0"), RIVAL, None, id="proxy-offer"),
        pytest.param(offer_from(RIVAL, "192.0.2.200", MessageType.NAK), RIVAL, None, id="nak"),
    ],
)
def test_rival_server_is_a_pure_decision(data: bytes, source: str, rival: str | None) -> None:
    arrival = Arrival((source, 67), SERVER, 2, watch_only=True)
    assert rival_server(parse_packet(data), arrival, {SERVER}) == rival
