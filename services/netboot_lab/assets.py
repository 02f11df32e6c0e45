"""The PC boot files of the demo image: Debian's kernel and a busybox initrd.

Nothing third-party is committed. At set-up time the kernel comes from
Debian's `linux-image-cloud-amd64` (the small kernel Debian builds for
virtual machines; it has the serial console and the EFI stub the lab needs)
and busybox from `busybox-static` (the initrd has no libc), both fetched
with `apt-get download` and unpacked with `dpkg-deb` into a cache directory:
the packages are never installed, so the host's /boot is not touched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from netboot.debian import unpack_packages
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
        unpack_packages([_kernel_package(), BUSYBOX_PACKAGE], unpacked)
        kernels = sorted((unpacked / "boot").glob("vmlinuz-*"))
        busybox = unpacked / "bin" / "busybox"
        if not kernels or not busybox.is_file():
            raise ImageError(str(cache), "-", "the downloaded packages hold no kernel or busybox")
        shutil.copyfile(kernels[-1], cache / "vmlinuz.partial")
        shutil.copyfile(busybox, cache / "busybox.partial")
        (cache / "vmlinuz.partial").replace(cache / "vmlinuz")
        (cache / "busybox.partial").replace(cache / "busybox")


def _kernel_package() -> str:
    """The versioned package the meta-package points at (apt-get download wants that)."""
    done = subprocess.run(
        ["apt-cache", "depends", "--important", KERNEL_PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Depends:\s*(linux-image-\S+)", done.stdout)
    if found is None:
        raise ImageError(KERNEL_PACKAGE, "-", "not in the apt lists (run apt-get update, as root)")
    return found.group(1)
