"""The PC boot keys of NBImageInfo.plist (PCKernel, PCInitrd, PCCommandLine, PCArchitectures)."""

from __future__ import annotations

import plistlib
from pathlib import PurePosixPath
from typing import Any

import pytest

from netboot.nbi.model import (
    DEFAULT_PC_ARCHITECTURES,
    KNOWN_KEYS,
    PC_ARCHITECTURES,
    NBImageInfo,
    parse_image_info,
)
from netboot.nbi.problems import Severity
from netboot_lab.factories import plist_dict

FILE = PurePosixPath("Alpha.nbi/NBImageInfo.plist")


def parse_info(**overrides: Any) -> NBImageInfo:
    result = parse_image_info(plist_dict(**overrides), FILE)
    assert result.info is not None, result.problems
    return result.info


def test_the_pc_keys_are_known_and_the_families_are_fixed() -> None:
    assert {"PCKernel", "PCInitrd", "PCCommandLine", "PCArchitectures"} <= KNOWN_KEYS
    assert PC_ARCHITECTURES == (
        "bios", "efi-ia32", "efi-x64", "efi-arm32", "efi-arm64", "efi-riscv32", "efi-riscv64",
        "efi-loong64",
    )  # fmt: skip
    assert DEFAULT_PC_ARCHITECTURES == ("bios", "efi-x64")


def test_a_mac_only_set_is_not_pc_bootable() -> None:
    info = parse_info()
    assert info.pc_kernel is None and info.pc_bootable is False
    assert info.pc_initrds == ()
    assert info.pc_command_line is None
    assert info.pc_architectures == ("bios", "efi-x64")
    assert not {"PCKernel", "PCInitrd", "PCCommandLine", "PCArchitectures"} & set(info.to_plist())


def test_all_pc_keys() -> None:
    info = parse_info(
        PCKernel="pc/vmlinuz",
        PCInitrd=["pc/ucode.img", "pc/initrd.img"],
        PCCommandLine="console=ttyS0 quiet",
        PCArchitectures=["efi-arm64"],
    )
    assert info.pc_bootable is True
    assert info.pc_kernel == "pc/vmlinuz"
    assert info.pc_initrds == ("pc/ucode.img", "pc/initrd.img")
    assert info.pc_command_line == "console=ttyS0 quiet"
    assert info.pc_architectures == ("efi-arm64",)


def test_one_initrd_may_be_a_string_and_is_written_back_as_one() -> None:
    info = parse_info(PCKernel="vmlinuz", PCInitrd="initrd.img")
    assert info.pc_initrds == ("initrd.img",)
    written = info.to_plist()
    assert written["PCInitrd"] == "initrd.img"
    assert written["PCKernel"] == "vmlinuz"
    assert "PCArchitectures" not in written  # the default is not written
    assert "PCCommandLine" not in written


@pytest.mark.parametrize(
    "pc_keys",
    [
        {"PCKernel": "pc/vmlinuz"},
        {"PCKernel": "pc/vmlinuz", "PCInitrd": "pc/initrd.img"},
        {"PCKernel": "pc/vmlinuz", "PCInitrd": ["pc/initrd.img"]},
        {"PCKernel": "pc/vmlinuz", "PCInitrd": ["a", "b"], "PCCommandLine": ""},
        {"PCKernel": "k", "PCArchitectures": ["bios", "efi-x64"]},  # the default, written
        {"PCKernel": "k", "PCArchitectures": ["efi-ia32"], "PCCommandLine": "x y"},
        {"PCInitrd": [], "PCCommandLine": "orphan"},
    ],
)
def test_pc_keys_round_trip(pc_keys: dict[str, Any]) -> None:
    source = plist_dict(**pc_keys)
    result = parse_image_info(source, FILE)
    assert result.info is not None
    written = result.info.to_plist()
    if pc_keys.get("PCInitrd") == ["pc/initrd.img"]:
        assert written == dict(source, PCInitrd="pc/initrd.img")  # one initrd: a string
    else:
        assert written == source
    for fmt in (plistlib.FMT_XML, plistlib.FMT_BINARY):
        again = parse_image_info(plistlib.loads(plistlib.dumps(written, fmt=fmt)), FILE)
        assert again.info == result.info


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("PCKernel", 5, "must be a string, not an integer"),
        ("PCKernel", ["pc/vmlinuz"], "must be a string, not an array"),
        ("PCKernel", " ", "must not be empty"),
        ("PCKernel", "../vmlinuz", "'../vmlinuz' must be a relative path inside the set"),
        ("PCKernel", "/boot/vmlinuz", "must be a relative path inside the set"),
        ("PCKernel", "pc\\vmlinuz", "must be a relative path inside the set"),
        ("PCKernel", "pc/vm\x00linuz", "must be a relative path inside the set"),
        ("PCInitrd", 5, "must be a string or an array of strings, not an integer"),
        ("PCInitrd", {"a": "b"}, "must be a string or an array of strings, not a dictionary"),
        ("PCInitrd", ["ok.img", 3], "item 1 must be a string, not an integer"),
        ("PCInitrd", ["ok.img", "../x.img"], "item 1: '../x.img' must be a relative path"),
        ("PCInitrd", "", "must not be empty"),
        ("PCCommandLine", 1, "must be a string, not an integer"),
        ("PCCommandLine", "quiet\nshell", "must be one line"),
        ("PCCommandLine", "quiet\r", "must be one line"),
        ("PCArchitectures", "bios", "must be an array of strings, not a string"),
        ("PCArchitectures", [], "must list at least one of bios, efi-ia32, efi-x64, efi-arm32"),
        ("PCArchitectures", ["bios", "x86_64"], "item 1: 'x86_64' is not one of bios, efi-ia32"),
        ("PCArchitectures", ["BIOS"], "'BIOS' is not one of"),
        ("PCArchitectures", [7], "item 0 must be a string, not an integer"),
    ],
)
def test_bad_pc_values_are_errors_naming_the_key(key: str, value: object, message: str) -> None:
    result = parse_image_info(plist_dict(**{"PCKernel": "pc/vmlinuz", key: value}), FILE)
    assert result.info is None
    errors = [(p.key, p.message) for p in result.problems if p.severity is Severity.ERROR]
    assert len(errors) == 1, errors
    assert errors[0][0] == key
    assert message in errors[0][1]
    assert result.problems[0].file == FILE


def test_a_pc_set_still_needs_its_mac_keys() -> None:
    result = parse_image_info(plist_dict(PCKernel="pc/vmlinuz", BootFile=None), FILE)
    assert result.info is None
    assert [(p.key, p.message) for p in result.problems] == [("BootFile", "missing (required)")]
