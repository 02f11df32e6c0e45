"""QEMU guests for the lab: the command line, and whether KVM really works here.

BIOS guests boot from QEMU's own iPXE option ROM on a virtio NIC (Debian's
ipxe-qemu); UEFI guests run OVMF (Debian's ovmf) with the same NIC. With the
NIC's option ROM (`ipxe_rom`), OVMF runs that iPXE as the NIC's driver and
boot program; without it (`romfile=`, as on real hardware, whose NICs carry
no iPXE) EDK2's own network stack boots: its PXE client fetches our boot
file (`ipxe.efi`) over TFTP first. The serial console goes to a file the lab
watches for the marker; there is no display and no disk.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
FIRMWARES = ("bios", "uefi")
ACCELERATORS = ("auto", "tcg", "kvm")
MEMORY_MIB = 256


def guest_command(
    firmware: str,
    accel: str,
    tap: str,
    mac: str,
    serial: Path,
    uefi_vars: Path | None = None,
    ipxe_rom: bool = True,
) -> list[str]:
    """The QEMU command line of one lab guest; pure, so tests can read it.

    `ipxe_rom=False` removes the NIC's option ROM, so UEFI firmware boots
    with its own PXE (a BIOS guest then has no network boot at all).
    """
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware must be one of {FIRMWARES}")
    if firmware == "bios" and not ipxe_rom:
        raise ValueError("a BIOS guest network-boots only from the NIC's option ROM")
    command = [
        QEMU,
        "-accel",
        accel,
        "-m",
        str(MEMORY_MIB),
        "-display",
        "none",
        "-nodefaults",
        "-serial",
        f"file:{serial}",
        "-netdev",
        f"tap,id=net0,ifname={tap},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=net0,mac={mac},bootindex=1" + ("" if ipxe_rom else ",romfile="),
        "-no-reboot",
    ]
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


def missing_pieces(firmware: str) -> list[str]:
    """What this machine lacks to boot `firmware` guests (empty: nothing)."""
    missing = []
    if shutil.which(QEMU) is None:
        missing.append(f"{QEMU} (Debian's qemu-system-x86)")
    if not Path("/usr/lib/ipxe/qemu/efi-virtio.rom").is_file():
        missing.append("QEMU's iPXE ROMs (Debian's ipxe-qemu)")
    if firmware == "uefi" and not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        missing.append("OVMF (Debian's ovmf)")
    return missing


def kvm_works(timeout: float = 4.0) -> bool:
    """True only when a tiny guest actually runs under KVM.

    /dev/kvm existing and QEMU starting with it is not enough: on some hosts
    (nested virtualisation) guests then hang. SeaBIOS writes its banner to
    the debug port at once; if it does not arrive in time, KVM is unusable.
    """
    if not Path("/dev/kvm").exists() or shutil.which(QEMU) is None:
        return False
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "debugcon.log"
        process = subprocess.Popen(
            [
                QEMU,
                "-accel",
                "kvm",
                "-m",
                "32",
                "-display",
                "none",
                "-nodefaults",
                "-chardev",
                f"file,id=dbg,path={log}",
                "-device",
                "isa-debugcon,iobase=0x402,chardev=dbg",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                if log.exists() and b"SeaBIOS" in log.read_bytes():
                    return True
                time.sleep(0.1)
            return False
        finally:
            process.kill()
            process.wait()


def choose_accel(requested: str) -> str:
    if requested not in ACCELERATORS:
        raise ValueError(f"accel must be one of {ACCELERATORS}")
    if requested == "auto":
        return "kvm" if kvm_works() else "tcg"
    return requested
