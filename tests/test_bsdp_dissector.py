"""Our BSDP packets, written to a pcap and read back by Wireshark's dissector (tshark).

Wireshark knows BSDP inside option 43 (its `dhcp.option.vendor.bsdp.*`
fields); if it decodes every sub-option we send, with no malformed-packet or
expert warnings, the packets are well-formed by a reading that is not ours.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.client import inform_list, inform_select
from netboot.bsdp.options import VERSION_1_1, BsdpMessage, MessageType, decode_instances, encode
from netboot.bsdp.policy import BsdpPolicy, BsdpSettings, Reply
from netboot.dhcpwire.options import Option
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.nbi.catalog import scan_catalog
from netboot_lab.factories import make_set
from netboot_lab.process import pcap_fields

SERVER = "192.0.2.10"
CLIENT = "192.0.2.50"
MAC = bytes.fromhex("0016cb123456")


def require_tshark() -> str:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("needs Debian's tshark")
    return tshark


def assert_no_warnings(tshark: str, pcap: Path) -> None:
    """No packet of the capture is malformed or draws an expert warning from Wireshark."""
    warnings = subprocess.run(
        [tshark, "-r", str(pcap), "-Y", "_ws.malformed || _ws.expert.severity >= warning"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert warnings.stdout.strip() == "", warnings.stdout


def frame(packet: DhcpPacket, source: str, destination: str, sport: int, dport: int) -> object:
    return (
        Ether(src="00:16:cb:12:34:56", dst="ff:ff:ff:ff:ff:ff")
        / IP(src=source, dst=destination)
        / UDP(sport=sport, dport=dport)
        / build_packet(packet)
    )


def exchange(tmp_path: Path) -> list[object]:
    """INFORM[LIST], ACK[LIST] of 40 images (several option-43 instances),
    INFORM[SELECT], ACK[SELECT] for an HTTP and an NFS image, and ACK[FAILED]."""
    root = tmp_path / "images"
    for index in range(1, 41):
        make_set(
            root,
            f"Image{index:02d}",
            Name=f"Image number {index}",
            Index=index if index != 2 else 4096,
            IsDefault=index == 1,
            IsInstall=index == 2,
            Type="NFS" if index == 3 else "HTTP",
        )
    catalog = scan_catalog(root)
    policy = BsdpPolicy(BsdpSettings(server_name="netboot-srv"), BindingTable())
    frames: list[object] = []

    def ask(request: DhcpPacket) -> Reply:
        frames.append(frame(request, CLIENT, "255.255.255.255", 68, 67))
        reply = policy.decide(parse_packet(build_packet(request)), catalog, SERVER, 0.0)
        assert isinstance(reply, Reply), reply
        frames.extend(frame(p, SERVER, CLIENT, 67, 68) for p in reply.packets)
        return reply

    ask(inform_list(1, MAC, CLIENT, "i386", "MacBookPro11,1"))
    for xid, image_id in ((2, 0x01000001), (3, 0x01000003), (4, 0x01000999)):
        ask(inform_select(xid, MAC, CLIENT, "i386", "MacBookPro11,1", SERVER, image_id))
    return frames


def test_wireshark_reads_every_bsdp_packet_we_send(tmp_path: Path) -> None:
    tshark = require_tshark()
    pcap = tmp_path / "bsdp.pcap"
    wrpcap(str(pcap), exchange(tmp_path))

    assert_no_warnings(tshark, pcap)

    rows = pcap_fields(
        pcap,
        "dhcp.option.dhcp",
        "dhcp.option.vendor.bsdp.message_type",
        "dhcp.option.vendor.bsdp.server_priority",
        "dhcp.option.vendor.bsdp.default_boot_image_id",
        "dhcp.option.vendor.bsdp.selected_boot_image_id",
        "dhcp.option.vendor.bsdp.boot_image.name",
        "dhcp.option.root_path",
        "dhcp.file",
    )
    kinds = [(row[0], row[1]) for row in rows]
    assert kinds == [
        ("8", "1"),  # INFORM[LIST]
        ("5", "1"),  # ACK[LIST]
        ("8", "2"),  # INFORM[SELECT]
        ("5", "2"),  # ACK[SELECT], HTTP image
        ("8", "2"),
        ("5", "2"),  # ACK[SELECT], NFS image
        ("8", "2"),
        ("5", "3"),  # ACK[FAILED]
    ]
    ack_list = rows[1]
    assert ack_list[2] == "32768"
    assert int(ack_list[3], 0) == 0x01000001
    names = ack_list[5].split("|")
    assert names == [f"Image number {n}" for n in range(1, 41)]
    http_select, nfs_select = rows[3], rows[5]
    assert int(http_select[4], 0) == 0x01000001
    assert http_select[6] == f"http://{SERVER}/Image01.nbi/NetBoot.dmg"
    assert http_select[7] == "Image01.nbi/i386/booter"
    assert nfs_select[6].startswith(f"nfs:{SERVER}:/")
    assert nfs_select[6].endswith(":Image03.nbi/NetBoot.dmg")


def test_wireshark_reads_a_cut_list_of_1000_sets_whole_at_every_size(tmp_path: Path) -> None:
    """One ACK[LIST] per size a client may ask (576, 1500, 8192), for a client bound to
    the last of 1,000 sets: tshark reads every option-43 instance of each without a
    warning, and finds the same records we put in, default and bound image first."""
    tshark = require_tshark()
    root = tmp_path / "images"
    for number in range(1, 1001):
        make_set(root, f"Img{number:04d}", Name=f"Image {number:04d}", Index=number)
    catalog = scan_catalog(root)
    policy = BsdpPolicy(BsdpSettings(), BindingTable())
    bound = 0x01000000 + 1000
    select = inform_select(1, MAC, CLIENT, "i386", "MacBookPro11,1", SERVER, bound)
    assert isinstance(policy.decide(select, catalog, SERVER, 0.0), Reply)
    frames: list[object] = []
    expected: list[list[str]] = []
    for xid, size in enumerate((576, 1500, 8192), start=2):
        request = inform_list(xid, MAC, CLIENT, "i386", "MacBookPro11,1")
        body = encode(BsdpMessage(MessageType.LIST, VERSION_1_1, max_message_size=size))
        others = tuple(o for o in request.options if o[0] != Option.VENDOR_SPECIFIC)
        request = replace(request, options=(*others, (Option.VENDOR_SPECIFIC, body)))
        reply = policy.decide(parse_packet(build_packet(request)), catalog, SERVER, 1.0)
        assert isinstance(reply, Reply) and reply.list_cut is not None
        (packet,) = reply.packets
        assert len(build_packet(packet)) + 28 <= size
        images = decode_instances(packet.all_of(Option.VENDOR_SPECIFIC)).images or ()
        assert len(images) == reply.list_cut.listed
        assert [image.name for image in images[:3]] == ["Image 0001", "Image 1000", "Image 0002"]
        expected.append([image.name for image in images])
        frames.append(frame(packet, SERVER, CLIENT, 67, 68))
    pcap = tmp_path / "lists.pcap"
    wrpcap(str(pcap), frames)

    assert_no_warnings(tshark, pcap)
    rows = pcap_fields(
        pcap,
        "dhcp.option.vendor.bsdp.selected_boot_image_id",
        "dhcp.option.vendor.bsdp.boot_image.name",
    )
    assert [int(row[0], 0) for row in rows] == [bound] * 3
    assert [row[1].split("|") for row in rows] == expected
