"""Per-family PC kernels in one set (`PCKernels`): the plist form, its errors, the files
validate checks (each kernel for its CPU), and what the catalog exposes."""

from __future__ import annotations

import plistlib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from netboot.errors import ImageError
from netboot.nbi.catalog import scan_catalog
from netboot.nbi.create import PcPairSpec, SetSpec, create_set
from netboot.nbi.model import KNOWN_KEYS, NBImageInfo, PcKernelPair, parse_image_info
from netboot.nbi.problems import Severity
from netboot_lab.factories import SIGNED_PC_KERNEL, make_set, pe_image, plist_dict
from tests.pe_kernels import ARM64_KERNEL, arm64_image_header

FILE = PurePosixPath("Alpha.nbi/NBImageInfo.plist")
PLIST = str(FILE)
INITRD = b"\x1f\x8b initramfs"
ARM = {
    "Kernel": "pc/arm64/vmlinuz",
    "Initrd": "pc/arm64/initrd.gz",
    "CommandLine": "console=ttyAMA0",
}
BOTH_FILES = {
    "pc/vmlinuz": SIGNED_PC_KERNEL,
    "pc/initrd.img": INITRD,
    "pc/arm64/vmlinuz": ARM64_KERNEL,
    "pc/arm64/initrd.gz": INITRD,
}


def parsed(**overrides: Any) -> tuple[NBImageInfo | None, list[tuple[str, str]]]:
    result = parse_image_info(plist_dict(**overrides), FILE)
    return result.info, [
        (p.key, p.message) for p in result.problems if p.severity is Severity.ERROR
    ]


def info(**overrides: Any) -> NBImageInfo:
    found, errors = parsed(**overrides)
    assert found is not None, errors
    return found


# -- the plist form ----------------------------------------------------------------------------


def test_a_set_with_both_kernels_gives_each_family_its_own() -> None:
    both = info(PCKernel="pc/vmlinuz", PCInitrd="pc/initrd.img", PCCommandLine="console=ttyS0",
                PCKernels={"efi-arm64": ARM})  # fmt: skip
    assert "PCKernels" in KNOWN_KEYS
    assert both.pc_bootable and both.pc_families == ("bios", "efi-x64", "efi-arm64")
    x64 = PcKernelPair("pc/vmlinuz", ("pc/initrd.img",), "console=ttyS0")
    assert both.pc_boot("efi-x64") == both.pc_boot("bios") == x64
    assert both.pc_boot("efi-arm64") == PcKernelPair(
        "pc/arm64/vmlinuz", ("pc/arm64/initrd.gz",), "console=ttyAMA0"
    )
    assert both.pc_boot("efi-riscv64") is None
    assert both.pc_boot(None) == x64  # a family not known: PCKernel, as before


def test_a_pair_without_its_own_command_line_takes_pccommandline() -> None:
    arm = info(PCCommandLine="quiet", PCKernels={"efi-arm64": {"Kernel": "pc/Image"}})
    assert arm.pc_boot("efi-arm64") == PcKernelPair("pc/Image", (), "quiet")


def test_an_arm64_only_set_boots_only_arm64() -> None:
    arm = info(PCKernels={"efi-arm64": {"Kernel": "pc/Image", "Initrd": ["a.gz", "b.gz"]}})
    assert arm.pc_bootable and arm.pc_families == ("efi-arm64",)
    assert arm.pc_boot("efi-arm64") == PcKernelPair("pc/Image", ("a.gz", "b.gz"), None)
    assert arm.pc_boot("bios") is arm.pc_boot("efi-x64") is arm.pc_boot(None) is None


def test_every_existing_form_means_what_it_did() -> None:
    old = info(PCKernel="pc/vmlinuz", PCArchitectures=["efi-x64"])
    assert old.pc_kernels == {} and old.pc_families == ("efi-x64",)
    assert old.pc_boot("bios") is None
    assert "PCKernels" not in old.to_plist()


def test_the_pairs_are_written_back_as_read() -> None:
    plist = plist_dict(PCKernels={"efi-arm64": ARM, "efi-riscv64": {"Kernel": "pc/rv"}})
    parsed_info = parse_image_info(plistlib.loads(plistlib.dumps(plist)), FILE).info
    assert parsed_info is not None
    assert parsed_info.to_plist()["PCKernels"] == plist["PCKernels"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("pc/vmlinuz", "must be a dictionary of families, not a string"),
        ({}, "must name at least one of bios, efi-ia32"),
        ({"arm64": {"Kernel": "k"}}, "'arm64' is not one of bios, efi-ia32, efi-x64"),
        ({"efi-arm64": "pc/Image"}, "efi-arm64: must be a dictionary with Kernel, not a string"),
        ({"efi-arm64": {"Initrd": "i"}}, "efi-arm64: Kernel: missing (required)"),
        ({"efi-arm64": {"Kernel": "k", "Initrds": "i"}}, "efi-arm64: 'Initrds' is not one of"),
        ({"efi-arm64": {"Kernel": "/boot/Image"}}, "efi-arm64: Kernel: '/boot/Image' must be"),
        ({"efi-arm64": {"Kernel": "k", "Initrd": [1]}}, "efi-arm64: Initrd: item 0 must be"),
        ({"efi-arm64": {"Kernel": "k", "CommandLine": "a\nb"}},
         "efi-arm64: CommandLine: must be one line"),
    ],
)  # fmt: skip
def test_a_bad_entry_names_the_key_the_family_and_what_is_wrong(
    value: object, message: str
) -> None:
    found, errors = parsed(PCKernels=value)
    assert found is None
    ((key, text),) = errors
    assert key == "PCKernels" and text.startswith(message), text


def test_a_family_has_one_kernel_only() -> None:
    found, errors = parsed(PCKernel="pc/vmlinuz", PCKernels={"efi-x64": {"Kernel": "pc/other"}})
    assert found is None
    assert errors == [
        ("PCKernels", "efi-x64 already boots PCKernel (PCArchitectures' default: bios, efi-x64); "
                      "leave efi-x64 out of one of them"),
    ]  # fmt: skip
    explicit = info(
        PCKernel="pc/vmlinuz", PCArchitectures=["bios"], PCKernels={"efi-x64": {"Kernel": "pc/x"}}
    )
    assert explicit.pc_boot("efi-x64") == PcKernelPair("pc/x", (), None)
    assert explicit.pc_boot("bios") == PcKernelPair("pc/vmlinuz", (), None)


# -- the catalog and validate ------------------------------------------------------------------


def findings(root: Path) -> list[tuple[str, str, Severity, str]]:
    (alpha,) = scan_catalog(root).sets
    return [(str(p.file), p.key, p.severity, p.message) for p in alpha.problems]


def test_both_pairs_are_found_and_served(tmp_path: Path) -> None:
    make_set(tmp_path, files=BOTH_FILES, PCKernel="pc/vmlinuz", PCInitrd="pc/initrd.img",
             PCKernels={"efi-arm64": ARM})  # fmt: skip
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.problems == () and alpha.is_servable and alpha.pc_bootable
    arm = (
        PurePosixPath("Alpha.nbi/pc/arm64/vmlinuz"),
        PurePosixPath("Alpha.nbi/pc/arm64/initrd.gz"),
    )
    assert alpha.pc_pairs == {"efi-arm64": arm}
    assert alpha.pc_files == (alpha.pc_kernel, *alpha.pc_initrds, *arm)
    summary = alpha.summary()
    assert summary["pc_families"] == ["bios", "efi-x64", "efi-arm64"]
    assert summary["pc_architectures"] == ["bios", "efi-x64"]
    assert summary["pc_kernels"] == {
        "efi-arm64": {"kernel": ARM["Kernel"], "initrds": [ARM["Initrd"]],
                      "command_line": "console=ttyAMA0"},
    }  # fmt: skip


def test_an_arm64_only_set_is_pc_bootable(tmp_path: Path) -> None:
    make_set(tmp_path, files={"pc/Image": arm64_image_header()}, PCCommandLine="quiet",
             PCKernels={"efi-arm64": {"Kernel": "pc/Image"}})  # fmt: skip
    (alpha,) = scan_catalog(tmp_path).sets
    # Unsigned (a bare header), so a warning; PCCommandLine is the pair's, not "ignored".
    assert [(p.key, p.severity) for p in alpha.problems] == [("PCKernels", Severity.WARNING)]
    assert alpha.is_servable and alpha.pc_bootable and alpha.pc_kernel is None


def test_a_missing_pair_file_names_the_family(tmp_path: Path) -> None:
    make_set(tmp_path, files={"pc/arm64/vmlinuz": ARM64_KERNEL}, PCKernels={"efi-arm64": ARM})
    assert findings(tmp_path) == [
        (PLIST, "PCKernels", Severity.ERROR, "efi-arm64: pc/arm64/initrd.gz does not exist")
    ]
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.pc_pairs == {} and not alpha.is_servable


def test_an_x86_kernel_for_arm64_is_an_error(tmp_path: Path) -> None:
    make_set(tmp_path, files={"pc/vmlinuz": SIGNED_PC_KERNEL},
             PCKernels={"efi-arm64": {"Kernel": "pc/vmlinuz"}})  # fmt: skip
    assert findings(tmp_path) == [
        (PLIST, "PCKernels", Severity.ERROR,
         "efi-arm64: pc/vmlinuz is an EFI image for x86-64 (0x8664); efi-arm64 PCs run arm64 "
         "images"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("families", "wrong"),
    [(["bios"], "bios"), (["efi-x64"], "efi-x64"), (["bios", "efi-x64"], "bios, efi-x64")],
)
def test_an_arm64_kernel_for_x86_is_an_error(
    tmp_path: Path, families: list[str], wrong: str
) -> None:
    """A BIOS client never gets an arm64 file: validate refuses the set before it is served."""
    make_set(tmp_path, files={"pc/vmlinuz": ARM64_KERNEL}, PCKernel="pc/vmlinuz",
             PCArchitectures=families)  # fmt: skip
    ((plist, key, severity, message),) = findings(tmp_path)
    assert (plist, key, severity) == (PLIST, "PCKernel", Severity.ERROR)
    assert message.startswith(f"pc/vmlinuz is an EFI image for arm64 (0xaa64); {wrong} PCs run ")
    assert not scan_catalog(tmp_path).servable


@pytest.mark.parametrize(
    ("kernel", "what"),
    [
        pytest.param(b"\x1f\x8b gzip", "is not an EFI (PE/COFF) image (no MZ header)", id="gzip"),
        pytest.param(b"MZ" + bytes(10), "is a truncated PE image", id="truncated-dos"),
        pytest.param(arm64_image_header()[:0x42], "is a truncated PE image", id="truncated-coff"),
    ],
)
def test_an_arm64_kernel_must_be_a_whole_pe_image(tmp_path: Path, kernel: bytes, what: str) -> None:
    make_set(tmp_path, files={"pc/Image": kernel}, PCKernels={"efi-arm64": {"Kernel": "pc/Image"}})
    ((_, key, severity, message),) = findings(tmp_path)
    assert (key, severity) == ("PCKernels", Severity.ERROR)
    assert message.startswith(f"efi-arm64: pc/Image {what}")
    assert message.endswith("efi-arm64 PCs boot only a kernel with an EFI stub")


def test_a_bios_kernel_may_be_a_plain_bzimage(tmp_path: Path) -> None:
    """What validate demands for `bios`: not another CPU's PE image; a bzImage without an
    EFI stub (no PE header at all, or one cut short) is what BIOS loaders boot."""
    for name, kernel in (("Plain", b"\xea bzImage HdrS"), ("Cut", pe_image()[:0x82])):
        make_set(tmp_path, name, files={"pc/vmlinuz": kernel}, PCKernel="pc/vmlinuz",
                 PCArchitectures=["bios"], Index=len(name))  # fmt: skip
    assert all(s.problems == () for s in scan_catalog(tmp_path).sets)


# -- built by `netboot nbi create`'s builder ---------------------------------------------------


def test_the_builder_writes_each_familys_pair_under_its_own_directory(tmp_path: Path) -> None:
    """The lab's demo set: x86's kernel as PCKernel, arm64's as the efi-arm64 pair, both
    named vmlinuz and initrd.gz without clashing; the set validates and serves both."""
    sources = tmp_path / "sources"
    (sources / "x86").mkdir(parents=True)
    (sources / "arm64").mkdir()
    for arch, kernel in (("x86", SIGNED_PC_KERNEL), ("arm64", ARM64_KERNEL)):
        (sources / arch / "vmlinuz").write_bytes(kernel)
        (sources / arch / "initrd.gz").write_bytes(INITRD)
    booter = sources / "booter"
    booter.write_bytes(pe_image())
    spec = SetSpec(
        name="Both",
        index=7,
        booter=booter,
        pc_kernel=sources / "x86" / "vmlinuz",
        pc_initrds=(sources / "x86" / "initrd.gz",),
        pc_pairs=(
            PcPairSpec(
                "efi-arm64",
                sources / "arm64" / "vmlinuz",
                (sources / "arm64" / "initrd.gz",),
                "console=ttyAMA0",
            ),
        ),
    )
    built, _ = create_set(spec, tmp_path / "images" / "Both.nbi")
    plist = plistlib.loads((built / "NBImageInfo.plist").read_bytes())
    assert plist["PCKernel"] == "pc/vmlinuz"
    assert plist["PCKernels"] == {
        "efi-arm64": {
            "Kernel": "pc/efi-arm64/vmlinuz",
            "Initrd": ["pc/efi-arm64/initrd.gz"],
            "CommandLine": "console=ttyAMA0",
        }
    }
    assert (built / "pc" / "efi-arm64" / "vmlinuz").read_bytes() == ARM64_KERNEL
    (both,) = scan_catalog(tmp_path / "images").sets
    assert not [p for p in both.problems if p.severity is Severity.ERROR]
    assert both.summary()["pc_families"] == ["bios", "efi-x64", "efi-arm64"]


def test_the_builder_refuses_a_family_given_twice(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(ARM64_KERNEL)
    booter = tmp_path / "booter"
    booter.write_bytes(pe_image())
    pair = PcPairSpec("efi-arm64", kernel)
    spec = SetSpec(name="Twice", index=8, booter=booter, pc_pairs=(pair, pair))
    with pytest.raises(ImageError, match="efi-arm64 is given twice"):
        create_set(spec, tmp_path / "images" / "Twice.nbi")
    assert not (tmp_path / "images" / "Twice.nbi").exists()
