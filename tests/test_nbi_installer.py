"""The installer locator: which files make a set, per macOS version, and what is refused."""

from __future__ import annotations

import plistlib
from dataclasses import dataclass, field

import pytest

from netboot.nbi.installer import (
    BOOTCACHES,
    SYSTEM_VERSION,
    AppImages,
    BootFiles,
    Refusal,
    RefusalReason,
    RootPlan,
    SetKind,
    VolumeRole,
    app_images,
    classify,
    locate_boot_files,
    plan_root,
)


@dataclass
class DictTree:
    """A file tree in memory: path -> bytes; directories are implied by the paths."""

    files: dict[str, bytes] = field(default_factory=dict)
    label: str = "BaseSystem.dmg"

    def is_file(self, path: str) -> bool:
        return path in self.files

    def is_dir(self, path: str) -> bool:
        return any(name.startswith(path.rstrip("/") + "/") for name in self.files)

    def read_small(self, path: str, limit: int) -> bytes:
        data = self.files[path]
        if len(data) > limit:
            raise ValueError(f"{path} is over {limit} bytes")
        return data


def version_plist(version: str, build: str = "17G66", visible: str | None = None) -> bytes:
    plist = {"ProductVersion": version, "ProductBuildVersion": build}
    if visible:
        plist["ProductUserVisibleVersion"] = visible
    return plistlib.dumps(plist)


BOOT_EFI = "System/Library/CoreServices/boot.efi"
PRELINKED = "System/Library/PrelinkedKernels/prelinkedkernel"
STARTUP = "System/Library/Caches/com.apple.kext.caches/Startup/kernelcache"
PLATFORM = "System/Library/CoreServices/PlatformSupport.plist"


def base_system(version: str, *paths: str, **extra: bytes) -> DictTree:
    files = {SYSTEM_VERSION: version_plist(version), **{p: b"x" for p in paths}}
    files.update({k.replace("__", "/"): v for k, v in extra.items()})
    return DictTree(files)


@pytest.mark.parametrize(
    ("version", "cache"),
    [
        ("10.9.5", STARTUP),
        ("10.10.5", STARTUP),
        ("10.11.6", PRELINKED),
        ("10.13.6", PRELINKED),
    ],
)
def test_kernelcache_per_version_without_bootcaches(version: str, cache: str) -> None:
    found = locate_boot_files(base_system(version, BOOT_EFI, cache, PLATFORM))
    assert isinstance(found, BootFiles)
    assert (found.booter, found.kernelcache, found.platform_support) == (BOOT_EFI, cache, PLATFORM)
    assert found.os_version.product_version == version


def test_bootcaches_plist_read_only_path_wins_like_10_15() -> None:
    writable = "Library/Apple/System/Library/PrelinkedKernels/prelinkedkernel"
    bootcaches = plistlib.dumps(
        {
            "PostBootPaths": {
                "Kernelcache v1.5": {"Path": "/" + writable, "ReadOnlyPath": "/" + PRELINKED}
            }
        }
    )
    tree = base_system("10.15.7", BOOT_EFI, PRELINKED, writable)
    tree.files[BOOTCACHES] = bootcaches
    found = locate_boot_files(tree)
    assert isinstance(found, BootFiles)
    assert found.kernelcache == PRELINKED
    del tree.files[PRELINKED]
    found = locate_boot_files(tree)
    assert isinstance(found, BootFiles)
    assert found.kernelcache == writable


def test_bootcaches_plist_names_a_path_outside_the_table() -> None:
    odd = "System/Library/Caches/Odd/kernelcache"
    tree = base_system("10.12.6", BOOT_EFI, odd, STARTUP)
    tree.files[BOOTCACHES] = plistlib.dumps({"PostBootPaths": {"Kernelcache v1.3": {"Path": odd}}})
    found = locate_boot_files(tree)
    assert isinstance(found, BootFiles) and found.kernelcache == odd


def test_lion_booter_from_usr_standalone_and_recovery_platform_support() -> None:
    lion_platform = "System/Library/CoreServices/com.apple.recovery.boot/PlatformSupport.plist"
    tree = base_system("10.7.5", "usr/standalone/i386/boot.efi", STARTUP, lion_platform)
    found = locate_boot_files(tree)
    assert isinstance(found, BootFiles)
    assert found.booter == "usr/standalone/i386/boot.efi"
    assert found.platform_support == lion_platform
    assert found.os_version.description == "Mac OS X 10.7.5 (17G66)"


def test_os_version_prefers_the_user_visible_version() -> None:
    tree = base_system("10.13.6", BOOT_EFI, PRELINKED)
    tree.files[SYSTEM_VERSION] = version_plist("10.13.6", "17G14042", "10.13.6 Supplemental")
    found = locate_boot_files(tree)
    assert isinstance(found, BootFiles)
    assert found.os_version.user_visible == "10.13.6 Supplemental"
    assert found.os_version.description == "macOS 10.13.6 Supplemental (17G14042)"


@pytest.mark.parametrize(
    ("tree", "reason", "words"),
    [
        (DictTree({}), RefusalReason.NO_SYSTEM_VERSION, "not a macOS base system"),
        (
            DictTree({SYSTEM_VERSION: b"garbage"}),
            RefusalReason.NO_SYSTEM_VERSION,
            "no ProductVersion",
        ),
        (base_system("11.2.3", BOOT_EFI), RefusalReason.MACOS_11_OR_LATER, "macOS 11.2.3"),
        (base_system("10.14.6", PRELINKED), RefusalReason.NO_BOOTER, "boot.efi"),
        (base_system("10.8.5", BOOT_EFI), RefusalReason.NO_KERNELCACHE, "kextcache"),
    ],
)
def test_refusals_say_what_and_why(tree: DictTree, reason: RefusalReason, words: str) -> None:
    refused = locate_boot_files(tree)
    assert isinstance(refused, Refusal)
    assert refused.reason is reason
    assert words in refused.message


def test_classify_by_content_not_name() -> None:
    assert classify(base_system("10.12.6")) is VolumeRole.BASE_SYSTEM
    assert classify(DictTree({"BaseSystem.dmg": b"", "Packages/OSInstall.mpkg": b""})) is (
        VolumeRole.INSTALL_ESD
    )
    assert classify(DictTree({"Packages/Core.pkg": b""})) is VolumeRole.INSTALL_ESD
    big_sur = DictTree({"com_apple_MobileAsset_MacSoftwareUpdate/abc.zip": b""})
    assert classify(big_sur) is VolumeRole.SHARED_SUPPORT
    assert classify(DictTree({"README": b""})) is VolumeRole.UNKNOWN


def test_root_plan() -> None:
    assert plan_root(True, None) == RootPlan(SetKind.NETINSTALL, "root-dmg=file:///BaseSystem.dmg")
    assert plan_root(True, None).root_name == "NetInstall.dmg"  # type: ignore[union-attr]
    assert plan_root(True, SetKind.NETBOOT) == RootPlan(SetKind.NETBOOT, None)
    assert plan_root(False, None) == RootPlan(SetKind.NETBOOT, None)
    refused = plan_root(False, SetKind.NETINSTALL)
    assert isinstance(refused, Refusal) and "--netboot" in refused.message


def test_app_images_per_generation() -> None:
    sierra = DictTree({"InstallESD.dmg": b""}, label="SharedSupport")
    assert app_images(sierra) == AppImages("InstallESD.dmg", None)
    catalina = DictTree({"InstallESD.dmg": b"", "BaseSystem.dmg": b""}, label="SharedSupport")
    assert app_images(catalina) == AppImages("InstallESD.dmg", "BaseSystem.dmg")
    big_sur = app_images(DictTree({"SharedSupport.dmg": b""}, label="Install macOS Big Sur.app"))
    assert isinstance(big_sur, Refusal) and big_sur.reason is RefusalReason.MACOS_11_OR_LATER
    assert "Install macOS Big Sur.app" in big_sur.message and "10.7-10.15" in big_sur.message
    stub = app_images(DictTree({}, label="Install macOS Catalina.app"))
    assert isinstance(stub, Refusal) and stub.reason is RefusalReason.NOT_AN_INSTALLER
