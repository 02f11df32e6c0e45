"""A tiny initramfs: busybox, and an /init that prints a marker and powers off.

Before the marker it repeats the kernel's `secureboot:` line from its log
(`Secure boot enabled` or `disabled`), which `quiet` kept off the console:
the lab reads from it whether the guest really booted under Secure Boot.

The lab's guests boot a real Linux kernel and need only prove they got that
far: the marker on the serial console is the end of a boot. The archive is
the kernel's "newc" cpio format (`Documentation/driver-api/early-userspace/
buffer-format.rst`), written here so set-up needs no cpio, no root and no
initramfs-tools.
"""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass

MARKER = "NETBOOT-LAB-BOOTED"
"""What a lab guest prints on ttyS0 once its kernel has run our /init."""

INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t proc proc /proc
/bin/busybox dmesg | /bin/busybox grep "secureboot:"
echo
echo "{MARKER} $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
"""


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    mode: int
    data: bytes = b""


def newc_archive(entries: list[Entry]) -> bytes:
    """A cpio "newc" archive of `entries`, ended by the TRAILER!!! record."""
    out = bytearray()
    for number, entry in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\x00"
        fields = [
            number if entry.name != "TRAILER!!!" else 0,  # inode
            entry.mode,
            0,  # uid
            0,  # gid
            2 if stat.S_ISDIR(entry.mode) else 1,  # nlink
            0,  # mtime: fixed, so the same inputs give the same bytes
            len(entry.data),
            0,  # devmajor
            0,  # devminor
            0,  # rdevmajor
            0,  # rdevminor
            len(name),
            0,  # check
        ]
        out += b"070701" + b"".join(f"{value:08X}".encode() for value in fields)
        out += name
        out += bytes(-len(out) % 4)
        out += entry.data
        out += bytes(-len(out) % 4)
    return bytes(out)


def marker_initrd(busybox: bytes) -> bytes:
    """The lab's initrd, gzip-compressed (every Debian kernel unpacks gzip)."""
    directory = stat.S_IFDIR | 0o755
    executable = stat.S_IFREG | 0o755
    archive = newc_archive(
        [
            Entry("bin", directory),
            Entry("dev", directory),
            Entry("proc", directory),
            Entry("sys", directory),
            Entry("bin/busybox", executable, busybox),
            Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
            Entry("init", executable, INIT_SCRIPT.encode()),
        ]
    )
    return gzip.compress(archive, compresslevel=6, mtime=0)
