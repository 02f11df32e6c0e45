"""An HFS+ volume written by Linux's hfsplus driver, to check the reader against another writer.

Nothing on a Debian host formats or mounts HFS+ (no mkfs.hfsplus, no hfsplus
in the host kernel), and xorriso's HFS+ has no hard links, no fragmentation
and no attributes. So the volume is made in four steps, each by a real tool
where one exists:

1. xorriso makes an HFS+ volume (an APM hybrid ISO; its Apple_HFS partition);
2. a test-side patch makes it writable for Linux: clears the software-lock bit
   and grows it to 16384 blocks (Linux refuses a full or locked volume);
3. Debian's kernel (its `hfsplus.ko`, from the package, never installed) boots
   in a QEMU/TCG guest with a busybox initramfs and writes hard links,
   symlinks, a file fragmented into 20+ extents (two extents-overflow records),
   a user xattr and `com.apple.decmpfs` attributes (the `osx.` prefix), then
   prints the sha256 of every file it sees, through its own VFS;
4. test-side patches do what Linux cannot: set UF_COMPRESSED on the
   compressed files and give the type 4 and 8 files their resource forks.

The result is cached under `CACHE`, keyed by this builder's source, the
payload builder's and the kernel package, like the lab's boot files: the first
run downloads ~75 MB of packages and boots the guest (~15 s under TCG).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from netboot.debian import unpack_packages, versioned_package
from netboot.errors import ImageError
from netboot.lab.initrd import Entry, newc_archive
from netboot.udif.partitions import read_partitions
from tests.hfs_payloads import (
    CompressedFile,
    lzvn_in_resource_fork,
    lzvn_inline,
    zlib_in_resource_fork,
    zlib_inline,
)
from tests.udif_disks import content

CACHE = Path(os.environ.get("NETBOOT_TEST_CACHE", "/var/cache/netboot")) / "hfs-linux"
KERNEL_META_PACKAGE = "linux-image-amd64"
GUEST_PACKAGES = ("busybox-static", "attr", "libc6")
TOOLS = ("qemu-system-x86_64", "xorriso", "apt-get", "apt-cache", "dpkg-deb")
GUEST_TIMEOUT = 300
TOTAL_BLOCKS = 16384
"""xorriso's allocation file is one 2 KiB block: 16384 bits, so the volume can grow to that."""

MODULES = (
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "drivers/block/virtio_blk",
    "drivers/cdrom/cdrom",
    "fs/nls/nls_utf8",
    "fs/hfsplus/hfsplus",
)
APPLETS = "sh mount umount insmod ln cat dd rm mkdir sync poweroff echo sleep sha256sum find df"
DONE = "HFS-LINUX-GUEST-DONE"
VOLUME_NAME = "LINUXHFS"
HARD_LINKS = ("/hello.txt", "/links/hard1.txt", "/links/hard2.txt")
"""After `ln`, Linux turns the original into a link too: all three point at one iNode file."""
SYMLINKS = {"/links/sym_rel": "../hello.txt", "/links/sym_abs": "/System/Library/CoreServices"}

GUEST_INIT = f"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in {" ".join(module.rsplit("/", 1)[1] for module in MODULES)}; do
  insmod /lib/modules/$m.ko
done
mount -t hfsplus /dev/vda /mnt || {{ echo MOUNT-FAILED; poweroff -f; }}
cd /mnt
rm -f filler.bin
echo "hello from linux" > hello.txt
mkdir links
ln hello.txt links/hard1.txt; ln hello.txt links/hard2.txt
ln -s ../hello.txt links/sym_rel; ln -s /System/Library/CoreServices links/sym_abs
# Fragmentation: 40 x 16 KiB files, pad the volume full, free every other small file,
# then write a file that can only go into the holes.
mkdir frag; i=0
while [ $i -lt 40 ]; do dd if=/dev/zero of=frag/f$i bs=16384 count=1 2>/dev/null; i=$((i+1)); done
dd if=/dev/zero of=frag/pad bs=2048 2>/dev/null; sync
i=0; while [ $i -lt 40 ]; do rm frag/f$i; i=$((i+2)); done; sync
dd if=/dev/urandom of=big.bin bs=2048 count=150 2>/dev/null; sync
rm frag/pad; sync
mkdir comp
for name in $(cat /payload/names); do
  : > comp/$name
  value=$(cat /payload/$name.hex)
  setfattr -n osx.com.apple.decmpfs -v "$value" comp/$name || echo SETFATTR-FAILED
done
setfattr -n user.test -v hello hello.txt || echo SETFATTR-FAILED
find . -type f | while read f; do echo "SHA256 $(sha256sum "$f")"; done
cd /; umount /mnt; sync; echo {DONE}; poweroff -f
"""

UF_COMPRESSED = 0x20
FILE_RECORD = 2


class Unavailable(Exception):  # noqa: N818 - it is a reason to skip, not a failure
    """A tool or package the builder needs is missing here (the test skips, or fails in CI)."""


def compressed_files() -> dict[str, CompressedFile]:
    """The decmpfs payloads the guest attaches under /comp, by file name (types in the name)."""
    rng = random.Random(18)
    plain = content(rng, 150_000)
    return {
        "zlib3": zlib_inline(plain[:12_000]),
        "lzvn7": lzvn_inline(plain[20_000:22_500]),
        "zlib4": zlib_in_resource_fork(plain, stored=frozenset({1})),
        "lzvn8": lzvn_in_resource_fork(plain[:140_000], stored=frozenset({1})),
    }


@dataclass(frozen=True)
class LinuxVolume:
    image: Path
    guest_sha256: dict[str, str]
    """sha256 of every file as the guest's kernel read it, by path ("/hello.txt")."""
    compressed: dict[str, CompressedFile]
    """The compressed files, by path ("/comp/zlib3"), with their plain contents."""


def linux_volume(cache: Path = CACHE) -> LinuxVolume:
    """The volume, from the cache or built into it now; Unavailable if a tool is missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise Unavailable(f"not installed: {', '.join(missing)}")
    try:
        kernel_package = versioned_package(KERNEL_META_PACKAGE)
    except ImageError as error:
        raise Unavailable(str(error)) from None
    sources = b"".join(
        (Path(__file__).parent / name).read_bytes() for name in ("hfs_linux.py", "hfs_payloads.py")
    )
    key = hashlib.sha256(sources + kernel_package.encode()).hexdigest()[:16]
    image, manifest = cache / f"volume-{key}.hfs", cache / f"volume-{key}.json"
    if not image.is_file() or not manifest.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        _build(cache, kernel_package, image, manifest)
    files = compressed_files()
    return LinuxVolume(
        image,
        json.loads(manifest.read_text()),
        {f"/comp/{name}": file for name, file in files.items()},
    )


def _build(cache: Path, kernel_package: str, image: Path, manifest: Path) -> None:
    packages = _packages(cache, kernel_package)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as scratch:
        work = Path(scratch)
        volume = bytearray(_xorriso_volume(work))
        _make_writable(volume, TOTAL_BLOCKS)
        disk = work / "volume.hfs"
        disk.write_bytes(volume)
        files = compressed_files()
        initrd = work / "initrd.gz"
        initrd.write_bytes(_initramfs(packages, files))
        console = _run_guest(packages, initrd, disk)
        checksums = {
            "/" + path.removeprefix("./"): digest
            for digest, path in re.findall(r"^SHA256 ([0-9a-f]{64})  (\S+)\r?$", console, re.M)
        }
        volume = bytearray(disk.read_bytes())
        catalog = _Catalog(volume)
        for name, file in files.items():
            record = catalog.file_record(name)
            volume[record + 41] |= UF_COMPRESSED  # bsdInfo.ownerFlags
            if file.resource_fork is not None:
                _add_resource_fork(volume, record, file.resource_fork)
        big = catalog.file_record("big.bin")
        total_blocks = struct.unpack_from(">I", volume, big + 88 + 12)[0]
        inline = sum(struct.unpack_from(">8I", volume, big + 88 + 16)[1::2])
        if inline >= total_blocks:
            raise ImageError(str(disk), "big.bin", "the guest wrote no extents-overflow records")
        partial = image.with_suffix(".partial")
        partial.write_bytes(volume)
        manifest.write_text(json.dumps(checksums, indent=1, sort_keys=True))
        partial.replace(image)
    for stale in cache.glob("volume-*"):  # builds of an older builder or kernel
        if stale.stem != image.stem:
            stale.unlink()


def _packages(cache: Path, kernel_package: str) -> Path:
    """The kernel and the guest's userland, unpacked (not installed) once per kernel version."""
    tree = cache / "packages" / kernel_package
    if not (tree / ".complete").is_file():
        shutil.rmtree(tree, ignore_errors=True)
        try:
            unpack_packages([kernel_package, *GUEST_PACKAGES], tree)
        except ImageError as error:
            raise Unavailable(str(error)) from None
        (tree / ".complete").touch()
    return tree


def _xorriso_volume(work: Path) -> bytes:
    """The HFS+ partition of an xorriso hybrid ISO holding a 16 MiB filler the guest deletes."""
    source = work / "base"
    source.mkdir()
    (source / "filler.bin").write_bytes(bytes(16 << 20))
    (source / "seed.txt").write_bytes(b"seed\n")
    iso = work / "base.iso"
    subprocess.run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-quiet",
            "-hfsplus",
            "-V",
            VOLUME_NAME,
            "-o",
            str(iso),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    data = iso.read_bytes()

    def read(offset: int, size: int) -> bytes:
        return data[offset : offset + size]

    hfs = [
        part for part in read_partitions(read, len(data), str(iso))[1] if part.type == "Apple_HFS"
    ]
    if len(hfs) != 1:
        raise ImageError(str(iso), "APM", f"expected one Apple_HFS partition, found {len(hfs)}")
    return data[hfs[0].first_sector * 512 : (hfs[0].first_sector + hfs[0].sector_count) * 512]


def _make_writable(volume: bytearray, total_blocks: int) -> None:
    """Clear the software lock (0x8000) and grow to `total_blocks`, as a resize tool would:
    header counts, the allocation file's size, the new last block (alternate header) in use."""
    header = bytearray(volume[1024:1536])
    if header[:2] != b"H+":
        raise ImageError("xorriso volume", "signature", f"{bytes(header[:2])!r}, not H+")
    block_size, old_total, free = struct.unpack_from(">III", header, 40)
    allocation_blocks = struct.unpack_from(">I", header, 112 + 12)[0]
    allocation_start = struct.unpack_from(">I", header, 112 + 16)[0]
    if total_blocks > allocation_blocks * block_size * 8:
        raise ImageError("xorriso volume", "allocation file", "too small to grow the volume")
    attributes = struct.unpack_from(">I", header, 4)[0]
    struct.pack_into(">I", header, 4, attributes & ~0x8000)
    struct.pack_into(">II", header, 44, total_blocks, free + total_blocks - old_total)
    struct.pack_into(">Q", header, 112, (total_blocks + 7) // 8)
    volume += bytes(total_blocks * block_size - len(volume))
    volume[1024:1536] = header
    last = total_blocks - 1
    volume[allocation_start * block_size + last // 8] |= 0x80 >> (last % 8)
    volume[-1024:-512] = header


def _initramfs(packages: Path, files: dict[str, CompressedFile]) -> bytes:
    directory, executable = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755
    kernel_modules = next((packages / "lib" / "modules").iterdir()) / "kernel"
    entries = [
        Entry(name, directory)
        for name in ("bin", "dev", "proc", "sys", "mnt", "payload", "lib", "lib/modules", "lib64")
    ]
    entries += [
        Entry("lib/x86_64-linux-gnu", directory),
        Entry("bin/busybox", executable, (packages / "bin" / "busybox").read_bytes()),
        Entry("bin/setfattr", executable, (packages / "usr" / "bin" / "setfattr").read_bytes()),
        Entry("lib/x86_64-linux-gnu/libc.so.6", executable, _library(packages, "libc.so.6")),
        Entry("lib64/ld-linux-x86-64.so.2", executable, _library(packages, "ld-linux-x86-64.so.2")),
        Entry("init", executable, GUEST_INIT.encode()),
        Entry("payload/names", stat.S_IFREG | 0o644, " ".join(files).encode()),
    ]
    entries += [
        Entry(f"bin/{applet}", stat.S_IFLNK | 0o777, b"busybox") for applet in APPLETS.split()
    ]
    entries += [
        Entry(f"lib/modules/{module.rsplit('/', 1)[1]}.ko", stat.S_IFREG | 0o644,
              (kernel_modules / f"{module}.ko").read_bytes())
        for module in MODULES
    ]  # fmt: skip
    entries += [
        Entry(f"payload/{name}.hex", stat.S_IFREG | 0o644, b"0x" + file.attribute.hex().encode())
        for name, file in files.items()
    ]
    return gzip.compress(newc_archive(entries), 1)


def _library(packages: Path, name: str) -> bytes:
    """A library from the unpacked libc6 (followed through symlinks inside the tree)."""
    for found in sorted(packages.glob(f"**/{name}")):
        target = found
        while target.is_symlink():
            link = target.readlink()
            target = (
                packages / link.relative_to("/") if link.is_absolute() else target.parent / link
            )
        if target.is_file():
            return target.read_bytes()
    raise Unavailable(f"{name} is not in the unpacked packages under {packages}")


def _run_guest(packages: Path, initrd: Path, disk: Path) -> str:
    kernel = sorted((packages / "boot").glob("vmlinuz-*"))[-1]
    command = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 quiet panic=-1",
        "-drive", f"file={disk},format=raw,if=virtio",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=GUEST_TIMEOUT,
        check=False,
    )
    if DONE not in done.stdout or "FAILED" in done.stdout:
        raise ImageError(
            str(disk), "guest", f"the Linux guest did not finish:\n{done.stdout[-3000:]}"
        )
    return done.stdout


class _Catalog:
    """Finds file records by name in the catalog's leaf nodes (the catalog's own extents only:
    enough for the few thousand records here; names on this volume are unique)."""

    def __init__(self, volume: bytearray) -> None:
        self.volume = volume
        self.block_size = struct.unpack_from(">I", volume, 1024 + 40)[0]
        fork = struct.unpack_from(">8I", volume, 1024 + 272 + 16)
        self.extents = list(zip(fork[0::2], fork[1::2], strict=True))

    def _at(self, fork_offset: int) -> int:
        for start, count in self.extents:
            if fork_offset < count * self.block_size:
                return start * self.block_size + fork_offset
            fork_offset -= count * self.block_size
        raise ImageError("catalog", "extents", "node beyond the inline extents")

    def file_record(self, name: str) -> int:
        """The volume offset of `name`'s file record data."""
        node_size = struct.unpack_from(">H", self.volume, self._at(14 + 18))[0]
        node = struct.unpack_from(">I", self.volume, self._at(14 + 10))[0]  # first leaf
        while node:
            base = self._at(node * node_size)
            link = struct.unpack_from(">I", self.volume, base)[0]
            records = struct.unpack_from(">H", self.volume, base + 10)[0]
            for index in range(records):
                at = (
                    base
                    + struct.unpack_from(">H", self.volume, base + node_size - 2 * (index + 1))[0]
                )
                key_length, _parent, name_length = struct.unpack_from(">HIH", self.volume, at)
                stored = self.volume[at + 8 : at + 8 + 2 * name_length].decode("utf-16-be")
                data = at + 2 + key_length
                if stored == name and struct.unpack_from(">H", self.volume, data)[0] == FILE_RECORD:
                    return data
            node = link
        raise ImageError("catalog", name, "no file record of that name")


def _add_resource_fork(volume: bytearray, record: int, fork: bytes) -> None:
    """Write `fork` into the first free run of blocks and point the record's resource fork at it."""
    block_size, total, free = struct.unpack_from(">III", volume, 1024 + 40)
    bitmap = struct.unpack_from(">I", volume, 1024 + 112 + 16)[0] * block_size
    needed = -(-len(fork) // block_size)

    def used(block: int) -> bool:
        return bool(volume[bitmap + block // 8] & (0x80 >> (block % 8)))

    run = 0
    for block in range(total):
        run = 0 if used(block) else run + 1
        if run == needed:
            break
    else:
        raise ImageError("volume", "allocation", f"no run of {needed} free blocks")
    start = block - needed + 1
    for taken in range(start, block + 1):
        volume[bitmap + taken // 8] |= 0x80 >> (taken % 8)
    volume[start * block_size : start * block_size + len(fork)] = fork
    struct.pack_into(">QII", volume, record + 168, len(fork), 0, needed)
    struct.pack_into(">II", volume, record + 168 + 16, start, needed)
    for header in (1024, len(volume) - 1024):
        struct.pack_into(">I", volume, header + 48, free - needed)
