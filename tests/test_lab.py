"""The QEMU lab: real BIOS and UEFI firmware boot Debian's kernel through our daemon.

Each test powers on QEMU guests (TCG) in a lab namespace of its own, against
`netboot serve` in full DHCP mode with only our DHCP, TFTP and HTTP, and
waits for the marker the demo initrd prints on the serial console. They need
root, QEMU, iPXE's QEMU ROMs and OVMF; with NETBOOT_REQUIRE_ALL=1 a missing
piece fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netboot.cli.lab import ARTIFACTS_ROOT
from netboot.grub.arrival import GRUB_SILENT
from netboot.lab.qemu import (
    AccelChoice,
    KvmProbe,
    choose_accel,
    fall_back_now,
    guest_command,
    missing_pieces,
    probe_command,
)
from netboot.lab.stages import STAGES, Progress, console_failure
from netboot.settings import chain_file
from netboot_lab.lab import DEFAULT_SUBNET, BootLab, BootResult, running_lab
from netboot_lab.netns import LabError
from netboot_lab.process import pcap_fields

BOOT_TIMEOUT = 120.0


def require_lab(firmware: str = "uefi", secure_boot: bool = False, http_boot: bool = False) -> None:
    """Skip (a failure under NETBOOT_REQUIRE_ALL) unless this machine can boot such guests;
    signed-chain files count where the daemon finds them (installed, or fetched)."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    missing = missing_pieces(
        firmware,
        secure_boot,
        lambda path: chain_file(path, Path.is_file).is_file(),
        http_boot=http_boot,
    )
    if missing:
        pytest.skip("missing: " + ", ".join(missing))


@pytest.fixture(scope="module")
def lab() -> Iterator[BootLab]:
    require_lab()
    running = BootLab.up(f"t{uuid.uuid4().hex[:6]}", subnet="10.251.0")
    try:
        yield running
    finally:
        running.down()


def assert_booted(result: BootResult) -> None:
    assert result.result == "ok", result.as_json()
    assert result.error is None
    stages = result.stages
    for stage in ("dhcp", "ipxe_script", "kernel", "initrd", "marker"):
        assert stage in stages, result.as_json()
    assert stages["dhcp"] <= stages["ipxe_script"] <= stages["kernel"] <= stages["marker"]
    assert list(stages) == [s for s in STAGES if s in stages]  # in boot order
    assert result.bytes["http"] > 10_000_000  # Debian's kernel and the initrd, over HTTP
    assert "NETBOOT-LAB-BOOTED" in Path(result.serial_log).read_text(errors="replace")
    assert "initrd=initrd.gz" in Path(result.serial_log).read_text(errors="replace")


def test_a_bios_guest_boots_to_the_marker(lab: BootLab) -> None:
    require_lab("bios")
    assert_booted(lab.boot("bios", image="Demo", accel="tcg", timeout=BOOT_TIMEOUT))


def test_a_uefi_guest_with_qemus_ipxe_rom_boots_to_the_marker(lab: BootLab) -> None:
    require_lab("uefi")
    assert_booted(lab.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT, ipxe_rom=True))


def assert_booted_through_the_signed_chain(result: BootResult) -> None:
    """shim, then GRUB with its configuration from us, then the kernel and initrd by TFTP."""
    assert result.result == "ok", result.as_json()
    stages = result.stages
    for stage in ("dhcp", "boot_file", "shim", "grub", "grub_config", "kernel", "initrd", "marker"):
        assert stage in stages, result.as_json()
    assert stages["shim"] <= stages["grub"] <= stages["grub_config"] <= stages["kernel"]
    assert "ipxe_script" not in stages, result.as_json()
    assert result.bytes["tftp"] > 10_000_000  # shim, GRUB, Debian's kernel and the initrd
    serial = Path(result.serial_log).read_text(errors="replace")
    assert "NETBOOT-LAB-BOOTED" in serial
    assert "PXE-E" not in serial, serial[-2000:]


def test_a_uefi_guest_without_an_option_rom_boots_with_the_firmwares_own_pxe(lab: BootLab) -> None:
    """Real PCs carry no iPXE: EDK2's own PXE fetches the signed shim (the default for x64
    UEFI, with Secure Boot off too), shim our GRUB, GRUB its configuration and the kernel."""
    require_lab("uefi")
    result = lab.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT)  # no option ROM by default
    assert_booted_through_the_signed_chain(result)
    assert result.secure_boot is False, result.as_json()


def test_debians_linked_ipxe_efi_boots_through_the_firmwares_own_pxe(lab: BootLab) -> None:
    """The iPXE path without an option ROM: EDK2's PXE fetches Debian's ipxe.efi, a link
    (/usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi) that the path rule once refused."""
    require_lab("uefi")
    result = lab.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT, loader="boot_file")
    assert_booted(result)
    assert result.stages["boot_file"] <= result.stages["ipxe_script"], result.as_json()
    assert result.bytes["tftp"] > 100_000  # ipxe.efi, sent by us over TFTP
    serial = Path(result.serial_log).read_text(errors="replace")
    assert "PXE-E" not in serial, serial[-2000:]


def test_a_uefi_guest_boots_with_the_firmwares_own_http_boot(lab: BootLab) -> None:
    """UEFI HTTP boot, no option ROM, OVMF's PXE entries switched off: EDK2's HttpBootDxe
    asks DHCP as `HTTPClient`, gets our URL of Debian's (linked) ipxe.efi and fetches it
    by HTTP; iPXE then fetches its script, the kernel and the initrd. No TFTP at all."""
    require_lab("uefi")
    result = lab.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT, http_boot=True)
    assert_booted(result)
    assert result.stages["boot_file"] <= result.stages["ipxe_script"], result.as_json()
    assert result.bytes["tftp"] == 0, result.as_json()
    rows = pcap_fields(
        Path(result.pcap),
        "dhcp.option.dhcp", "dhcp.option.vendor_class_id", "dhcp.file", "http.request.uri",
        "tftp.opcode",
        display_filter="dhcp || http.request || tftp",
    )  # fmt: skip
    firmware_discover = next(row for row in rows if row[0] == "1")
    assert firmware_discover[1].startswith("HTTPClient:Arch:00016"), rows[:4]
    offer = next(row for row in rows if row[0] == "2")
    assert offer[1:3] == ["HTTPClient", f"http://{lab.state.server}/boot/ipxe.efi"], rows[:4]
    assert "/boot/ipxe.efi" in [row[3] for row in rows]
    assert not any(row[4] for row in rows), "TFTP in an HTTP boot"
    serial = Path(result.serial_log).read_text(errors="replace")
    assert "Start HTTP Boot over IPv4" in serial
    assert "PXE" not in serial.split("Start HTTP Boot")[0], serial[:2000]  # no PXE tried first


def test_a_secure_boot_guest_boots_the_signed_chain_to_the_marker(lab: BootLab) -> None:
    """OVMF with Microsoft's keys enforced: shim (Microsoft-signed) -> GRUB (Debian-signed)
    -> Debian's signed kernel, every file from our daemon; the kernel saw Secure Boot on."""
    require_lab("uefi", secure_boot=True)
    result = lab.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT, secure_boot=True)
    assert_booted_through_the_signed_chain(result)
    assert result.secure_boot is True, result.as_json()
    assert "Secure boot enabled" in Path(result.serial_log).read_text(errors="replace")


def unsigned_copy_of_the_demo(lab: BootLab) -> str:
    """A second set, `Unsigned.nbi`: the demo with its kernel's signature stripped by
    sbsigntool's `sbattach --remove`; returns its image name."""
    if shutil.which("sbattach") is None:
        pytest.skip("missing: sbattach (Debian's sbsigntool)")
    root = Path(lab.state.root)
    target = root / "Unsigned.nbi"
    if not target.exists():
        staging = root.parent / "Unsigned.nbi.staging"
        shutil.copytree(root / "Demo.nbi", staging)
        plist_path = staging / "NBImageInfo.plist"
        info = plistlib.loads(plist_path.read_bytes())
        info.update(Name="unsigned kernel", Index=2, IsDefault=False)
        plist_path.write_bytes(plistlib.dumps(info))
        kernel = staging / info["PCKernel"]
        subprocess.run(["sbattach", "--remove", str(kernel)], check=True, capture_output=True)
        staging.rename(target)
    return "Unsigned"


def test_secure_boot_refuses_an_unsigned_kernel_and_says_why(lab: BootLab) -> None:
    """The same set boots with Secure Boot off and fails with it on, with the reason the
    console gives, not a timeout."""
    require_lab("uefi")
    image = unsigned_copy_of_the_demo(lab)
    refused = lab.boot("uefi", image, accel="tcg", timeout=BOOT_TIMEOUT, secure_boot=True)
    assert refused.result == "fail", refused.as_json()
    assert refused.error is not None and "bad shim signature" in refused.error, refused.as_json()
    assert "grub_config" in refused.stages and "marker" not in refused.stages
    booted = lab.boot("uefi", image, accel="tcg", timeout=BOOT_TIMEOUT)
    assert_booted_through_the_signed_chain(booted)
    assert booted.secure_boot is False


def test_a_second_guest_boots_while_the_first_is_downloading(lab: BootLab) -> None:
    results: dict[str, BootResult] = {}
    log_size = lab.daemon_log.stat().st_size

    def boot(label: str, firmware: str) -> None:
        results[label] = lab.boot(firmware, accel="tcg", timeout=BOOT_TIMEOUT, ipxe_rom=True)

    first = threading.Thread(target=boot, args=("first", "uefi"))
    first.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # the first guest has its script: downloads follow
        with lab.daemon_log.open() as log:
            log.seek(log_size)
            if "iPXE script for" in log.read():
                break
        time.sleep(0.05)
    second = threading.Thread(target=boot, args=("second", "bios"))
    second.start()
    first.join(BOOT_TIMEOUT + 30)
    second.join(BOOT_TIMEOUT + 30)
    assert_booted(results["first"])
    assert_booted(results["second"])
    assert Path(results["first"].serial_log).parent != Path(results["second"].serial_log).parent


def test_the_lab_refuses_a_name_that_is_taken(lab: BootLab) -> None:
    with pytest.raises(LabError, match="exists"):
        BootLab.up(lab.state.name, subnet="10.251.1")


def test_lab_boot_prints_the_json_summary_keeps_its_files_and_cleans_up() -> None:
    """No --accel: `auto` must pick an accelerator the guest boots under on this machine,
    and the files the JSON names must outlive the lab that was set up for the run."""
    require_lab("bios")
    name = f"c{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "lab", "boot", "--name", name, "--firmware", "bios",
         "--timeout", "120", "--json"],
        capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == {
        "firmware", "accel", "result", "stages", "bytes", "serial_log", "pcap", "error",
        "secure_boot", "loss", "delay_ms",
    }  # fmt: skip
    assert summary["firmware"] == "bios"
    assert summary["secure_boot"] is False  # read back from the guest: a BIOS has none
    assert summary["accel"] in ("kvm", "tcg")
    assert "lab: accelerator: " in done.stderr  # which one, and why
    assert summary["result"] == "ok"
    assert summary["error"] is None
    assert set(summary["bytes"]) == {"tftp", "http"}
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nblab-{name}" not in namespaces
    serial, pcap = Path(summary["serial_log"]), Path(summary["pcap"])
    try:
        assert serial.parent == pcap.parent
        assert serial.parent.parent == ARTIFACTS_ROOT
        assert "NETBOOT-LAB-BOOTED" in serial.read_text(errors="replace")
        assert pcap.stat().st_size > 24  # more than a pcap header: the boot's packets
        assert (serial.parent / "daemon.log").stat().st_size > 0
    finally:
        shutil.rmtree(serial.parent, ignore_errors=True)


def test_a_secure_boot_guest_boots_beside_a_sites_dhcp_server(tmp_path: Path) -> None:
    """Proxy mode, through the command line: dnsmasq as the site's DHCP server leases the
    address and names us as next-server, and nothing else of a boot. EDK2 takes shim from
    our proxy offer; GRUB reads only the site's ACK (docs/protocols/pxe.md §8.3) and finds
    us there. The capture shows that rule: every file, GRUB's configuration included, came
    from us, and the site's answers carry our address as siaddr and no boot file."""
    require_lab("uefi", secure_boot=True)
    name = f"p{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "lab", "boot", "--name", name, "--firmware", "uefi",
         "--secure-boot", "--dhcp-mode", "proxy", "--accel", "tcg", "--timeout", "240",
         "--json", "--artifacts", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["secure_boot"] is True
    stages = summary["stages"]
    assert list(stages) == [
        "dhcp", "boot_file", "shim", "grub", "grub_config", "kernel", "initrd", "marker"
    ]  # fmt: skip
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nblab-{name}" not in namespaces  # nor its -site namespace

    ours, site = f"{DEFAULT_SUBNET}.1", f"{DEFAULT_SUBNET}.2"
    rows = pcap_fields(
        Path(summary["pcap"]),
        "ip.src", "ip.dst", "dhcp.option.dhcp", "dhcp.ip.server", "dhcp.file", "tftp.source_file",
        display_filter="dhcp || tftp.opcode == 1",
    )  # fmt: skip
    site_answers = [row for row in rows if row[0] == site]
    assert {row[2] for row in site_answers} == {"2", "5"}  # its OFFER and ACK
    assert all(row[3] == ours and row[4] == "" for row in site_answers), site_answers
    our_answers = [row for row in rows if row[0] == ours and row[2]]
    assert our_answers and all(row[4] == "sb/x64/shimx64.efi" for row in our_answers)
    requests = [(row[1], row[5]) for row in rows if row[5]]
    assert {server for server, _ in requests} == {ours}, requests
    asked = [file for _, file in requests]
    for file in ("sb/x64/grubx64.efi", "/grub/grub.cfg", "/Demo.nbi/pc/vmlinuz"):
        assert file in asked, asked


def test_beside_a_site_that_names_no_next_server_grub_goes_elsewhere_and_the_daemon_says_so(
    tmp_path: Path,
) -> None:
    """The same proxy lab, but the site's dnsmasq was not told about us (it puts its own
    address in siaddr): shim still comes from us, GRUB asks the site's server, and the
    daemon's warning ends the run with the cause long before the timeout."""
    require_lab("uefi")
    with running_lab(f"q{uuid.uuid4().hex[:6]}", dhcp_mode="proxy", site_next_server=False) as lab:
        result = lab.boot("uefi", accel="tcg", timeout=BOOT_TIMEOUT, artifacts=tmp_path)
        assert result.result == "fail", result.as_json()
        assert result.error is not None and "next-server is not ours" in result.error
        assert "grub" in result.stages and "grub_config" not in result.stages
        log = lab.daemon_log.read_text()
    assert "took GRUB from us and asked us for nothing since" in log
    site, ours = f"{lab.state.subnet}.2", lab.state.server
    requests = pcap_fields(
        Path(result.pcap), "ip.dst", "tftp.source_file", display_filter="tftp.opcode == 1"
    )
    assert (ours, "sb/x64/grubx64.efi") in [tuple(row) for row in requests]
    assert (site, "/grub/x86_64-efi/command.lst") in [tuple(row) for row in requests]


def test_lab_boot_refuses_a_lab_that_runs_another_dhcp_mode(lab: BootLab) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "lab", "boot", "--name", lab.state.name,
         "--firmware", "uefi", "--dhcp-mode", "proxy", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "is up in full mode, not proxy" in done.stderr
    assert done.stdout == ""  # no guest was booted in the wrong mode


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_a_guest_boots_to_the_marker_over_a_link_losing_5_percent_each_way(
    lab: BootLab, firmware: str
) -> None:
    """#17: BIOS through iPXE (HTTP), UEFI through EDK2, shim and GRUB (TFTP lock step, the
    slowest path), each with 5 % of the lab's packets dropped each way during the boot."""
    require_lab(firmware)
    result = lab.boot(firmware, accel="tcg", timeout=2 * BOOT_TIMEOUT, loss=5)
    assert result.result == "ok", result.as_json()
    assert result.loss == 5
    assert "marker" in result.stages
    if firmware == "uefi":
        assert "grub_config" in result.stages  # the signed chain, by TFTP
    namespace = lab.state.namespace
    rules = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "list", "ruleset"], capture_output=True, text=True
    )
    assert "netboot_loss" not in rules.stdout  # the loss went with the boot


def test_a_guest_boots_with_its_frames_held_up_to_20_ms_each_way(lab: BootLab) -> None:
    """#17's delay: QEMU's filter-buffer releases the guest's frames every 20 ms, so the
    guest answers no TCP segment of ours, as the capture on its tap sees it, in under
    one release interval (a reply waits for the release after the one that let the
    segment in); without the filter a TCG guest acknowledges within a millisecond or two."""
    require_lab("bios")
    result = lab.boot("bios", accel="tcg", timeout=2 * BOOT_TIMEOUT, delay_ms=20)
    assert result.result == "ok", result.as_json()
    assert result.delay_ms == 20
    rows = pcap_fields(
        Path(result.pcap),
        "tcp.analysis.ack_rtt",
        display_filter="tcp.analysis.ack_rtt && eth.src[0:5] == 52:54:00:4e:42",
    )
    guest_acks = [float(row[0]) for row in rows]
    assert len(guest_acks) > 100  # the kernel and initrd, by HTTP
    assert min(guest_acks) >= 0.010, sorted(guest_acks)[:5]


def test_a_guest_that_never_reaches_the_marker_fails_with_a_reason(lab: BootLab) -> None:
    result = lab.boot("bios", image="no such image", accel="tcg", timeout=25)
    assert result.result == "fail"
    assert result.error is not None
    assert "ipxe_script" in result.stages  # it got as far as the script that says why
    assert "kernel" not in result.stages
    assert "marker" not in result.stages


# -- pure parts --------------------------------------------------------------------------


def test_guest_command_boots_bios_from_the_nic_and_uefi_from_ovmf(tmp_path: Path) -> None:
    bios = guest_command("bios", "tcg", "tap1", "52:54:00:00:00:01", tmp_path / "s.log")
    assert bios[bios.index("-boot") : bios.index("-boot") + 2] == ["-boot", "n"]
    assert "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,bootindex=1" in bios
    uefi = guest_command(
        "uefi", "kvm", "tap1", "52:54:00:00:00:01", tmp_path / "s.log", tmp_path / "vars.fd"
    )
    assert any("OVMF_CODE" in word for word in uefi)
    assert f"if=pflash,format=raw,unit=1,file={tmp_path / 'vars.fd'}" in uefi
    with pytest.raises(ValueError, match="OVMF"):
        guest_command("uefi", "tcg", "tap1", "52:54:00:00:00:01", tmp_path / "s.log")
    bare = guest_command(
        "uefi", "tcg", "tap1", "52:54:00:00:00:01", tmp_path / "s.log", tmp_path / "v.fd", False
    )
    assert "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,bootindex=1,romfile=" in bare
    with pytest.raises(ValueError, match="option ROM"):
        guest_command("bios", "tcg", "tap1", "52:54:00:00:00:01", tmp_path / "s.log", None, False)


def test_guest_command_delays_frames_with_qemus_filter_buffer(tmp_path: Path) -> None:
    plain = guest_command("bios", "tcg", "tap1", "52:54:00:00:00:01", tmp_path / "s.log")
    assert not any("filter-buffer" in word for word in plain)
    delayed = guest_command(
        "bios", "tcg", "tap1", "52:54:00:00:00:01", tmp_path / "s.log", delay_ms=20
    )
    assert delayed[-2:] == [
        "-object",
        "filter-buffer,id=delay0,netdev=net0,queue=all,interval=20000",
    ]
    with pytest.raises(ValueError, match="milliseconds"):
        guest_command("bios", "tcg", "tap1", "52:54:00:00:00:01", tmp_path / "s.log", delay_ms=-1)


def test_guest_command_for_secure_boot_enforces_it_with_microsofts_keys(tmp_path: Path) -> None:
    mac, serial, uefi_vars = "52:54:00:00:00:01", tmp_path / "s.log", tmp_path / "v.fd"
    command = guest_command("uefi", "tcg", "tap1", mac, serial, uefi_vars, False, True)
    assert command[command.index("-m") + 1] == "1024"
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.ms.fd" in (
        command
    )
    assert f"if=pflash,format=raw,unit=1,file={uefi_vars}" in command
    assert command[command.index("-machine") + 1] == "q35,smm=on"
    globals_ = [command[i + 1] for i, word in enumerate(command) if word == "-global"]
    assert globals_ == ["driver=cfi.pflash01,property=secure,value=on", "ICH9-LPC.disable_s3=1"]
    assert f"virtio-net-pci,netdev=net0,mac={mac},bootindex=1,romfile=" in command
    with pytest.raises(ValueError, match="Secure Boot"):
        guest_command("uefi", "tcg", "tap1", mac, serial, uefi_vars, True, True)


def test_guest_command_for_http_boot_switches_the_firmwares_pxe_off(tmp_path: Path) -> None:
    mac, serial, uefi_vars = "52:54:00:00:00:01", tmp_path / "s.log", tmp_path / "v.fd"
    command = guest_command("uefi", "tcg", "tap1", mac, serial, uefi_vars, False, http_boot=True)
    switches = [command[i + 1] for i, word in enumerate(command) if word == "-fw_cfg"]
    assert switches == [
        "name=opt/org.tianocore/IPv4PXESupport,string=no",
        "name=opt/org.tianocore/IPv6PXESupport,string=no",
    ]
    assert f"virtio-net-pci,netdev=net0,mac={mac},bootindex=1,romfile=" in command
    for firmware, rom in (("uefi", True), ("bios", True)):
        with pytest.raises(ValueError, match="HTTP boot"):
            guest_command(firmware, "tcg", "tap1", mac, serial, uefi_vars, rom, http_boot=True)


def record(at: float, **fields: object) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
    millis = f"{at % 1:.3f}"[1:]
    return json.dumps({"time": f"{stamp}{millis}Z", **fields})


def test_progress_reads_the_stages_of_one_guest_from_the_daemon_log() -> None:
    start = 1_800_000_000.0
    mine, other = "52:54:00:4e:42:01", "52:54:00:aa:aa:aa"
    kernel, initrd = "/Demo.nbi/pc/vmlinuz", "/Demo.nbi/pc/initrd.gz"
    progress = Progress(mine, start, kernel, (initrd,))
    pxe, tftp, http = "netboot.pxe", "netboot.tftp", "netboot.http"
    events: list[tuple[float, dict[str, object]]] = [
        (1.0, {"system": pxe, "mac": other, "outcome": "ack", "address": "10.0.0.9"}),
        (1.5, {"system": pxe, "mac": mine, "outcome": "ignored", "address": "10.0.0.7"}),
        (2.0, {"system": pxe, "mac": mine, "outcome": "ack", "address": "10.0.0.5"}),
        (2.1, {"system": tftp, "message": "sending 'ipxe.efi'", "client": "10.0.0.5:2000"}),
        (2.5, {"system": tftp, "client": "10.0.0.5:2000", "bytes": 1000, "seconds": 0.1}),
        (3.0, {"system": http, "message": f"{mine} iPXE script for …", "mac": mine}),
        (4.0, {"system": http, "client": "10.0.0.5", "path": kernel, "status": 200, "bytes": 5000}),
        (4.5, {"system": http, "client": "10.0.0.9", "path": kernel, "status": 200, "bytes": 7}),
        (5.0, {"system": http, "client": "10.0.0.5", "path": initrd, "status": 200, "bytes": 300}),
    ]
    text = "".join(record(start + offset, **fields) + "\n" for offset, fields in events)
    progress.feed_text(text[:100])  # a line cut in two arrives in two reads
    progress.feed_text(text[100:])
    assert progress.ordered() == {
        "dhcp": 2.0, "boot_file": 2.1, "ipxe_script": 3.0, "kernel": 4.0, "initrd": 5.0
    }  # fmt: skip
    assert progress.tftp_bytes == 1000
    assert progress.http_bytes == 5300


def test_progress_reads_the_signed_chains_stages_from_the_tftp_log() -> None:
    start = 1_800_000_000.0
    mine = "52:54:00:4e:42:01"
    kernel, initrd = "/Demo.nbi/pc/vmlinuz", "/Demo.nbi/pc/initrd.gz"
    progress = Progress(mine, start, kernel, (initrd,))
    pxe, tftp, client = "netboot.pxe", "netboot.tftp", "10.0.0.5:25300"
    grub = f"{mine} GRUB configuration for 10.0.0.5: boot 'Demo'"

    def sent(name: str, size: int) -> dict[str, object]:
        return {"system": tftp, "file": name, "client": client, "bytes": size, "seconds": 1.0}

    def sending(name: str) -> dict[str, object]:
        return {"system": tftp, "message": f"sending {name!r}", "file": name, "client": client}

    events: list[tuple[float, dict[str, object]]] = [
        (1.0, {"system": pxe, "mac": mine, "outcome": "ack", "address": "10.0.0.5"}),
        (1.5, sending("sb/x64/shimx64.efi")),
        (1.6, sending("sb/x64/shimx64.efi")),  # after EDK2's size probe: still 1.5
        (2.0, sending("sb/x64/revocations_sbat.efi")),
        (2.5, sending("sb/x64/grubx64.efi")),
        (3.0, {"system": tftp, "message": grub, "mac": mine}),
        (3.1, {"system": tftp, "message": "sending '/Demo.nbi/pc/vmlinuz'", "client": client}),
        (9.0, sent("/Demo.nbi/pc/vmlinuz", 9000)),
        (9.5, sent("/Demo.nbi/pc/initrd.gz", 100)),
    ]
    text = "".join(record(start + offset, **fields) + "\n" for offset, fields in events)
    progress.feed_text(text)
    assert progress.ordered() == {
        "dhcp": 1.0, "boot_file": 1.5, "shim": 1.5, "grub": 2.5, "grub_config": 3.0,
        "kernel": 9.0, "initrd": 9.5,
    }  # fmt: skip
    assert progress.tftp_bytes == 9100


def test_progress_reads_an_http_grubs_stages_from_the_http_log() -> None:
    """UEFI HTTP boot of our HTTP GRUB (arm64): the boot file is GRUB itself, and its
    configuration, kernel and initrd come by HTTP."""
    start = 1_800_000_000.0
    mine = "52:54:00:4e:42:01"
    kernel, initrd = "/Demo.nbi/pc/efi-arm64/vmlinuz", "/Demo.nbi/pc/efi-arm64/initrd.gz"
    progress = Progress(mine, start, kernel, (initrd,))
    pxe, http, client = "netboot.pxe", "netboot.http", "10.0.0.5"
    grub = f"{mine} GRUB configuration for 10.0.0.5: boot 'Demo'"

    def got(path: str, size: int, status: int = 200) -> dict[str, object]:
        return {"system": http, "client": client, "path": path, "status": status, "bytes": size}

    events: list[tuple[float, dict[str, object]]] = [
        (1.0, {"system": pxe, "mac": mine, "outcome": "ack", "address": "10.0.0.5"}),
        (1.5, got("/grub/http/grubaa64.efi", 800_000)),
        (2.0, got("/grub/arm64-efi/command.lst", 0, 404)),
        (2.5, {"system": http, "message": grub, "mac": mine, "client": client}),
        (7.0, got(kernel, 27_000_000)),
        (7.5, got(initrd, 1_000_000)),
    ]
    progress.feed_text("".join(record(start + at, **fields) + "\n" for at, fields in events))
    assert progress.ordered() == {
        "dhcp": 1.0, "boot_file": 1.5, "grub": 1.5, "grub_config": 2.5, "kernel": 7.0,
        "initrd": 7.5,
    }  # fmt: skip
    assert progress.http_bytes == 28_800_000


def test_progress_takes_the_daemons_word_that_grub_went_elsewhere() -> None:
    start = 1_800_000_000.0
    mine = "52:54:00:4e:42:01"
    progress = Progress(mine, start)
    line = {"system": "netboot.tftp", "client": "10.0.0.5", "mac": mine, "outcome": GRUB_SILENT}
    progress.feed_text(record(start + 40.0, **line) + "\n")
    assert progress.failure is not None and "next-server is not ours" in progress.failure


@pytest.mark.parametrize(
    ("mine_at", "other_at", "address"),
    [
        ("10.0.0.5:{}", "10.0.0.6:{}", "10.0.0.5"),
        ("[fd4e:4254:0:1::1005]:{}", "[fd4e:4254:0:1::1006]:{}", "fd4e:4254:0:1::1005"),
        ("[fe80::5054:ff:fe4e:4201%nblab0]:{}", "[fe80::5054:ff:fe4e:4202%nblab0]:{}",
         "fe80::5054:ff:fe4e:4201"),  # the zone dropped, as leases carry none
    ],
    ids=["ipv4", "ipv6", "ipv6-link-local"],
)  # fmt: skip
def test_progress_learns_a_proxy_mode_guests_address_from_its_first_transfer(
    mine_at: str, other_at: str, address: str
) -> None:
    """In proxy mode the site's server leases the address: our log names it first on the
    TFTP transfer that also names the MAC; later records carry only the address. An
    IPv6 client is `[addr]:port` (docs/protocols/dhcpv6.md §16)."""
    start = 1_800_000_000.0
    mine, other = "52:54:00:4e:42:01", "52:54:00:4e:42:02"
    kernel = "/Demo.nbi/pc/vmlinuz"
    progress = Progress(mine, start, kernel)
    pxe, tftp = "netboot.pxe", "netboot.tftp"

    def sending(mac: str, client: str) -> dict[str, object]:
        return {"system": tftp, "message": "sending 'sb/x64/shimx64.efi'", "client": client,
                "mac": mac}  # fmt: skip

    def sent(name: str, client: str) -> dict[str, object]:
        return {"system": tftp, "file": name, "client": client, "bytes": 10, "seconds": 1.0}

    events: list[tuple[float, dict[str, object]]] = [
        (1.0, {"system": pxe, "mac": mine, "outcome": "proxy_offer", "address": mine}),
        (2.0, sending(other, other_at.format(1082))),
        (2.5, sending(mine, mine_at.format(1082))),
        (3.0, sent("sb/x64/shimx64.efi", mine_at.format(1082))),
        (8.0, sent(kernel, other_at.format(25300))),
        (9.0, sent(kernel, mine_at.format(25300))),
    ]
    progress.feed_text("".join(record(start + at, **fields) + "\n" for at, fields in events))
    assert progress.address == address
    assert progress.ordered() == {"dhcp": 1.0, "boot_file": 2.5, "kernel": 9.0}
    assert progress.tftp_bytes == 20


def test_auto_takes_kvm_only_where_the_firmware_booted_under_it() -> None:
    asked: list[str] = []

    def probe(seen: KvmProbe) -> Callable[[], KvmProbe]:
        def run() -> KvmProbe:
            asked.append(seen.value)
            return seen

        return run

    booted = choose_accel("auto", probe(KvmProbe.BOOTS))
    assert (booted.accel, booted.fall_back) == ("kvm", True)
    silent = choose_accel("auto", probe(KvmProbe.SILENT))
    assert (silent.accel, silent.fall_back) == ("tcg", False)
    assert "KVM unusable" in silent.reason
    absent = choose_accel("auto", probe(KvmProbe.UNAVAILABLE))
    assert (absent.accel, absent.fall_back) == ("tcg", False)
    assert asked == ["boots", "silent", "unavailable"]
    # An explicit accelerator is obeyed, without a probe and without a fallback.
    assert choose_accel("kvm", probe(KvmProbe.SILENT)) == AccelChoice("kvm", False, "--accel kvm")
    assert choose_accel("tcg", probe(KvmProbe.BOOTS)).accel == "tcg"
    assert asked == ["boots", "silent", "unavailable"]
    with pytest.raises(ValueError, match="accel"):
        choose_accel("hvf", probe(KvmProbe.BOOTS))


def test_a_kvm_guest_without_a_first_stage_falls_back_to_tcg_after_the_grace() -> None:
    auto_kvm = AccelChoice("kvm", True, "probe")
    assert not fall_back_now(auto_kvm, first_stage_seen=False, elapsed=29.9, grace=30.0)
    assert fall_back_now(auto_kvm, first_stage_seen=False, elapsed=30.0, grace=30.0)
    assert not fall_back_now(auto_kvm, first_stage_seen=True, elapsed=300.0, grace=30.0)
    asked_kvm = AccelChoice("kvm", False, "--accel kvm")
    assert not fall_back_now(asked_kvm, first_stage_seen=False, elapsed=300.0, grace=30.0)
    tcg = AccelChoice("tcg", False, "no KVM")
    assert not fall_back_now(tcg, first_stage_seen=False, elapsed=300.0, grace=30.0)


def test_the_kvm_probe_runs_the_guests_firmware_alone_and_records_its_frames(
    tmp_path: Path,
) -> None:
    bios = probe_command("bios", tmp_path / "p.pcap")
    assert bios[bios.index("-accel") + 1] == "kvm"
    assert "user,id=net0,restrict=on" in bios  # nothing leaves QEMU, no tap needed
    assert f"filter-dump,id=dump0,netdev=net0,file={tmp_path / 'p.pcap'}" in bios
    assert bios[bios.index("-boot") : bios.index("-boot") + 2] == ["-boot", "n"]
    assert not any("romfile=" in word for word in bios)  # the NIC's iPXE ROM, as a boot has
    uefi = probe_command("uefi", tmp_path / "p.pcap", tmp_path / "vars.fd")
    assert f"if=pflash,format=raw,unit=1,file={tmp_path / 'vars.fd'}" in uefi


def test_console_failures_are_named_from_the_console() -> None:
    assert console_failure(b"Loading...\r\nerror: bad shim signature.\r\n") is not None
    assert "bad shim signature" in (console_failure(b"error: bad shim signature.") or "")
    assert console_failure(b"EFI stub: UEFI Secure Boot is enabled.") is None
