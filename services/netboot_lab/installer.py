"""A synthetic macOS installer: what `nbi create --from-installer` reads, made on Linux.

No Apple installer may be redistributed, so tests, the lab and anyone checking
the command build a stand-in with the same structure, nested the same way:

    InstallESD.dmg   UDZO image of an APM disk whose HFS+ volume holds
      BaseSystem.dmg   UDZO image of an APM disk whose HFS+ volume holds
        System/Library/CoreServices/boot.efi, SystemVersion.plist,
        PlatformSupport.plist, System/Library/PrelinkedKernels/prelinkedkernel,
        usr/standalone/bootcaches.plist
      BaseSystem.chunklist, Packages/OSInstall.mpkg

the layout of a 10.7-10.12 InstallESD.dmg (docs/protocols/nbi.md §5). xorriso
writes each HFS+ volume (as the HFS+ side of a hybrid ISO with an Apple
Partition Map; Debian has no mkfs.hfsplus) and our UDIF writer compresses it,
as `netboot dmg convert --format UDZO` does. The booter and kernelcache are
deterministic pseudo-random bytes (the booter with Apple's fat EFI magic), so
a test can check that the set's copies are byte-identical.

`netboot lab installer OUT_DIR` builds one for people.
"""

from __future__ import annotations

import hashlib
import plistlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from netboot.nbi.create import XORRISO_HFSPLUS
from netboot.udif.conversion import OutputFormat
from netboot.udif.writer import write_image

FAT_EFI_MAGIC = b"\xb9\xfa\xf1\x0e"
SUPPORTED_MODELS = ("iMac14,1", "MacBookPro11,1", "iMacPro1,1")
SUPPORTED_BOARD_IDS = (
    "Mac-AA95B1DDAB278B95",  # iMac19,1
    "Mac-7BA5B2DFE22DDD8C",  # Macmini8,1 (T2)
    "Mac-0123456789ABCDEF",  # unknown to the model table
)
"""What the synthetic PlatformSupport.plist supports: models, T2 Macs and an unknown board."""


class InstallerBuildError(Exception):
    """xorriso is missing or failed."""


@dataclass(frozen=True)
class SyntheticInstaller:
    install_esd: Path
    base_system: Path
    """The same BaseSystem.dmg that is inside InstallESD.dmg, kept beside it."""
    booter: bytes
    kernelcache: bytes
    product_version: str
    build: str


def pseudo_random(seed: str, size: int) -> bytes:
    """`size` bytes that do not compress and are the same every run."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def build_installer(
    directory: Path,
    *,
    product_version: str = "10.12.6",
    build: str = "16G29",
    kernelcache_size: int = 3 << 20,
) -> SyntheticInstaller:
    """Write InstallESD.dmg and BaseSystem.dmg into `directory` (created if needed)."""
    if shutil.which("xorriso") is None:
        raise InstallerBuildError(
            "building the synthetic installer needs xorriso (Debian: xorriso)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    booter = FAT_EFI_MAGIC + pseudo_random("boot.efi", 300_000)
    kernelcache = pseudo_random("prelinkedkernel", kernelcache_size)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".installer-") as scratch:
        work = Path(scratch)
        base = work / "base"
        _write(base / "System/Library/CoreServices/boot.efi", booter)
        _write(base / "System/Library/PrelinkedKernels/prelinkedkernel", kernelcache)
        _write(
            base / "System/Library/CoreServices/SystemVersion.plist",
            plistlib.dumps(
                {
                    "ProductName": "Mac OS X",
                    "ProductVersion": product_version,
                    "ProductUserVisibleVersion": product_version,
                    "ProductBuildVersion": build,
                }
            ),
        )
        _write(
            base / "System/Library/CoreServices/PlatformSupport.plist",
            plistlib.dumps(
                {
                    "SupportedModelProperties": list(SUPPORTED_MODELS),
                    "SupportedBoardIds": list(SUPPORTED_BOARD_IDS),
                }
            ),
        )
        _write(
            base / "usr/standalone/bootcaches.plist",
            plistlib.dumps(
                {
                    "BooterPaths": {"EFIBooter": "/System/Library/CoreServices/boot.efi"},
                    "PostBootPaths": {
                        "Kernelcache v1.3": {
                            "Path": "/System/Library/PrelinkedKernels/prelinkedkernel",
                            "KernelPath": "/System/Library/Kernels/kernel",
                            "Archs": ["x86_64"],
                        }
                    },
                }
            ),
        )
        _write(base / "System/Library/Kernels/kernel", pseudo_random("kernel", 4096))
        base_system = directory / "BaseSystem.dmg"
        _hfs_udzo(base, f"OS X Base System {product_version}", work / "base.iso", base_system)

        esd = work / "esd"
        _write(esd / "BaseSystem.chunklist", pseudo_random("chunklist", 512))
        _write(esd / "Packages/OSInstall.mpkg", pseudo_random("OSInstall.mpkg", 8192))
        shutil.copyfile(base_system, esd / "BaseSystem.dmg")
        install_esd = directory / "InstallESD.dmg"
        _hfs_udzo(esd, "OS X Install ESD", work / "esd.iso", install_esd)
    return SyntheticInstaller(
        install_esd=install_esd,
        base_system=base_system,
        booter=booter,
        kernelcache=kernelcache,
        product_version=product_version,
        build=build,
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _hfs_udzo(tree: Path, volume_name: str, raw: Path, target: Path) -> None:
    done = subprocess.run(
        [*XORRISO_HFSPLUS, "-V", volume_name[:27], "-o", str(raw), str(tree)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise InstallerBuildError(f"xorriso failed: {done.stderr.strip()}")
    write_image(raw, target, OutputFormat.UDZO)
    raw.unlink()
