"""Builders for valid-by-default inputs of tests and benchmarks: NBI sets, plists, disk images.

Each builder makes the smallest thing that is valid, and takes keyword
arguments to break exactly one part of it, so a test says only what it changes.
"""

from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any

# An Apple Partition Map disk: Driver Descriptor Map ("ER", block size 512),
# then the first map entry ("PM") in block 1.
APM_IMAGE = b"ER\x02\x00" + bytes(508) + b"PM" + bytes(510) + bytes(3072)
# A bare HFS+ volume: signature "H+" and version 4 at byte 1024.
HFS_PLUS_IMAGE = bytes(1024) + b"H+\x00\x04" + bytes(3068)
# A UDIF image: any data fork, then a 512-byte koly trailer (version 4, size 512).
UDIF_IMAGE = bytes(4096) + b"koly" + (4).to_bytes(4, "big") + (512).to_bytes(4, "big") + bytes(500)
NOT_AN_IMAGE = b"this is a text file, not a disk image\n" * 100

# Apple's booter: a universal EFI binary (fat header magic), then anything.
FAT_EFI_BOOTER = b"\xb9\xfa\xf1\x0e" + bytes(60)
PE_BOOTER = b"MZ" + bytes(62)


def plist_dict(**overrides: Any) -> dict[str, Any]:
    """A minimal valid NBImageInfo.plist (HTTP, i386); None removes a key."""
    plist: dict[str, Any] = {
        "Architectures": ["i386"],
        "BootFile": "booter",
        "Index": 1,
        "IsEnabled": True,
        "Kind": 1,
        "Name": "Alpha",
        "RootPath": "NetBoot.dmg",
        "Type": "HTTP",
    }
    for key, value in overrides.items():
        if value is None:
            plist.pop(key, None)
        else:
            plist[key] = value
    return plist


def make_set(
    root: Path,
    name: str = "Alpha",
    *,
    plist: dict[str, Any] | bytes | None = None,
    binary: bool = False,
    booter: bytes | None = PE_BOOTER,
    arch_dir: str = "i386",
    root_image: bytes | None = APM_IMAGE,
    image_name: str = "NetBoot.dmg",
    files: dict[str, bytes] | None = None,
    **plist_overrides: Any,
) -> Path:
    """Write `root/<name>.nbi` and return its path.

    `plist` replaces the whole plist (bytes are written verbatim); otherwise
    `plist_overrides` adjust the default one (Name defaults to `name`).
    `files` are more files to write, by their path inside the set (a PC kernel
    named by `PCKernel="pc/vmlinuz"`, say).
    """
    set_dir = root / f"{name}.nbi"
    set_dir.mkdir(parents=True)
    if isinstance(plist, bytes):
        (set_dir / "NBImageInfo.plist").write_bytes(plist)
    else:
        content = plist if plist is not None else plist_dict(**{"Name": name, **plist_overrides})
        fmt = plistlib.FMT_BINARY if binary else plistlib.FMT_XML
        (set_dir / "NBImageInfo.plist").write_bytes(plistlib.dumps(content, fmt=fmt))
    if booter is not None:
        (set_dir / arch_dir).mkdir()
        (set_dir / arch_dir / "booter").write_bytes(booter)
    if root_image is not None:
        (set_dir / image_name).write_bytes(root_image)
    for relative, data in (files or {}).items():
        (set_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (set_dir / relative).write_bytes(data)
    return set_dir
