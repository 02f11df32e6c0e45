"""The 512-byte `koly` trailer that ends every flat UDIF image, and its checksum records.

The trailer is the only fixed-position structure in a `.dmg`: it says where the
data fork and the XML property list are and carries the data-fork and master
checksums. Field offsets follow docs/protocols/udif.md §2 (cross-checked
against qemu `block/dmg.c`, 7-Zip and pydmg); everything is big-endian. The
reserved areas (232..295, 312..351, 500..511) are not kept: `build()` writes
zeros there, which every reader accepts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from netboot.errors import UdifError

KOLY_SIZE = 512
KOLY_MAGIC = b"koly"
KOLY_VERSION = 4

CHECKSUM_NONE = 0
CHECKSUM_CRC32 = 2
CHECKSUM_SIZE = 136  # u32 type, u32 size in bits, 128 bytes of value
_CHECKSUM_VALUE_SIZE = 128

# signature, version, header size, flags, running data fork offset,
# data fork offset/length, rsrc fork offset/length, segment number/count, segment id
_HEAD = struct.Struct(">4sIIIQQQQQII16s")
# xml offset/length, 64 reserved, code signature offset/length, 40 reserved
_MIDDLE = struct.Struct(">QQ64xQQ40x")
# image variant, sector count, 12 reserved
_TAIL = struct.Struct(">IQ12x")
_HEAD_AT, _DATA_CKSUM_AT, _MIDDLE_AT = 0, 80, 216
_MASTER_CKSUM_AT, _TAIL_AT = 352, 488


@dataclass(frozen=True)
class Checksum:
    """A UDIFChecksum record: only CRC32 (kind 2, 32 bits) is computed by anyone.

    Other kinds (MD5 and friends in very old images) are kept as opaque bytes so
    a reader can say "unknown type" instead of failing.
    """

    kind: int
    bits: int
    value: bytes  # the significant bytes only: bits // 8 of them, at most 128

    @classmethod
    def none(cls) -> Checksum:
        return cls(CHECKSUM_NONE, 0, b"")

    @classmethod
    def of_crc32(cls, crc: int) -> Checksum:
        return cls(CHECKSUM_CRC32, 32, (crc & 0xFFFFFFFF).to_bytes(4, "big"))

    @property
    def crc32(self) -> int | None:
        """The CRC32 value, or None when this record is not a CRC32."""
        if self.kind != CHECKSUM_CRC32 or self.bits != 32 or len(self.value) != 4:
            return None
        return int.from_bytes(self.value, "big")

    @classmethod
    def parse(cls, raw: bytes) -> Checksum:
        """Decode 136 bytes; a size over 1024 bits is clamped (the record cannot hold more)."""
        if len(raw) != CHECKSUM_SIZE:
            raise ValueError(f"a checksum record is {CHECKSUM_SIZE} bytes, not {len(raw)}")
        kind, bits = struct.unpack_from(">II", raw)
        length = min((bits + 7) // 8, _CHECKSUM_VALUE_SIZE)
        return cls(kind, bits, bytes(raw[8 : 8 + length]))

    def build(self) -> bytes:
        if len(self.value) > _CHECKSUM_VALUE_SIZE:
            raise ValueError(f"a checksum value is at most 128 bytes, not {len(self.value)}")
        return struct.pack(">II", self.kind, self.bits) + self.value.ljust(
            _CHECKSUM_VALUE_SIZE, b"\0"
        )


@dataclass(frozen=True)
class Koly:
    """The decoded trailer (UDIFResourceFile). Offsets are absolute file offsets."""

    version: int
    flags: int
    data_fork_offset: int
    data_fork_length: int
    rsrc_fork_offset: int
    rsrc_fork_length: int
    segment_number: int
    segment_count: int
    segment_id: bytes
    data_checksum: Checksum
    xml_offset: int
    xml_length: int
    code_signature_offset: int
    code_signature_length: int
    master_checksum: Checksum
    image_variant: int
    sector_count: int
    running_data_fork_offset: int = 0  # only non-zero in segmented (.dmgpart) sets

    @classmethod
    def parse(cls, raw512: bytes, image: str, offset: int) -> Koly:
        """Decode the trailer found at file offset `offset` of `image`.

        Only the signature, version and header size are checked here: they are
        what tells a trailer from random bytes. Whether the offsets fit the file
        is the reader's business, since only it knows the file size.
        """
        if len(raw512) != KOLY_SIZE:
            raise UdifError(
                image, offset, f"truncated trailer: {len(raw512)} bytes, a koly block is 512"
            )
        (
            signature,
            version,
            header_size,
            flags,
            running_data_fork_offset,
            data_fork_offset,
            data_fork_length,
            rsrc_fork_offset,
            rsrc_fork_length,
            segment_number,
            segment_count,
            segment_id,
        ) = _HEAD.unpack_from(raw512, _HEAD_AT)
        if signature != KOLY_MAGIC:
            raise UdifError(image, offset, f"no koly trailer (found {signature!r})")
        if version != KOLY_VERSION:
            raise UdifError(image, offset + 4, f"koly version {version}, expected 4")
        if header_size != KOLY_SIZE:
            raise UdifError(image, offset + 8, f"koly header size {header_size}, expected 512")
        xml_offset, xml_length, code_signature_offset, code_signature_length = _MIDDLE.unpack_from(
            raw512, _MIDDLE_AT
        )
        image_variant, sector_count = _TAIL.unpack_from(raw512, _TAIL_AT)
        return cls(
            version=version,
            flags=flags,
            data_fork_offset=data_fork_offset,
            data_fork_length=data_fork_length,
            rsrc_fork_offset=rsrc_fork_offset,
            rsrc_fork_length=rsrc_fork_length,
            segment_number=segment_number,
            segment_count=segment_count,
            segment_id=segment_id,
            data_checksum=Checksum.parse(raw512[_DATA_CKSUM_AT : _DATA_CKSUM_AT + CHECKSUM_SIZE]),
            xml_offset=xml_offset,
            xml_length=xml_length,
            code_signature_offset=code_signature_offset,
            code_signature_length=code_signature_length,
            master_checksum=Checksum.parse(
                raw512[_MASTER_CKSUM_AT : _MASTER_CKSUM_AT + CHECKSUM_SIZE]
            ),
            image_variant=image_variant,
            sector_count=sector_count,
            running_data_fork_offset=running_data_fork_offset,
        )

    def build(self) -> bytes:
        """The 512 trailer bytes; raises ValueError (not UdifError) for unencodable fields."""
        if len(self.segment_id) != 16:
            raise ValueError(f"segment id is 16 bytes, not {len(self.segment_id)}")
        try:
            raw = (
                _HEAD.pack(
                    KOLY_MAGIC,
                    self.version,
                    KOLY_SIZE,
                    self.flags,
                    self.running_data_fork_offset,
                    self.data_fork_offset,
                    self.data_fork_length,
                    self.rsrc_fork_offset,
                    self.rsrc_fork_length,
                    self.segment_number,
                    self.segment_count,
                    self.segment_id,
                )
                + self.data_checksum.build()
                + _MIDDLE.pack(
                    self.xml_offset,
                    self.xml_length,
                    self.code_signature_offset,
                    self.code_signature_length,
                )
                + self.master_checksum.build()
                + _TAIL.pack(self.image_variant, self.sector_count)
            )
        except struct.error as error:
            raise ValueError(f"koly field out of range: {error}") from error
        assert len(raw) == KOLY_SIZE
        return raw
