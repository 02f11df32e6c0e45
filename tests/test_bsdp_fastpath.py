"""The BSDP fast path: a bound Mac's plain DISCOVER gets a BSDP OFFER of its image.

docs/protocols/bsdp.md §1.2. The decision (`BsdpPolicy.offer`), the port-67
handler around it (`bsdp_outcome`), and full mode, where the Mac's lease OFFER
carries the same boot fields (`pxe_outcome` with `mac_boot`). Catalogs are real
NBI sets on disk; every request crosses the wire codec once.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from netboot.bsdp.binding_store import BindingStore
from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.client import inform_select
from netboot.bsdp.options import BsdpMessage, decode, encode
from netboot.bsdp.policy import BsdpPolicy, BsdpSettings, Ignore, IgnoreReason, Reply
from netboot.bsdp.vendor_class import PREFIX, client_class_bytes
from netboot.dhcp.boot import BootSettings
from netboot.dhcp.leases import AddressPool, LeaseStore
from netboot.dhcp.pxe import ClientKind, classify
from netboot.dhcp.server import LeaseServer, NetworkSettings
from netboot.dhcpwire.options import BOOTREPLY, BOOTREQUEST, Option
from netboot.dhcpwire.options import MessageType as DhcpType
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import ZERO, DhcpPacket, build_packet, parse_packet
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import Catalog, scan_catalog
from netboot.port67.arrival import Arrival
from netboot.port67.bsdp import bsdp_outcome
from netboot.port67.pxe import leased_here, pxe_outcome
from netboot_lab.factories import make_set
from netboot_lab.process import pcap_fields
from tests.test_bsdp_dissector import assert_no_warnings

SERVER = "192.0.2.10"
CLIENT_IP = "192.0.2.50"
RELAY = "198.51.100.1"
MAC = bytes.fromhex("0016cb123456")
MAC_TEXT = MacAddress("00:16:cb:12:34:56")
OTHER_MAC = bytes.fromhex("0016cb000001")
MODEL = "MacBookPro11,1"
SERVER_NAME = "netboot-srv"
START = 1_700_000_000.0
HIGH_SIERRA = 0x01000001
INSTALL = 0x01000002
ARRIVAL = Arrival(("0.0.0.0", 68), SERVER, 2)


def wire(packet: DhcpPacket) -> DhcpPacket:
    return parse_packet(build_packet(packet))


def discover(
    *,
    mac: bytes = MAC,
    model: str = MODEL,
    bsdp: BsdpMessage | None = None,
    giaddr: str = ZERO,
    htype: int = 1,
) -> DhcpPacket:
    """A Mac's DISCOVER on a later boot: option 60 its client class, 43 optional."""
    options: list[tuple[int, bytes]] = [
        (Option.MESSAGE_TYPE, bytes((DhcpType.DISCOVER,))),
        (Option.VENDOR_CLASS, client_class_bytes("i386", model)),
    ]
    if bsdp is not None:
        options.append((Option.VENDOR_SPECIFIC, encode(bsdp)))
    packet = DhcpPacket(
        op=BOOTREQUEST,
        xid=0xFA57,
        htype=htype,
        chaddr=mac,
        flags=0x8000,
        giaddr=giaddr,
        options=tuple(options),
    )
    return wire(packet)


def build(root: Path, **overrides: Any) -> Catalog:
    """Two sets: an HTTP default and an NFS install image; `overrides` apply to the first."""
    make_set(root, "HighSierra", Name="High Sierra", Index=1, IsDefault=True, **overrides)
    make_set(root, "Install", Name="Install macOS", Index=2, Type="NFS")
    return scan_catalog(root)


def rebuild(root: Path, **overrides: Any) -> Catalog:
    shutil.rmtree(root / "HighSierra.nbi")
    make_set(root, "HighSierra", Name="High Sierra", Index=1, IsDefault=True, **overrides)
    return scan_catalog(root)


def policy(bindings: BindingTable | None = None) -> BsdpPolicy:
    table = bindings if bindings is not None else BindingTable()
    return BsdpPolicy(BsdpSettings(server_name=SERVER_NAME), table)


def select(bsdp: BsdpPolicy, catalog: Catalog, image_id: int, mac: bytes = MAC) -> Reply:
    request = wire(inform_select(7, mac, CLIENT_IP, "i386", MODEL, SERVER, image_id))
    reply = bsdp.decide(request, catalog, SERVER, START)
    assert isinstance(reply, Reply) and reply.kind is OutcomeKind.BSDP_SELECT, reply
    return reply


def offered(decision: object) -> DhcpPacket:
    assert isinstance(decision, Reply), decision
    assert decision.kind is OutcomeKind.BSDP_OFFER
    (packet,) = decision.packets
    return wire(packet)


def silence(decision: object) -> IgnoreReason:
    assert isinstance(decision, Ignore), decision
    return decision.code


# --- the decision ----------------------------------------------------------------------


def test_an_unbound_mac_gets_silence(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    assert silence(policy().offer(discover(), catalog, SERVER, START)) is IgnoreReason.NOT_BOUND


def test_a_bound_mac_gets_the_boot_fields_of_its_select_and_no_address(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    ack = wire(select(bsdp, catalog, INSTALL).packets[0])
    decision = bsdp.offer(discover(), catalog, SERVER, START + 60)
    offer = offered(decision)
    assert isinstance(decision, Reply)
    assert decision.destination == ("255.255.255.255", 68)
    assert decision.image_id is not None and int(decision.image_id) == INSTALL
    assert (offer.op, offer.xid, offer.chaddr[:6]) == (BOOTREPLY, 0xFA57, MAC)
    assert offer.message_type == DhcpType.OFFER
    assert (offer.yiaddr, offer.ciaddr) == (ZERO, ZERO)
    assert (offer.siaddr, offer.sname, offer.file) == (SERVER, SERVER_NAME.encode(), ack.file)
    assert offer.file == b"Install.nbi/i386/booter"
    assert offer.option(Option.SERVER_IDENTIFIER) == IPv4Address(SERVER).packed
    assert offer.option(Option.VENDOR_CLASS) == PREFIX
    assert offer.option(Option.ROOT_PATH) == ack.option(Option.ROOT_PATH)
    assert offer.option(Option.LEASE_TIME) is None
    message = decode(offer.option(Option.VENDOR_SPECIFIC) or b"")
    assert message == BsdpMessage(selected_image_id=INSTALL, machine_name="NetBoot001")
    # Options in bootpd's order: 53, 54, 60, 17, 43.
    assert [code for code, _ in offer.options] == [53, 54, 60, 17, 43]


def test_a_relayed_discover_is_answered_to_the_relay(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    decision = bsdp.offer(discover(giaddr=RELAY), catalog, SERVER, START)
    assert isinstance(decision, Reply) and decision.destination == (RELAY, 67)


def test_another_mac_is_not_answered_for_this_ones_binding(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    decision = bsdp.offer(discover(mac=OTHER_MAC), catalog, SERVER, START)
    assert silence(decision) is IgnoreReason.NOT_BOUND


@pytest.mark.parametrize(
    "change",
    [
        {"IsEnabled": False},
        {"EnabledSystemIdentifiers": ["iMac18,3"]},
        {"DisabledMACAddresses": ["00:16:cb:12:34:56"]},
        {"Architectures": ["ppc"]},
    ],
    ids=["disabled", "other-models", "mac-disabled", "other-arch"],
)
def test_an_image_no_longer_bootable_for_the_mac_gets_silence(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    arch_dir = "ppc" if change.get("Architectures") == ["ppc"] else "i386"
    shutil.rmtree(tmp_path / "HighSierra.nbi")
    make_set(tmp_path, "HighSierra", Name="High Sierra", Index=1, arch_dir=arch_dir, **change)
    decision = bsdp.offer(discover(), scan_catalog(tmp_path), SERVER, START)
    assert silence(decision) is IgnoreReason.IMAGE_GONE


def test_a_removed_image_gets_silence(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    shutil.rmtree(tmp_path / "HighSierra.nbi")
    decision = bsdp.offer(discover(), scan_catalog(tmp_path), SERVER, START)
    assert silence(decision) is IgnoreReason.IMAGE_GONE


def test_a_filter_the_bound_image_fails_gets_silence(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    install_only = BsdpMessage(version=0x0101, attribute_filter=(0x8100,))
    decision = bsdp.offer(discover(bsdp=install_only), catalog, SERVER, START)
    assert silence(decision) is IgnoreReason.IMAGE_GONE
    matching = BsdpMessage(version=0x0101, attribute_filter=(0x0100,))
    offered(bsdp.offer(discover(bsdp=matching), catalog, SERVER, START))


def test_a_binding_past_its_lifetime_gets_silence(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    bsdp = policy(BindingTable(lifetime=100.0))
    select(bsdp, catalog, HIGH_SIERRA)
    offered(bsdp.offer(discover(), catalog, SERVER, START + 99))
    decision = bsdp.offer(discover(), catalog, SERVER, START + 100)
    assert silence(decision) is IgnoreReason.NOT_BOUND


def test_the_offer_is_made_from_a_binding_kept_across_a_restart(tmp_path: Path) -> None:
    catalog = build(tmp_path / "images")
    path = tmp_path / "bindings.sqlite3"
    with BindingStore(path) as store:
        select(policy(BindingTable(store=store)), catalog, HIGH_SIERRA)
    with BindingStore(path) as store:
        table = BindingTable(store=store, saved=store.load(START, 86400.0))
        offer = offered(policy(table).offer(discover(), catalog, SERVER, START + 5))
    assert offer.file == b"HighSierra.nbi/i386/booter"


@pytest.mark.parametrize(
    ("packet", "code"),
    [
        (lambda: discover(htype=6), IgnoreReason.NOT_ETHERNET),
        (
            lambda: replace(discover(), options=((53, bytes((1,))), (60, b"AAPLBSDPC"))),
            IgnoreReason.NOT_A_CLIENT_CLASS,
        ),
        (
            lambda: replace(discover(), options=(*discover().options, (43, b"\x02\x05\x01"))),
            IgnoreReason.MALFORMED,
        ),
        (lambda: discover(bsdp=BsdpMessage(version=0x0200)), IgnoreReason.MALFORMED),
    ],
    ids=["not-ethernet", "no-client-class", "option-43-garbage", "unknown-version"],
)
def test_a_discover_failing_bootpds_prechecks_gets_silence(
    tmp_path: Path, packet: Any, code: IgnoreReason
) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    assert silence(bsdp.offer(packet(), catalog, SERVER, START)) is code


# --- the port-67 handler ---------------------------------------------------------------


def test_the_handler_answers_a_bound_macs_discover_and_files_it_by_mac(tmp_path: Path) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    outcome = bsdp_outcome(bsdp, discover(), ARRIVAL, catalog, START, True)
    assert outcome is not None and outcome.kind is OutcomeKind.BSDP_OFFER
    assert (outcome.mac, outcome.address) == (MAC_TEXT, str(MAC_TEXT))
    assert outcome.destination == ("255.255.255.255", 68)
    unbound = bsdp_outcome(bsdp, discover(mac=OTHER_MAC), ARRIVAL, catalog, START, True)
    assert unbound is not None and unbound.kind is OutcomeKind.BSDP_IGNORED
    assert unbound.replies == () and unbound.reason is IgnoreReason.NOT_BOUND


def test_the_handler_leaves_a_discover_it_leases_to_and_one_overheard_on_68(
    tmp_path: Path,
) -> None:
    catalog = build(tmp_path)
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    assert bsdp_outcome(bsdp, discover(), ARRIVAL, catalog, START, True, leased_here=True) is None
    watching = replace(ARRIVAL, watch_only=True)
    assert bsdp_outcome(bsdp, discover(), watching, catalog, START, True) is None


# --- full mode: the lease OFFER carries the boot fields ---------------------------------


def lease_server(tmp_path: Path) -> LeaseServer:
    pool = AddressPool(IPv4Address("192.0.2.100"), IPv4Address("192.0.2.110"))
    store = LeaseStore(tmp_path / "leases.sqlite3", pool, lambda: START)
    return LeaseServer(store, NetworkSettings(subnet=IPv4Network("192.0.2.0/24")))


def test_full_mode_gives_a_bound_mac_one_offer_with_address_and_boot_fields(
    tmp_path: Path,
) -> None:
    catalog = build(tmp_path / "images")
    bsdp = policy()
    ack = wire(select(bsdp, catalog, INSTALL).packets[0])
    server = lease_server(tmp_path)
    packet = discover()
    assert classify(packet).kind is ClientKind.BSDP
    assert leased_here(server, packet, ARRIVAL)

    def mac_boot(request: DhcpPacket, arrival: Arrival) -> DhcpPacket | None:
        decision = bsdp.offer(request, catalog, arrival.local_address, START)
        return decision.packets[0] if isinstance(decision, Reply) else None

    outcome = pxe_outcome(packet, ARRIVAL, BootSettings(), server, set, mac_boot)
    assert outcome is not None and outcome.kind is OutcomeKind.OFFER
    ((reply, _),) = outcome.replies
    reply = wire(reply)
    assert reply.message_type == DhcpType.OFFER
    assert IPv4Address(reply.yiaddr) in IPv4Network("192.0.2.0/24")
    assert (reply.siaddr, reply.file, reply.sname) == (SERVER, ack.file, SERVER_NAME.encode())
    assert reply.option(Option.ROOT_PATH) == ack.option(Option.ROOT_PATH)
    assert reply.option(Option.VENDOR_CLASS) == PREFIX
    assert reply.option(Option.LEASE_TIME) is not None
    assert reply.option(Option.SERVER_IDENTIFIER) == IPv4Address(SERVER).packed
    message = decode(reply.option(Option.VENDOR_SPECIFIC) or b"")
    assert (message.selected_image_id, message.machine_name) == (INSTALL, "NetBoot001")
    assert "BSDP boot file Install.nbi/i386/booter" in outcome.summary

    # Unbound: an ordinary lease OFFER, no boot fields.
    other = pxe_outcome(discover(mac=OTHER_MAC), ARRIVAL, BootSettings(), server, set, mac_boot)
    assert other is not None and other.kind is OutcomeKind.OFFER
    ((plain, _),) = other.replies
    assert (plain.file, plain.option(Option.VENDOR_SPECIFIC)) == (b"", None)


# --- Wireshark's reading ------------------------------------------------------------------


def test_wireshark_decodes_both_offers_without_warnings(tmp_path: Path) -> None:
    """The BSDP OFFER and full mode's lease OFFER, read back by tshark's BSDP dissector."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("needs Debian's tshark")
    catalog = build(tmp_path / "images")
    bsdp = policy()
    select(bsdp, catalog, HIGH_SIERRA)
    request = discover()
    bsdp_offer = offered(bsdp.offer(request, catalog, SERVER, START))
    lease = pxe_outcome(
        request, ARRIVAL, BootSettings(), lease_server(tmp_path), set, lambda p, a: bsdp_offer
    )
    assert lease is not None
    ((lease_offer, _),) = lease.replies

    def frame(packet: DhcpPacket, source: str, sport: int, dport: int) -> object:
        return (
            Ether(src="00:16:cb:12:34:56", dst="ff:ff:ff:ff:ff:ff")
            / IP(src=source, dst="255.255.255.255")
            / UDP(sport=sport, dport=dport)
            / build_packet(packet)
        )

    pcap = tmp_path / "offers.pcap"
    wrpcap(
        str(pcap),
        [
            frame(request, "0.0.0.0", 68, 67),
            frame(bsdp_offer, SERVER, 67, 68),
            frame(lease_offer, SERVER, 67, 68),
        ],
    )
    assert_no_warnings(tshark, pcap)
    rows = pcap_fields(
        pcap,
        "dhcp.option.dhcp",
        "dhcp.ip.your",
        "dhcp.ip.server",
        "dhcp.file",
        "dhcp.option.root_path",
        "dhcp.option.vendor.bsdp.selected_boot_image_id",
        "dhcp.option.vendor.bsdp.suboption",
    )
    root_path = f"http://{SERVER}/HighSierra.nbi/NetBoot.dmg"
    booter = "HighSierra.nbi/i386/booter"
    assert rows[0][0] == "1"
    assert rows[1][:5] == ["2", ZERO, SERVER, booter, root_path]
    assert int(rows[1][5], 0) == HIGH_SIERRA
    assert rows[1][6] == "8|130"  # selected image, machine name: no message type
    assert rows[2][0] == "2" and rows[2][1] != ZERO
    assert rows[2][2:5] == [SERVER, booter, root_path]
    assert int(rows[2][5], 0) == HIGH_SIERRA
