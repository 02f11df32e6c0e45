"""Scanning an image root: discovery, file checks, cross-set conflicts, broken sets."""

from __future__ import annotations

import os
import plistlib
from pathlib import Path, PurePosixPath

import pytest

from netboot.nbi.catalog import scan_catalog
from netboot.nbi.problems import Severity
from netboot.nbi.validate import RootPathForm, root_path_form
from netboot.udif.detect import ImageFormat
from netboot_lab.factories import FAT_EFI_BOOTER, HFS_PLUS_IMAGE, NOT_AN_IMAGE, UDIF_IMAGE, make_set


def problems(root: Path, set_name: str = "Alpha.nbi") -> list[tuple[str, str, str, str]]:
    """(file, key, severity, message) of one set's problems."""
    catalog = scan_catalog(root)
    found = catalog.by_path(set_name)
    assert found is not None
    return [(str(p.file), p.key, str(p.severity), p.message) for p in found.problems]


def errors(root: Path, set_name: str = "Alpha.nbi") -> list[tuple[str, str, str]]:
    return [(f, k, m) for f, k, s, m in problems(root, set_name) if s == "error"]


def test_valid_set_is_servable_with_booter_and_root_image(tmp_path: Path) -> None:
    make_set(tmp_path)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid and alpha.is_servable
    assert alpha.problems == ()
    assert alpha.booters == {"i386": PurePosixPath("Alpha.nbi/i386/booter")}
    assert alpha.root_image == PurePosixPath("Alpha.nbi/NetBoot.dmg")
    assert alpha.root_image_format is ImageFormat.APPLE_PARTITION_MAP
    assert alpha.image_id is not None and int(alpha.image_id) == 0x01000001


def test_binary_plists_are_read_like_xml(tmp_path: Path) -> None:
    make_set(tmp_path, binary=True, Index=12)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid
    assert alpha.info is not None and alpha.info.index == 12


def test_sets_are_found_at_the_top_and_in_sharepoints_in_name_order(tmp_path: Path) -> None:
    make_set(tmp_path, "Zulu", Index=1)
    make_set(tmp_path / "NetBootSP0", "Beta", Index=2)
    make_set(tmp_path, "Alpha", Index=3)
    (tmp_path / "notes").mkdir()
    (tmp_path / "README.md").write_text("not a set")
    (tmp_path / ".Hidden.nbi").mkdir()
    paths = [str(s.path) for s in scan_catalog(tmp_path)]
    assert paths == ["Alpha.nbi", "NetBootSP0/Beta.nbi", "Zulu.nbi"]


def test_an_empty_root_is_an_empty_catalog(tmp_path: Path) -> None:
    catalog = scan_catalog(tmp_path)
    assert len(catalog) == 0 and catalog.servable == ()


def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        scan_catalog(tmp_path / "absent")


def test_missing_plist_is_a_broken_set(tmp_path: Path) -> None:
    (tmp_path / "Alpha.nbi").mkdir()
    assert errors(tmp_path) == [
        ("Alpha.nbi/NBImageInfo.plist", "-", "NBImageInfo.plist is missing")
    ]


@pytest.mark.parametrize(
    "content",
    [b"", b"<?xml version='1.0'?><plist><dict><key>Name</key>", b"bplist00\xff\xff", b"\x00" * 40],
)
def test_unparseable_plist_names_the_file(tmp_path: Path, content: bytes) -> None:
    make_set(tmp_path, plist=content)
    ((file, key, message),) = errors(tmp_path)
    assert (file, key) == ("Alpha.nbi/NBImageInfo.plist", "-")
    assert message.startswith("not a valid plist")


def test_missing_booter_names_boot_file_and_the_paths_tried(tmp_path: Path) -> None:
    make_set(tmp_path, booter=None)
    assert errors(tmp_path) == [
        (
            "Alpha.nbi/NBImageInfo.plist",
            "BootFile",
            "i386/booter or x86_64/booter does not exist (needed for i386 clients)",
        )
    ]


def test_booter_needed_for_every_listed_architecture(tmp_path: Path) -> None:
    make_set(tmp_path, Architectures=["i386", "ppc"])
    assert errors(tmp_path) == [
        (
            "Alpha.nbi/NBImageInfo.plist",
            "BootFile",
            "ppc/booter or booter does not exist (needed for ppc clients)",
        )
    ]


def test_ppc_booter_may_sit_at_the_top_of_old_sets(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, Architectures=["ppc"], booter=None)
    (set_dir / "booter").write_bytes(b"\x7fELF")
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.booters == {"ppc": PurePosixPath("Alpha.nbi/booter")}


@pytest.mark.parametrize(("arch", "directory"), [("i386", "x86_64"), ("arm", "arm64")])
def test_x86_64_and_arm64_layouts_serve_i386_and_arm_clients(
    tmp_path: Path, arch: str, directory: str
) -> None:
    make_set(tmp_path, Architectures=[arch], arch_dir=directory)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid
    assert alpha.booters == {arch: PurePosixPath(f"Alpha.nbi/{directory}/booter")}
    assert str(alpha.booter) == f"Alpha.nbi/{directory}/booter"


def test_booter_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, booter=None)
    (set_dir / "i386" / "booter").mkdir(parents=True)
    assert errors(tmp_path) == [
        ("Alpha.nbi/NBImageInfo.plist", "BootFile", "i386/booter is not a regular file")
    ]


def test_missing_root_image_names_root_path(tmp_path: Path) -> None:
    make_set(tmp_path, root_image=None)
    assert errors(tmp_path) == [
        ("Alpha.nbi/NBImageInfo.plist", "RootPath", "NetBoot.dmg does not exist")
    ]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (UDIF_IMAGE, ImageFormat.UDIF),
        (HFS_PLUS_IMAGE, ImageFormat.HFS_PLUS),
    ],
)
def test_udif_and_raw_volumes_are_accepted(
    tmp_path: Path, image: bytes, expected: ImageFormat
) -> None:
    make_set(tmp_path, root_image=image)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid
    assert alpha.root_image_format is expected


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (NOT_AN_IMAGE, "neither a UDIF image (no koly trailer) nor a raw disk image"),
        (b"", "is empty"),
        (b"sprs" + bytes(4092), "is a sparse image (UDSP)"),
    ],
)
def test_root_image_that_is_not_a_disk_image_is_refused(
    tmp_path: Path, image: bytes, fragment: str
) -> None:
    make_set(tmp_path, root_image=image)
    ((file, key, message),) = errors(tmp_path)
    assert (file, key) == ("Alpha.nbi/NBImageInfo.plist", "RootPath")
    assert message.startswith("NetBoot.dmg ")
    assert fragment in message


def test_boot_file_only_sets_need_no_root_image(tmp_path: Path) -> None:
    make_set(tmp_path, Type="BootFileOnly", RootPath=None, root_image=None)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid and alpha.root_image is None


@pytest.mark.parametrize(
    ("root_path", "form"),
    [
        ("NetBoot.dmg", RootPathForm.LOCAL),
        ("images/NetBoot.dmg", RootPathForm.LOCAL),
        ("192.0.2.5:/Library/NetBoot/NetBootSP0:Alpha.nbi/NetBoot.dmg", RootPathForm.NFS_REMOTE),
        ("nfs1:/export", RootPathForm.NFS_REMOTE),
        ("http://192.0.2.5/NetBoot/Alpha.nbi/NetBoot.dmg", RootPathForm.HTTP_REMOTE),
        ("https://cdn.example/x.dmg", RootPathForm.HTTP_REMOTE),
    ],
)
def test_root_path_forms(root_path: str, form: RootPathForm) -> None:
    assert root_path_form(root_path) is form


def test_remote_root_path_matching_the_type_is_served_without_a_local_image(
    tmp_path: Path,
) -> None:
    make_set(tmp_path, RootPath="http://192.0.2.5/NetBoot/Alpha.dmg", root_image=None)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid and alpha.root_image is None


def test_remote_root_path_of_the_other_protocol_is_refused(tmp_path: Path) -> None:
    make_set(tmp_path, Type="NFS", RootPath="http://192.0.2.5/Alpha.dmg", root_image=None)
    assert errors(tmp_path) == [
        (
            "Alpha.nbi/NBImageInfo.plist",
            "RootPath",
            "'http://192.0.2.5/Alpha.dmg' is a http location but Type is NFS",
        )
    ]


def test_remote_root_path_by_host_name_is_a_warning(tmp_path: Path) -> None:
    make_set(tmp_path, Type="NFS", RootPath="nfs1.lab:/export:Alpha.dmg", root_image=None)
    ((_, key, severity, message),) = problems(tmp_path)
    assert (key, severity) == ("RootPath", "warning")
    assert "EFI booters cannot resolve names" in message


def test_booter_symlink_leaving_the_set_is_refused(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, booter=None)
    (tmp_path / "outside").write_bytes(b"MZ")
    (set_dir / "i386").mkdir()
    (set_dir / "i386" / "booter").symlink_to(tmp_path / "outside")
    ((file, key, message),) = errors(tmp_path)
    assert (file, key) == ("Alpha.nbi/NBImageInfo.plist", "BootFile")
    assert message.startswith("i386/booter (symlink to ")
    assert message.endswith("leaves the set's directory")


def test_root_image_symlink_inside_the_set_is_fine(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, image_name="Real.dmg")
    (set_dir / "NetBoot.dmg").symlink_to("Real.dmg")
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid


def test_any_symlink_leaving_the_set_is_reported(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path)
    (set_dir / "i386" / "passwd").symlink_to("/etc/passwd")
    (set_dir / "i386" / "up").symlink_to("../../")
    found = errors(tmp_path)
    assert ("Alpha.nbi/i386/passwd", "-", "symlink to /etc/passwd leaves the set's directory") in (
        found
    )
    assert ("Alpha.nbi/i386/up", "-", "symlink to ../.. leaves the set's directory") in found
    assert len(found) == 2


def test_a_symlinked_set_directory_outside_the_root_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    make_set(elsewhere)
    root = tmp_path / "root"
    root.mkdir()
    (root / "Alpha.nbi").symlink_to(elsewhere / "Alpha.nbi")
    ((file, key, message),) = errors(root)
    assert (file, key) == ("Alpha.nbi", "-")
    assert "outside the image root" in message


def test_duplicate_index_is_an_error_on_the_later_set(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=5)
    make_set(tmp_path, "Beta", Index=5, Kind=2)
    catalog = scan_catalog(tmp_path)
    assert [s.is_valid for s in catalog] == [True, False]
    assert errors(tmp_path, "Beta.nbi") == [
        ("Beta.nbi/NBImageInfo.plist", "Index", "5 is already used by Alpha.nbi")
    ]


def test_a_broken_set_never_takes_an_index_from_a_good_one(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=5, root_image=None)  # broken: no image
    make_set(tmp_path, "Beta", Index=5)
    catalog = scan_catalog(tmp_path)
    assert [s.is_valid for s in catalog] == [False, True]
    assert ("Alpha.nbi/NBImageInfo.plist", "Index", "5 is already used by Beta.nbi") in errors(
        tmp_path
    )


def test_more_than_one_default_is_an_error(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=1, IsDefault=True)
    make_set(tmp_path, "Beta", Index=2, IsDefault=True)
    make_set(tmp_path, "Gamma", Index=3, IsDefault=True, IsEnabled=False)  # not eligible
    assert errors(tmp_path, "Beta.nbi") == [
        (
            "Beta.nbi/NBImageInfo.plist",
            "IsDefault",
            "Alpha.nbi is already the default image; only one set may be",
        )
    ]
    assert errors(tmp_path, "Gamma.nbi") == []


def test_kernel_warning_only_for_apple_booters(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=1, booter=FAT_EFI_BOOTER)
    make_set(tmp_path, "Beta", Index=2)  # a PE booter such as iPXE brings its own kernel
    make_set(tmp_path, "Gamma", Index=3, osVersion="10.13")
    kernel_warnings = {
        str(s.path): [p.message for p in s.warnings if p.key == "BootFile"]
        for s in scan_catalog(tmp_path)
    }
    assert kernel_warnings["Beta.nbi"] == []
    assert len(kernel_warnings["Alpha.nbi"]) == 1
    assert "no kernel next to i386/booter for i386" in kernel_warnings["Alpha.nbi"][0]
    assert len(kernel_warnings["Gamma.nbi"]) == 1


def test_kernelcache_next_to_an_apple_booter_satisfies_it(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, booter=FAT_EFI_BOOTER)
    (set_dir / "i386" / "x86_64").mkdir()
    (set_dir / "i386" / "x86_64" / "kernelcache").write_bytes(b"kc")
    assert problems(tmp_path) == []


def test_a_broken_set_never_stops_the_others(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=1)
    make_set(tmp_path, "Broken", plist=b"garbage")
    make_set(tmp_path, "Gamma", Index=3)
    catalog = scan_catalog(tmp_path)
    assert [str(s.path) for s in catalog.servable] == ["Alpha.nbi", "Gamma.nbi"]
    assert catalog.by_image_id(0x01000003) is not None
    assert catalog.by_image_id(0x01000002) is None


def test_disabled_sets_are_valid_but_not_servable(tmp_path: Path) -> None:
    make_set(tmp_path, IsEnabled=False)
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.is_valid and not alpha.is_servable


def test_unreadable_plist_is_reported(tmp_path: Path) -> None:
    # A directory in the plist's place fails to read for root too (unlike chmod 0).
    set_dir = make_set(tmp_path, plist=b"")
    (set_dir / "NBImageInfo.plist").unlink()
    (set_dir / "NBImageInfo.plist").mkdir()
    ((_, key, message),) = errors(tmp_path)
    assert (key, message) == ("-", "cannot be read: Is a directory")


def test_summary_of_a_broken_set_keeps_what_parsed(tmp_path: Path) -> None:
    make_set(tmp_path, Type="FTP", Index=9, IsInstall=True)
    (alpha,) = scan_catalog(tmp_path).sets
    summary = alpha.summary("/srv/nbimages")
    assert summary["id"] == 0x81000009
    assert summary["name"] == "Alpha"
    assert summary["type"] is None
    assert summary["valid"] is False
    assert summary["errors"] == [
        "/srv/nbimages/Alpha.nbi/NBImageInfo.plist: Type: "
        "'FTP' is not one of NFS, HTTP, BootFileOnly (case matters)"
    ]


def test_plist_written_by_the_model_scans_back(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, Description="x", EnabledMACAddresses=["00:11:22:33:44:55"])
    (alpha,) = scan_catalog(tmp_path).sets
    assert alpha.info is not None
    (set_dir / "NBImageInfo.plist").write_bytes(plistlib.dumps(alpha.info.to_plist()))
    (again,) = scan_catalog(tmp_path).sets
    assert again.info == alpha.info
    assert Severity.ERROR not in {p.severity for p in again.problems}


def test_symlink_loops_are_refused_not_crashed_on(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, root_image=None)
    (set_dir / "NetBoot.dmg").symlink_to("NetBoot.dmg")
    (set_dir / "i386" / "a").symlink_to("b")
    (set_dir / "i386" / "b").symlink_to("a")
    found = errors(tmp_path)
    assert ("Alpha.nbi/NBImageInfo.plist", "RootPath", "'NetBoot.dmg' is a symlink loop") in found
    assert ("Alpha.nbi/i386/a", "-", "symlink to b is a symlink loop") in found
    assert len(found) == 3


def test_a_set_that_is_a_symlink_loop_is_listed_with_its_error(tmp_path: Path) -> None:
    make_set(tmp_path, "Good", Index=1)
    (tmp_path / "Self.nbi").symlink_to("Self.nbi")
    (tmp_path / "Ping.nbi").symlink_to("Pong.nbi")
    (tmp_path / "Pong.nbi").symlink_to("Ping.nbi")
    catalog = scan_catalog(tmp_path)
    by_name = {str(s.path): s for s in catalog}
    assert by_name["Good.nbi"].is_servable
    for loop in ("Self.nbi", "Ping.nbi", "Pong.nbi"):
        assert not by_name[loop].is_servable
        assert any("symlink loop" in p.message for p in by_name[loop].errors), loop


def _identities(root: Path) -> list[tuple[str, int | None, bool, tuple[str, ...]]]:
    """Per set: its path, wire image ID, servability and problems: all a server derives."""
    return [
        (
            str(s.path),
            int(s.image_id) if s.image_id is not None else None,
            s.is_servable,
            tuple(p.render() for p in s.problems),
        )
        for s in scan_catalog(root)
    ]


def test_two_copies_of_a_root_agree_on_every_image_id_and_every_conflict(tmp_path: Path) -> None:
    """Several servers over one image root (shared storage or a synchronised copy) must
    give each set the same BSDP image ID, so a Mac can take any of them; nothing
    host-local (creation order, inode, mtime, the directory's own order) may count."""
    recipes = [
        ("NetBootSP0", "Alpha", {"Index": 4096}),
        ("NetBootSP0", "Beta", {"Index": 4097, "IsInstall": True}),
        ("NetBootSP1", "Gamma", {"Index": 4096, "Kind": 2}),  # collides with Alpha
        (".", "Delta", {"Index": 12, "Kind": 3}),
    ]
    first, second = tmp_path / "first", tmp_path / "second"
    for root, order in ((first, recipes), (second, list(reversed(recipes)))):
        for sharepoint, name, keys in order:
            make_set(root / sharepoint, name, **keys)
    for when, set_dir in enumerate(sorted(second.rglob("*.nbi"))):
        os.utime(set_dir / "NBImageInfo.plist", (1_000_000 + when, 2_000_000 - when))

    seen = _identities(first)
    assert seen == _identities(second)
    ids = {path: image_id for path, image_id, _, _ in seen}
    assert ids == {
        "Delta.nbi": 0x0300_000C,
        "NetBootSP0/Alpha.nbi": 0x0100_1000,
        "NetBootSP0/Beta.nbi": 0x8100_1001,
        "NetBootSP1/Gamma.nbi": 0x0200_1000,
    }
    # The same set wins the collision on both: the first in sorted path order.
    servable = {path for path, _, is_servable, _ in seen if is_servable}
    assert "NetBootSP0/Alpha.nbi" in servable and "NetBootSP1/Gamma.nbi" not in servable
