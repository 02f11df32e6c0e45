"""The PC boot files of the demo image: Debian's kernel and a busybox initrd.

Nothing third-party is committed. At set-up time the kernel comes from
Debian's `linux-image-cloud-amd64` (the small kernel Debian builds for
virtual machines; it has the serial console and the EFI stub the lab needs)
and busybox from `busybox-static` (the initrd has no libc), both fetched
with `apt-get download` and unpacked with `dpkg-deb` into a cache directory:
the packages are never installed, so the host's /boot is not touched.

The arm64 demo set's pair comes the same way from `linux-image-cloud-arm64`
and arm64's `busybox-static`, through a private apt state for arm64
(`netboot.debian.foreign_apt`), into a cache directory of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from netboot.debian import ForeignApt, foreign_apt, unpack_packages, versioned_package
from netboot.errors import ImageError
from netboot.grub.build import build_http_grub, default_output
from netboot.lab.initrd import marker_initrd
from netboot.nbi.demo import ARM64_COMMAND_LINE, ARM64_FAMILIES, PcBootFiles

CACHE = Path("/var/cache/netboot/lab")
ARM64_CACHE = Path("/var/cache/netboot/lab-arm64")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
ARM64_KERNEL_PACKAGE = "linux-image-cloud-arm64"
BUSYBOX_PACKAGE = "busybox-static"


def pc_boot_files(cache: Path = CACHE) -> PcBootFiles:
    """The kernel and marker initrd, from the cache or fetched into it now."""
    return _boot_files(cache, KERNEL_PACKAGE, None)


def arm64_boot_files(cache: Path = ARM64_CACHE) -> PcBootFiles:
    """arm64's kernel and marker initrd (console on the PL011, ttyAMA0), from the cache or
    fetched into it now through a private apt state for arm64."""
    return _boot_files(cache, ARM64_KERNEL_PACKAGE, "arm64", ARM64_COMMAND_LINE)


def http_grub(family: str = "efi-arm64") -> Path:
    """`family`'s HTTP GRUB at the daemon's default `[pxe] http_grub_files` path, built now
    from Debian's modules if it is not there (`netboot build-http-grub`)."""
    path = default_output(family)
    return path if path.is_file() else build_http_grub(family, path)


def _boot_files(
    cache: Path, kernel_package: str, architecture: str | None, command_line: str | None = None
) -> PcBootFiles:
    kernel, busybox, initrd = cache / "vmlinuz", cache / "busybox", cache / "initrd.gz"
    if not kernel.is_file() or not busybox.is_file():
        _fetch(cache, kernel_package, foreign_apt(architecture) if architecture else None)
    data = marker_initrd(busybox.read_bytes())
    if not initrd.is_file() or initrd.read_bytes() != data:  # a new busybox, or a new /init
        partial = initrd.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(initrd)
    if command_line is None:
        return PcBootFiles(kernel, initrd)
    return PcBootFiles(kernel, initrd, command_line, ARM64_FAMILIES)


def _fetch(cache: Path, kernel_package: str, apt: ForeignApt | None) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        unpacked = Path(scratch)
        packages = [versioned_package(kernel_package, apt), BUSYBOX_PACKAGE]
        unpack_packages(packages, unpacked, apt)
        kernels = sorted((unpacked / "boot").glob("vmlinuz-*"))
        busybox = unpacked / "bin" / "busybox"
        if not kernels or not busybox.is_file():
            raise ImageError(str(cache), "-", "the downloaded packages hold no kernel or busybox")
        shutil.copyfile(kernels[-1], cache / "vmlinuz.partial")
        shutil.copyfile(busybox, cache / "busybox.partial")
        (cache / "vmlinuz.partial").replace(cache / "vmlinuz")
        (cache / "busybox.partial").replace(cache / "busybox")
