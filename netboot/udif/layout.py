"""The disk a conversion writes: which blkx entries, and where each one's bytes come from.

A UDIF image describes its expanded disk as a list of blkx entries that tile
sectors 0..N-1 (docs/protocols/udif.md §6). Which entries to write is a
decision of its own, made here, before any byte is compressed:

* `bare`: one entry, `whole disk (Apple_HFS : 0)`, holding the input as is.
  Every Linux reader accepts it; macOS attaches it but cannot boot from it.
* `apm`: the input volume wrapped in an Apple Partition Map the way hdiutil's
  SPUD layout does it, which is what NetBoot clients boot: a Driver Descriptor
  Map in sector 0, the map in sectors 1-63, an (empty) Apple_Driver_ATAPI
  partition in 64-71, the volume from 72, and 10 sectors of Apple_Free. The DDM
  and map bytes are built here, so the expanded image *is* a valid APM disk.
* `keep`: the input is already a disk: one entry per entry of its partition
  map (APM, GPT or MBR, from `read_partitions`) plus entries for the map
  structures and any gaps, or, for a UDIF input, its own blkx entries.
* `auto` (the default): the input's bytes exactly as they are, as `hdiutil
  convert` does: `keep` for a disk or a UDIF input, `bare` for anything else
  (a bare volume, random bytes). `raw -> UDZO -> raw` gives the original file,
  to the byte, also when its length is not whole sectors (the writer records
  the length; resources.BYTE_LENGTH_KEY).

Wrapping a bare volume in a partition map changes the disk, so it happens only
when asked: `--layout apm`, or `plan_root_layout` for a NetBoot root image
(`nbi create`). The wrapping entry is typed by the file system found in the
volume (Apple_HFS, Apple_HFSX, Apple_APFS); input with none is refused, since
an `Apple_HFS` entry around random bytes would lie to every reader.

A layout is plain data (`DiskLayout`, a tuple of `Region`s); `Region.read`
produces any slice of a region's bytes from the source, the synthetic map or
zeros, so the writer never needs to know which layout it is writing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from netboot.errors import UdifError
from netboot.udif.conversion import LayoutKind
from netboot.udif.detect import ImageFormat
from netboot.udif.partitions import Partition, read_partitions
from netboot.udif.sector import SECTOR
from netboot.udif.source import Source, SourceKind, UdifSource

Reader = Callable[[int, int], bytes]
"""read(offset, size) -> bytes, short only at the end of the source."""


# The SPUD geometry hdiutil and libdmg-hfsplus use (docs/protocols/udif.md §6), in sectors.
APM_MAP_START = 1
APM_MAP_SECTORS = 63
APM_DRIVER_START = 64
APM_DRIVER_SECTORS = 8
APM_VOLUME_START = 72
APM_FREE_SECTORS = 10

# pmPartStatus bits (Inside Macintosh: Devices, "Partition Map Entry"): valid,
# allocated, readable, writable; hdiutil and libdmg add 0x40000000 on the volume.
_STATUS_MAP = 0x00000003
_STATUS_DRIVER = 0x00000003
_STATUS_VOLUME = 0x40000033
_STATUS_FREE = 0x00000000


@dataclass(frozen=True, slots=True)
class Region:
    """One blkx entry to write: its place on the expanded disk and its bytes' origin.

    Exactly one origin applies: `content` (bytes built here, zero-padded to
    the region), `source_offset` (the region's first byte in the source, of
    which `source_length` bytes exist; the rest reads as zeros), or neither
    (the region is all zeros and is never read).
    """

    id: int
    name: str
    first_sector: int
    sector_count: int
    content: bytes = b""
    source_offset: int | None = None
    source_length: int = 0

    @property
    def size(self) -> int:
        return self.sector_count * SECTOR

    @property
    def descriptor(self) -> int:
        """The mish `blocks descriptor`: the entry ID as an unsigned 32-bit value."""
        return self.id & 0xFFFFFFFF

    def zero_from(self) -> int:
        """Offset in the region from which every byte is known to be zero."""
        if self.content:
            return len(self.content)
        if self.source_offset is None:
            return 0
        return self.source_length

    def read(self, read_source: Reader, offset: int, size: int) -> bytes:
        """`size` bytes at `offset` within the region (zero-padded; never short)."""
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ValueError("read outside the region")
        if self.content:
            data = self.content[offset : offset + size]
        elif self.source_offset is not None and offset < self.source_length:
            data = read_source(self.source_offset + offset, min(size, self.source_length - offset))
        else:
            data = b""
        return data if len(data) == size else data + bytes(size - len(data))


@dataclass(frozen=True, slots=True)
class DiskLayout:
    """The expanded disk as blkx entries in disk order, tiling sectors 0..sector_count-1."""

    kind: LayoutKind
    scheme: str
    """What the disk is: `bare`, `apm`, `gpt`, `mbr`, or `udif` (a UDIF input's own entries)."""
    regions: tuple[Region, ...]
    input_length: int | None = None
    """The input's length in bytes when the disk is the input itself (`bare`, `keep`)."""

    @property
    def byte_length(self) -> int:
        """Bytes a raw copy of the disk holds: the input's exact length where it is the disk."""
        return self.size if self.input_length is None else self.input_length

    @property
    def sector_count(self) -> int:
        last = self.regions[-1]
        return last.first_sector + last.sector_count

    @property
    def size(self) -> int:
        return self.sector_count * SECTOR

    @property
    def is_identity(self) -> bool:
        """True when the expanded disk is the source byte for byte (plus sector padding)."""
        return all(r.source_offset == r.first_sector * SECTOR for r in self.regions)


def sectors_for(size: int) -> int:
    """Whole sectors needed for `size` bytes: UDIF has no partial sectors."""
    return -(-size // SECTOR)


def plan_layout(source: Source, kind: LayoutKind | str = LayoutKind.AUTO) -> DiskLayout:
    """Decide the blkx entries for writing `source` (see the module docstring for the rules).

    Raises UdifError for an empty source, and for `apm` on a source that already
    has a partition map (that would nest one map inside another) or holds no
    file system a Mac mounts.
    """
    kind = LayoutKind(kind)
    if source.size == 0:
        raise UdifError(source.path, None, "the input is empty; a disk image needs one sector")
    if kind is LayoutKind.BARE:
        # No need to read (or trust) a partition map the layout will not use.
        return bare_layout(source.size, _volume_type(source.detected, []))
    scheme, partitions = read_partitions(source.read, source.size, source.path)
    partitioned = scheme != "none"
    if kind is LayoutKind.APM:
        if partitioned:
            raise UdifError(
                source.path,
                None,
                f"the input already has a partition map ({scheme}); use the keep layout",
            )
        volume_type = _volume_type(source.detected, partitions)
        if volume_type is None:
            raise UdifError(
                source.path,
                None,
                "no HFS+, HFSX or APFS volume starts at the input's first byte; an Apple "
                "Partition Map would have to call it Apple_HFS and lie (keep it as is with "
                "--layout auto or bare)",
            )
        return apm_layout(source.size, volume_type)
    if isinstance(source, UdifSource):
        spans = [
            _Span(e.id, e.name, e.table.first_sector, e.table.sector_count)
            for e in source.image.entries
        ]
        return _tiled(LayoutKind.KEEP, "udif", spans, source.size)
    if not partitioned:
        return bare_layout(source.size, _volume_type(source.detected, partitions))
    return partitioned_layout(source.size, scheme, partitions, source.read)


def plan_root_layout(source: Source) -> DiskLayout:
    """The layout of a NetBoot root image: a bare volume gets the Apple Partition Map
    NetBoot clients boot from (System Image Utility's layout); a disk or a UDIF
    image is kept as it is."""
    if source.kind is not SourceKind.UDIF and source.size > 0:
        scheme, _ = read_partitions(source.read, source.size, source.path)
        if scheme == "none":
            return plan_layout(source, LayoutKind.APM)
    return plan_layout(source, LayoutKind.KEEP)


def bare_layout(size: int, volume_type: str | None = "Apple_HFS") -> DiskLayout:
    """One entry, ID -1, covering the whole input (hdiutil's `-layout NONE`).

    `volume_type` None (no file system recognised) names the entry as
    libdmg-hfsplus names a raw file's, `whole disk (unknown partition : 0)`,
    claiming no partition type.
    """
    region = Region(
        id=-1,
        name=f"whole disk ({volume_type or 'unknown partition'} : 0)",
        first_sector=0,
        sector_count=sectors_for(size),
        source_offset=0,
        source_length=size,
    )
    return DiskLayout(LayoutKind.BARE, "bare", (region,), input_length=size)


def apm_layout(size: int, volume_type: str = "Apple_HFS") -> DiskLayout:
    """The input volume inside an Apple Partition Map (hdiutil's `-layout SPUD`)."""
    volume_sectors = sectors_for(size)
    free_start = APM_VOLUME_START + volume_sectors
    total = free_start + APM_FREE_SECTORS
    # name, type, first sector, sectors, pmDataCnt (0 for free space), status
    entries = [
        _MapEntry("Apple", "Apple_partition_map", APM_MAP_START, APM_MAP_SECTORS, _STATUS_MAP),
        _MapEntry(
            "Macintosh", "Apple_Driver_ATAPI", APM_DRIVER_START, APM_DRIVER_SECTORS, _STATUS_DRIVER
        ),
        _MapEntry("disk image", volume_type, APM_VOLUME_START, volume_sectors, _STATUS_VOLUME),
        _MapEntry("", "Apple_Free", free_start, APM_FREE_SECTORS, _STATUS_FREE),
    ]
    partition_map = b"".join(entry.build(len(entries)) for entry in entries)
    ddm = driver_descriptor_map(total)
    regions = [Region(-1, "Driver Descriptor Map (DDM : 0)", 0, 1, content=ddm)]
    for number, entry in enumerate(entries):
        volume = entry.part_type == volume_type
        regions.append(
            Region(
                id=number,
                name=f"{entry.name} ({entry.part_type} : {number + 1})",
                first_sector=entry.first_sector,
                sector_count=entry.sector_count,
                content=partition_map if number == 0 else b"",
                source_offset=0 if volume else None,
                source_length=size if volume else 0,
            )
        )
    return DiskLayout(LayoutKind.APM, "apm", tuple(regions))


@dataclass(frozen=True, slots=True)
class _MapEntry:
    name: str
    part_type: str
    first_sector: int
    sector_count: int
    status: int

    def build(self, map_entries: int) -> bytes:
        data_count = 0 if self.part_type == "Apple_Free" else self.sector_count
        return apm_entry(
            map_entries,
            self.first_sector,
            self.sector_count,
            self.name,
            self.part_type,
            data_count,
            self.status,
        )


def driver_descriptor_map(total_sectors: int) -> bytes:
    """Block 0 of an APM disk: `ER`, 512-byte blocks, the disk size, no drivers.

    The driver count is 0 because our Apple_Driver_ATAPI partition is an empty
    placeholder (hdiutil's is zeros too); naming it as a driver would point
    firmware at code that is not there.
    """
    # sbSig, sbBlkSize, sbBlkCount, sbDevType, sbDevId, sbData, sbDrvrCount
    header = struct.pack(">2sHIHHIH", b"ER", SECTOR, total_sectors, 0, 0, 0, 0)
    return header.ljust(SECTOR, b"\0")


def apm_entry(
    map_entries: int,
    first_sector: int,
    sector_count: int,
    name: str,
    part_type: str,
    data_count: int,
    status: int,
) -> bytes:
    """One 512-byte partition map entry (`PM`), in 512-byte blocks."""
    # pmSig, pmSigPad, pmMapBlkCnt, pmPyPartStart, pmPartBlkCnt, pmPartName[32],
    # pmParType[32], pmLgDataStart, pmDataCnt, pmPartStatus (boot fields stay zero)
    entry = struct.pack(
        ">2sHIII32s32sIII",
        b"PM",
        0,
        map_entries,
        first_sector,
        sector_count,
        name.encode("ascii"),
        part_type.encode("ascii"),
        0,
        data_count,
        status,
    )
    return entry.ljust(SECTOR, b"\0")


def partitioned_layout(
    size: int, scheme: str, partitions: Iterable[Partition], read: Reader
) -> DiskLayout:
    """One entry per partition-map entry, plus the map structures and any gaps.

    Partitions are clipped to the disk and to each other (a damaged map must
    not make two entries claim one sector); every byte of the input lands in
    exactly one entry, so nothing outside the partitions is lost.
    """
    spans = [_Span(0, p.name, p.first_sector, p.sector_count, p.type) for p in partitions]
    total = sectors_for(size)
    if scheme == "gpt":
        spans += _gpt_structures(read, total)
    elif scheme == "apm":
        spans.append(_Span(0, "Driver Descriptor Map", 0, 1, "DDM"))
    else:
        spans.append(_Span(0, "Master Boot Record", 0, 1, "MBR"))
    return _tiled(LayoutKind.KEEP, scheme, spans, size, renumber=True)


@dataclass(frozen=True, slots=True)
class _Span:
    id: int
    name: str
    first_sector: int
    sector_count: int
    type: str | None = None
    """Partition type; None when `name` is already a complete blkx name."""


def _tiled(
    kind: LayoutKind,
    scheme: str,
    spans: Sequence[_Span],
    size: int,
    *,
    renumber: bool = False,
) -> DiskLayout:
    """Regions covering every sector once, in disk order, from possibly messy spans.

    Gaps between spans become ` (Apple_Free : n)` entries, as hdiutil names
    unallocated space; they are still read, so data hidden there survives.
    """
    total = sectors_for(size)
    pieces: list[tuple[int, int, _Span | None]] = []
    cursor = 0
    for placed in sorted(spans, key=lambda s: (s.first_sector, -s.sector_count)):
        start = max(placed.first_sector, cursor)
        end = min(placed.first_sector + placed.sector_count, total)
        if end <= start:
            continue
        if start > cursor:
            pieces.append((cursor, start - cursor, None))
        pieces.append((start, end - start, placed))
        cursor = end
    if cursor < total:
        pieces.append((cursor, total - cursor, None))
    regions: list[Region] = []
    for number, (first, count, span) in enumerate(pieces):
        if span is None:
            name, entry_id = f" (Apple_Free : {number})", number - 1
        elif span.type is None:
            name, entry_id = span.name, (number - 1 if renumber else span.id)
        else:
            name, entry_id = f"{span.name} ({span.type} : {number})", number - 1
        offset = first * SECTOR
        regions.append(
            Region(
                id=entry_id,
                name=name,
                first_sector=first,
                sector_count=count,
                source_offset=offset,
                source_length=max(0, min(size - offset, count * SECTOR)),
            )
        )
    return DiskLayout(kind, scheme, tuple(regions), input_length=size)


def _gpt_structures(read: Reader, total: int) -> list[_Span]:
    """The protective MBR, both GPT headers and both entry arrays, as hdiutil names them."""
    spans = [_Span(0, "Protective Master Boot Record", 0, 1, "MBR")]
    header = read(SECTOR, 92)
    if len(header) < 92 or header[:8] != b"EFI PART":
        return spans
    backup_lba, entries_lba, entry_count, entry_size = struct.unpack_from("<Q32xQII", header, 32)
    spans.append(_Span(0, "GPT Header", 1, 1, "Primary GPT Header"))
    table_sectors = sectors_for(entry_count * entry_size)
    if table_sectors:
        spans.append(_Span(0, "GPT Partition Data", entries_lba, table_sectors,
                           "Primary GPT Table"))  # fmt: skip
        if 0 < backup_lba < total:
            spans.append(_Span(0, "GPT Partition Data", backup_lba - table_sectors,
                               table_sectors, "Backup GPT Table"))  # fmt: skip
    if 0 < backup_lba < total:
        spans.append(_Span(0, "GPT Header", backup_lba, 1, "Backup GPT Header"))
    return spans


def _volume_type(detected: ImageFormat, found: list[Partition]) -> str | None:
    """The partition type to name a bare volume by (what hdiutil would call it), or
    None when the input holds no file system we recognise.

    `found` is what read_partitions saw (for a bare volume, the volume itself,
    also inside a UDIF input); the magic-number guess covers the rest.
    """
    if len(found) == 1 and found[0].type.startswith("Apple_"):
        return found[0].type
    return {
        ImageFormat.APFS: "Apple_APFS",
        ImageFormat.HFSX: "Apple_HFSX",
        ImageFormat.HFS_PLUS: "Apple_HFS",
    }.get(detected)
