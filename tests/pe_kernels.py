"""PC kernels as validation reads them, per CPU: synthetic PE headers (netboot.pe).

`netboot images validate` refuses a kernel whose PE machine type is not the one
its firmware family runs, so a test set built for arm64 needs a kernel that
says arm64 (0xAA64) where an x86 test set's `MZ ...` bytes are enough.
"""

from __future__ import annotations

import struct
from pathlib import Path

from netboot.pe import MACHINE_AMD64, MACHINE_ARM64
from netboot_lab.factories import pe_image, win_certificate

PE_OFFSET = 0x80
"""Where `pe_image` puts the PE header."""


def with_machine(image: bytes, machine: int) -> bytes:
    """`image` (a `pe_image`) with its COFF Machine field set to `machine`."""
    changed = bytearray(image)
    struct.pack_into("<H", changed, PE_OFFSET + 4, machine)
    return bytes(changed)


def arm64_image_header() -> bytes:
    """The start of Debian's arm64 `Image` as far as pe_machine reads: `MZ`, the arm64
    boot header's magic at 0x38, `e_lfanew` 0x40 and the PE header right there."""
    head = bytearray(512)
    head[:2] = b"MZ"
    head[0x38:0x3C] = b"ARM\x64"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x44] = b"PE\x00\x00"
    struct.pack_into("<H", head, 0x44, MACHINE_ARM64)
    return bytes(head)


ARM64_KERNEL = with_machine(pe_image(certificate=win_certificate()), MACHINE_ARM64)
"""A signed arm64 kernel (Debian's arm64 cloud kernel, as far as validation reads)."""
X64_KERNEL = with_machine(pe_image(certificate=win_certificate()), MACHINE_AMD64)
"""A signed x86-64 kernel with an EFI stub."""


def give_arm64_kernel(set_dir: Path, relative: str = "pc/vmlinuz") -> Path:
    """Put `ARM64_KERNEL` at `relative` in the set; returns the set."""
    (set_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    (set_dir / relative).write_bytes(ARM64_KERNEL)
    return set_dir
