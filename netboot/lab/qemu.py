"""QEMU guests for the lab: the command line, and which accelerator a boot runs under.

BIOS guests boot from QEMU's own iPXE option ROM on a virtio NIC (Debian's
ipxe-qemu); UEFI guests run OVMF (Debian's ovmf) with the same NIC. With the
NIC's option ROM (`ipxe_rom`), OVMF runs that iPXE as the NIC's driver and
boot program; without it (`romfile=`, as on real hardware, whose NICs carry
no iPXE) EDK2's own network stack boots: its PXE client fetches our boot
file over TFTP first (by default the signed shim, which loads GRUB, which
loads the kernel by TFTP). With `secure_boot`, OVMF runs with Microsoft's keys
enrolled and Secure Boot enforced (Debian's `OVMF_CODE_4M.ms.fd` and
`OVMF_VARS_4M.ms.fd`, on a q35 machine with SMM, as the secure flash needs),
and always without the option ROM (QEMU's iPXE is unsigned). The serial
console goes to a file the lab watches for the marker; there is no display
and no disk.

`uefi-arm64` guests are `qemu-system-aarch64 -machine virt -cpu cortex-a57`
with Debian's AAVMF (qemu-efi-aarch64), always under TCG on an x86 host, and
always without an option ROM (`romfile=`: QEMU's iPXE ROMs hold x86 code
only; AAVMF's own VirtioNetDxe and PXE boot the signed shimaa64 -> GRUB chain).
Their Secure Boot uses `AAVMF_VARS.ms.fd` (Microsoft's keys, enforced); AAVMF
has no SMM, so unlike OVMF's the varstore is writable by the guest.

Pure: the probe that runs QEMU to see whether KVM boots is
`netboot_lab.qemu`; the decisions it feeds are made here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from netboot.config import PxeConfig
from netboot.grub.build import default_output

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
OVMF_CODE_SECURE = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
OVMF_VARS_SECURE = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
"""Secure Boot enforced, with Microsoft's keys enrolled (which sign Debian's shim)."""
SECURE_BOOT_MEMORY_MIB = 1024
"""shim, GRUB and a 14 MB kernel loaded by GRUB over TFTP need more than MEMORY_MIB."""
SIGNED_CHAIN = tuple(
    path
    for family, path in (*PxeConfig().shim_files, *PxeConfig().grub_files)
    if family == "efi-x64"
)
"""The daemon's default x64 shim and GRUB, which a Secure Boot guest boots through."""
SECURE_BOOT_ENABLED = "Secure boot enabled"
"""What Linux prints on the serial console when it booted with Secure Boot on."""
HTTP_BOOT_ONLY = ("opt/org.tianocore/IPv4PXESupport", "opt/org.tianocore/IPv6PXESupport")
"""OVMF's switches (fw_cfg, read by its PXE driver) that leave out its PXEv4 and PXEv6
boot entries. Otherwise it tries PXE first, which we answer, and never gets to HTTP boot."""
PXE6_ONLY = ("opt/org.tianocore/IPv4PXESupport",)
"""On an IPv6-only lab net: OVMF's PXEv4 entry comes first and would spend its DHCPv4 timeouts
before PXEv6 starts, so it is left out. HTTP boot cannot skip HTTPv4 the same way: OVMF's
`opt/org.tianocore/IPv4Support=no` removes it, but Debian 12's OVMF (2022.11) then fails HTTPv6
at once without a Solicit, so an HTTPv6 guest spends ~60 s in DHCPv4 first
(docs/protocols/dhcpv6.md §15)."""
QEMU_AARCH64 = "qemu-system-aarch64"
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
AAVMF_CODE_SECURE = Path("/usr/share/AAVMF/AAVMF_CODE.ms.fd")
AAVMF_VARS_SECURE = Path("/usr/share/AAVMF/AAVMF_VARS.ms.fd")
"""Debian's AAVMF with Microsoft's keys enrolled, Secure Boot enforced (the code is the
same file as AAVMF_CODE.fd; the variables make the difference). No SMM: the guest can
write its varstore (README.Debian of qemu-efi-aarch64)."""
ARM64 = "uefi-arm64"
ARM64_CPU = "cortex-a57"
"""`-cpu max` emulates pointer authentication slowly under TCG (3x the boot time)."""
ARM64_MEMORY_MIB = 1024
"""GRUB loads the 27 MB uncompressed arm64 Image; 256 MiB boots too, but slower."""
ARM64_SIGNED_CHAIN = (
    *(Path(path) for family, path in PxeConfig().shim_files if family == "efi-arm64"),
    *(Path(path) for family, path in PxeConfig().grub_files if family == "efi-arm64"),
)
"""The daemon's default arm64 shim and GRUB, which every arm64 lab guest boots through."""
ARM64_HTTP_GRUB = default_output("efi-arm64")
"""The daemon's default arm64 HTTP GRUB (`netboot build-http-grub`), which an arm64 guest
doing UEFI HTTP boot runs: Debian ships no arm64 iPXE. AAVMF reads the same fw_cfg switches
as OVMF (`HTTP_BOOT_ONLY`)."""
ARM64_NO_SECURE_HTTP_BOOT = (
    "no Secure Boot with HTTP boot on arm64: Debian's signed GRUB has no http module, and "
    "the GRUB that has one (netboot build-http-grub) is unsigned"
)
FIRMWARES = ("bios", "uefi", ARM64)
FIRMWARE_FAMILIES = {"bios": "bios", "uefi": "efi-x64", ARM64: "efi-arm64"}
"""The firmware family (`netboot.firmware`) each lab firmware's PXE client reports."""
ACCELERATORS = ("auto", "tcg", "kvm")
MEMORY_MIB = 256
PROBE_MAC = "52:54:00:4e:42:00"
"""The probe guest's NIC; it is alone on its network, so any address would do."""


def guest_command(
    firmware: str,
    accel: str,
    tap: str,
    mac: str,
    serial: Path,
    uefi_vars: Path | None = None,
    ipxe_rom: bool = True,
    secure_boot: bool = False,
    http_boot: bool = False,
    delay_ms: int = 0,
    ipv6: bool = False,
) -> list[str]:
    """The QEMU command line of one lab guest; pure, so tests can read it.

    `ipxe_rom=False` removes the NIC's option ROM, so UEFI firmware boots
    with its own PXE (a BIOS guest then has no network boot at all).
    `secure_boot` (UEFI, no option ROM) enforces Secure Boot; `uefi_vars` is
    then a copy of `OVMF_VARS_SECURE`. `http_boot` (UEFI, no option ROM) turns
    OVMF's PXE off, so its boot entries are UEFI HTTP boot alone. `delay_ms`
    holds every frame to and from the guest in QEMU's `filter-buffer`, which
    releases what it holds every `delay_ms` ms: each frame waits 0 to `delay_ms`
    ms each way, in order (delay and jitter; QEMU has no filter that reorders),
    and a burst the guest's receive ring cannot take at a release is dropped.
    `ipv6` (an IPv6-only lab net) leaves out OVMF's (and AAVMF's) PXEv4 entry when
    its own PXE boots (`PXE6_ONLY`); iPXE and HTTP boot need no switch for it.
    """
    netdev = f"tap,id=net0,ifname={tap},script=no,downscript=no"
    if firmware == ARM64:
        if http_boot and secure_boot:
            raise ValueError(ARM64_NO_SECURE_HTTP_BOOT)
        machine = _arm64_machine(accel, netdev, mac, f"file:{serial}", uefi_vars, secure_boot)
        if http_boot:
            return machine + _switched_off(HTTP_BOOT_ONLY)
        return machine + (_switched_off(PXE6_ONLY) if ipv6 else [])
    command = _machine(firmware, accel, netdev, mac, f"file:{serial}", uefi_vars, ipxe_rom)
    if delay_ms < 0:
        raise ValueError(f"delay_ms is milliseconds, not {delay_ms}")
    if delay_ms:
        interval = delay_ms * 1000  # filter-buffer counts microseconds
        command += ["-object", f"filter-buffer,id=delay0,netdev=net0,queue=all,interval={interval}"]
    if http_boot:
        if firmware != "uefi" or ipxe_rom:
            raise ValueError("HTTP boot is the firmware's own: a UEFI guest without an option ROM")
        command += _switched_off(HTTP_BOOT_ONLY)
    elif ipv6 and firmware == "uefi" and not ipxe_rom:
        command += _switched_off(PXE6_ONLY)
    if not secure_boot:
        return command
    if firmware != "uefi" or ipxe_rom:
        raise ValueError("Secure Boot needs a UEFI guest without the NIC's (unsigned) iPXE ROM")
    command[command.index("-m") + 1] = str(SECURE_BOOT_MEMORY_MIB)
    code = command.index(f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}")
    command[code] = f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_SECURE}"
    return [
        *command,
        "-machine",
        "q35,smm=on",
        "-global",
        "driver=cfi.pflash01,property=secure,value=on",
        "-global",
        "ICH9-LPC.disable_s3=1",
    ]


def _arm64_machine(
    accel: str, netdev: str, mac: str, serial: str, uefi_vars: Path | None, secure_boot: bool
) -> list[str]:
    """An aarch64 `virt` guest with AAVMF in pflash and no option ROM on its NIC."""
    if uefi_vars is None:
        raise ValueError("an arm64 guest needs its own copy of the AAVMF variables")
    code = AAVMF_CODE_SECURE if secure_boot else AAVMF_CODE
    nic = f"virtio-net-pci,netdev=net0,mac={mac},bootindex=1,romfile="
    return [
        QEMU_AARCH64,
        "-machine",
        "virt",
        "-cpu",
        ARM64_CPU,
        *_guest(accel, ARM64_MEMORY_MIB, serial, netdev, nic),
        "-drive",
        f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={uefi_vars}",
    ]


def _guest(accel: str, memory_mib: int, serial: str, netdev: str, nic: str) -> list[str]:
    """What every lab guest has, x86 or arm64: accelerator, memory, serial console, one
    NIC, no display and no other devices, and an exit instead of a reboot."""
    return [
        "-accel",
        accel,
        "-m",
        str(memory_mib),
        "-display",
        "none",
        "-nodefaults",
        "-serial",
        serial,
        "-netdev",
        netdev,
        "-device",
        nic,
        "-no-reboot",
    ]


def uefi_vars_template(firmware: str, secure_boot: bool) -> Path:
    """The firmware's variable store a guest gets its own copy of."""
    if firmware == ARM64:
        return AAVMF_VARS_SECURE if secure_boot else AAVMF_VARS
    return OVMF_VARS_SECURE if secure_boot else OVMF_VARS


def kvm_can_run(firmware: str, host_machine: str) -> bool:
    """Whether KVM on a host of `host_machine` (`platform.machine()`) can run `firmware`'s
    guest at all: only a guest of the host's own CPU architecture."""
    arm_host = host_machine.lower() in ("aarch64", "arm64")
    return arm_host if firmware == ARM64 else not arm_host


def _switched_off(names: tuple[str, ...]) -> list[str]:
    """QEMU arguments that set each of OVMF's fw_cfg switches `names` to "no"."""
    return [arg for name in names for arg in ("-fw_cfg", f"name={name},string=no")]


def probe_command(firmware: str, pcap: Path, uefi_vars: Path | None = None) -> list[str]:
    """The lab guest's firmware and NIC ROM under KVM, every frame it sends written to `pcap`.

    Its network is QEMU's user mode, restricted: nothing leaves the process,
    and no tap or namespace is needed. Its first frame is the first stage of a
    network boot (a DHCP DISCOVER), which a guest that hangs under KVM never sends.
    """
    netdev = "user,id=net0,restrict=on"
    command = _machine(firmware, "kvm", netdev, PROBE_MAC, "none", uefi_vars, ipxe_rom=True)
    return [*command, "-object", f"filter-dump,id=dump0,netdev=net0,file={pcap}"]


def _machine(
    firmware: str,
    accel: str,
    netdev: str,
    mac: str,
    serial: str,
    uefi_vars: Path | None,
    ipxe_rom: bool,
) -> list[str]:
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware must be one of {FIRMWARES}")
    if firmware == "bios" and not ipxe_rom:
        raise ValueError("a BIOS guest network-boots only from the NIC's option ROM")
    nic = f"virtio-net-pci,netdev=net0,mac={mac},bootindex=1" + ("" if ipxe_rom else ",romfile=")
    command = [QEMU, *_guest(accel, MEMORY_MIB, serial, netdev, nic)]
    if firmware == "uefi":
        if uefi_vars is None:
            raise ValueError("a UEFI guest needs its own copy of the OVMF variables")
        command += [
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={uefi_vars}",
        ]
    else:
        command += ["-boot", "n"]
    return command


def missing_pieces(
    firmware: str,
    secure_boot: bool = False,
    chain_found: Callable[[Path], bool] = Path.is_file,
    *,
    http_boot: bool = False,
) -> list[str]:
    """What this machine lacks to boot `firmware` guests (empty: nothing).

    `chain_found` says whether a signed-chain file is there (where the daemon looks:
    at its path or under the signed-chain cache)."""
    if firmware == ARM64:
        missing = _missing_for_arm64(secure_boot, chain_found)
        if http_boot and not ARM64_HTTP_GRUB.is_file():
            missing.append(f"the arm64 HTTP GRUB {ARM64_HTTP_GRUB} (netboot build-http-grub)")
        return missing
    missing = []
    if secure_boot and not (OVMF_CODE_SECURE.is_file() and OVMF_VARS_SECURE.is_file()):
        missing.append("OVMF with Microsoft's keys (Debian's ovmf)")
    if secure_boot and not all(chain_found(Path(path)) for path in SIGNED_CHAIN):
        missing.append("the signed chain (Debian's shim-signed and grub-efi-amd64-signed)")
    if shutil.which(QEMU) is None:
        missing.append(f"{QEMU} (Debian's qemu-system-x86)")
    if not Path("/usr/lib/ipxe/qemu/efi-virtio.rom").is_file():
        missing.append("QEMU's iPXE ROMs (Debian's ipxe-qemu)")
    if firmware == "uefi" and not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        missing.append("OVMF (Debian's ovmf)")
    return missing


def _missing_for_arm64(secure_boot: bool, chain_found: Callable[[Path], bool]) -> list[str]:
    missing = []
    if shutil.which(QEMU_AARCH64) is None:
        missing.append(f"{QEMU_AARCH64} (Debian's qemu-system-arm)")
    firmware = (AAVMF_CODE, AAVMF_VARS, *((AAVMF_VARS_SECURE,) if secure_boot else ()))
    if not all(path.is_file() for path in firmware):
        missing.append("AAVMF (Debian's qemu-efi-aarch64)")
    if not all(chain_found(path) for path in ARM64_SIGNED_CHAIN):
        missing.append("the arm64 signed chain (`netboot fetch-signed-chain --family efi-arm64`)")
    return missing


class KvmProbe(Enum):
    """What running the guest's real firmware under KVM showed."""

    UNAVAILABLE = "unavailable"
    """No /dev/kvm (or no QEMU): KVM was not tried."""
    SILENT = "silent"
    """The firmware started but its network boot sent nothing in time (nested
    virtualisation can leave a guest hanging right after the BIOS banner)."""
    BOOTS = "boots"
    """The firmware's network boot put its first packet on the wire."""
    FOREIGN = "foreign"
    """The guest's CPU is not the host's (an aarch64 guest on x86): KVM cannot run it."""


@dataclass(frozen=True, slots=True)
class AccelChoice:
    """The accelerator a boot starts under, and why."""

    accel: str
    """"kvm" or "tcg", as QEMU's -accel takes it."""
    fall_back: bool
    """Whether a boot that shows no first stage in time under KVM restarts under TCG
    (only when the choice was automatic: an explicit --accel kvm is obeyed)."""
    reason: str


def choose_accel(requested: str, probe: Callable[[], KvmProbe]) -> AccelChoice:
    """`auto` takes KVM only where the probe saw the real firmware boot under it.

    `probe` runs only for `auto`; an explicit accelerator is used as asked.
    """
    if requested not in ACCELERATORS:
        raise ValueError(f"accel must be one of {ACCELERATORS}")
    if requested != "auto":
        return AccelChoice(requested, False, f"--accel {requested}")
    seen = probe()
    if seen is KvmProbe.BOOTS:
        return AccelChoice("kvm", True, "KVM: the firmware's network boot started under it")
    if seen is KvmProbe.FOREIGN:
        return AccelChoice("tcg", False, "TCG: KVM cannot run a guest of another CPU architecture")
    if seen is KvmProbe.SILENT:
        return AccelChoice(
            "tcg", False, "TCG: under KVM the firmware sent no packet in time (KVM unusable here)"
        )
    return AccelChoice("tcg", False, "TCG: no KVM on this machine")


def fall_back_now(
    choice: AccelChoice, first_stage_seen: bool, elapsed: float, grace: float
) -> bool:
    """Whether a guest running under `choice` should be restarted under TCG now:
    an automatic KVM choice whose guest has shown no first stage after `grace` s."""
    return choice.fall_back and choice.accel == "kvm" and not first_stage_seen and elapsed >= grace
