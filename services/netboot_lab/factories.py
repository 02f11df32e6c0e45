"""Builders for valid-by-default inputs of tests and benchmarks: NBI sets, plists, disk images.

Each builder makes the smallest thing that is valid, and takes keyword
arguments to break exactly one part of it, so a test says only what it changes.
"""

from __future__ import annotations

import plistlib
import struct
from pathlib import Path, PurePosixPath
from typing import Any

from netboot.pc.choice import PcImage

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


def pe_image(
    *,
    magic: int = 0x20B,
    directories: int = 16,
    certificate: bytes | None = None,
    table_size: int | None = None,
    body: int = 4096,
) -> bytes:
    """A minimal PE32 (0x10B) or PE32+ (0x20B) image, as an EFI program or a kernel's EFI
    stub starts; `certificate` is appended as its certificate table (netboot.pe)."""
    pe_offset = 0x80
    optional_size = (112 if magic == 0x20B else 96) + 8 * directories
    head = bytearray(pe_offset + 24 + optional_size)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, pe_offset)
    head[pe_offset : pe_offset + 4] = b"PE\x00\x00"
    coff = pe_offset + 4
    struct.pack_into("<HH12xHH", head, coff, 0x8664, 1, optional_size, 0x22)
    optional = coff + 20
    struct.pack_into("<H", head, optional, magic)
    struct.pack_into("<I", head, optional + (108 if magic == 0x20B else 92), directories)
    image = bytes(head) + bytes(body)
    if certificate is None:
        return image
    entry = optional + (112 if magic == 0x20B else 96) + 8 * 4
    with_table = bytearray(image)
    size = len(certificate) if table_size is None else table_size
    struct.pack_into("<II", with_table, entry, len(image), size)
    return bytes(with_table) + certificate


def win_certificate(revision: int = 0x0200, kind: int = 0x0002, payload: int = 64) -> bytes:
    """A WIN_CERTIFICATE entry: Authenticode (revision 2, PKCS#7) unless told otherwise.
    Its payload is zeros: presence is what netboot.pe reads, the firmware checks the rest."""
    return struct.pack("<IHH", 8 + payload, revision, kind) + bytes(payload)


SIGNED_PC_KERNEL = pe_image(certificate=win_certificate())
"""A PC kernel as Debian ships it, as far as validation reads: an EFI stub with a signature."""
UNSIGNED_PC_KERNEL = pe_image()


RESCUE_PC_IMAGE = PcImage(
    name="Rescue",
    image_id=0x01000001,
    set_path=PurePosixPath("Rescue.nbi"),
    index=1,
    is_default=True,
    kernel="pc/vmlinuz",
    initrds=("pc/initrd.img",),
    command_line="console=ttyS0 ip=dhcp",
    architectures=("bios", "efi-x64"),
    description="Debian rescue system",
)
"""A PC image as the catalog yields it, for the renderers' tests (iPXE and GRUB alike)."""


PC_FILES = {"pc/vmlinuz": SIGNED_PC_KERNEL, "pc/initrd.img": b"\x1f\x8b initrd"}
"""A PC kernel and initrd in the places `pc_set` names them."""


def pc_set(root: Path, name: str, index: int, **plist_overrides: Any) -> Path:
    """A set PCs boot as well as Macs: `make_set` with a kernel and an initrd."""
    return make_set(
        root,
        name,
        Index=index,
        files=PC_FILES,
        PCKernel="pc/vmlinuz",
        PCInitrd="pc/initrd.img",
        **plist_overrides,
    )


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
