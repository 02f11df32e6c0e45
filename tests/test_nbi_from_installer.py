"""`netboot nbi create --from-installer` on a synthetic installer, and what it refuses.

The installer is built by `netboot_lab.installer` (xorriso's HFS+ volumes in
UDZO images, BaseSystem.dmg inside InstallESD.dmg), once per module.
"""

from __future__ import annotations

import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netboot.cli import cli
from netboot.hfs.volume import open_image
from netboot.nbi.catalog import scan_catalog
from netboot.nbi.create import XORRISO_HFSPLUS
from netboot.nbi.problems import Severity
from netboot_lab.installer import SyntheticInstaller, build_installer


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def installer(tmp_path_factory: pytest.TempPathFactory) -> SyntheticInstaller:
    if shutil.which("xorriso") is None:
        pytest.skip("needs xorriso (Debian: xorriso)")
    return build_installer(tmp_path_factory.mktemp("installer"), kernelcache_size=1 << 20)


def plist_of(set_dir: Path) -> dict[str, object]:
    data: dict[str, object] = plistlib.loads((set_dir / "NBImageInfo.plist").read_bytes())
    return data


def assert_nothing_written(root: Path) -> None:
    assert list(root.iterdir()) == [], "a refused build left files behind"


def test_netinstall_set_from_install_esd(installer: SyntheticInstaller, tmp_path: Path) -> None:
    out = tmp_path / "images" / "X.nbi"
    done = run(
        "nbi", "create", "--from-installer", installer.install_esd, "--name", "X",
        "--index", "42", out,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "netinstall set, macOS 10.12.6 (16G29)" in done.output
    with open_image(installer.base_system) as base:
        boot_efi = base.read_file("System/Library/CoreServices/boot.efi", 1 << 24)
    assert (out / "i386" / "booter").read_bytes() == boot_efi == installer.booter
    assert (out / "i386" / "x86_64" / "kernelcache").read_bytes() == installer.kernelcache
    assert (out / "NetInstall.dmg").read_bytes() == installer.install_esd.read_bytes()
    boot_plist = plistlib.loads((out / "i386" / "com.apple.Boot.plist").read_bytes())
    assert boot_plist == {"Kernel Flags": "root-dmg=file:///BaseSystem.dmg"}
    assert (out / "i386" / "PlatformSupport.plist").is_file()
    plist = plist_of(out)
    assert plist["IsInstall"] is True
    assert plist["RootPath"] == "NetInstall.dmg"
    assert plist["osVersion"] == "10.12.6"
    assert plist["imageType"] == "netinstall"
    # Models named in PlatformSupport.plist plus resolved board ids, T2 Macs left out.
    assert plist["EnabledSystemIdentifiers"] == ["MacBookPro11,1", "iMac14,1", "iMac19,1"]
    assert plist["DisabledSystemIdentifiers"] == ["Macmini8,1", "iMacPro1,1"]
    assert "Mac-0123456789ABCDEF" in done.output  # the board id no model is known for
    catalog = scan_catalog(out.parent)
    assert [s.is_valid for s in catalog] == [True]
    assert catalog.problems == ()


def test_netboot_set_from_base_system(installer: SyntheticInstaller, tmp_path: Path) -> None:
    out = tmp_path / "B.nbi"
    done = run(
        "nbi", "create", "--from-installer", installer.base_system, "--name", "B",
        "--index", "43", out,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    plist = plist_of(out)
    assert (plist["IsInstall"], plist["RootPath"], plist["imageType"]) == (
        False,
        "NetBoot.dmg",
        "netboot",
    )
    assert (out / "NetBoot.dmg").read_bytes() == installer.base_system.read_bytes()
    assert not (out / "i386" / "com.apple.Boot.plist").exists()
    assert (out / "i386" / "booter").read_bytes() == installer.booter


def test_netboot_from_install_esd_copies_the_inner_base_system(
    installer: SyntheticInstaller, tmp_path: Path
) -> None:
    out = tmp_path / "N.nbi"
    done = run(
        "nbi", "create", "--from-installer", installer.install_esd, "--netboot",
        "--name", "N", "--index", "44", out,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (out / "NetBoot.dmg").read_bytes() == installer.base_system.read_bytes()
    assert [entry.name for entry in tmp_path.iterdir()] == ["N.nbi"]


def test_installer_app_directory(installer: SyntheticInstaller, tmp_path: Path) -> None:
    shared = tmp_path / "Install macOS Sierra.app" / "Contents" / "SharedSupport"
    shared.mkdir(parents=True)
    (shared / "InstallESD.dmg").symlink_to(installer.install_esd)
    out = tmp_path / "sets" / "App.nbi"
    done = run(
        "nbi", "create", "--from-installer", shared.parents[1], "--name", "App",
        "--index", "45", "--include-t2", out,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    plist = plist_of(out)
    assert "iMacPro1,1" in plist["EnabledSystemIdentifiers"]  # type: ignore[operator]
    warnings = [p.message for p in scan_catalog(out.parent).problems]
    assert any("iMacPro1,1 has a T2 chip and cannot NetBoot" in m for m in warnings)
    assert all(p.severity is Severity.WARNING for p in scan_catalog(out.parent).problems)


def test_catalina_style_app_gives_netboot_and_refuses_netinstall(
    installer: SyntheticInstaller, tmp_path: Path
) -> None:
    # 10.13-10.15: BaseSystem.dmg beside InstallESD.dmg, which holds only Packages/.
    shared = tmp_path / "Install macOS Catalina.app" / "Contents" / "SharedSupport"
    shared.mkdir(parents=True)
    (shared / "BaseSystem.dmg").symlink_to(installer.base_system)
    (shared / "InstallESD.dmg").symlink_to(installer.base_system)  # no BaseSystem.dmg inside
    sets = tmp_path / "sets"
    sets.mkdir()
    refused = run(
        "nbi", "create", "--from-installer", shared.parents[1], "--netinstall",
        "--name", "C", "--index", "46", sets / "C.nbi",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "--netboot" in refused.output
    assert_nothing_written(sets)


def test_big_sur_app_is_refused_naming_the_version(tmp_path: Path) -> None:
    shared = tmp_path / "Install macOS Big Sur.app" / "Contents" / "SharedSupport"
    shared.mkdir(parents=True)
    (shared / "SharedSupport.dmg").write_bytes(bytes(4096))
    sets = tmp_path / "sets"
    sets.mkdir()
    done = run(
        "nbi", "create", "--from-installer", shared.parents[1], "--name", "S",
        "--index", "47", sets / "S.nbi",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "macOS 11 or later" in done.output and "10.7-10.15" in done.output
    assert "InstallESD.dmg or BaseSystem.dmg" in done.output
    assert_nothing_written(sets)


def test_apfs_base_system_is_refused(tmp_path: Path) -> None:
    # A bare APFS container: NXSB at byte 32, block size 4096, 16 blocks.
    head = bytes(32) + b"NXSB" + (4096).to_bytes(4, "little") + (16).to_bytes(8, "little")
    image = tmp_path / "BaseSystem.dmg"
    image.write_bytes(head + bytes(16 * 4096 - len(head)))
    sets = tmp_path / "sets"
    sets.mkdir()
    done = run(
        "nbi", "create", "--from-installer", image, "--name", "A", "--index", "48",
        sets / "A.nbi",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "APFS" in done.output and "macOS 11" in done.output
    assert_nothing_written(sets)


def test_an_hfs_volume_that_is_no_installer_is_refused(tmp_path: Path) -> None:
    if shutil.which("xorriso") is None:
        pytest.skip("needs xorriso")

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "README").write_text("hello\n")
    image = tmp_path / "plain.iso"
    subprocess.run([*XORRISO_HFSPLUS, "-o", str(image), str(tree)], check=True)
    sets = tmp_path / "sets"
    sets.mkdir()
    done = run(
        "nbi", "create", "--from-installer", image, "--name", "P", "--index", "49",
        sets / "P.nbi",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "neither an InstallESD.dmg" in done.output
    assert_nothing_written(sets)


def test_hand_given_boot_files_do_not_mix_with_an_installer(
    installer: SyntheticInstaller, tmp_path: Path
) -> None:
    done = run(
        "nbi", "create", "--from-installer", installer.install_esd, "--booter",
        installer.base_system, "--name", "M", "--index", "50", tmp_path / "M.nbi",
    )  # fmt: skip
    assert done.exit_code == 2
    assert "drop --booter" in done.output
    missing = run("nbi", "create", "--name", "M", "--index", "50", tmp_path / "M.nbi")
    assert missing.exit_code == 2 and "--booter" in missing.output
