"""BSDP across real namespaces: `netboot serve` answering `netboot bsdp probe`,
insomniacslk's Go BSDP client, and tshark reading our packets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import FAT_EFI_BOOTER, make_set
from netboot_lab.netns import VethPair, bsdp_probe, netboot_in, run_in
from tests.netns import bridge_lab, veth_lab

CLIENT_MAC = "00:16:cb:12:34:56"
MODEL = "MacBookPro11,1"
TIMEOUT = 60
HIGH_SIERRA = 0x01000001
INSTALL = 0x81001000
LAB_ONLY = 0x01000005


def build_catalog(root: Path) -> dict[int, str]:
    """Sets meant to be seen, and sets each rule must hide from our client."""
    make_set(root, "HighSierra", Name="High Sierra", Index=1, IsDefault=True)
    make_set(root, "Install", Name="Install macOS", Index=4096, IsInstall=True, Type="NFS")
    make_set(root, "LabOnly", Name="VethPair only", Index=5, EnabledSystemIdentifiers=["iMac18,3"])
    make_set(root, "NotThisMac", Index=6, DisabledMACAddresses=[CLIENT_MAC])
    make_set(root, "OtherMacs", Index=11, EnabledMACAddresses=["00:16:cb:00:00:01"])
    make_set(root, "Disabled", Index=7, IsEnabled=False)
    make_set(root, "PowerPC", Index=8, Architectures=["ppc"], arch_dir="ppc")
    make_set(root, "Diagnostics", Index=9, Kind=3)
    make_set(root, "Broken", Index=10, Type="FTP")
    (root / "HighSierra.nbi" / "i386" / "booter").write_bytes(FAT_EFI_BOOTER * 100)
    return {HIGH_SIERRA: "HighSierra.nbi", INSTALL: "Install.nbi", LAB_ONLY: "LabOnly.nbi"}


def probe(lab: VethPair, *extra: str, model: str = MODEL) -> tuple[int, dict[str, Any]]:
    return bsdp_probe(lab.client, lab.client_if, "--mac", CLIENT_MAC, "--model", model, *extra)


@dataclass
class Served:
    lab: VethPair
    root: Path
    sets: dict[int, str]
    daemon: Daemon


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("bsdp")
    root = work / "images"
    sets = build_catalog(root)
    config = work / "netboot.toml"
    config.write_text('[nfs]\nmode = "external"\n')  # NFS images offered, no ganesha here
    with veth_lab("10.233.0") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            yield Served(lab, root, sets, daemon)
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def listed_ids(answer: dict[str, Any]) -> list[int]:
    (server,) = answer["servers"]
    return [image["id"] for image in server["images"]]


def test_list_shows_exactly_the_images_for_this_model_and_mac(served: Served) -> None:
    status, answer = probe(served.lab)
    assert status == 0, answer
    assert answer["error"] is None and answer["selected"] is None
    (server,) = answer["servers"]
    assert server["server_id"] == served.lab.server_ip
    assert server["default_image_id"] == HIGH_SIERRA
    assert server["images"] == [
        {"id": HIGH_SIERRA, "index": 1, "kind": 1, "is_install": False, "name": "High Sierra"},
        {"id": INSTALL, "index": 4096, "kind": 1, "is_install": True, "name": "Install macOS"},
    ]


def test_a_model_on_the_allow_list_sees_its_image(served: Served) -> None:
    status, answer = probe(served.lab, model="iMac18,3")
    assert status == 0
    assert listed_ids(answer) == [HIGH_SIERRA, INSTALL, LAB_ONLY]


def test_select_gives_a_booter_tftp_serves_and_a_root_path_to_the_image(
    served: Served, tmp_path: Path
) -> None:
    for image_id in (HIGH_SIERRA, INSTALL):
        status, answer = probe(served.lab, "--select", hex(image_id))
        assert status == 0, answer
        selected = answer["selected"]
        set_path = served.sets[image_id]
        assert selected["image_id"] == image_id
        assert selected["server_id"] == selected["siaddr"] == served.lab.server_ip
        assert selected["boot_file"] == f"{set_path}/i386/booter"
        booter = tmp_path / f"booter-{image_id:x}"
        fetched = netboot_in(
            served.lab.client,
            "tftp",
            "get",
            selected["siaddr"],
            selected["boot_file"],
            "-o",
            str(booter),
        )
        assert fetched.returncode == 0, fetched.stderr
        assert booter.read_bytes() == (served.root / set_path / "i386" / "booter").read_bytes()
        image = served.root / set_path / "NetBoot.dmg"
        root_path = selected["root_path"]
        if image_id == INSTALL:  # NFS: nfs:<server>:<export>:<set>/<image>
            scheme, host, export, inside = root_path.split(":", 3)
            assert (scheme, host) == ("nfs", served.lab.server_ip)
            assert Path(export) / inside == image.resolve()
        else:
            url = urlsplit(root_path)
            assert (url.scheme, url.hostname) == ("http", served.lab.server_ip)
            assert served.root / unquote(url.path).lstrip("/") == image
        assert selected["machine_name"].startswith("NetBoot")


def test_show_packets_dissects_the_exchange_with_the_bsdp_layer(served: Served) -> None:
    done = netboot_in(
        served.lab.client,
        "bsdp",
        "probe",
        "--interface",
        served.lab.client_if,
        "--mac",
        CLIENT_MAC,
        "--timeout",
        "1",
        "--json",
        "--show-packets",
        "--select",
        hex(HIGH_SIERRA),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["selected"]["image_id"] == HIGH_SIERRA  # stdout stays JSON
    shown = done.stderr
    assert "--- sent: BOOTP / DHCP Inform BSDP LIST\n" in shown
    assert f"--- from {served.lab.server_ip}: BOOTP / DHCP Ack BSDP LIST " in shown
    assert "image_name= b'High Sierra'" in shown and "index     = 4096" in shown
    assert f"--- sent: BOOTP / DHCP Inform BSDP SELECT image {HIGH_SIERRA:#010x}" in shown
    assert f"DHCP Ack BSDP SELECT image {HIGH_SIERRA:#010x}" in shown
    assert "machine_name= b'NetBoot" in shown


def test_after_a_select_the_list_names_the_selection_and_priority_drops(served: Served) -> None:
    _, before = probe(served.lab)
    status, _ = probe(served.lab, "--select", hex(INSTALL))
    assert status == 0
    _, after = probe(served.lab)
    (server,) = after["servers"]
    assert server["selected_image_id"] == INSTALL
    # Bound clients count as load; this client's own earlier selections included.
    assert server["priority"] <= before["servers"][0]["priority"]
    assert server["priority"] < 32768


# Unknown; another model's; disabled; PowerPC only; another MAC's. (A FilterOnly image
# may still be selected by ID: Apple does not apply the attribute filter to SELECT.)
@pytest.mark.parametrize(
    "image_id", ["0x01000999", "0x01000005", "0x01000007", "0x01000008", "0x0100000b"]
)
def test_select_of_an_image_this_client_may_not_boot_fails(served: Served, image_id: str) -> None:
    status, answer = probe(served.lab, "--select", image_id, "--server", served.lab.server_ip)
    assert status == 1
    assert answer["selected"] is None
    assert "ACK[FAILED]" in answer["error"]


def _raw_sender(server_ip: str, payloads: list[str]) -> str:
    return f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for payload in {payloads!r}:
    s.sendto(bytes.fromhex(payload), ("{server_ip}", 67))
"""


def _inform(bsdp_hex: str, vendor_class: bytes = b"AAPLBSDPC/i386/MacBookPro11,1") -> str:
    header = (
        "01010600"
        "12345678"
        "0000"
        "0000"
        "0a210002" + "00000000" * 3 + "0016cb123456" + "00" * 10 + "00" * 192 + "63825363"
    )
    options = "350108" + f"3c{len(vendor_class):02x}" + vendor_class.hex()
    return header + options + bsdp_hex + "ff"


def test_bad_input_gets_silence_and_the_service_keeps_answering(served: Served) -> None:
    payloads = [
        _inform("2b05010101020201"),  # option 43 cut short: length says 5, 4 follow... end
        _inform("2b0401010207"),  # sub-option 2 claims 7 bytes inside a 4-byte option
        _inform("2b0701010902020101"),  # message type 9 (no such type)
        _inform("2b03010101"),  # no version sub-option
        "00" * 100,  # not DHCP at all
        _inform("2b0701010102020101")[:-40],  # the datagram itself cut short
    ]
    done = run_in(
        served.lab.client, sys.executable, "-c", _raw_sender(served.lab.server_ip, payloads)
    )
    assert done.returncode == 0, done.stderr
    status, answer = probe(served.lab)
    assert status == 0 and listed_ids(answer) == [HIGH_SIERRA, INSTALL]
    served.daemon.wait_for("malformed DHCP packet from 10.233.0.2")
    assert served.daemon.process.poll() is None


def test_two_servers_on_one_lan_both_answer_with_their_priorities(tmp_path: Path) -> None:
    root = tmp_path / "images"
    build_catalog(root)
    with bridge_lab(3, "10.234.0") as segment:
        first, second, client = segment.hosts
        daemons = []
        for host, priority in ((first, 100), (second, 200)):
            config = tmp_path / f"{host.namespace}.toml"
            config.write_text(f"[bsdp]\npriority = {priority}\n")
            daemon = Daemon(
                ["--config", str(config), "--root", str(root), "--interface", host.interface],
                netns=host.namespace,
            )
            daemons.append(daemon)
        try:
            for daemon in daemons:
                daemon.wait_ready()
            _, answer = bsdp_probe(
                client.namespace, client.interface, "--mac", CLIENT_MAC, "--timeout", "1.5"
            )
            priorities = {s["server_id"]: s["priority"] for s in answer["servers"]}
            assert priorities == {first.address: 100, second.address: 200}
            # The SELECT goes to the higher-priority server; the other drops nothing.
            _, answer = bsdp_probe(
                client.namespace,
                client.interface,
                "--mac",
                CLIENT_MAC,
                "--timeout",
                "1.5",
                "--select",
                hex(HIGH_SIERRA),
            )
            selected = answer["selected"]
            assert selected["server_id"] == second.address
        finally:
            for daemon in daemons:
                assert daemon.stop() == 0


def require_go_client() -> None:
    if shutil.which("go") is None:
        pytest.skip("needs Debian's golang-go")
    if not Path("/usr/share/gocode/src/github.com/insomniacslk/dhcp/dhcpv4/bsdp").is_dir():
        pytest.skip("needs Debian's golang-github-insomniacslk-dhcp-dev")


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_go_client()
    work = tmp_path_factory.mktemp("go")
    binary = work / "bsdp_exchange"
    env = {
        **os.environ,
        "GOPATH": "/usr/share/gocode",
        "GO111MODULE": "off",
        "GOCACHE": str(work / "cache"),
    }
    source = Path(__file__).parent / "interop" / "bsdp_exchange"
    built = subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary


def test_insomniacslk_bsdp_client_lists_and_selects(served: Served, go_client: Path) -> None:
    """A BSDP client written by others runs its whole exchange against us."""
    done = run_in(served.lab.client, str(go_client), served.lab.client_if)
    result = json.loads(done.stdout)
    assert done.returncode == 0, result
    assert result["list_server"] == served.lab.server_ip
    # Its vendor class is AAPLBSDPC/i386/MacMini6,1 and its MAC the interface's own,
    # so the set hidden from CLIENT_MAC only is listed too.
    assert [image["id"] for image in result["images"]] == [HIGH_SIERRA, INSTALL, 0x01000006]
    assert result["select_type"] == "SELECT"
    assert result["selected_image_id"] == HIGH_SIERRA  # it selects the first image
    assert result["boot_file"] == "HighSierra.nbi/i386/booter"
    assert result["siaddr"] == served.lab.server_ip
    assert result["root_path"] == f"http://{served.lab.server_ip}/HighSierra.nbi/NetBoot.dmg"


def test_catalog_changes_reach_the_next_list_without_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_set(root, "First", Index=1)
    config = tmp_path / "netboot.toml"
    config.write_text("[server]\nrescan_interval = 0.3\n")
    with veth_lab("10.235.0") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            assert listed_ids(probe(lab)[1]) == [0x01000001]
            # Sets are built aside and renamed in, so no scan sees one half-written.
            make_set(tmp_path / "staging", "Second", Index=2).rename(root / "Second.nbi")
            daemon.wait_for("NBI set Second.nbi appeared")
            assert listed_ids(probe(lab)[1]) == [0x01000001, 0x01000002]
            make_set(tmp_path / "staging", "Off", Index=3, IsEnabled=False).rename(root / "Off.nbi")
            shutil.rmtree(root / "First.nbi")
            daemon.wait_for("NBI set First.nbi is gone")
            assert listed_ids(probe(lab)[1]) == [0x01000002]
            assert daemon.stop() == 0


# --- a catalog longer than one reply -------------------------------------------------

MANY = 1000
SHOWN_AT_8192 = 517
"""10-character names in one 8192-byte ACK[LIST] (tests/test_bsdp_packing.py, CAPACITY)."""
SHOWN_AT_1500 = 78


def test_a_thousand_sets_leave_in_one_reply_that_each_client_reads_whole(
    tmp_path: Path, go_client: Path
) -> None:
    """Our probe asks 8192 bytes (sub-option 12), the Go client 1500 (option 57 only):
    each gets exactly one ACK[LIST], the first sets in catalog order, and the daemon
    warns of each client's cut once however often it asks."""
    root = tmp_path / "images"
    for number in range(1, MANY + 1):
        make_set(root, f"Img{number:04d}", Name=f"Image {number:04d}", Index=number)
    expected = [0x01000000 + n for n in range(1, MANY + 1)]
    with veth_lab("10.236.0") as lab:
        args = ["--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            for _ in range(2):
                status, answer = probe(lab)
                assert status == 0, answer
                (server,) = answer["servers"]
                assert server["replies"] == 1
                assert [image["id"] for image in server["images"]] == expected[:SHOWN_AT_8192]
            done = run_in(lab.client, str(go_client), lab.client_if)
            result = json.loads(done.stdout)
            assert done.returncode == 0, result
            assert [image["id"] for image in result["images"]] == expected[:SHOWN_AT_1500]
            assert result["selected_image_id"] == expected[0]
            daemon.wait_for(f"truncated to first {SHOWN_AT_1500} of {MANY} images")
            assert daemon.stop() == 0
    cuts = [line for line in daemon.lines if "image list truncated" in line]
    assert len(cuts) == 2, cuts  # one per client: the probe's MAC and the Go client's
    assert f"{CLIENT_MAC} (10.236.0.2): image list truncated to first {SHOWN_AT_8192}" in cuts[0]
