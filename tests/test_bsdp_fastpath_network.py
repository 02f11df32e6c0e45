"""The BSDP fast path across real namespaces, with the real daemon and ISC dhclient.

`netboot bsdp probe --select` binds the client interface's MAC; then ISC dhclient
on that interface, sending the Mac's vendor class (`AAPLBSDPC/i386/<model>`),
DISCOVERs as a Mac does on a later boot. dumpcap captures what comes back and
tshark reads it: a BSDP OFFER with the booter in `file` and no address, also
after a restart of the daemon; nothing once the image is disabled.
docs/protocols/bsdp.md §1.2.
"""

from __future__ import annotations

import contextlib
import plistlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, bsdp_probe
from netboot_lab.process import pcap_fields, start_capture, stop_capture
from tests.netns import veth_lab

SUBNET = "10.238.0"
MODEL = "MacBookPro11,1"
HIGH_SIERRA = 0x01000001
BOOTER = "HighSierra.nbi/i386/booter"
DHCLIENT_SECONDS = 4
"""How long dhclient DISCOVERs (it sends one at once, then retransmits)."""


def require_tools() -> str:
    for tool in ("dumpcap", "tshark"):
        if shutil.which(tool) is None:
            pytest.skip("needs Debian's tshark (dumpcap)")
    dhclient = shutil.which("dhclient") or shutil.which("dhclient", path="/usr/sbin:/sbin")
    if dhclient is None:
        pytest.skip("needs dhclient (Debian: isc-dhcp-client)")
    return dhclient


@dataclass
class Lab:
    lab: VethPair
    work: Path
    root: Path
    args: list[str]
    dhclient: str


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    dhclient = require_tools()
    root = tmp_path / "images"
    make_set(root, "HighSierra", Name="High Sierra", Index=1, IsDefault=True)
    config = tmp_path / "netboot.toml"
    config.write_text(f'[bsdp]\nbindings_database = "{tmp_path / "bindings.sqlite3"}"\n')
    with veth_lab(SUBNET) as pair:
        args = ["--config", str(config), "--root", str(root), "--interface", pair.server_if]
        yield Lab(pair, tmp_path, root, args, dhclient)


def offers_to_a_discover(lab: Lab, name: str) -> list[list[str]]:
    """Run dhclient as a Mac on its later boot; tshark's reading of the OFFERs it got."""
    pair = lab.lab
    conf = lab.work / f"{name}.conf"
    # Our own configuration, so the host's is never read; the Mac's option 60.
    conf.write_text(
        f'send vendor-class-identifier "AAPLBSDPC/i386/{MODEL}";\n'
        f"timeout {DHCLIENT_SECONDS};\nretry 60;\n"
    )
    pcap = lab.work / f"{name}.pcap"
    capture = start_capture(pair.client_if, pcap, pair.client, "udp port 67 or udp port 68")
    process = subprocess.Popen(
        [
            "ip", "netns", "exec", pair.client, lab.dhclient, "-4", "-d", "-1", "-v",
            "-cf", str(conf), "-sf", "/bin/true", "-lf", str(lab.work / f"{name}.leases"),
            "-pf", str(lab.work / f"{name}.pid"), pair.client_if,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # Without an answer it gives up after its timeout; with one (no address in it)
    # it goes on asking, and is stopped here.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=DHCLIENT_SECONDS + 2)
    try:
        process.terminate()
        process.wait(timeout=10)
    finally:
        stop_capture(capture, pcap)
    discovers = pcap_fields(
        pcap, "dhcp.option.vendor_class_id", display_filter="dhcp.option.dhcp == 1"
    )
    assert discovers and all(row == [f"AAPLBSDPC/i386/{MODEL}"] for row in discovers), discovers
    warnings = pcap_fields(
        pcap, "frame.number", display_filter="_ws.malformed || _ws.expert.severity >= warning"
    )
    assert warnings == [], warnings
    return pcap_fields(
        pcap,
        "dhcp.hw.mac_addr",
        "dhcp.ip.your",
        "dhcp.ip.server",
        "dhcp.file",
        "dhcp.option.vendor.bsdp.selected_boot_image_id",
        display_filter="dhcp.option.dhcp == 2",
    )


def client_mac(pair: VethPair) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", pair.client, "cat", f"/sys/class/net/{pair.client_if}/address"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def assert_bsdp_offer(rows: list[list[str]], lab: Lab) -> None:
    assert rows, "no OFFER to the DISCOVER"
    for mac, yiaddr, siaddr, boot_file, image in rows:
        assert (mac, yiaddr, siaddr, boot_file) == (
            client_mac(lab.lab),
            "0.0.0.0",
            lab.lab.server_ip,
            BOOTER,
        )
        assert int(image, 0) == HIGH_SIERRA


def test_a_selected_mac_gets_a_bsdp_offer_until_its_image_is_disabled(lab: Lab) -> None:
    with Daemon(lab.args, netns=lab.lab.server) as daemon:
        daemon.wait_ready()
        assert offers_to_a_discover(lab, "unbound") == []
        # The probe sends from the interface's own MAC, as dhclient does.
        status, answer = bsdp_probe(lab.lab.client, lab.lab.client_if, "--select", hex(HIGH_SIERRA))
        assert status == 0, answer
        assert_bsdp_offer(offers_to_a_discover(lab, "bound"), lab)
        daemon.seen_or_wait(r"BSDP OFFER of 0x01000001 'High Sierra': file " + BOOTER)
        assert daemon.stop() == 0

    with Daemon(lab.args, netns=lab.lab.server) as daemon:
        daemon.wait_ready()
        assert_bsdp_offer(offers_to_a_discover(lab, "restarted"), lab)
        assert daemon.stop() == 0

    plist = lab.root / "HighSierra.nbi" / "NBImageInfo.plist"
    info = plistlib.loads(plist.read_bytes())
    plist.write_bytes(plistlib.dumps({**info, "IsEnabled": False}))
    with Daemon(lab.args, netns=lab.lab.server) as daemon:
        daemon.wait_ready()
        assert offers_to_a_discover(lab, "disabled") == []
        assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)
