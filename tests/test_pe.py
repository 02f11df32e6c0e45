"""Authenticode signatures read from PE headers (netboot.pe): signed, unsigned, truncated.

Synthetic images check every branch byte by byte; Debian's own signed
binaries (shim, the network GRUB, the lab's kernel) and a kernel whose
signature sbsigntool's `sbattach --remove` stripped check it against what
real signing tools write.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from netboot.pe import HEADERS_READ, Signing, check_file, check_signature
from netboot_lab.factories import pe_image, win_certificate

PE_OFFSET = 0x80
"""Where `pe_image` puts the PE header."""


X509_ONLY = win_certificate(kind=0x0001)
OLD_REVISION = win_certificate(revision=0x0100)


def check(image: bytes) -> Signing:
    return check_signature(
        lambda offset, length: image[offset : offset + length], len(image)
    ).signing


@pytest.mark.parametrize("magic", [0x10B, 0x20B], ids=["pe32", "pe32+"])
def test_a_certificate_table_with_an_authenticode_entry_is_signed(magic: int) -> None:
    assert check(pe_image(magic=magic, certificate=win_certificate())) is Signing.SIGNED


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param(pe_image(), Signing.UNSIGNED, id="no-table"),
        pytest.param(pe_image(directories=4), Signing.UNSIGNED, id="too-few-directories"),
        pytest.param(pe_image(certificate=X509_ONLY), Signing.UNSIGNED, id="x509-only"),
        pytest.param(pe_image(certificate=OLD_REVISION), Signing.UNSIGNED, id="old-revision"),
        pytest.param(b"", Signing.NOT_PE, id="empty"),
        pytest.param(b"\x7fELF" + bytes(100), Signing.NOT_PE, id="elf"),
        pytest.param(b"MZ" + bytes(200), Signing.NOT_PE, id="dos-only"),
        pytest.param(pe_image()[:PE_OFFSET + 30], Signing.DAMAGED, id="truncated-headers"),
        pytest.param(pe_image(magic=0x1234), Signing.DAMAGED, id="unknown-magic"),
        pytest.param(
            pe_image(certificate=win_certificate())[:-10], Signing.DAMAGED, id="truncated-table"
        ),
        pytest.param(
            pe_image(certificate=win_certificate(), table_size=4), Signing.DAMAGED, id="tiny-table"
        ),
        pytest.param(
            pe_image(certificate=struct.pack("<IHH", 4096, 0x200, 2) + bytes(64)),
            Signing.DAMAGED,
            id="entry-longer-than-table",
        ),
    ],
)  # fmt: skip
def test_what_is_not_a_valid_signature(image: bytes, expected: Signing) -> None:
    assert check(image) is expected


def test_a_pe_offset_beyond_the_headers_is_damage_not_a_crash() -> None:
    image = bytearray(pe_image())
    struct.pack_into("<I", image, 0x3C, HEADERS_READ + 10)
    assert check(bytes(image)) is Signing.DAMAGED


# -- real binaries --------------------------------------------------------------------------

SIGNED_BINARIES = [
    Path("/usr/lib/shim/shimx64.efi.signed"),
    Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
]


def require(path: Path) -> None:
    if not path.is_file():
        if os.environ.get("NETBOOT_REQUIRE_ALL") == "1":
            pytest.fail(f"{path} is missing (Debian's shim-signed / grub-efi-amd64-signed)")
        pytest.skip(f"{path} is missing")


@pytest.mark.parametrize("path", SIGNED_BINARIES, ids=lambda p: p.name)
def test_debians_signed_loaders_are_signed(path: Path) -> None:
    require(path)
    assert check_file(path).signing is Signing.SIGNED


def test_debians_unsigned_ipxe_is_unsigned() -> None:
    path = Path("/usr/lib/ipxe/ipxe.efi")
    require(path)
    assert check_file(path).signing is Signing.UNSIGNED


def test_a_kernel_stripped_with_sbattach_is_unsigned(tmp_path: Path) -> None:
    from netboot_lab.assets import pc_boot_files

    if shutil.which("sbattach") is None:
        require(Path("/usr/bin/sbattach"))
    kernel = pc_boot_files().kernel
    assert check_file(kernel).signing is Signing.SIGNED
    stripped = tmp_path / "vmlinuz"
    shutil.copyfile(kernel, stripped)
    subprocess.run(["sbattach", "--remove", str(stripped)], check=True, capture_output=True)
    assert check_file(stripped).signing is Signing.UNSIGNED
