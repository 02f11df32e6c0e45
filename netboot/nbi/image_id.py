"""The 32-bit BSDP boot image ID and its bit layout.

Apple's bootpd (bootplib/bsdp.h) packs an image's identity into one integer that
clients store in NVRAM and send back in SELECT:

    bit 31        install image (NetInstall/NetRestore)
    bits 24-30    kind (0 Mac OS 9, 1 Mac OS X, 2 Mac OS X Server, 3 diagnostics)
    bits 16-23    reserved, zero
    bits 0-15     index (1-4095 local to a server, 4096-65535 shared by servers)

The catalog derives it from NBImageInfo.plist; the BSDP codec puts it on the
wire. It lives with the catalog (a lower floor) so both can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

INSTALL_BIT = 0x8000_0000
KIND_SHIFT = 24
KIND_MAX = 0x7F
INDEX_MAX = 0xFFFF


@dataclass(frozen=True, slots=True, order=True)
class BootImageId:
    """One image's identity; `int(image_id)` is what goes on the wire."""

    index: int
    kind: int
    is_install: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.index <= INDEX_MAX:
            raise ValueError(f"image index {self.index} is outside 1-{INDEX_MAX}")
        if not 0 <= self.kind <= KIND_MAX:
            raise ValueError(f"image kind {self.kind} is outside 0-{KIND_MAX}")

    def __int__(self) -> int:
        return (INSTALL_BIT if self.is_install else 0) | (self.kind << KIND_SHIFT) | self.index

    @classmethod
    def from_int(cls, value: int) -> BootImageId:
        """Decode a wire value; raises ValueError for reserved bits or index 0."""
        if not 0 <= value <= 0xFFFF_FFFF:
            raise ValueError(f"boot image id {value:#x} does not fit in 32 bits")
        if value & 0x00FF_0000:
            raise ValueError(f"boot image id {value:#010x} sets reserved bits 16-23")
        return cls(
            index=value & INDEX_MAX,
            kind=(value >> KIND_SHIFT) & KIND_MAX,
            is_install=bool(value & INSTALL_BIT),
        )

    @property
    def is_shared(self) -> bool:
        """Index 4096 and up: the same image is served by several servers."""
        return self.index >= 4096

    def __str__(self) -> str:
        return f"{int(self):#010x}"
