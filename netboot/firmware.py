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
