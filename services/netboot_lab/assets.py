"""The PC boot files of the demo image: Debian's kernel and a busybox initrd.

Nothing third-party is committed. At set-up time the kernel comes from
Debian's `linux-image-cloud-amd64` (the small kernel Debian builds for
virtual machines; it has the serial console and the EFI stub the lab needs)
and busybox from `busybox-static` (the initrd has no libc), both fetched
with `apt-get download` and unpacked with `dpkg-deb` into a cache directory:
the packages are never installed, so the host's /boot is not touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from netboot.debian import unpack_packages, versioned_package
from netboot.errors import ImageError
from netboot.lab.initrd import marker_initrd
from netboot.nbi.demo import PcBootFiles

CACHE = Path("/var/cache/netboot/lab")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"


def pc_boot_files(cache: Path = CACHE) -> PcBootFiles:
    """The kernel and marker initrd, from the cache or fetched into it now."""
    kernel, busybox, initrd = cache / "vmlinuz", cache / "busybox", cache / "initrd.gz"
    if not kernel.is_file() or not busybox.is_file():
        _fetch(cache)
    data = marker_initrd(busybox.read_bytes())
    if not initrd.is_file() or initrd.read_bytes() != data:  # a new busybox, or a new /init
        partial = initrd.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(initrd)
    return PcBootFiles(kernel, initrd)


def _fetch(cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        unpacked = Path(scratch)
        unpack_packages([versioned_package(KERNEL_PACKAGE), BUSYBOX_PACKAGE], unpacked)
        kernels = sorted((unpacked / "boot").glob("vmlinuz-*"))
        busybox = unpacked / "bin" / "busybox"
        if not kernels or not busybox.is_file():
            raise ImageError(str(cache), "-", "the downloaded packages hold no kernel or busybox")
        shutil.copyfile(kernels[-1], cache / "vmlinuz.partial")
        shutil.copyfile(busybox, cache / "busybox.partial")
        (cache / "vmlinuz.partial").replace(cache / "vmlinuz")
        (cache / "busybox.partial").replace(cache / "busybox")
