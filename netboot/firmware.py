"""Firmware families: the one table of the names PCs are grouped by.

A family is what a boot file is chosen for (`[pxe] boot_files`), what a PC
image says it boots on (`PCArchitectures` in NBImageInfo.plist), and what the
PXE classifier derives from a client's option 93 (`netboot.dhcp.pxe.ARCHITECTURES`
maps every architecture code to one of these, or to none).
"""

from __future__ import annotations

from enum import StrEnum


class Family(StrEnum):
    BIOS = "bios"
    EFI_IA32 = "efi-ia32"
    EFI_X64 = "efi-x64"
    EFI_ARM32 = "efi-arm32"
    EFI_ARM64 = "efi-arm64"
    EFI_RISCV32 = "efi-riscv32"
    EFI_RISCV64 = "efi-riscv64"
    EFI_LOONG64 = "efi-loong64"


FAMILIES: tuple[str, ...] = tuple(family.value for family in Family)
"""Every family, in documentation order."""

DEFAULT_PC_FAMILIES: tuple[str, ...] = (Family.BIOS.value, Family.EFI_X64.value)
"""What a PC image boots on when it does not say: almost every PC kernel boots on these."""


EFI_ARCH_NAMES: dict[str, str] = {
    Family.EFI_IA32.value: "ia32",
    Family.EFI_X64.value: "x64",
    Family.EFI_ARM32.value: "arm",
    Family.EFI_ARM64.value: "aa64",
    Family.EFI_RISCV32.value: "riscv32",
    Family.EFI_RISCV64.value: "riscv64",
    Family.EFI_LOONG64.value: "loongarch64",
}
"""The UEFI architecture short names that shim and GRUB put in their file names
(`shimx64.efi`, `grubaa64.efi`; shim's `DEFAULT_LOADER` is `\\grub<arch>.efi`)."""

SIGNED_CHAIN_DIRECTORY = "sb"
"""The TFTP directory of the signed chains, one subdirectory per architecture."""


def shim_name(family: str) -> str:
    """The TFTP name a UEFI PXE ROM of `family` is handed for the signed chain.

    Each architecture has its own directory because shim loads GRUB by a fixed
    name from the directory it was itself loaded from.
    """
    arch = EFI_ARCH_NAMES[family]
    return f"{SIGNED_CHAIN_DIRECTORY}/{arch}/shim{arch}.efi"


def grub_name(family: str) -> str:
    """The TFTP name shim asks for the second stage: `grub<arch>.efi` beside itself."""
    arch = EFI_ARCH_NAMES[family]
    return f"{SIGNED_CHAIN_DIRECTORY}/{arch}/grub{arch}.efi"


HTTP_GRUB_DIRECTORY = "grub/http"
"""Where the HTTP service publishes the HTTP-capable GRUB builds (`netboot build-http-grub`),
under the `/grub/` tree GRUB reads its configuration from."""


def http_grub_name(family: str) -> str:
    """The HTTP path (without its leading `/`) of `family`'s HTTP-capable GRUB: what a UEFI
    HTTP-boot client of that family is handed when it has no `boot_files` entry."""
    return f"{HTTP_GRUB_DIRECTORY}/grub{EFI_ARCH_NAMES[family]}.efi"
