"""Build a small, real NBI set from files Debian ships, for a fresh server.

The set boots iPXE's EFI build as its booter (an Intel Mac runs any EFI binary
BSDP hands it; iPXE then chains on over the network), and its root image is an
Apple Partition Map disk with an HFS+ volume made by xorriso, the same layout as
System Image Utility's NetBoot.dmg. Nothing third-party is committed: the files
come from the `ipxe` and `xorriso` packages at set-up time.

The set is assembled in a hidden directory next to its final place and renamed
into place only when complete, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from netboot.errors import ImageError
from netboot.nbi.model import PLIST_NAME, ImageType, NBImageInfo

DEBIAN_IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
DEMO_SET_NAME = "Demo"


def demo_image_info() -> NBImageInfo:
    return NBImageInfo(
        name="netboot demo (iPXE)",
        index=1,
        image_type=ImageType.HTTP,
        boot_file="booter",
        root_path="NetBoot.dmg",
        architectures=("i386",),
        is_enabled=True,
        is_default=True,
        description="Built by `netboot images demo` from Debian's ipxe and xorriso packages.",
        language="Default",
        # Written explicitly so bsdpy, which requires these keys, can read the set too.
        present_keys=frozenset(
            {
                "IsEnabled",
                "IsInstall",
                "Kind",
                "EnabledSystemIdentifiers",
                "DisabledSystemIdentifiers",
            }
        ),
    )


def build_demo_set(
    root: Path,
    name: str = DEMO_SET_NAME,
    booter: Path = DEBIAN_IPXE_EFI,
    replace_existing: bool = False,
) -> Path:
    """Create `root/<name>.nbi`; returns its path. Raises ImageError saying what is missing."""
    target = root / f"{name}.nbi"
    if target.exists() and not replace_existing:
        raise ImageError(str(target), "-", "already exists (use --force to rebuild it)")
    if not booter.is_file():
        raise ImageError(str(booter), "-", "booter not found (install Debian's ipxe package)")
    xorriso = shutil.which("xorriso")
    if xorriso is None:
        raise ImageError("xorriso", "-", "not found on PATH (install Debian's xorriso package)")
    root.mkdir(parents=True, exist_ok=True)

    staging = Path(tempfile.mkdtemp(prefix=f".{name}.nbi.tmp", dir=root))
    try:
        (staging / "i386").mkdir()
        shutil.copyfile(booter, staging / "i386" / "booter")
        _make_root_image(xorriso, staging / "NetBoot.dmg", name)
        with (staging / PLIST_NAME).open("wb") as plist:
            plistlib.dump(demo_image_info().to_plist(), plist)
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _make_root_image(xorriso: str, image: Path, volume_name: str) -> None:
    with tempfile.TemporaryDirectory() as content:
        (Path(content) / "README.txt").write_text(
            "This volume was built by `netboot images demo`.\n"
            "A NetBoot client mounts it read-only as its root image.\n"
        )
        result = subprocess.run(
            [
                xorriso,
                "-as",
                "mkisofs",
                "-quiet",
                "-hfsplus",
                "-V",
                volume_name,
                "-o",
                str(image),
                content,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise ImageError(str(image), "-", f"xorriso failed: {result.stderr.strip()}")
