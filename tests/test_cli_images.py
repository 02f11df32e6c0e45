"""`netboot images list|validate|demo`: output shapes, exit codes, the real command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from netboot.cli import cli
from netboot.nbi.catalog import scan_catalog
from netboot.udif.partitions import read_partitions
from netboot.udif.reader import UdifImage
from netboot_lab.factories import make_set

NETBOOT = [sys.executable, "-m", "netboot"]

# The contract of `images list --json`: these keys, with these types, on every object.
REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "id": (int, type(None)),
    "index": (int, type(None)),
    "name": (str, type(None)),
    "kind": (int, type(None)),
    "is_install": (bool,),
    "is_enabled": (bool,),
    "is_default": (bool,),
    "type": (str, type(None)),
    "architectures": (list,),
    "booter": (str, type(None)),
    "root_image": (str, type(None)),
    "path": (str,),
    "errors": (list,),
}


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def two_good_one_broken(tmp_path: Path) -> Path:
    make_set(tmp_path, "Alpha", Index=1, IsDefault=True)
    make_set(tmp_path, "Beta", Index=2, Type="NFS", IsInstall=True)
    make_set(tmp_path, "Broken", Index=3, Type="FTP", booter=None, root_image=b"junk" * 300)
    return tmp_path


def test_list_json_has_every_set_with_the_contract_keys(two_good_one_broken: Path) -> None:
    root = two_good_one_broken
    result = run("images", "list", "--json", "--root", str(root))
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [entry["path"] for entry in listed] == ["Alpha.nbi", "Beta.nbi", "Broken.nbi"]
    for entry in listed:
        for key, types in REQUIRED_KEYS.items():
            assert isinstance(entry[key], types), (entry["path"], key, entry[key])
        assert all(isinstance(arch, str) for arch in entry["architectures"])
        assert all(isinstance(error, str) for error in entry["errors"])
    alpha, beta, broken = listed
    assert alpha["id"] == 0x01000001 and alpha["is_default"] is True
    assert alpha["booter"] == "Alpha.nbi/i386/booter"
    assert alpha["root_image"] == "Alpha.nbi/NetBoot.dmg"
    assert alpha["errors"] == []
    assert beta["id"] == 0x81000002 and beta["type"] == "NFS" and beta["is_install"] is True
    assert broken["errors"] == [
        f"{root}/Broken.nbi/NBImageInfo.plist: Type: "
        "'FTP' is not one of NFS, HTTP, BootFileOnly (case matters)"
    ]
    assert broken["index"] == 3 and broken["name"] == "Broken" and broken["booter"] is None


def test_list_json_of_an_empty_root_is_an_empty_array(tmp_path: Path) -> None:
    result = run("images", "list", "--json", "--root", str(tmp_path))
    assert (result.exit_code, json.loads(result.output)) == (0, [])


def test_list_table_names_sets_and_problems(two_good_one_broken: Path) -> None:
    result = run("images", "list", "--root", str(two_good_one_broken))
    assert result.exit_code == 0
    for fragment in ("Alpha", "Beta.nbi", "Broken", "1 error(s)", "Type: 'FTP'"):
        assert fragment in result.output


def test_validate_prints_file_key_message_and_exits_1(two_good_one_broken: Path) -> None:
    root = two_good_one_broken
    result = run("images", "validate", "--root", str(root))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"{root}/Broken.nbi/NBImageInfo.plist: Type: "
        "'FTP' is not one of NFS, HTTP, BootFileOnly (case matters)"
    ]
    assert "2 of 3 set(s) valid" in result.stderr


def test_validate_names_each_problem_once(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=5, booter=None, root_image=None, EnabledMACAddresses=["x"])
    make_set(tmp_path, "Beta", Index=5)
    result = run("images", "validate", "--root", str(tmp_path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{tmp_path}/Alpha.nbi/NBImageInfo.plist: EnabledMACAddresses: "
        "item 0: 'x' is not a MAC address (six hex octets separated by ':')",
        f"{tmp_path}/Alpha.nbi/NBImageInfo.plist: Index: 5 is already used by Beta.nbi",
    ]


def test_validate_of_valid_sets_exits_0_and_prints_warnings(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", IsEnabled=False)
    result = run("images", "validate", "--root", str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == (
        f"{tmp_path}/Alpha.nbi/NBImageInfo.plist: IsEnabled: "
        "warning: false: the image is not offered to clients\n"
    )


def test_validate_only_the_named_sets(two_good_one_broken: Path) -> None:
    root = str(two_good_one_broken)
    assert run("images", "validate", "--root", root, "Alpha", "Beta.nbi").exit_code == 0
    assert run("images", "validate", "--root", root, "Broken").exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ["images", "validate", "--root", "{root}", "Nope"],
        ["images", "validate", "--root", "{root}/absent"],
        ["images", "validate", "--bogus"],
        ["images", "list", "--root", "{root}/absent"],
    ],
)
def test_usage_errors_exit_2(two_good_one_broken: Path, args: list[str]) -> None:
    result = run(*(a.format(root=two_good_one_broken) for a in args))
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(
    "args",
    [[], ["images"], ["images", "list"], ["images", "validate"], ["images", "demo"], ["serve"]],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = run(*args, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.output


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.startswith("netboot, version ")


def test_the_installed_command_lists_json(two_good_one_broken: Path) -> None:
    netboot = shutil.which("netboot", path=str(Path(sys.executable).parent))
    assert netboot is not None, "the netboot console script is not installed next to python"
    done = subprocess.run(
        [netboot, "images", "list", "--json", "--root", str(two_good_one_broken)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(json.loads(done.stdout)) == 3


def require_demo_tools() -> None:
    if shutil.which("xorriso") is None or not Path("/usr/lib/ipxe/ipxe.efi").is_file():
        pytest.skip("needs Debian's xorriso and ipxe packages")


def test_demo_builds_a_valid_set_from_debian_packages(tmp_path: Path) -> None:
    require_demo_tools()
    result = run("images", "demo", "--root", str(tmp_path))
    assert result.exit_code == 0, result.output
    (demo,) = scan_catalog(tmp_path).sets
    assert demo.is_servable, demo.problems
    assert demo.problems == ()
    assert str(demo.root_image_format) == "udif"
    with UdifImage.open(tmp_path / "Demo.nbi/NetBoot.dmg") as image:
        scheme, partitions = read_partitions(image.read, image.size)
        assert scheme == "apm"
        assert "Apple_HFS" in [p.type for p in partitions]
        assert image.verify().ok
    assert (tmp_path / "Demo.nbi/i386/booter").read_bytes()[:2] == b"MZ"
    assert [p.name for p in tmp_path.iterdir()] == ["Demo.nbi"]  # no staging left behind


def test_demo_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    require_demo_tools()
    assert run("images", "demo", "--root", str(tmp_path)).exit_code == 0
    again = run("images", "demo", "--root", str(tmp_path))
    assert again.exit_code == 1
    assert "already exists (use --force" in again.output
    assert run("images", "demo", "--root", str(tmp_path), "--force").exit_code == 0


def test_demo_with_a_missing_booter_leaves_nothing_behind(tmp_path: Path) -> None:
    result = run("images", "demo", "--root", str(tmp_path), "--booter", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert "booter not found" in result.output
    assert list(tmp_path.iterdir()) == []
