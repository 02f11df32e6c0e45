"""The IPv6 lab: OVMF's own PXEv6 and HTTPv6 boot Debian's kernel through our DHCPv6.

The pure parts (the guest's QEMU switches, the stages read from `netboot.dhcp6`
records and `[addr]:port` clients, the lab's configuration) run anywhere. The
boots share one IPv6-only lab (TCG, like tests/test_lab.py): they need root,
QEMU and OVMF, and with NETBOOT_REQUIRE_ALL=1 a missing piece fails instead of
skipping. docs/protocols/dhcpv6.md §15 says what the firmware does on the way.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from netboot.lab.qemu import ARM64, HTTP_BOOT_ONLY, PXE6_ONLY, guest_command
from netboot.lab.stages import Progress, client_address
from netboot_lab.lab import (
    IPV6_HTTP_BOOT_TIMEOUT,
    LAB6_POOL,
    LAB6_SERVER,
    LAB6_SITE,
    SITE_RA,
    BootLab,
    BootResult,
    LabState,
)
from netboot_lab.netns import ip
from tests.test_dhcp_network import require_tool
from tests.test_lab import BOOT_TIMEOUT, record, require_lab

MAC = "52:54:00:4e:42:01"


def switches(command: list[str]) -> list[str]:
    """The fw_cfg entries a QEMU command line sets."""
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-fw_cfg"]


def test_an_ipv6_uefi_guest_leaves_out_ovmfs_pxev4_only(tmp_path: Path) -> None:
    vars_ = tmp_path / "vars.fd"
    pxe6 = guest_command("uefi", "tcg", "t", MAC, tmp_path / "s", vars_, False, ipv6=True)
    assert switches(pxe6) == [f"name={PXE6_ONLY[0]},string=no"]
    assert switches(guest_command("uefi", "tcg", "t", MAC, tmp_path / "s", vars_, False)) == []


def test_an_ipv6_http_boot_guest_has_only_http_boot_and_keeps_ipv4(tmp_path: Path) -> None:
    """OVMF's IPv4Support=no would skip HTTPv4's ~60 s, but breaks HTTPv6 in Debian's OVMF."""
    vars_ = tmp_path / "vars.fd"
    http = guest_command(
        "uefi", "tcg", "t", MAC, tmp_path / "s", vars_, False, http_boot=True, ipv6=True
    )
    assert switches(http) == [f"name={name},string=no" for name in HTTP_BOOT_ONLY]
    assert not any("IPv4Support" in switch for switch in switches(http))


def test_an_ipv6_arm64_guest_leaves_out_aavmfs_pxev4_only(tmp_path: Path) -> None:
    vars_ = tmp_path / "vars.fd"
    pxe6 = guest_command(ARM64, "tcg", "t", MAC, tmp_path / "s", vars_, ipv6=True)
    assert switches(pxe6) == [f"name={PXE6_ONLY[0]},string=no"]
    http = guest_command(ARM64, "tcg", "t", MAC, tmp_path / "s", vars_, http_boot=True, ipv6=True)
    assert switches(http) == [f"name={name},string=no" for name in HTTP_BOOT_ONLY]


def test_an_ipv6_guest_with_ipxe_needs_no_firmware_switch(tmp_path: Path) -> None:
    bios = guest_command("bios", "tcg", "t", MAC, tmp_path / "s", ipv6=True)
    assert switches(bios) == []
    rom = guest_command("uefi", "tcg", "t", MAC, tmp_path / "s", tmp_path / "v", True, ipv6=True)
    assert switches(rom) == []


@pytest.mark.parametrize(
    ("client", "address"),
    [
        ("10.0.0.5:2000", "10.0.0.5"),
        ("10.0.0.5", "10.0.0.5"),
        ("[fd4e:4254:0:1::1040]:2000", "fd4e:4254:0:1::1040"),
        ("[fd4e:4254:0:1:0:0:0:1040]:2000", "fd4e:4254:0:1::1040"),
        ("fd4e:4254:0:1::1040", "fd4e:4254:0:1::1040"),
        ("[fe80::5054:ff:fe4e:4201%nblab0]:1024", "fe80::5054:ff:fe4e:4201"),
        ("", None),
        ("[fd4e::1", None),
        ("nobody:1", None),
    ],
)
def test_client_address_reads_both_families(client: str, address: str | None) -> None:
    assert client_address(client) == address


def test_progress_follows_an_ipv6_guest_from_its_dhcpv6_lease() -> None:
    """OVMF binds twice with one DUID (its IP stack's address, released, then PXE's):
    transfers from the second are the guest's; another guest's are not."""
    start = 1_800_000_000.0
    other = "52:54:00:aa:aa:aa"
    kernel, initrd = "/Demo.nbi/pc/vmlinuz", "/Demo.nbi/pc/initrd.gz"
    progress = Progress(MAC, start, kernel, (initrd,))
    dhcp6, tftp, http = "netboot.dhcp6", "netboot.tftp", "netboot.http"
    mine, theirs = "[fd4e:4254:0:1::1040]:2000", "[fd4e:4254:0:1::1999]:2000"

    def bound(mac: str, address: str) -> dict[str, object]:
        return {"system": dhcp6, "mac": mac, "outcome": "bound", "address": address,
                "client": "[fe80::5054:ff:fe4e:4201%nblab0]:546"}  # fmt: skip

    def fetched(client: str, path: str, size: int) -> dict[str, object]:
        return {"system": http, "client": client, "path": path, "status": 200, "bytes": size}

    events: list[tuple[float, dict[str, object]]] = [
        (6.0, {"system": dhcp6, "mac": MAC, "outcome": "advertise", "address": "x"}),
        (6.5, bound(MAC, "fd4e:4254:0:1::1bdf")),  # OVMF's IP stack
        (7.0, bound(other, "fd4e:4254:0:1::1999")),
        (14.0, bound(MAC, "fd4e:4254:0:1:0:0:0:1040")),  # PXE's own
        (25.0, {"system": tftp, "message": "sending 'ipxe.efi'", "client": mine}),
        (25.5, {"system": tftp, "message": "sending 'ipxe.efi'", "client": theirs}),
        (26.0, {"system": tftp, "client": mine, "file": "ipxe.efi", "bytes": 900, "seconds": 1}),
        (27.0, {"system": http, "message": f"{MAC} iPXE script for …", "mac": MAC}),
        (30.0, fetched("fd4e:4254:0:1::1999", kernel, 7)),
        (40.0, fetched("fd4e:4254:0:1::1040", kernel, 5000)),
        (41.0, fetched("[fd4e:4254:0:1::1040]:41000", initrd, 300)),
    ]
    progress.feed_text("".join(record(start + at, **fields) + "\n" for at, fields in events))
    assert progress.address == "fd4e:4254:0:1::1040"
    assert progress.ordered() == {
        "dhcp": 6.5, "boot_file": 25.0, "ipxe_script": 27.0, "kernel": 40.0, "initrd": 41.0
    }  # fmt: skip
    assert progress.tftp_bytes == 900
    assert progress.http_bytes == 5300


def test_progress_takes_a_proxy_mode_dhcpv6_answer_as_the_dhcp_stage() -> None:
    start = 1_800_000_000.0
    progress = Progress(MAC, start)
    line = {"system": "netboot.dhcp6", "mac": MAC, "outcome": "boot_info"}
    progress.feed_text(record(start + 3.0, **line) + "\n")
    assert progress.ordered() == {"dhcp": 3.0}
    assert progress.address is None


def test_the_ipv6_lab_serves_dhcpv6_and_router_advertisements_and_no_dhcpv4(
    tmp_path: Path,
) -> None:
    """The daemon's configuration for an IPv6 lab, as ipv6.md's `[dhcp6]` keys say."""
    state = LabState("x", "nblab-x", "nblab0", "10.250.0", str(tmp_path), str(tmp_path), ipv6=True)
    config = tomllib.loads(BootLab(state)._config().read_text())
    assert config["dhcp"]["mode"] == "off"
    assert "answer_router_solicitations" not in config["dhcp"]
    assert config["dhcp6"] == {
        "mode": "full", "pool": LAB6_POOL, "router_advertisements": True
    }  # fmt: skip
    assert LAB6_POOL == "fd4e:4254:0:1::1000-fd4e:4254:0:1::1fff"
    assert config["admin"]["listen"] == f"[{LAB6_SERVER}]:9067"
    assert state.admin_url == "http://[fd4e:4254:0:1::1]:9067"
    assert json.loads(json.dumps(state.__dict__))["ipv6"] is True  # remembered by `lab up`


def test_the_ipv6_proxy_lab_answers_boot_clients_beside_the_sites_dhcpv6(tmp_path: Path) -> None:
    """Proxy mode on the IPv6 lab: the site's dnsmasq leases and advertises the router;
    the daemon's DHCPv6 gives boot options only, with no RA and no pool of its own."""
    state = LabState(
        "x", "nblab-x", "nblab0", "10.250.0", str(tmp_path), str(tmp_path),
        dhcp_mode="proxy", ipv6=True,
    )  # fmt: skip
    config = tomllib.loads(BootLab(state)._config().read_text())
    assert config["dhcp"]["mode"] == "off"
    assert "answer_router_solicitations" not in config["dhcp"]
    assert config["dhcp6"] == {"mode": "proxy"}
    assert state.site_server == LAB6_SITE
    assert ipaddress.IPv6Address(LAB6_SITE) in ipaddress.IPv6Network(f"{LAB6_SERVER}/64", False)
    assert "--enable-ra" in SITE_RA


# -- the boots ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab6() -> Iterator[BootLab]:
    require_lab()
    running = BootLab.up(f"t6{uuid.uuid4().hex[:6]}", ipv6=True)
    try:
        yield running
    finally:
        running.down()


def test_the_ipv6_lab_bridge_has_no_ipv4_address(lab6: BootLab) -> None:
    state = lab6.state
    shown = json.loads(ip("-j", "addr", "show", "dev", state.bridge, netns=state.namespace))
    families = {(entry["family"], entry["local"]) for entry in shown[0]["addr_info"]}
    assert ("inet6", LAB6_SERVER) in families
    assert not [local for family, local in families if family == "inet"], families


def assert_booted_over_ipv6(result: BootResult) -> None:
    assert result.result == "ok", result.as_json()
    for stage in ("dhcp", "boot_file", "marker"):
        assert stage in result.stages, result.as_json()
    assert result.stages["dhcp"] <= result.stages["boot_file"] <= result.stages["marker"]
    assert "NETBOOT-LAB-BOOTED" in Path(result.serial_log).read_text(errors="replace")
    assert_wireshark_reads_our_answers(Path(result.pcap))


OUR_ANSWERS = "(dhcpv6.msgtype == 2 || dhcpv6.msgtype == 7 || icmpv6.type == 134)"
"""What the daemon sent the guest on the way: Advertise, Reply, Router Advertisement."""


def assert_wireshark_reads_our_answers(pcap: Path) -> None:
    """Every Advertise, Reply and RA we sent the firmware, boot options included, is
    dissected by Wireshark without a malformed field or an expert warning."""
    require_tool("tshark", "tshark")
    shown = subprocess.run(
        ["tshark", "-r", str(pcap), "-V", "-Y", OUR_ANSWERS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "Boot File URL" in shown, shown[-3000:]
    assert "Router Advertisement" in shown, shown[-3000:]
    flagged = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-Y",
            f"{OUR_ANSWERS} && (_ws.malformed || _ws.expert.severity >= warning)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert flagged.strip() == "", flagged


def test_ovmfs_own_pxev6_boots_to_the_marker(lab6: BootLab) -> None:
    require_lab("uefi")
    assert_booted_over_ipv6(lab6.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT * 2))


def test_ovmfs_http_boot_over_ipv6_boots_to_the_marker(lab6: BootLab) -> None:
    require_lab("uefi")
    result = lab6.boot("uefi", accel="tcg", timeout=IPV6_HTTP_BOOT_TIMEOUT, http_boot=True)
    assert_booted_over_ipv6(result)
    assert result.bytes["http"] > 1_000_000, result.as_json()


def test_an_arm64_guests_pxev6_boots_the_signed_chain_to_the_marker(lab6: BootLab) -> None:
    """AAVMF's PXEv6 (option 61 arch 11) gets arm64's shim as a `tftp://[...]` URL; shim,
    GRUB (its configuration), the kernel and the initrd all come by TFTP over IPv6."""
    require_lab(ARM64)
    result = lab6.boot(ARM64, accel="tcg", timeout=BOOT_TIMEOUT * 2)
    assert_booted_over_ipv6(result)
    for stage in ("shim", "grub", "grub_config", "kernel", "initrd"):
        assert stage in result.stages, result.as_json()
    assert result.bytes["tftp"] > 25_000_000, result.as_json()


def test_an_arm64_guests_http_boot_over_ipv6_runs_our_http_grub(lab6: BootLab) -> None:
    """AAVMF's HTTPv6 boot gets our HTTP GRUB by an IPv6 URL; Debian's efinet reads the
    device path's IPv6 node, so GRUB reads the rest by HTTP over IPv6 as well."""
    require_lab(ARM64, http_boot=True)
    result = lab6.boot(ARM64, accel="tcg", timeout=IPV6_HTTP_BOOT_TIMEOUT, http_boot=True)
    assert_booted_over_ipv6(result)
    for stage in ("grub", "grub_config", "kernel", "initrd"):
        assert stage in result.stages, result.as_json()
    assert result.bytes["tftp"] == 0 and result.bytes["http"] > 25_000_000, result.as_json()


def test_qemus_bios_ipxe_rom_boots_over_ipv6_to_the_marker(lab6: BootLab) -> None:
    """The ROM's iPXE asks DHCPv6 too (user class iPXE, a DUID-UUID of zeros: the MAC comes
    from its link-local address) and boots its URL once its DHCPv4 gives up (~18 s)."""
    require_lab("bios")
    result = lab6.boot("bios", accel="tcg", timeout=BOOT_TIMEOUT)
    assert result.result == "ok", result.as_json()
    for stage in ("dhcp", "ipxe_script", "kernel", "initrd", "marker"):
        assert stage in result.stages, result.as_json()


# -- proxy mode: beside a site's DHCPv6 server (docs/protocols/dhcpv6.md §17) -----------------


@pytest.fixture(scope="module")
def proxy6() -> Iterator[BootLab]:
    """The IPv6 lab with a site dnsmasq leasing and advertising, the daemon in proxy mode."""
    require_lab()
    running = BootLab.up(f"p6{uuid.uuid4().hex[:6]}", ipv6=True, dhcp_mode="proxy")
    try:
        yield running
    finally:
        running.down()


def proxy_answers(lab: BootLab) -> list[tuple[str, str]]:
    """The daemon's DHCPv6 (outcome, client) records so far, the ignored ones left out."""
    records = [json.loads(line) for line in lab.daemon_log.read_text().splitlines() if line]
    return [
        (str(r["outcome"]), str(r["client"]))
        for r in records
        if r.get("system") == "netboot.dhcp6" and r.get("outcome") not in (None, "ignored")
    ]


def test_ovmfs_pxev6_boots_from_our_proxy_offer_and_port_4011(proxy6: BootLab) -> None:
    """EDK2 takes the site's address and our boot file: our Advertise without IA_NA, then
    its boot-service Request on port 4011; the chained iPXE gets the site's option 59."""
    require_lab("uefi")
    result = proxy6.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT * 2)
    assert result.result == "ok", result.as_json()
    for stage in ("dhcp", "ipxe_script", "marker"):
        assert stage in result.stages, result.as_json()
    answers = proxy_answers(proxy6)
    assert {outcome for outcome, _ in answers} == {"boot_info"}, "never an address"
    assert any(client.endswith("]:4011") for _, client in answers), answers


def test_ovmfs_http_boot_over_ipv6_boots_from_our_proxy_offer(proxy6: BootLab) -> None:
    require_lab("uefi")
    result = proxy6.boot("uefi", accel="tcg", timeout=IPV6_HTTP_BOOT_TIMEOUT, http_boot=True)
    assert result.result == "ok", result.as_json()
    for stage in ("dhcp", "boot_file", "ipxe_script", "marker"):
        assert stage in result.stages, result.as_json()
    assert result.bytes["http"] > 1_000_000, result.as_json()


def test_qemus_bios_ipxe_rom_boots_beside_the_site_with_its_option_59(proxy6: BootLab) -> None:
    """iPXE takes no proxy offer (docs/protocols/dhcpv6.md §17): the site's DHCPv6 names
    our script for it, and the script, kernel and initrd come from us."""
    require_lab("bios")
    result = proxy6.boot("bios", accel="tcg", timeout=BOOT_TIMEOUT)
    assert result.result == "ok", result.as_json()
    for stage in ("ipxe_script", "kernel", "initrd", "marker"):
        assert stage in result.stages, result.as_json()
