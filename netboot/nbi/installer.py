"""What to take from a macOS installer to make a NetInstall or NetBoot set.

Pure decisions over a small `InstallerTree` (is there a file at this path,
give me this small file), so the same code judges an HFS+ volume read from
a disk image, a directory in a test, and an `Install macOS ….app` bundle.
The answers are a typed `BootPlan` or a typed `Refusal` whose message says
what cannot be done, why, and what to bring instead.

Where things are, per macOS version (docs/protocols/nbi.md §5):
- the installer app keeps its images in `Contents/SharedSupport/`:
  `InstallESD.dmg` (10.7-10.15), `BaseSystem.dmg` beside it (10.13-10.15),
  or only `SharedSupport.dmg` (11 and later: refused);
- InstallESD.dmg holds `BaseSystem.dmg` and `Packages/` at its root up to
  10.12; from 10.13 BaseSystem.dmg sits beside it instead;
- inside BaseSystem: the booter `System/Library/CoreServices/boot.efi`, the
  kernelcache named by `usr/standalone/bootcaches.plist` (`PostBootPaths`,
  `Kernelcache v1.x`: `ReadOnlyPath`, then `Path`), else the known places
  (`System/Library/PrelinkedKernels/prelinkedkernel` from 10.11, the
  Startup `kernelcache` before), `SystemVersion.plist` and
  `PlatformSupport.plist` in CoreServices.
"""

from __future__ import annotations

import plistlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

SMALL_FILE_LIMIT = 4 << 20
"""Plists we read whole; anything bigger is not the file we look for."""

SYSTEM_VERSION = "System/Library/CoreServices/SystemVersion.plist"
BOOTCACHES = "usr/standalone/bootcaches.plist"
BOOTERS = ("System/Library/CoreServices/boot.efi", "usr/standalone/i386/boot.efi")
"""Apple's createCommon.sh copies the first; its 10.7 script the second."""
KERNELCACHES = (
    "System/Library/PrelinkedKernels/prelinkedkernel",
    "Library/Apple/System/Library/PrelinkedKernels/prelinkedkernel",
    "System/Library/Caches/com.apple.kext.caches/Startup/kernelcache",
)
"""Where a kernelcache sits when bootcaches.plist does not say (10.11+, 10.15, 10.7-10.10)."""
PLATFORM_SUPPORT = (
    "System/Library/CoreServices/PlatformSupport.plist",
    "System/Library/CoreServices/com.apple.recovery.boot/PlatformSupport.plist",
)
BASE_SYSTEM_IMAGE = "BaseSystem.dmg"
BIG_SUR_ASSETS = "com_apple_MobileAsset_MacSoftwareUpdate"
LAST_SUPPORTED_MAJOR = (10, 15)

BRING_INSTEAD = (
    "bring the InstallESD.dmg or BaseSystem.dmg of a macOS 10.7-10.15 installer "
    "(Install OS X ….app / Install macOS ….app, Contents/SharedSupport/)"
)


class InstallerTree(Protocol):
    """A read-only file tree; paths are relative to its root, '/'-separated."""

    @property
    def label(self) -> str:
        """How messages name the tree (`InstallESD.dmg`)."""
        ...

    def is_file(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def read_small(self, path: str, limit: int) -> bytes:
        """The whole file; raises ValueError when it is over `limit` bytes."""
        ...


class VolumeRole(StrEnum):
    INSTALL_ESD = "InstallESD"
    """BaseSystem.dmg and/or Packages/ at the root (10.7-10.15)."""
    BASE_SYSTEM = "BaseSystem"
    """A bootable system: CoreServices/SystemVersion.plist."""
    SHARED_SUPPORT = "SharedSupport"
    """macOS 11 and later: software-update assets, no InstallESD."""
    UNKNOWN = "unknown"


class RefusalReason(StrEnum):
    MACOS_11_OR_LATER = "macos-11-or-later"
    APFS = "apfs"
    NOT_AN_INSTALLER = "not-an-installer"
    NO_SYSTEM_VERSION = "no-system-version"
    NO_BOOTER = "no-booter"
    NO_KERNELCACHE = "no-kernelcache"
    NO_BASE_SYSTEM = "no-base-system"


@dataclass(frozen=True)
class Refusal:
    """Why no set can be made from this input, in words for the admin."""

    reason: RefusalReason
    message: str


@dataclass(frozen=True)
class OsVersion:
    product_version: str
    """`ProductVersion`, e.g. 10.13.6."""
    user_visible: str
    """`ProductUserVisibleVersion` (what AutoNBI writes as osVersion), else ProductVersion."""
    build: str

    @property
    def major_minor(self) -> tuple[int, int]:
        parts = [int(part) if part.isdigit() else 0 for part in self.product_version.split(".")]
        major, minor, *_ = [*parts, 0, 0]
        return major, minor

    @property
    def description(self) -> str:
        name = "Mac OS X" if self.major_minor < (10, 8) else "macOS"
        name = "OS X" if (10, 8) <= self.major_minor < (10, 12) else name
        return (
            f"{name} {self.user_visible} ({self.build})"
            if self.build
            else f"{name} {self.user_visible}"
        )


@dataclass(frozen=True)
class BootFiles:
    """Paths inside a BaseSystem volume, and what its plists say."""

    os_version: OsVersion
    booter: str
    kernelcache: str
    platform_support: str | None


def classify(tree: InstallerTree) -> VolumeRole:
    """What kind of installer volume this is, judged by its content, never its name."""
    if tree.is_file(SYSTEM_VERSION):
        return VolumeRole.BASE_SYSTEM
    if tree.is_file(BASE_SYSTEM_IMAGE) or tree.is_dir("Packages"):
        return VolumeRole.INSTALL_ESD
    if tree.is_dir(BIG_SUR_ASSETS):
        return VolumeRole.SHARED_SUPPORT
    return VolumeRole.UNKNOWN


def refuse_big_sur(what: str) -> Refusal:
    return Refusal(
        RefusalReason.MACOS_11_OR_LATER,
        f"{what} is a macOS 11 or later installer (SharedSupport.dmg): its base system is "
        "APFS and boots from kernel collections, which Macs cannot NetBoot; NetInstall and "
        f"NetBoot sets can be built from macOS 10.7-10.15 installers only: {BRING_INSTEAD}",
    )


def refuse_apfs(what: str) -> Refusal:
    return Refusal(
        RefusalReason.APFS,
        f"{what} holds an APFS volume, as macOS 11 and later base systems do; NetBoot "
        f"sets need the HFS+ base system of macOS 10.7-10.15: {BRING_INSTEAD}",
    )


def read_os_version(tree: InstallerTree) -> OsVersion | Refusal:
    """SystemVersion.plist's versions; a refusal when it is missing or unreadable."""
    if not tree.is_file(SYSTEM_VERSION):
        return Refusal(
            RefusalReason.NO_SYSTEM_VERSION,
            f"{tree.label} has no {SYSTEM_VERSION}: not a macOS base system",
        )
    plist = _plist(tree, SYSTEM_VERSION)
    version = plist.get("ProductVersion") if plist is not None else None
    if not isinstance(version, str) or not version:
        return Refusal(
            RefusalReason.NO_SYSTEM_VERSION,
            f"{tree.label}: {SYSTEM_VERSION} has no ProductVersion string",
        )
    assert plist is not None
    visible = plist.get("ProductUserVisibleVersion")
    build = plist.get("ProductBuildVersion")
    return OsVersion(
        product_version=version,
        user_visible=visible if isinstance(visible, str) and visible else version,
        build=build if isinstance(build, str) else "",
    )


def locate_boot_files(base: InstallerTree) -> BootFiles | Refusal:
    """The booter, kernelcache and PlatformSupport.plist of a BaseSystem volume."""
    version = read_os_version(base)
    if isinstance(version, Refusal):
        return version
    if version.major_minor > LAST_SUPPORTED_MAJOR:
        return Refusal(
            RefusalReason.MACOS_11_OR_LATER,
            f"{base.label} is macOS {version.product_version}: macOS 11 and later boot from "
            f"kernel collections on APFS, which Macs cannot NetBoot; {BRING_INSTEAD}",
        )
    booter = _first_file(base, BOOTERS)
    if booter is None:
        return Refusal(
            RefusalReason.NO_BOOTER,
            f"{base.label} (macOS {version.product_version}) has no booter: looked for "
            + " and ".join(BOOTERS),
        )
    candidates = (*_kernelcaches_named_by_bootcaches(base), *KERNELCACHES)
    kernelcache = _first_file(base, candidates)
    if kernelcache is None:
        return Refusal(
            RefusalReason.NO_KERNELCACHE,
            f"{base.label} (macOS {version.product_version}) has no prebuilt kernelcache "
            f"(looked for {', '.join(dict.fromkeys(candidates))}); Apple's tools build one "
            "with kextcache on macOS for 10.7 and 10.8, which Linux cannot run: build the "
            "set on a Mac, or pass --booter and --kernelcache to `netboot nbi create`",
        )
    return BootFiles(
        os_version=version,
        booter=booter,
        kernelcache=kernelcache,
        platform_support=_first_file(base, PLATFORM_SUPPORT),
    )


def _kernelcaches_named_by_bootcaches(base: InstallerTree) -> tuple[str, ...]:
    """bootcaches.plist: `PostBootPaths` → `Kernelcache v1.x` → `ReadOnlyPath`, `Path`."""
    plist = _plist(base, BOOTCACHES) if base.is_file(BOOTCACHES) else None
    post_boot = plist.get("PostBootPaths") if plist is not None else None
    if not isinstance(post_boot, dict):
        return ()
    found: list[str] = []
    for key in sorted(post_boot, reverse=True):  # the newest format version first
        entry = post_boot[key]
        if not key.startswith("Kernelcache") or not isinstance(entry, dict):
            continue
        for field in ("ReadOnlyPath", "Path"):
            path = entry.get(field)
            if isinstance(path, str) and path.strip("/"):
                found.append(path.strip("/"))
    return tuple(found)


def _first_file(tree: InstallerTree, candidates: Iterable[str]) -> str | None:
    return next((path for path in candidates if tree.is_file(path)), None)


def _plist(tree: InstallerTree, path: str) -> dict[str, object] | None:
    try:
        value = plistlib.loads(tree.read_small(path, SMALL_FILE_LIMIT))
    except (plistlib.InvalidFileException, ValueError):
        return None
    return value if isinstance(value, dict) else None


class SetKind(StrEnum):
    NETINSTALL = "netinstall"
    """IsInstall: the install volume (InstallESD.dmg) as NetInstall.dmg, booting its BaseSystem."""
    NETBOOT = "netboot"
    """The BaseSystem image itself as NetBoot.dmg."""


@dataclass(frozen=True)
class RootPlan:
    """Which image becomes the set's root, and the kernel flags that make it boot."""

    kind: SetKind
    kernel_flags: str | None
    """`Kernel Flags` for i386/com.apple.Boot.plist: the nested image to boot (xnu `root-dmg`)."""

    @property
    def root_name(self) -> str:
        return "NetInstall.dmg" if self.kind is SetKind.NETINSTALL else "NetBoot.dmg"


def plan_root(esd_holds_base_system: bool, wanted: SetKind | None) -> RootPlan | Refusal:
    """NetInstall when the install volume holds BaseSystem.dmg at its root, else NetBoot.

    An InstallESD.dmg of 10.7-10.12 is already what System Image Utility put in
    NetInstall.dmg: BaseSystem.dmg and Packages/ at the root, BaseSystem's
    `System/Installation/Packages` a symlink to them; the booted kernel mounts
    the inner image named by `root-dmg` (Apple's createCommon.sh writes
    `root-dmg=file:///BaseSystem.dmg`). A bare BaseSystem boots as it is.
    From 10.13 BaseSystem.dmg sits beside InstallESD.dmg; System Image Utility
    then wrote a new image holding the whole app, which needs an HFS+ writer
    for gigabytes of files that we do not have: refused, with the NetBoot
    set offered instead. `wanted` None means the best this input allows.
    """
    if wanted is SetKind.NETBOOT:
        return RootPlan(SetKind.NETBOOT, None)
    if esd_holds_base_system:
        return RootPlan(SetKind.NETINSTALL, f"root-dmg=file:///{BASE_SYSTEM_IMAGE}")
    if wanted is SetKind.NETINSTALL:
        return Refusal(
            RefusalReason.NO_BASE_SYSTEM,
            "a NetInstall set is served from an install volume holding BaseSystem.dmg at "
            "its root (InstallESD.dmg of 10.7-10.12); this input has none (10.13-10.15 keep "
            "BaseSystem.dmg beside InstallESD.dmg, and a new image holding the installer app "
            "cannot be written here): use --netboot to serve the base system itself",
        )
    return RootPlan(SetKind.NETBOOT, None)


@dataclass(frozen=True)
class AppImages:
    """The images an installer app's SharedSupport holds, by role."""

    install_esd: str | None
    base_system: str | None


def app_images(shared_support: InstallerTree) -> AppImages | Refusal:
    """`Install … .app/Contents/SharedSupport/`: InstallESD.dmg and, from 10.13, BaseSystem.dmg."""
    if shared_support.is_file("SharedSupport.dmg") and not shared_support.is_file("InstallESD.dmg"):
        return refuse_big_sur(shared_support.label)
    images = AppImages(
        install_esd="InstallESD.dmg" if shared_support.is_file("InstallESD.dmg") else None,
        base_system=BASE_SYSTEM_IMAGE if shared_support.is_file(BASE_SYSTEM_IMAGE) else None,
    )
    if images.install_esd is None and images.base_system is None:
        return Refusal(
            RefusalReason.NOT_AN_INSTALLER,
            f"{shared_support.label} has neither InstallESD.dmg nor BaseSystem.dmg "
            "(a partly downloaded installer app, or a stub that fetches macOS later?): "
            + BRING_INSTEAD,
        )
    return images
