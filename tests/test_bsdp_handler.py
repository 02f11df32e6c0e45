"""The port-67 pipeline without a socket: raw datagrams in, `Outgoing` datagrams out.

`DhcpDispatcher` dissects each datagram once and offers it to its handlers;
`BsdpHandler` claims Macs' BSDP packets and asks the policy. These tests feed
the bytes a client would send (`build_packet` of `inform_list`/`inform_select`,
or garbage) with an `Arrival`, advance a fake clock, and read back what would be
sent, the counters, and the log events. `DhcpService.datagram`, the boundary
where a bug in a handler must be logged and dropped, is driven with a fake
reader standing in for the socket.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from netboot.admin.machines import MachineRegistry
from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.client import inform_list, inform_select, read_answer
from netboot.bsdp.options import VERSION_1_1, BsdpMessage, MessageType, decode, encode
from netboot.bsdp.policy import BsdpPolicy, BsdpSettings
from netboot.bsdp.vendor_class import client_class_bytes
from netboot.dhcpwire.options import BOOTREPLY, BOOTREQUEST, Option
from netboot.dhcpwire.options import MessageType as DhcpType
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.macaddr import mac_from_bytes
from netboot.nbi.catalog import Catalog, scan_catalog
from netboot_lab.factories import make_set
from netboot_services.bsdp import BsdpHandler
from netboot_services.dhcp import (
    Arrival,
    DhcpDispatcher,
    DhcpService,
    HandlerResult,
    Outgoing,
)
from netboot_services.ratelimit import DEFAULT_INTERVAL as MALFORMED_LOG_INTERVAL

SERVER = "192.0.2.10"
CLIENT_IP = "192.0.2.50"
OTHER_IP = "192.0.2.51"
MAC = bytes.fromhex("0016cb123456")
OTHER_MAC = bytes.fromhex("0016cb000001")
MODEL = "MacBookPro11,1"
ARRIVAL = Arrival((CLIENT_IP, 68), SERVER, 2)
OTHER_ARRIVAL = Arrival((OTHER_IP, 68), SERVER, 2)
XID = 0x12345678


# --- set-up -------------------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    make_set(tmp_path, "Alpha", Index=1)
    make_set(tmp_path, "Beta", Name="Beta Install", Index=4096, IsInstall=True)
    catalog = scan_catalog(tmp_path)
    assert len(catalog.servable) == 2
    return catalog


class Pipeline:
    """A BSDP handler on a dispatcher, both on one fake clock."""

    def __init__(self, catalog: Catalog, **bsdp_settings: Any) -> None:
        self.clock = Clock()
        self.catalog = catalog
        bsdp_settings.setdefault("server_name", "netboot-srv")
        self.bindings = BindingTable()
        policy = BsdpPolicy(BsdpSettings(**bsdp_settings), self.bindings)
        self.handler = BsdpHandler(policy, lambda: self.catalog, self.clock.seconds)
        self.dispatcher = DhcpDispatcher([self.handler], self.clock.seconds)

    def receive(self, datagram: bytes, arrival: Arrival = ARRIVAL) -> list[Outgoing]:
        return self.dispatcher.receive(datagram, arrival)


@pytest.fixture
def pipeline(catalog: Catalog) -> Pipeline:
    return Pipeline(catalog)


def malformed_warnings(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e.get("log_namespace") == "netboot.dhcp"
        and "malformed" in str(e.get("log_format"))
        and e.get("log_level") == LogLevel.warn
    ]


def loud(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical)
    ]


def list_datagram(
    *, mac: bytes = MAC, ciaddr: str = CLIENT_IP, arch: str = "i386", **kwargs: Any
) -> bytes:
    return build_packet(inform_list(XID, mac, ciaddr, arch, MODEL, **kwargs))


def select_datagram(
    chosen: int, *, server: str = SERVER, mac: bytes = MAC, ciaddr: str = CLIENT_IP, **kwargs: Any
) -> bytes:
    packet = inform_select(XID + 1, mac, ciaddr, "i386", MODEL, server, chosen, **kwargs)
    return build_packet(packet)


def bsdp_datagram(body: bytes, *, max_dhcp_size: int | None = None) -> bytes:
    """An INFORM from our Mac whose option 43 is exactly `body`."""
    options: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE, bytes((DhcpType.INFORM,)))]
    if max_dhcp_size is not None:
        options.append((Option.MAX_MESSAGE_SIZE, max_dhcp_size.to_bytes(2, "big")))
    options.append((Option.VENDOR_CLASS, client_class_bytes("i386", MODEL)))
    options.append((Option.VENDOR_SPECIFIC, body))
    packet = DhcpPacket(
        op=BOOTREQUEST, xid=XID, chaddr=MAC, ciaddr=CLIENT_IP, options=tuple(options)
    )
    return build_packet(packet)


def plain_dhcp(message_type: int, vendor_class: bytes | None, op: int = BOOTREQUEST) -> bytes:
    options: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE, bytes((message_type,)))]
    if vendor_class is not None:
        options.append((Option.VENDOR_CLASS, vendor_class))
    return build_packet(DhcpPacket(op=op, xid=XID, chaddr=MAC, options=tuple(options)))


def bsdp_of(datagram: bytes) -> BsdpMessage:
    return decode(b"".join(parse_packet(datagram).all_of(Option.VENDOR_SPECIFIC)))


# --- answers ------------------------------------------------------------------------


def test_a_list_is_answered_at_ciaddr_on_the_reply_port(pipeline: Pipeline) -> None:
    (out,) = pipeline.receive(list_datagram(reply_port=1000))
    assert out.destination == (CLIENT_IP, 1000)
    reply = parse_packet(out.datagram)
    assert (reply.op, reply.xid, reply.ciaddr, reply.siaddr) == (BOOTREPLY, XID, CLIENT_IP, SERVER)
    message = bsdp_of(out.datagram)
    assert message.message_type == MessageType.LIST
    assert [(i.image_id, i.name) for i in message.images or ()] == [
        (0x0100_0001, "Alpha"),
        (0x8100_1000, "Beta Install"),
    ]
    assert pipeline.dispatcher.counters.as_dict() == {
        "datagrams": 1,
        "malformed": 0,
        "unclaimed": 0,
        "replies": 1,
        "send_errors": 0,
        "handler_errors": 0,
        "commit_errors": 0,
        "withheld_replies": 0,
        "shed_late": 0,
        "shed_discovers": 0,
    }
    assert pipeline.handler.counters.as_dict() == {
        "requests": 1,
        "list_replies": 1,
        "select_replies": 0,
        "failed_replies": 0,
        "offer_replies": 0,
        "ignored": 0,
    }


def test_without_a_reply_port_the_answer_goes_to_68(pipeline: Pipeline) -> None:
    (out,) = pipeline.receive(list_datagram())
    assert out.destination == (CLIENT_IP, 68)


def test_a_relayed_request_is_answered_at_ciaddr_not_at_the_relay(pipeline: Pipeline) -> None:
    relayed = replace(inform_list(XID, MAC, CLIENT_IP, "i386", MODEL), giaddr="198.51.100.1")
    (out,) = pipeline.receive(build_packet(relayed), Arrival(("198.51.100.1", 67), SERVER, 2))
    assert out.destination == (CLIENT_IP, 68)
    assert parse_packet(out.datagram).giaddr == "198.51.100.1"


def test_the_answer_speaks_as_the_interface_the_request_arrived_on(pipeline: Pipeline) -> None:
    (out,) = pipeline.receive(list_datagram(), Arrival((CLIENT_IP, 68), "10.9.8.7", 5))
    reply = parse_packet(out.datagram)
    assert reply.option(Option.SERVER_IDENTIFIER) == bytes((10, 9, 8, 7))
    assert reply.siaddr == "10.9.8.7"


def test_list_then_select_then_list_again(pipeline: Pipeline) -> None:
    (listing,) = pipeline.receive(list_datagram(reply_port=1000))
    answer = read_answer(parse_packet(listing.datagram), XID)
    assert answer is not None
    assert answer.server_id == SERVER
    assert answer.message.server_priority == 32768
    chosen = 0x8100_1000

    (ack,) = pipeline.receive(select_datagram(chosen, server=answer.server_id, reply_port=1000))
    assert ack.destination == (CLIENT_IP, 1000)
    selected = read_answer(parse_packet(ack.datagram), XID + 1)
    assert selected is not None
    assert selected.message.message_type == MessageType.SELECT
    assert selected.message.selected_image_id == chosen
    assert selected.message.machine_name == "NetBoot001"
    assert (selected.siaddr, selected.file) == (SERVER, "Beta.nbi/i386/booter")
    assert selected.root_path == "http://192.0.2.10/Beta.nbi/NetBoot.dmg"

    pipeline.clock.advance(5)
    (again,) = pipeline.receive(list_datagram())
    message = bsdp_of(again.datagram)
    assert (message.selected_image_id, message.server_priority) == (chosen, 32767)
    assert pipeline.handler.counters.list_replies == 2
    assert pipeline.handler.counters.select_replies == 1
    assert pipeline.dispatcher.counters.replies == 3


def test_each_answer_is_logged_with_its_outcome_kind_and_the_summary_text(
    pipeline: Pipeline, events: list[dict[str, Any]]
) -> None:
    pipeline.receive(list_datagram())
    pipeline.receive(select_datagram(0x0100_0001))
    pipeline.receive(select_datagram(0x0100_0063))
    lines = [e for e in events if e.get("log_namespace") == "netboot.bsdp"]
    assert [(e["outcome"], str(e["summary"]).split(" ")[0]) for e in lines] == [
        ("bsdp_list", "ACK[LIST]"),
        ("bsdp_select", "ACK[SELECT]"),
        ("bsdp_failed", "ACK[FAILED]:"),
    ]
    assert pipeline.handler.clients.boots == {"0x01000001": 1}
    (client,) = pipeline.handler.clients.recent()
    assert (client["image"], list(client["stages"])) == ("0x01000001", ["bsdp list", "bsdp select"])


def test_the_machines_registry_learns_the_macs_model_and_its_journey(
    pipeline: Pipeline,
) -> None:
    registry = MachineRegistry()
    pipeline.handler.clients.registry = registry
    pipeline.handler.clients.server_name = "netboot-srv"
    pipeline.receive(list_datagram())
    pipeline.clock.advance(2)
    pipeline.receive(select_datagram(0x0100_0001))
    (machine,) = registry.machines()
    assert machine["mac"] == str(mac_from_bytes(MAC))
    assert (machine["kind"], machine["model"], machine["architecture"]) == ("mac", MODEL, "i386")
    assert (machine["address"], machine["server"], machine["image"]) == (
        CLIENT_IP,
        "netboot-srv",
        "0x01000001",
    )
    (journey,) = machine["journeys"]
    assert [(step["stage"], step["at"]) for step in journey["steps"]] == [
        ("bsdp list", 0.0),
        ("bsdp select", 2.0),
    ]


def test_a_diskless_select_creates_the_shadow_directory_first(tmp_path: Path) -> None:
    images, shadows = tmp_path / "images", tmp_path / "shadows"
    make_set(images, "Alpha", Index=1, SupportsDiskless=True)
    pipeline = Pipeline(scan_catalog(images), shadow_root=str(shadows))
    (out,) = pipeline.receive(select_datagram(0x0100_0001))
    assert bsdp_of(out.datagram).shadow_file_path == "0016cb123456/Shadow"
    created = shadows / "0016cb123456"
    assert created.is_dir()
    assert created.stat().st_mode & 0o777 == 0o700


def test_select_of_an_unknown_image_is_answered_failed(pipeline: Pipeline) -> None:
    (out,) = pipeline.receive(select_datagram(0x0100_0063))
    assert out.destination == (CLIENT_IP, 68)
    assert bsdp_of(out.datagram) == BsdpMessage(message_type=MessageType.FAILED)
    assert pipeline.handler.counters.failed_replies == 1
    assert pipeline.handler.counters.select_replies == 0


def test_select_of_another_server_is_silence_and_not_malformed(
    pipeline: Pipeline, events: list[dict[str, Any]]
) -> None:
    assert pipeline.receive(select_datagram(0x0100_0001)) != []
    assert len(pipeline.bindings) == 1
    assert pipeline.receive(select_datagram(0x0100_0001, server="192.0.2.99")) == []
    assert len(pipeline.bindings) == 0
    assert pipeline.dispatcher.counters.malformed == 0
    assert pipeline.handler.counters.ignored == 1
    assert loud(events) == []


def test_a_long_list_leaves_as_one_datagram_cut_and_warned_of_once_per_client(
    tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    for number in range(1, 41):
        make_set(tmp_path, f"Img{number:04d}", Name=f"Image {number:04d}", Index=number)
    pipeline = Pipeline(scan_catalog(tmp_path))
    body = encode(BsdpMessage(MessageType.LIST, VERSION_1_1, reply_port=900))
    (out,) = pipeline.receive(bsdp_datagram(body))  # no size asked: a 576-byte reply
    assert out.destination == (CLIENT_IP, 900)
    assert len(out.datagram) + 28 <= 576
    names = [image.name for image in bsdp_of(out.datagram).images or ()]
    assert names == [f"Image {n:04d}" for n in range(1, 18)]
    assert pipeline.dispatcher.counters.replies == 1
    assert pipeline.handler.counters.list_replies == 1
    # A Mac repeats its INFORM[LIST]; another Mac gets its own warning.
    pipeline.clock.advance(5)
    assert len(pipeline.receive(bsdp_datagram(body))) == 1
    other = replace(parse_packet(bsdp_datagram(body)), chaddr=OTHER_MAC + bytes(10))
    assert len(pipeline.receive(build_packet(other))) == 1
    asks_8192 = build_packet(inform_list(XID, OTHER_MAC, CLIENT_IP, "i386", MODEL))
    assert len(pipeline.receive(asks_8192)) == 1  # all 40 fit: no warning
    warned = [e for e in loud(events) if "truncated" in str(e.get("log_format"))]
    assert [(e["mac"], e["listed"], e["offered"], e["size"]) for e in warned] == [
        (str(mac_from_bytes(MAC)), 17, 40, 576),
        (str(mac_from_bytes(OTHER_MAC)), 17, 40, 576),
    ]
    pipeline.clock.advance(3600)
    pipeline.receive(bsdp_datagram(body))
    assert len([e for e in loud(events) if "truncated" in str(e.get("log_format"))]) == 3


def test_a_catalog_change_is_seen_by_the_next_request(pipeline: Pipeline, tmp_path: Path) -> None:
    assert len(bsdp_of(pipeline.receive(list_datagram())[0].datagram).images or ()) == 2
    make_set(tmp_path, "Gamma", Index=3)
    pipeline.catalog = scan_catalog(tmp_path)
    assert len(bsdp_of(pipeline.receive(list_datagram())[0].datagram).images or ()) == 3


# --- packets that are not for BSDP ----------------------------------------------------------


@pytest.mark.parametrize(
    "datagram",
    [
        pytest.param(plain_dhcp(DhcpType.DISCOVER, b"PXEClient:Arch:00007:UNDI:003016"), id="PXE"),
        pytest.param(plain_dhcp(DhcpType.DISCOVER, None), id="DISCOVER without option 60"),
        pytest.param(plain_dhcp(DhcpType.INFORM, b"MSFT 5.0"), id="Windows INFORM"),
        pytest.param(plain_dhcp(DhcpType.REQUEST, b"android-dhcp-13"), id="REQUEST"),
        pytest.param(plain_dhcp(DhcpType.OFFER, None, op=BOOTREPLY), id="another server's OFFER"),
        pytest.param(plain_dhcp(DhcpType.INFORM, b"AAPLBSDP"), id="almost BSDP"),
    ],
)
def test_dhcp_that_is_not_bsdp_is_left_unclaimed(
    pipeline: Pipeline, events: list[dict[str, Any]], datagram: bytes
) -> None:
    assert pipeline.receive(datagram) == []
    assert pipeline.dispatcher.counters.unclaimed == 1
    assert pipeline.dispatcher.counters.malformed == 0
    assert pipeline.handler.counters.requests == 0
    assert loud(events) == []


def test_a_bsdp_reply_of_another_server_is_claimed_quietly(
    pipeline: Pipeline, events: list[dict[str, Any]]
) -> None:
    (out,) = pipeline.receive(list_datagram())
    # Our own ACK[LIST], as it would be overheard from another server on the segment.
    assert pipeline.receive(out.datagram, Arrival(("192.0.2.11", 67), SERVER, 2)) == []
    counters = pipeline.dispatcher.counters
    assert (counters.unclaimed, counters.malformed, counters.replies) == (0, 0, 1)
    assert pipeline.handler.counters.requests == 1
    assert loud(events) == []


@pytest.mark.parametrize(
    "datagram",
    [
        pytest.param(list_datagram(arch="arm"), id="no image for this client"),
        pytest.param(
            build_packet(
                replace(inform_list(XID, MAC, CLIENT_IP, "i386", MODEL), htype=6),
            ),
            id="not Ethernet",
        ),
        pytest.param(
            bsdp_datagram(encode(BsdpMessage(message_type=7, version=VERSION_1_1))),
            id="unknown BSDP message type",
        ),
        pytest.param(
            bsdp_datagram(encode(BsdpMessage(message_type=3, version=VERSION_1_1))),
            id="FAILED from a client",
        ),
    ],
)
def test_bsdp_requests_we_do_not_answer_are_claimed_silently(
    pipeline: Pipeline, events: list[dict[str, Any]], datagram: bytes
) -> None:
    assert pipeline.receive(datagram) == []
    counters = pipeline.dispatcher.counters
    assert (counters.unclaimed, counters.malformed, counters.replies) == (0, 0, 0)
    assert pipeline.handler.counters.ignored == 1
    assert loud(events) == []


# --- malformed input ----------------------------------------------------------------------

GOOD = list_datagram(reply_port=1000)
GOOD_UNPADDED = build_packet(
    inform_list(XID, MAC, CLIENT_IP, "i386", MODEL, reply_port=1000), pad_to=0
)
GARBAGE = {
    "empty": b"",
    "one byte": b"\x01",
    "header cut short": GOOD[:200],
    "no magic cookie": GOOD[:236] + b"\x00\x00\x00\x00" + GOOD[240:],
    "only zeros": bytes(300),
    "option 43 past the end of the datagram": GOOD_UNPADDED[:-3],
    "option length byte missing": GOOD_UNPADDED[:-1] + b"\x2b",
    "BOOTP op 3": b"\x03" + GOOD[1:],
    "text": b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" * 10,
}


@pytest.mark.parametrize("datagram", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_counted_and_logged_as_malformed(
    pipeline: Pipeline, events: list[dict[str, Any]], datagram: bytes
) -> None:
    assert pipeline.receive(datagram) == []
    counters = pipeline.dispatcher.counters
    assert (counters.datagrams, counters.malformed, counters.unclaimed) == (1, 1, 0)
    (warning,) = malformed_warnings(events)
    assert warning["client"] == f"{CLIENT_IP}:68"
    assert warning["reason"]
    assert not [e for e in events if "log_failure" in e]


BAD_BSDP = {
    "sub-option length past the end": bytes.fromhex("01 01 01 02 02 01 01 0c 04 20 00"),
    "truncated option 43": bytes.fromhex("01 01 01 02 02 01"),
    "sub-option without a length": bytes.fromhex("01 01 01 02 02 01 01 05"),
    "no version": bytes.fromhex("01 01 01"),
    "unsupported version": bytes.fromhex("01 01 01 02 02 03 00"),
    "no message type": bytes.fromhex("02 02 01 01"),
    "reply port 1024": bytes.fromhex("01 01 01 02 02 01 01 05 02 04 00"),
    "image name not UTF-8": bytes.fromhex("01 01 01 02 02 01 01 09 06 01 00 00 01 01 ff"),
}


@pytest.mark.parametrize("body", BAD_BSDP.values(), ids=BAD_BSDP.keys())
def test_bad_bsdp_content_is_counted_as_malformed_by_the_dispatcher(
    pipeline: Pipeline, events: list[dict[str, Any]], body: bytes
) -> None:
    assert pipeline.receive(bsdp_datagram(body)) == []
    assert pipeline.dispatcher.counters.malformed == 1
    assert pipeline.dispatcher.counters.unclaimed == 0
    assert pipeline.handler.counters.ignored == 1
    (warning,) = malformed_warnings(events)
    assert str(warning["reason"]).startswith("bsdp: ")


def test_malformed_packets_are_logged_once_per_client_per_minute(
    pipeline: Pipeline, events: list[dict[str, Any]]
) -> None:
    bad_bsdp = bsdp_datagram(BAD_BSDP["sub-option length past the end"])

    def logged_clients() -> list[str]:
        return [str(e["client"]) for e in malformed_warnings(events)]

    for _ in range(5):
        pipeline.receive(b"garbage")
    pipeline.receive(bad_bsdp)  # the handler's malformed shares the same limit
    assert logged_clients() == [f"{CLIENT_IP}:68"]

    pipeline.clock.advance(30)
    pipeline.receive(b"garbage", OTHER_ARRIVAL)  # another client has its own minute
    pipeline.receive(b"garbage")
    assert logged_clients() == [f"{CLIENT_IP}:68", f"{OTHER_IP}:68"]

    pipeline.clock.advance(MALFORMED_LOG_INTERVAL - 30 - 0.5)
    pipeline.receive(b"garbage")
    assert len(logged_clients()) == 2

    pipeline.clock.advance(0.5)  # a minute after the first line for this client
    pipeline.receive(bad_bsdp)
    assert logged_clients() == [f"{CLIENT_IP}:68", f"{OTHER_IP}:68", f"{CLIENT_IP}:68"]
    pipeline.receive(b"garbage", OTHER_ARRIVAL)  # 30 s after its first line: quiet
    assert len(logged_clients()) == 3

    assert pipeline.dispatcher.counters.malformed == 11
    assert pipeline.dispatcher.counters.datagrams == 11


def test_the_limit_is_per_source_address_not_per_port(
    pipeline: Pipeline, events: list[dict[str, Any]]
) -> None:
    pipeline.receive(b"garbage", Arrival((CLIENT_IP, 68), SERVER, 2))
    pipeline.receive(b"garbage", Arrival((CLIENT_IP, 900), SERVER, 2))
    assert len(malformed_warnings(events)) == 1
    assert pipeline.dispatcher.counters.malformed == 2


def test_good_requests_are_still_answered_between_malformed_ones(pipeline: Pipeline) -> None:
    for datagram in GARBAGE.values():
        assert pipeline.receive(datagram) == []
        assert len(pipeline.receive(GOOD)) == 1
    assert pipeline.dispatcher.counters.malformed == len(GARBAGE)
    assert pipeline.dispatcher.counters.replies == len(GARBAGE)


def test_an_arrival_without_our_address_is_refused_as_malformed(
    pipeline: Pipeline, events: list[dict[str, Any]]
) -> None:
    unknown_address = Arrival((CLIENT_IP, 68), "0.0.0.0", 0)
    assert pipeline.receive(GOOD, unknown_address) == []
    assert pipeline.dispatcher.counters.malformed == 1
    assert pipeline.handler.counters.ignored == 1
    assert pipeline.handler.counters.list_replies == 0
    (warning,) = malformed_warnings(events)
    assert "IP_PKTINFO" in str(warning["reason"])
    assert len(pipeline.bindings) == 0
    # A non-BSDP packet arriving so is still merely not ours.
    assert pipeline.receive(plain_dhcp(DhcpType.DISCOVER, None), unknown_address) == []
    assert pipeline.dispatcher.counters.unclaimed == 1


def test_a_select_arriving_without_our_address_binds_nothing(pipeline: Pipeline) -> None:
    unknown_address = Arrival((CLIENT_IP, 68), "0.0.0.0", 0)
    assert pipeline.receive(select_datagram(0x0100_0001, server="0.0.0.0"), unknown_address) == []
    assert len(pipeline.bindings) == 0


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    base=st.sampled_from([GOOD, select_datagram(0x0100_0001, reply_port=1000)]),
    cut=st.integers(min_value=236, max_value=320),
    drop=st.integers(min_value=0, max_value=8),
    noise=st.binary(max_size=12),
)
def test_mutated_requests_never_escape_the_dispatcher(
    pipeline: Pipeline, base: bytes, cut: int, drop: int, noise: bytes
) -> None:
    datagram = base[:cut] + noise + base[cut + drop :]
    before = pipeline.dispatcher.counters.as_dict()
    out = pipeline.receive(datagram)
    after = pipeline.dispatcher.counters.as_dict()
    assert after["datagrams"] == before["datagrams"] + 1
    for item in out:
        assert item.destination[0] == CLIENT_IP
        assert item.destination[1] < 1024
        reply = parse_packet(item.datagram)
        assert reply.op == BOOTREPLY
        assert len(item.datagram) <= 8192 - 28


# --- the datagram boundary of DhcpService -----------------------------------------------------


class FakeReader:
    """What DhcpService.datagram needs of its socket: `send`, returning success."""

    def __init__(self, succeed: bool = True) -> None:
        self.succeed = succeed
        self.sent: list[tuple[Outgoing, Arrival]] = []

    def send(self, outgoing: Outgoing, arrival: Arrival) -> bool:
        self.sent.append((outgoing, arrival))
        return self.succeed


class Exploding:
    """A handler with a bug: it raises for one transaction and passes on the rest."""

    name = "exploding"

    def __init__(self, xid: int | None = None) -> None:
        self.xid = xid
        self.calls = 0

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None:
        self.calls += 1
        if self.xid is None or packet.xid == self.xid:
            raise RuntimeError("a bug in a handler")
        return None


def service_with(*handlers: Any) -> tuple[DhcpService, DhcpDispatcher]:
    clock = Clock()
    dispatcher = DhcpDispatcher(list(handlers), clock.seconds)
    return DhcpService(dispatcher, clock, 0, ()), dispatcher


def test_the_service_sends_each_reply_through_the_reader(pipeline: Pipeline) -> None:
    service = DhcpService(pipeline.dispatcher, pipeline.clock, 0, ())
    reader = FakeReader()
    service.datagram(reader, list_datagram(reply_port=1000), ARRIVAL)  # type: ignore[arg-type]
    ((outgoing, arrival),) = reader.sent
    assert outgoing.destination == (CLIENT_IP, 1000)
    assert arrival == ARRIVAL  # so the reply leaves by the interface it came in on
    assert pipeline.dispatcher.counters.send_errors == 0


def test_a_failed_send_is_counted(pipeline: Pipeline) -> None:
    service = DhcpService(pipeline.dispatcher, pipeline.clock, 0, ())
    service.datagram(FakeReader(succeed=False), list_datagram(), ARRIVAL)  # type: ignore[arg-type]
    assert pipeline.dispatcher.counters.send_errors == 1
    assert pipeline.dispatcher.counters.replies == 1


def test_a_handler_that_raises_is_logged_as_a_bug_and_does_not_propagate(
    events: list[dict[str, Any]],
) -> None:
    handler = Exploding()
    service, dispatcher = service_with(handler)
    reader = FakeReader()
    service.datagram(reader, list_datagram(), ARRIVAL)  # type: ignore[arg-type]
    assert handler.calls == 1
    assert reader.sent == []
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1
    (failure,) = failures
    assert failure["log_failure"].check(RuntimeError)
    assert failure["log_level"] == LogLevel.critical
    assert failure["log_namespace"] == "netboot.dhcp"
    assert "bug" in str(failure["log_format"])
    assert failure["client"] == f"{CLIENT_IP}:68"
    assert dispatcher.counters.datagrams == 1


def test_port_67_keeps_answering_after_a_handler_bug(
    pipeline: Pipeline, events: list[dict[str, Any]]
) -> None:
    buggy = Exploding(xid=0xBAD)
    pipeline.dispatcher.handlers.insert(0, buggy)
    service = DhcpService(pipeline.dispatcher, pipeline.clock, 0, ())
    reader = FakeReader()
    crash = build_packet(inform_list(0xBAD, MAC, CLIENT_IP, "i386", MODEL))
    service.datagram(reader, crash, ARRIVAL)  # type: ignore[arg-type]
    service.datagram(reader, list_datagram(), ARRIVAL)  # type: ignore[arg-type]
    assert buggy.calls == 2
    assert len(reader.sent) == 1
    assert parse_packet(reader.sent[0][0].datagram).xid == XID
    assert len([e for e in events if "log_failure" in e]) == 1
