"""PC boot keys in the catalog: kernel and initrds checked on disk, and what the sets expose."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from netboot.nbi.catalog import scan_catalog
from netboot.nbi.problems import Severity
from netboot_lab.factories import SIGNED_PC_KERNEL, UNSIGNED_PC_KERNEL, make_set

KERNEL = SIGNED_PC_KERNEL
INITRD = b"\x1f\x8b initramfs"
PC_FILES = {"pc/vmlinuz": KERNEL, "pc/initrd.img": INITRD}
PLIST = "Alpha.nbi/NBImageInfo.plist"


def findings(root: Path) -> list[tuple[str, str, Severity, str]]:
    (alpha,) = scan_catalog(root).sets
    return [(str(p.file), p.key, p.severity, p.message) for p in alpha.problems]


def test_a_pc_bootable_set_exposes_its_files(tmp_path: Path) -> None:
    make_set(
        tmp_path / "NetBootSP0",
        files={**PC_FILES, "pc/ucode.img": b"ucode"},
        PCKernel="pc/vmlinuz",
        PCInitrd=["pc/ucode.img", "pc//initrd.img"],
        PCCommandLine="quiet",
    )
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.problems == ()
    assert alpha.is_servable and alpha.pc_bootable
    assert alpha.pc_kernel == PurePosixPath("NetBootSP0/Alpha.nbi/pc/vmlinuz")
    assert alpha.pc_initrds == (
        PurePosixPath("NetBootSP0/Alpha.nbi/pc/ucode.img"),
        PurePosixPath("NetBootSP0/Alpha.nbi/pc/initrd.img"),
    )
    assert alpha.pc_files == (alpha.pc_kernel, *alpha.pc_initrds)
    summary = alpha.summary()
    assert summary["pc_kernel"] == "NetBootSP0/Alpha.nbi/pc/vmlinuz"
    assert summary["pc_initrds"] == [
        "NetBootSP0/Alpha.nbi/pc/ucode.img",
        "NetBootSP0/Alpha.nbi/pc/initrd.img",
    ]
    assert summary["pc_command_line"] == "quiet"
    assert summary["pc_architectures"] == ["bios", "efi-x64"]


def test_a_mac_only_set_is_not_pc_bootable(tmp_path: Path) -> None:
    make_set(tmp_path)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_servable and not alpha.pc_bootable
    assert alpha.pc_files == ()
    summary = alpha.summary()
    assert (summary["pc_kernel"], summary["pc_initrds"], summary["pc_architectures"]) == (
        None,
        [],
        [],
    )


def test_a_missing_kernel_is_an_error_naming_file_and_key(tmp_path: Path) -> None:
    make_set(tmp_path, PCKernel="pc/vmlinuz")
    assert findings(tmp_path) == [(PLIST, "PCKernel", Severity.ERROR, "pc/vmlinuz does not exist")]
    (alpha,) = scan_catalog(tmp_path).sets
    assert not alpha.is_servable and not alpha.pc_bootable


def test_a_missing_initrd_is_an_error(tmp_path: Path) -> None:
    make_set(
        tmp_path,
        files=PC_FILES,
        PCKernel="pc/vmlinuz",
        PCInitrd=["pc/initrd.img", "pc/gone.img"],
    )
    assert findings(tmp_path) == [(PLIST, "PCInitrd", Severity.ERROR, "pc/gone.img does not exist")]


def test_a_kernel_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    make_set(tmp_path, files=PC_FILES, PCKernel="pc")
    assert findings(tmp_path) == [(PLIST, "PCKernel", Severity.ERROR, "pc is not a regular file")]


def test_a_kernel_path_leaving_the_set_is_an_error(tmp_path: Path) -> None:
    make_set(tmp_path, PCKernel="../vmlinuz")
    ((file, key, severity, message),) = findings(tmp_path)
    assert (file, key, severity) == (PLIST, "PCKernel", Severity.ERROR)
    assert "must be a relative path inside the set" in message


def test_a_kernel_symlink_leaving_the_set_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "images"
    set_dir = make_set(root, files={"pc/initrd.img": INITRD}, PCKernel="pc/vmlinuz")
    (tmp_path / "secret").write_bytes(b"outside")
    (set_dir / "pc" / "vmlinuz").symlink_to(tmp_path / "secret")
    found = findings(root)
    assert found == [
        (
            PLIST,
            "PCKernel",
            Severity.ERROR,
            f"pc/vmlinuz (symlink to {tmp_path / 'secret'}) leaves the set's directory",
        )
    ]


def test_an_initrd_symlink_inside_the_set_is_fine(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, files=PC_FILES, PCKernel="pc/vmlinuz", PCInitrd="initrd")
    (set_dir / "initrd").symlink_to("pc/initrd.img")
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.problems == ()
    assert alpha.pc_initrds == (PurePosixPath("Alpha.nbi/initrd"),)


def test_initrd_or_command_line_without_kernel_is_a_warning(tmp_path: Path) -> None:
    make_set(tmp_path, files=PC_FILES, PCInitrd="pc/initrd.img", PCCommandLine="quiet")
    assert findings(tmp_path) == [
        (PLIST, "PCInitrd", Severity.WARNING, "ignored without PCKernel"),
        (PLIST, "PCCommandLine", Severity.WARNING, "ignored without PCKernel"),
    ]
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_servable and not alpha.pc_bootable


def test_ipxe_settings_in_the_command_line_are_a_warning(tmp_path: Path) -> None:
    make_set(tmp_path, files=PC_FILES, PCKernel="pc/vmlinuz", PCCommandLine="BOOTIF=${net0/mac}")
    ((_, key, severity, message),) = findings(tmp_path)
    assert (key, severity) == ("PCCommandLine", Severity.WARNING)
    assert "not expanded" in message


def test_a_pc_set_still_needs_its_booter(tmp_path: Path) -> None:
    make_set(tmp_path, booter=None, files=PC_FILES, PCKernel="pc/vmlinuz")
    (alpha,) = scan_catalog(tmp_path).sets
    assert not alpha.is_servable
    assert [p.key for p in alpha.errors] == ["BootFile"]


def test_an_unsigned_kernel_is_a_warning_that_names_the_file(tmp_path: Path) -> None:
    """Secure Boot refuses it (GRUB: 'bad shim signature'); BIOS and SB-off PCs still boot it."""
    files = {"pc/vmlinuz": UNSIGNED_PC_KERNEL, "pc/initrd.img": INITRD}
    make_set(tmp_path, files=files, PCKernel="pc/vmlinuz", PCInitrd="pc/initrd.img")
    ((plist, key, severity, message),) = findings(tmp_path)
    assert (plist, key, severity) == (PLIST, "PCKernel", Severity.WARNING)
    assert message.startswith("pc/vmlinuz has no Authenticode signature")
    assert "Secure Boot" in message
    assert len(scan_catalog(tmp_path).servable) == 1  # a warning: the set is still served


def test_a_kernel_that_is_no_efi_image_is_a_warning(tmp_path: Path) -> None:
    files = {"pc/vmlinuz": b"\x7fELF not a bzImage", "pc/initrd.img": INITRD}
    make_set(tmp_path, files=files, PCKernel="pc/vmlinuz", PCInitrd="pc/initrd.img")
    ((_, key, severity, message),) = findings(tmp_path)
    assert (key, severity) == ("PCKernel", Severity.WARNING)
    assert "is not an EFI (PE/COFF) image" in message


def test_a_bios_only_image_needs_no_signature(tmp_path: Path) -> None:
    files = {"pc/vmlinuz": UNSIGNED_PC_KERNEL, "pc/initrd.img": INITRD}
    make_set(
        tmp_path, files=files, PCKernel="pc/vmlinuz", PCInitrd="pc/initrd.img",
        PCArchitectures=["bios"],
    )  # fmt: skip
    assert findings(tmp_path) == []
