"""NBImageInfo.plist keys: parsing, Apple's defaults, errors naming the key, round trips."""

from __future__ import annotations

import datetime
import plistlib
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.nbi.image_id import BootImageId
from netboot.nbi.model import KNOWN_KEYS, ImageType, NBImageInfo, parse_image_info
from netboot.nbi.problems import Severity
from netboot_lab.factories import plist_dict

FILE = PurePosixPath("Alpha.nbi/NBImageInfo.plist")

EVERY_KEY: dict[str, Any] = {
    "Architectures": ["i386", "ppc"],
    "BackwardCompatible": False,
    "BootFile": "booter",
    "Description": "High Sierra lab image",
    "DisabledMACAddresses": ["00:1b:63:aa:bb:cc"],
    "DisabledSystemIdentifiers": ["MacBookPro5,1"],
    "EnabledMACAddresses": ["0:1B:63:A:B:C"],
    "EnabledSystemIdentifiers": ["iMac18,3", "MacBookPro11,1"],
    "FilterOnly": False,
    "Index": 4242,
    "IsDefault": True,
    "IsEnabled": True,
    "IsInstall": True,
    "Kind": 2,
    "Language": "Default",
    "LoadBalanceServer": "192.0.2.10",
    "Name": "High Sierra",
    "PCArchitectures": ["bios", "efi-x64", "efi-arm64"],
    "PCCommandLine": "console=ttyS0 boot=live",
    "PCInitrd": ["pc/intel-ucode.img", "pc/initrd.img"],
    "PCKernel": "pc/vmlinuz",
    "RootPath": "NetInstall.dmg",
    "SupportsDiskless": True,
    "Type": "NFS",
    "imageType": "netinstall",
    "osVersion": "10.13",
    # Keys no tool of ours models: kept verbatim.
    "AutoNBIBuildDate": datetime.datetime(2018, 5, 1, 12, 0),
    "CustomData": b"\x00\x01",
    "NBICreatorVersion": {"Major": 2, "Tags": ["lab"]},
}


def parse(plist: object) -> Any:
    return parse_image_info(plist, FILE)


def problems_for(plist: object) -> list[tuple[str, str, Severity]]:
    return [(p.key, p.message, p.severity) for p in parse(plist).problems]


def test_every_key_is_modelled() -> None:
    info = parse(EVERY_KEY).info
    assert info == NBImageInfo(
        name="High Sierra",
        index=4242,
        image_type=ImageType.NFS,
        boot_file="booter",
        root_path="NetInstall.dmg",
        architectures=("i386", "ppc"),
        kind=2,
        is_install=True,
        is_enabled=True,
        is_default=True,
        supports_diskless=True,
        filter_only=False,
        description="High Sierra lab image",
        language="Default",
        enabled_system_identifiers=("iMac18,3", "MacBookPro11,1"),
        disabled_system_identifiers=("MacBookPro5,1",),
        enabled_mac_addresses=("00:1b:63:0a:0b:0c",),  # type: ignore[arg-type]
        disabled_mac_addresses=("00:1b:63:aa:bb:cc",),  # type: ignore[arg-type]
        load_balance_server="192.0.2.10",
        os_version="10.13",
        siu_image_type="netinstall",
        backward_compatible=False,
        pc_kernel="pc/vmlinuz",
        pc_initrds=("pc/intel-ucode.img", "pc/initrd.img"),
        pc_command_line="console=ttyS0 boot=live",
        pc_architectures=("bios", "efi-x64", "efi-arm64"),
        extra={
            "AutoNBIBuildDate": datetime.datetime(2018, 5, 1, 12, 0),
            "CustomData": b"\x00\x01",
            "NBICreatorVersion": {"Major": 2, "Tags": ["lab"]},
        },
        present_keys=frozenset(EVERY_KEY) & KNOWN_KEYS,
    )
    assert parse(EVERY_KEY).problems == ()


def test_every_key_survives_a_round_trip_through_xml_and_binary() -> None:
    info = parse(EVERY_KEY).info
    assert info is not None
    written = info.to_plist()
    expected = dict(EVERY_KEY, EnabledMACAddresses=["00:1b:63:0a:0b:0c"])
    assert written == expected
    for fmt in (plistlib.FMT_XML, plistlib.FMT_BINARY):
        assert parse(plistlib.loads(plistlib.dumps(written, fmt=fmt))).info == info


def test_minimal_plist_gets_apples_defaults() -> None:
    info = parse(
        {"Name": "Min", "Index": 3, "Type": "HTTP", "BootFile": "booter", "RootPath": "a.dmg"}
    ).info
    assert info is not None
    assert info.architectures == ("ppc",)  # Apple: no Architectures means PowerPC only
    assert info.kind == 1
    assert (info.is_install, info.is_enabled, info.is_default) == (False, True, False)
    assert info.supports_diskless is False
    assert info.image_id == BootImageId(index=3, kind=1)


def test_round_trip_writes_back_only_keys_the_file_had() -> None:
    source = {"Name": "Min", "Index": 3, "Type": "HTTP", "BootFile": "booter", "RootPath": "a.dmg"}
    info = parse(source).info
    assert info is not None
    assert info.to_plist() == source


def test_missing_architectures_is_a_warning_not_an_error() -> None:
    found = problems_for(plist_dict(Architectures=None))
    assert [(k, s) for k, _, s in found] == [("Architectures", Severity.WARNING)]
    assert "PowerPC" in found[0][1]


@pytest.mark.parametrize("key", ["Name", "Index", "Type", "BootFile"])
def test_required_key_missing_is_named(key: str) -> None:
    result = parse(plist_dict(**{key: None}))
    assert result.info is None
    assert (key, "missing (required)", Severity.ERROR) in problems_for(plist_dict(**{key: None}))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("Name", 5, "must be a string, not an integer"),
        ("Name", "   ", "must not be empty"),
        ("Index", "1", "must be an integer, not a string"),
        ("Index", True, "must be an integer, not a boolean"),
        ("Index", 0, "0 is outside 1-65535"),
        ("Index", 65536, "65536 is outside 1-65535"),
        ("Index", -1, "-1 is outside 1-65535"),
        ("Kind", 128, "128 is outside 0-127"),
        ("Kind", 1.0, "must be an integer, not a real"),
        ("Type", "http", "'http' is not one of NFS, HTTP, BootFileOnly (case matters)"),
        ("Type", "Classic", "Type Classic (Mac OS 9 shared/private images) is not supported"),
        ("BootFile", "../booter", "'../booter' must be a file name inside the set"),
        ("BootFile", "/private/tftpboot/booter", "must be a file name inside the set"),
        ("BootFile", "boot\x00er", "must be a file name inside the set"),
        ("BootFile", "i386\\booter", "must be a file name inside the set"),
        ("RootPath", "", "must not be empty"),
        ("IsEnabled", "YES", "must be a boolean (<true/> or <false/>), not a string"),
        ("IsInstall", 1, "must be a boolean (<true/> or <false/>), not an integer"),
        ("IsDefault", 0, "must be a boolean"),
        ("SupportsDiskless", "true", "must be a boolean"),
        ("FilterOnly", [], "must be a boolean"),
        ("BackwardCompatible", {}, "must be a boolean (<true/> or <false/>), not a dictionary"),
        ("Architectures", "i386", "must be an array of strings, not a string"),
        ("Architectures", [], "must list at least one architecture"),
        ("Architectures", ["i386", 4], "item 1 must be a string, not an integer"),
        ("EnabledSystemIdentifiers", "iMac18,3", "must be an array of strings"),
        ("DisabledSystemIdentifiers", [b"x"], "item 0 must be a string, not data"),
        ("EnabledMACAddresses", ["00:11:22:33:44"], "item 0: '00:11:22:33:44' is not a MAC"),
        ("DisabledMACAddresses", ["00-11-22-33-44-55"], "is not a MAC address"),
        ("EnabledMACAddresses", ["00:11:22:33:44:5g"], "is not a MAC address"),
        ("Description", 1, "must be a string"),
        ("Language", False, "must be a string, not a boolean"),
        ("osVersion", 10.13, "must be a string, not a real"),
        ("imageType", ["netboot"], "must be a string, not an array"),
        ("LoadBalanceServer", "", "must not be empty"),
    ],
)
def test_bad_value_is_an_error_naming_the_key(key: str, value: object, message: str) -> None:
    result = parse(plist_dict(**{key: value}))
    assert result.info is None
    errors = [(p.key, p.message) for p in result.problems if p.severity is Severity.ERROR]
    assert len(errors) == 1, errors
    assert errors[0][0] == key
    assert message in errors[0][1]
    assert result.problems[0].file == FILE


def test_all_bad_keys_are_reported_at_once() -> None:
    found = problems_for(plist_dict(Index="x", Type="FTP", Name=3, IsEnabled="no"))
    assert sorted(k for k, _, s in found if s is Severity.ERROR) == [
        "Index",
        "IsEnabled",
        "Name",
        "Type",
    ]


def test_good_keys_of_a_broken_plist_are_still_parsed() -> None:
    result = parse(plist_dict(Type="FTP", Name="Broken", Index=9))
    assert result.info is None
    assert result.fields["name"] == "Broken"
    assert result.fields["index"] == 9


@pytest.mark.parametrize("top", [[], "text", 5, b"data"])
def test_top_level_must_be_a_dictionary(top: object) -> None:
    (problem,) = parse(top).problems
    assert problem.key == "-"
    assert "must be a dictionary" in problem.message


@pytest.mark.parametrize("image_type", ["NFS", "HTTP"])
def test_root_path_required_for_served_images(image_type: str) -> None:
    assert ("RootPath", f"missing (required for Type {image_type})", Severity.ERROR) in (
        problems_for(plist_dict(Type=image_type, RootPath=None))
    )


def test_boot_file_only_needs_kind_and_no_root_path() -> None:
    plist = plist_dict(Type="BootFileOnly", RootPath=None, Kind=None)
    assert problems_for(plist) == [
        ("Kind", "missing (required for Type BootFileOnly)", Severity.ERROR)
    ]
    info = parse(plist_dict(Type="BootFileOnly", RootPath=None, Kind=3)).info
    assert info is not None
    assert info.image_type is ImageType.BOOT_FILE_ONLY


def test_boot_file_only_cannot_be_diskless() -> None:
    result = parse(plist_dict(Type="BootFileOnly", Kind=1, SupportsDiskless=True))
    assert result.info is not None
    assert result.info.supports_diskless is False
    assert [(p.key, p.severity) for p in result.problems] == [
        ("SupportsDiskless", Severity.WARNING)
    ]


def test_diagnostics_images_are_filter_only_unless_told_otherwise() -> None:
    diag = parse(plist_dict(Kind=3)).info
    assert diag is not None and diag.filter_only is True
    told = parse(plist_dict(Kind=3, FilterOnly=False)).info
    assert told is not None and told.filter_only is False


def test_install_bit_and_kind_make_the_image_id() -> None:
    info = parse(plist_dict(IsInstall=True, Kind=1, Index=7)).info
    assert info is not None
    assert int(info.image_id) == 0x81000007


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        ({"IsEnabled": False}, "IsEnabled", "not offered"),
        ({"Name": "N" * 247}, "Name", "247 bytes long"),
        ({"Architectures": ["x86_64"]}, "Architectures", "not an architecture BSDP clients"),
        (
            {"EnabledSystemIdentifiers": ["iMac18,3"], "DisabledSystemIdentifiers": ["iMac18,3"]},
            "DisabledSystemIdentifiers",
            "iMac18,3 is also in EnabledSystemIdentifiers",
        ),
    ],
)
def test_warnings_keep_the_image_usable(overrides: dict[str, Any], key: str, fragment: str) -> None:
    result = parse(plist_dict(**overrides))
    assert result.info is not None
    assert [(p.key, p.severity) for p in result.problems] == [(key, Severity.WARNING)]
    assert fragment in result.problems[0].message


plist_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(sorted(KNOWN_KEYS)) | st.text(max_size=10), plist_values, max_size=12
    )
)
def test_any_dictionary_gives_an_info_or_named_problems(plist: dict[str, Any]) -> None:
    result = parse(plist)
    errors = [p for p in result.problems if p.severity is Severity.ERROR]
    assert (result.info is None) == bool(errors)
    for problem in result.problems:
        assert problem.file == FILE
        assert problem.key in KNOWN_KEYS or problem.key == "-"
        assert problem.render().startswith(f"{FILE}: {problem.key}: ")
    if result.info is not None:
        assert parse(result.info.to_plist()).info == result.info
