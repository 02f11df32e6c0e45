"""The CPU a PE image is for (netboot.pe.pe_machine): x86-64, arm64, not PE, truncated.

Synthetic headers check every branch; the lab's x86 kernel and Debian's signed
x86 loaders check it against real files. No arm64 file is read here: the
arm64 lab assets (another branch) will provide a real arm64 kernel, and the
synthetic arm64 header below has the layout the research found in Debian's
arm64 `Image` (`e_lfanew` 0x40, machine 0xAA64).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from netboot.firmware import FAMILIES
from netboot.pe import (
    FAMILY_MACHINES,
    HEADERS_READ,
    MACHINE_AMD64,
    MACHINE_ARM64,
    NotPe,
    PeMachine,
    TruncatedPe,
    file_machine,
    pe_machine,
)
from netboot_lab.factories import pe_image
from tests.pe_kernels import PE_OFFSET, arm64_image_header, with_machine


@pytest.mark.parametrize("machine", [MACHINE_AMD64, MACHINE_ARM64, 0x014C, 0x5064])
def test_the_machine_field_is_read(machine: int) -> None:
    assert pe_machine(with_machine(pe_image(), machine)) == PeMachine(machine)


def test_an_arm64_image_header_is_arm64() -> None:
    found = pe_machine(arm64_image_header())
    assert found == PeMachine(MACHINE_ARM64)
    assert isinstance(found, PeMachine) and found.name == "arm64 (0xaa64)"


def test_an_unknown_machine_is_named_by_its_number() -> None:
    assert PeMachine(0x1234).name == "machine 0x1234"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        pytest.param(b"", NotPe, id="empty"),
        pytest.param(b"M", NotPe, id="one-byte"),
        pytest.param(b"\x7fELF" + bytes(100), NotPe, id="elf"),
        pytest.param(b"\x1f\x8b" + bytes(100), NotPe, id="gzip-compressed-kernel"),
        pytest.param(b"MZ" + bytes(200), NotPe, id="dos-only"),
        pytest.param(b"MZ" + bytes(20), TruncatedPe, id="inside-the-dos-header"),
        pytest.param(pe_image()[: PE_OFFSET + 5], TruncatedPe, id="inside-the-coff-header"),
        pytest.param(pe_image()[: PE_OFFSET], TruncatedPe, id="before-the-pe-signature"),
    ],
)  # fmt: skip
def test_what_carries_no_machine(head: bytes, kind: type) -> None:
    assert isinstance(pe_machine(head), kind)


def test_six_bytes_of_pe_header_are_enough() -> None:
    assert pe_machine(pe_image()[: PE_OFFSET + 6]) == PeMachine(MACHINE_AMD64)


def test_a_pe_offset_far_past_the_headers_is_truncation_not_a_crash() -> None:
    image = bytearray(pe_image())
    struct.pack_into("<I", image, 0x3C, 0xFFFFFFFF)
    assert isinstance(pe_machine(bytes(image)), TruncatedPe)


def test_a_file_is_read_from_its_start(tmp_path: Path) -> None:
    kernel = tmp_path / "Image"
    kernel.write_bytes(arm64_image_header() + bytes(3 * HEADERS_READ))
    assert file_machine(kernel) == PeMachine(MACHINE_ARM64)
    truncated = tmp_path / "cut"
    truncated.write_bytes(pe_image()[: PE_OFFSET + 2])
    assert isinstance(file_machine(truncated), TruncatedPe)


def test_every_family_has_its_machines() -> None:
    assert set(FAMILY_MACHINES) == set(FAMILIES)
    assert FAMILY_MACHINES["efi-arm64"] == {MACHINE_ARM64}
    assert FAMILY_MACHINES["efi-x64"] == {MACHINE_AMD64}
    assert MACHINE_ARM64 not in FAMILY_MACHINES["bios"]


# -- real files ------------------------------------------------------------------------------

X86_LOADERS = [
    Path("/usr/lib/shim/shimx64.efi.signed"),
    Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
]


@pytest.mark.parametrize("path", X86_LOADERS, ids=lambda p: p.name)
def test_debians_x86_loaders_are_x86_64(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    assert file_machine(path) == PeMachine(MACHINE_AMD64)


def test_the_lab_kernel_is_x86_64() -> None:
    """The lab's assets cache (Debian's amd64 cloud kernel, a bzImage with an EFI stub)."""
    from netboot_lab.assets import pc_boot_files

    kernel = pc_boot_files().kernel
    assert file_machine(kernel) == PeMachine(MACHINE_AMD64)
    cut = kernel.read_bytes()[:0x42]  # its PE header is at 0x40
    assert isinstance(pe_machine(cut), TruncatedPe)
