"""The QEMU lab's arm64 guests: an aarch64 AAVMF guest boots Debian's arm64 kernel through
our daemon (AAVMF's own PXE -> the signed shimaa64 -> GRUB chain -> kernel and initrd by TFTP;
or AAVMF's UEFI HTTP boot -> our HTTP GRUB -> kernel and initrd by HTTP).

The boots need root, qemu-system-aarch64 (qemu-system-arm), AAVMF (qemu-efi-aarch64)
and the arm64 signed chain (`netboot fetch-signed-chain --family efi-arm64`); with
NETBOOT_REQUIRE_ALL=1 a missing piece fails instead of skipping. Each boot costs 30-60 s
of CPU under TCG, so the module shares one lab.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from netboot.cli.lab import boot
from netboot.debian import ForeignApt, foreign_sources
from netboot.lab.qemu import (
    AAVMF_CODE,
    AAVMF_VARS,
    AAVMF_VARS_SECURE,
    ARM64,
    AccelChoice,
    KvmProbe,
    choose_accel,
    guest_command,
    kvm_can_run,
    uefi_vars_template,
)
from netboot_lab.lab import BootLab, BootResult
from tests.test_lab import require_lab

BOOT_TIMEOUT = 180.0
MAC = "52:54:00:00:00:01"


@pytest.fixture(scope="module")
def lab() -> Iterator[BootLab]:
    require_lab(ARM64)
    running = BootLab.up(f"a{uuid.uuid4().hex[:6]}", subnet="10.252.0")
    try:
        yield running
    finally:
        running.down()


def assert_booted_through_the_arm64_chain(result: BootResult) -> None:
    """shimaa64, then GRUB with its configuration from us, then arm64's kernel and initrd."""
    assert result.result == "ok", result.as_json()
    assert result.accel == "tcg", result.as_json()
    stages = result.stages
    for stage in ("dhcp", "boot_file", "shim", "grub", "grub_config", "kernel", "initrd", "marker"):
        assert stage in stages, result.as_json()
    assert stages["shim"] <= stages["grub"] <= stages["grub_config"] <= stages["kernel"]
    assert stages["kernel"] <= stages["marker"]
    assert result.bytes["tftp"] > 25_000_000  # the 27 MB arm64 Image, shim, GRUB, initrd
    serial = Path(result.serial_log).read_text(errors="replace")
    marker = next((line for line in serial.splitlines() if "NETBOOT-LAB-BOOTED" in line), "")
    assert "/Demo.nbi/pc/efi-arm64/vmlinuz console=ttyAMA0" in marker, serial[-2000:]


def test_an_arm64_guest_boots_the_signed_chain_to_the_marker(lab: BootLab) -> None:
    result = lab.boot(ARM64, accel="auto", timeout=BOOT_TIMEOUT)
    assert_booted_through_the_arm64_chain(result)
    assert result.secure_boot is False, result.as_json()


def test_an_arm64_guest_boots_with_secure_boot_enforced(lab: BootLab) -> None:
    require_lab(ARM64, secure_boot=True)
    result = lab.boot(ARM64, accel="tcg", timeout=BOOT_TIMEOUT, secure_boot=True)
    assert_booted_through_the_arm64_chain(result)
    assert result.secure_boot is True, result.as_json()


def test_an_arm64_guest_boots_by_uefi_http_boot_through_our_http_grub(lab: BootLab) -> None:
    """AAVMF with its PXE switched off boots by UEFI HTTP boot alone: it gets our HTTP GRUB
    (`netboot build-http-grub`; Debian ships no arm64 iPXE) by HTTP, which reads its
    configuration, the kernel and the initrd from us by HTTP too. Nothing goes by TFTP."""
    require_lab(ARM64, http_boot=True)
    result = lab.boot(ARM64, accel="tcg", timeout=BOOT_TIMEOUT, http_boot=True)
    assert result.result == "ok", result.as_json()
    stages = result.stages
    for stage in ("dhcp", "boot_file", "grub", "grub_config", "kernel", "initrd", "marker"):
        assert stage in stages, result.as_json()
    assert "shim" not in stages, result.as_json()
    assert stages["boot_file"] <= stages["grub_config"] <= stages["kernel"] <= stages["marker"]
    assert result.bytes["tftp"] == 0, result.as_json()
    assert result.bytes["http"] > 25_000_000, result.as_json()  # GRUB, the 27 MB Image, initrd
    serial = Path(result.serial_log).read_text(errors="replace")
    marker = next((line for line in serial.splitlines() if "NETBOOT-LAB-BOOTED" in line), "")
    assert "/Demo.nbi/pc/efi-arm64/vmlinuz console=ttyAMA0" in marker, serial[-2000:]


# -- pure parts --------------------------------------------------------------------------


def test_guest_command_runs_an_aarch64_virt_guest_on_aavmf_without_an_option_rom(
    tmp_path: Path,
) -> None:
    serial, uefi_vars = tmp_path / "s.log", tmp_path / "v.fd"
    command = guest_command(ARM64, "tcg", "tap1", MAC, serial, uefi_vars)
    assert command[0] == "qemu-system-aarch64"
    assert command[command.index("-machine") + 1] == "virt"
    assert command[command.index("-cpu") + 1] == "cortex-a57"
    assert command[command.index("-accel") + 1] == "tcg"
    assert int(command[command.index("-m") + 1]) >= 256
    assert f"virtio-net-pci,netdev=net0,mac={MAC},bootindex=1,romfile=" in command
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}" in command
    assert f"if=pflash,format=raw,unit=1,file={uefi_vars}" in command
    assert f"file:{serial}" in command
    assert "-boot" not in command and "-global" not in command  # no SeaBIOS, no SMM flash
    secure = guest_command(ARM64, "tcg", "tap1", MAC, serial, uefi_vars, secure_boot=True)
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.ms.fd" in (
        secure
    )
    assert secure[secure.index("-machine") + 1] == "virt"  # no q35, no smm=on
    http = guest_command(ARM64, "tcg", "tap1", MAC, serial, uefi_vars, http_boot=True)
    switches = [http[i + 1] for i, word in enumerate(http) if word == "-fw_cfg"]
    assert switches == [  # AAVMF reads OVMF's switches: its PXE entries are left out
        "name=opt/org.tianocore/IPv4PXESupport,string=no",
        "name=opt/org.tianocore/IPv6PXESupport,string=no",
    ]
    with pytest.raises(ValueError, match="no Secure Boot with HTTP boot on arm64"):
        guest_command(
            ARM64, "tcg", "tap1", MAC, serial, uefi_vars, secure_boot=True, http_boot=True
        )
    with pytest.raises(ValueError, match="AAVMF"):
        guest_command(ARM64, "tcg", "tap1", MAC, serial)


def test_each_firmware_copies_its_own_variable_store() -> None:
    assert uefi_vars_template(ARM64, False) == AAVMF_VARS
    assert uefi_vars_template(ARM64, True) == AAVMF_VARS_SECURE
    assert uefi_vars_template("uefi", False).name == "OVMF_VARS_4M.fd"


def test_auto_never_takes_kvm_for_an_aarch64_guest_on_x86() -> None:
    assert not kvm_can_run(ARM64, "x86_64")
    assert kvm_can_run(ARM64, "aarch64")
    assert kvm_can_run("uefi", "x86_64") and not kvm_can_run("uefi", "aarch64")
    choice = choose_accel("auto", lambda: KvmProbe.FOREIGN)
    assert choice == AccelChoice(
        "tcg", False, "TCG: KVM cannot run a guest of another CPU architecture"
    )


def test_lab_boot_refuses_what_an_arm64_guest_cannot_do() -> None:
    runner = CliRunner()
    for args, said in (
        (["--http-boot", "--secure-boot"], "no Secure Boot with HTTP boot on arm64"),
        (["--ipxe-rom"], "x86 code"),
    ):
        done = runner.invoke(boot, ["--firmware", "uefi-arm64", *args])
        assert done.exit_code == 2, done.output
        assert said in done.output


def test_the_foreign_sources_are_the_hosts_for_arm64_only() -> None:
    one_line = (
        "# a comment\n"
        "deb http://deb.debian.org/debian bookworm main contrib\n"
        "deb-src http://deb.debian.org/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://vendor.example/apt stable main\n"
        "deb [signed-by=/k.gpg] http://deb.debian.org/debian-security bookworm-security main\n"
    )
    deb822 = (
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: https://other.example\nSuites: x\nComponents: main\n"
        "Architectures: amd64\n\n"
        "Types: deb\nURIs: https://off.example\nSuites: y\nComponents: main\nEnabled: no\n"
    )
    text = foreign_sources([("sources.list", one_line), ("debian.sources", deb822)], "arm64")
    assert text.splitlines() == [
        "deb [arch=arm64] http://deb.debian.org/debian bookworm main contrib",
        "deb [arch=arm64 signed-by=/k.gpg] http://deb.debian.org/debian-security "
        "bookworm-security main",
        "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm main",
        "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm-updates main",
    ]


def test_the_foreign_apt_options_keep_the_hosts_state_out(tmp_path: Path) -> None:
    options = ForeignApt("arm64", tmp_path).options()
    pairs = dict(value.split("=", 1) for value in options[1::2])
    assert options[::2] == ["-o"] * len(pairs)
    assert pairs["APT::Architecture"] == "arm64"
    assert pairs["APT::Architectures::"] == "arm64"
    assert pairs["Dir::State::status"] == str(tmp_path / "state" / "status")
    assert pairs["Dir::Etc::SourceList"] == str(tmp_path / "etc" / "sources.list")
    for name in ("Dir::State", "Dir::Cache", "Dir::Etc::SourceParts", "Dir::Etc::Preferences",
                 "Dir::Etc::PreferencesParts"):  # fmt: skip
        assert pairs[name].startswith(str(tmp_path)), name  # nothing of the host's
