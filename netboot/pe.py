"""Whether a PE/COFF image (an EFI program, a Linux kernel's EFI stub) carries an
Authenticode signature, read from its own headers.

UEFI Secure Boot runs only images whose certificate table holds a signature a
key in the firmware's db (or shim's, for what shim loads) vouches for. Which
key signed an image is the firmware's question; ours is the earlier one that
catches the common mistake: a kernel or loader with no signature at all
(built locally, or stripped with `sbattach --remove`) cannot boot with Secure
Boot on, whoever signed the rest of the chain.

The layout (Microsoft's "PE Format" specification): the DOS header's
`e_lfanew` (offset 0x3C) points at `PE\\0\\0`; the 20-byte COFF header follows,
then the optional header, whose magic says PE32 (0x10B) or PE32+ (0x20B).
Its data directories start 96 (PE32) or 112 (PE32+) bytes in; entry 4, the
certificate table, is a file offset and a size (not an RVA). The table holds
WIN_CERTIFICATE entries: a length, revision 0x0200 and type 0x0002
(PKCS#7 signed data) for Authenticode.

The COFF header's first field, Machine, says which CPU the image is for
(`pe_machine`): firmware loads only images of its own architecture, so an
arm64 kernel (0xAA64) handed to an x64 PC, or the reverse, fails however it
is signed. Debian's arm64 kernel is an uncompressed `Image` whose EFI stub
makes the file itself a PE image; an x86 bzImage with an EFI stub is one too.

Pure: bytes in, a typed finding out. Nothing here checks the signature's
cryptography; the firmware and shim do that.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from netboot.firmware import Family

PE32 = 0x10B
PE32_PLUS = 0x20B
CERTIFICATE_TABLE = 4
"""Index of the certificate table among the optional header's data directories."""
WIN_CERT_REVISION_2 = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002
HEADERS_READ = 4096
"""Bytes of the image's start that hold every header we read (e_lfanew is small)."""

MACHINE_I386 = 0x014C
MACHINE_ARM = 0x01C2
"""ARM Thumb/Thumb-2: what 32-bit ARM EFI images (and the kernel's EFI stub) say."""
MACHINE_ARMNT = 0x01C4
MACHINE_AMD64 = 0x8664
MACHINE_ARM64 = 0xAA64
MACHINE_RISCV32 = 0x5032
MACHINE_RISCV64 = 0x5064
MACHINE_LOONGARCH64 = 0x6264

MACHINE_NAMES: dict[int, str] = {
    MACHINE_I386: "x86 32-bit",
    MACHINE_ARM: "ARM 32-bit",
    MACHINE_ARMNT: "ARM 32-bit",
    MACHINE_AMD64: "x86-64",
    MACHINE_ARM64: "arm64",
    MACHINE_RISCV32: "RISC-V 32-bit",
    MACHINE_RISCV64: "RISC-V 64-bit",
    MACHINE_LOONGARCH64: "LoongArch 64-bit",
}
"""Machine types (Microsoft's "PE Format", "Machine Types") by the CPU they name."""

FAMILY_MACHINES: dict[str, frozenset[int]] = {
    Family.BIOS: frozenset({MACHINE_I386, MACHINE_AMD64}),
    Family.EFI_IA32: frozenset({MACHINE_I386, MACHINE_AMD64}),
    Family.EFI_X64: frozenset({MACHINE_AMD64}),
    Family.EFI_ARM32: frozenset({MACHINE_ARM, MACHINE_ARMNT}),
    Family.EFI_ARM64: frozenset({MACHINE_ARM64}),
    Family.EFI_RISCV32: frozenset({MACHINE_RISCV32}),
    Family.EFI_RISCV64: frozenset({MACHINE_RISCV64}),
    Family.EFI_LOONG64: frozenset({MACHINE_LOONGARCH64}),
}
"""The machine types a kernel for each firmware family may carry. An x86-64 kernel's
PE header says x86-64 also when its EFI stub boots 32-bit UEFI (mixed mode), and a
BIOS kernel is a bzImage, which is a PE image of either x86 machine when it has an
EFI stub (and no PE image at all when it has none)."""


class Signing(StrEnum):
    SIGNED = "signed"
    """The certificate table holds an Authenticode (PKCS#7) entry."""
    UNSIGNED = "unsigned"
    """A well-formed PE image with no certificate table: Secure Boot refuses it."""
    NOT_PE = "not a PE image"
    """No MZ/PE headers: not something UEFI firmware or shim would run."""
    DAMAGED = "damaged"
    """PE headers that do not hold together (truncated, or pointing past the end)."""


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    signing: Signing
    detail: str
    """What was found, for a validation message: the table's place, or what is wrong."""


ReadAt = Callable[[int, int], bytes]
"""Reads `length` bytes at `offset` of one image."""


def check_signature(read_at: ReadAt, size: int) -> SignatureCheck:
    """The signing state of a PE image of `size` bytes.

    Only the headers (the first `HEADERS_READ` bytes) and the certificate
    table's first entry are read: the table sits at the end of the file, and
    a kernel is megabytes that need not pass through memory.
    """
    head = read_at(0, HEADERS_READ)
    if len(head) < 0x40 or head[:2] != b"MZ":
        return SignatureCheck(Signing.NOT_PE, "no MZ header")
    (pe_offset,) = struct.unpack_from("<I", head, 0x3C)
    if pe_offset + 24 > len(head):
        return SignatureCheck(Signing.DAMAGED, f"PE header offset {pe_offset} is past the headers")
    if head[pe_offset : pe_offset + 4] != b"PE\x00\x00":
        return SignatureCheck(Signing.NOT_PE, "MZ header without a PE signature (not an EFI image)")
    coff = pe_offset + 4
    (optional_size,) = struct.unpack_from("<H", head, coff + 16)
    optional = coff + 20
    if optional + 2 > len(head):
        return SignatureCheck(Signing.DAMAGED, "truncated before the optional header")
    (magic,) = struct.unpack_from("<H", head, optional)
    if magic == PE32:
        count_at, directories = optional + 92, optional + 96
    elif magic == PE32_PLUS:
        count_at, directories = optional + 108, optional + 112
    else:
        return SignatureCheck(Signing.DAMAGED, f"unknown optional header magic {magic:#06x}")
    if count_at + 4 > len(head):
        return SignatureCheck(Signing.DAMAGED, "truncated optional header")
    (directory_count,) = struct.unpack_from("<I", head, count_at)
    if directory_count <= CERTIFICATE_TABLE:
        return SignatureCheck(Signing.UNSIGNED, "no certificate table directory")
    entry = directories + 8 * CERTIFICATE_TABLE
    if entry + 8 > len(head) or entry + 8 > optional + optional_size:
        return SignatureCheck(Signing.DAMAGED, "truncated optional header")
    table_offset, table_size = struct.unpack_from("<II", head, entry)
    if table_size == 0:
        return SignatureCheck(Signing.UNSIGNED, "empty certificate table")
    if table_offset + table_size > size:
        return SignatureCheck(
            Signing.DAMAGED,
            f"certificate table ({table_size} bytes at {table_offset}) runs past the end "
            f"of the file ({size} bytes): truncated",
        )
    if table_size < 8:
        return SignatureCheck(Signing.DAMAGED, f"certificate table of {table_size} bytes")
    length, revision, kind = struct.unpack("<IHH", read_at(table_offset, 8))
    if length < 8 or length > table_size:
        return SignatureCheck(Signing.DAMAGED, f"certificate entry length {length} is wrong")
    if revision != WIN_CERT_REVISION_2 or kind != WIN_CERT_TYPE_PKCS_SIGNED_DATA:
        return SignatureCheck(
            Signing.UNSIGNED,
            f"certificate entry of revision {revision:#06x}, type {kind:#06x}: not Authenticode",
        )
    return SignatureCheck(
        Signing.SIGNED, f"Authenticode signature, {length} bytes at offset {table_offset}"
    )


def check_file(path: Path) -> SignatureCheck:
    """`check_signature` of a file on disk."""
    with path.open("rb") as image:

        def read_at(offset: int, length: int) -> bytes:
            image.seek(offset)
            return image.read(length)

        return check_signature(read_at, path.stat().st_size)


@dataclass(frozen=True, slots=True)
class PeMachine:
    """A PE image for the CPU `machine` (the COFF header's Machine field)."""

    machine: int

    @property
    def name(self) -> str:
        """The CPU in words, for a validation message."""
        known = MACHINE_NAMES.get(self.machine)
        return f"{known} ({self.machine:#06x})" if known else f"machine {self.machine:#06x}"


@dataclass(frozen=True, slots=True)
class NotPe:
    """No MZ header, or an MZ header without `PE\\0\\0`: a bzImage without an EFI stub,
    an ELF, a cpio."""

    detail: str


@dataclass(frozen=True, slots=True)
class TruncatedPe:
    """An MZ header whose PE header lies past the end of what could be read."""

    detail: str


MachineCheck = PeMachine | NotPe | TruncatedPe


def pe_machine(head: bytes) -> MachineCheck:
    """The machine type of the PE image that starts with `head` (its first bytes).

    Only the DOS header's `e_lfanew` and the COFF header's first field are read,
    so `head` need only reach `e_lfanew + 6`; `HEADERS_READ` bytes always do.
    """
    if len(head) < 2 or head[:2] != b"MZ":
        return NotPe("no MZ header")
    if len(head) < 0x40:
        return TruncatedPe(f"{len(head)} bytes end inside the DOS header")
    (pe_offset,) = struct.unpack_from("<I", head, 0x3C)
    if pe_offset + 6 > len(head):
        return TruncatedPe(
            f"the PE header at offset {pe_offset} is past the {len(head)} bytes read"
        )
    if head[pe_offset : pe_offset + 4] != b"PE\x00\x00":
        return NotPe("MZ header without a PE signature")
    (machine,) = struct.unpack_from("<H", head, pe_offset + 4)
    return PeMachine(machine)


def file_machine(path: Path) -> MachineCheck:
    """`pe_machine` of a file's first `HEADERS_READ` bytes."""
    with path.open("rb") as image:
        return pe_machine(image.read(HEADERS_READ))
