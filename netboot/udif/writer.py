"""Write a disk image, UDIF (UDRO, UDZO, UDBZ, ULFO) or raw, streaming and never half-written.

Theory of operation
-------------------
The layout (netboot.udif.layout) says which blkx entries the disk has and
where each one's bytes come from; the writer walks them in disk order and cuts
each into runs of at most `chunk_sectors` sectors (2048, 1 MiB, as hdiutil):

* a run known to be zero (free space, map padding) or found to be zero (one
  memcmp against a preallocated zero block) becomes, merged with its zero
  neighbours, one IGNORE chunk that stores nothing;
* any other run is encoded (zlib, bzip2, LZFSE, or stored for UDRO), by a pool
  of threads when `workers` > 1 (zlib and bz2 release the GIL), and stored as a
  RAW chunk instead when encoding does not make it smaller.

Encoded runs are written to the data fork in disk order as they complete, with
at most a few runs per worker in flight, so memory stays bounded by a few MiB
whatever the image size. The CRC32 of each entry (over the uncompressed bytes
of its non-ignore chunks, docs/protocols/udif.md §3) is taken in the
reading thread, the data-fork CRC32 over the bytes as written; then come the
mish tables inside the XML plist, and the koly trailer last.

Everything goes to a temporary file beside OUT, which becomes OUT only after
the trailer is written and flushed; any failure, Ctrl-C included, removes it.
An existing OUT is replaced only when asked.
"""

from __future__ import annotations

import bz2
import contextlib
import os
import secrets
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from netboot.errors import UdifError
from netboot.udif.blkx import BlockTable, Chunk, ChunkType, chunk_type_name
from netboot.udif.conversion import LayoutKind, OutputFormat
from netboot.udif.layout import DiskLayout, Region, plan_layout
from netboot.udif.resources import BLKX_ATTRIBUTES, BlkxEntry, build_resources
from netboot.udif.sector import SECTOR
from netboot.udif.source import Source, UdifSource, open_source
from netboot.udif.trailer import KOLY_VERSION, Checksum, Koly

DEFAULT_CHUNK_SECTORS = 2048
"""hdiutil's run size: 1 MiB in, and the `0x808` decompress buffer every reader expects."""
MAX_CHUNK_SECTORS = 2048
RUNS_IN_FLIGHT_PER_WORKER = 4
"""Encoded runs queued per worker: enough to keep them busy, few enough to bound memory."""
KOLY_FLATTENED = 1
"""koly flags bit 0: a single-file image (the only kind we write)."""
IMAGE_VARIANT_DEVICE = 1
"""koly image variant: a whole device (with or without a map), as hdiutil writes."""

ProgressCallback = Callable[[int], None]
"""progress(n): n more bytes of the expanded disk are done (as UdifImage.copy_raw reports)."""


DEFAULT_LEVELS = {OutputFormat.UDZO: 6, OutputFormat.UDBZ: 9}
"""zlib 6 is gzip's default (and the speed yardstick); bzip2's level is its block size."""

Encoder = Callable[[bytes], tuple[ChunkType, bytes]]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What was written, for the CLI to report."""

    path: Path
    format: OutputFormat
    layout: DiskLayout
    file_size: int
    chunks: dict[str, int] = field(default_factory=dict)
    """Chunk entries by type name, as UdifImage.chunk_counts (empty for raw output)."""


def write_image(
    source: Source | str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    fmt: OutputFormat | str = OutputFormat.UDZO,
    *,
    layout: LayoutKind | str | DiskLayout = LayoutKind.AUTO,
    chunk_sectors: int = DEFAULT_CHUNK_SECTORS,
    level: int | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 1,
    overwrite: bool = False,
    segment_id: bytes | None = None,
) -> WriteResult:
    """Write `source` (a Source or a path to open) to `out_path` as `fmt`.

    `layout` is a LayoutKind (planned here, see netboot.udif.layout) or a
    DiskLayout planned by the caller. Raises UdifError for bad input (the
    source, the layout) and for an OUT that exists when `overwrite` is false,
    OSError for trouble writing OUT (no space, no permission). On any failure,
    Ctrl-C included, OUT is left as it was and no temporary file remains.
    """
    fmt = OutputFormat(fmt)
    out = Path(out_path)
    if not 1 <= chunk_sectors <= MAX_CHUNK_SECTORS:
        raise ValueError(f"chunk_sectors must be 1..{MAX_CHUNK_SECTORS}")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if segment_id is not None and len(segment_id) != 16:
        raise ValueError("segment_id must be 16 bytes")
    encoder = None if fmt is OutputFormat.RAW else _encoder(fmt, level, out)
    if not overwrite and os.path.lexists(out):
        raise _exists(out)
    with contextlib.ExitStack() as stack:
        if not isinstance(source, Source):
            source = stack.enter_context(open_source(source))
        plan = (
            layout
            if isinstance(layout, DiskLayout)
            else plan_layout(source, layout, raw_output=fmt is OutputFormat.RAW)
        )
        with atomic_output(out, overwrite) as fd:
            if encoder is None:
                _write_raw(source, plan, fd, progress, workers)
                chunks: dict[str, int] = {}
            else:
                stream = _UdifStream(fd, encoder, chunk_sectors, workers, progress)
                chunks = stream.write(source, plan, segment_id or secrets.token_bytes(16))
            file_size = os.fstat(fd).st_size
    return WriteResult(out, fmt, plan, file_size, chunks)


# ----------------------------------------------------------------------------------------
# Encoders
# ----------------------------------------------------------------------------------------


def _encoder(fmt: OutputFormat, level: int | None, out: Path) -> Encoder:
    """The function turning one run into a chunk; checks the format's options first."""
    if level is not None and fmt not in DEFAULT_LEVELS:
        raise UdifError(str(out), None, f"{fmt} has no compression level")
    chosen = DEFAULT_LEVELS.get(fmt, 0) if level is None else level
    if fmt in DEFAULT_LEVELS and not 1 <= chosen <= 9:
        raise UdifError(str(out), None, f"compression level {chosen} is not 1..9")
    if fmt is OutputFormat.UDRO:
        return _stored
    if fmt is OutputFormat.UDZO:
        return _smaller_or_stored(ChunkType.ZLIB, lambda data: zlib.compress(data, chosen))
    if fmt is OutputFormat.UDBZ:
        return _smaller_or_stored(ChunkType.BZIP2, lambda data: bz2.compress(data, chosen))
    try:
        # A dependency, but a C extension a slim install may lack: say so, do not crash.
        import lzfse
    except ImportError:
        raise UdifError(str(out), None, "ULFO needs the lzfse module (pip install lzfse)") from None
    compress: Callable[[bytes], bytes] = lzfse.compress
    return _smaller_or_stored(ChunkType.LZFSE, compress)


def _stored(data: bytes) -> tuple[ChunkType, bytes]:
    return ChunkType.RAW, data


def _smaller_or_stored(kind: ChunkType, compress: Callable[[bytes], bytes]) -> Encoder:
    # Random bytes grow a little under any compressor; a stored chunk is then
    # both smaller and faster to read, so no reader ever sees a bloated chunk.
    def encode(data: bytes) -> tuple[ChunkType, bytes]:
        packed = compress(data)
        return (kind, packed) if len(packed) < len(data) else (ChunkType.RAW, data)

    return encode


# ----------------------------------------------------------------------------------------
# UDIF
# ----------------------------------------------------------------------------------------


class _Zeros:
    """All-zero blocks by length, made once: comparing against one is a memcmp."""

    def __init__(self) -> None:
        self._blocks: dict[int, bytes] = {}

    def __call__(self, size: int) -> bytes:
        block = self._blocks.get(size)
        if block is None:
            block = self._blocks[size] = bytes(size)
        return block


_ROW = 5
"""Values per chunk row: type, first sector, sector count, data offset, data length."""


@dataclass(slots=True)
class _Table:
    """One blkx entry being built: its region, CRC so far and chunk rows.

    Rows live in a flat array of 64-bit values (40 bytes a chunk, as in the
    mish) rather than objects (~400 bytes), because a table has a row per MiB
    of data and the writer must stay small for images of hundreds of GiB.
    """

    region: Region
    crc: int = 0
    rows: array[int] = field(default_factory=lambda: array("Q"))

    def rows_iter(self) -> Iterator[tuple[int, int, int, int, int]]:
        rows = self.rows
        for at in range(0, len(rows), _ROW):
            yield rows[at], rows[at + 1], rows[at + 2], rows[at + 3], rows[at + 4]


@dataclass(slots=True)
class _Run:
    table: _Table
    first_sector: int
    sector_count: int
    encoded: Future[tuple[ChunkType, bytes]] | tuple[ChunkType, bytes] | None
    """None for an all-zero run."""


class _UdifStream:
    """Writes the data fork run by run, then the plist and the trailer, to one descriptor."""

    def __init__(
        self,
        fd: int,
        encode: Encoder,
        chunk_sectors: int,
        workers: int,
        progress: ProgressCallback | None,
    ):
        self._fd = fd
        self._encode = encode
        self._chunk_sectors = chunk_sectors
        self._workers = workers
        self._progress = progress
        self._offset = 0
        self._fork_crc = 0
        self._pending: deque[_Run] = deque()
        self._zeros = _Zeros()

    def write(self, source: Source, plan: DiskLayout, segment_id: bytes) -> dict[str, int]:
        tables = [_Table(region) for region in plan.regions]
        executor = ThreadPoolExecutor(self._workers) if self._workers > 1 else None
        window = self._workers * RUNS_IN_FLIGHT_PER_WORKER if executor else 0
        try:
            for table in tables:
                for run in self._runs(source, table, executor):
                    self._pending.append(run)
                    while len(self._pending) > window:
                        self._finish(self._pending.popleft())
            while self._pending:
                self._finish(self._pending.popleft())
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        entries = [self._entry(table) for table in tables]
        xml = build_resources(entries, plst=True)
        xml_offset = self._offset
        self._write_all(xml)
        master = zlib.crc32(b"".join(t.crc.to_bytes(4, "big") for t in tables))
        koly = Koly(
            version=KOLY_VERSION,
            flags=KOLY_FLATTENED,
            data_fork_offset=0,
            data_fork_length=xml_offset,
            rsrc_fork_offset=0,
            rsrc_fork_length=0,
            segment_number=1,
            segment_count=1,
            segment_id=segment_id,
            data_checksum=Checksum.of_crc32(self._fork_crc),
            xml_offset=xml_offset,
            xml_length=len(xml),
            code_signature_offset=0,
            code_signature_length=0,
            master_checksum=Checksum.of_crc32(master),
            image_variant=IMAGE_VARIANT_DEVICE,
            sector_count=plan.sector_count,
        )
        self._write_all(koly.build())
        os.fsync(self._fd)
        counts = {chunk_type_name(ChunkType.TERMINATOR): len(tables)}
        for table in tables:
            for kind in table.rows[::_ROW]:
                name = chunk_type_name(kind)
                counts[name] = counts.get(name, 0) + 1
        return counts

    def _runs(
        self, source: Source, table: _Table, executor: ThreadPoolExecutor | None
    ) -> Iterator[_Run]:
        region = table.region
        # Sectors from here on are zero by construction (padding, free space): never read.
        zero_from = -(-region.zero_from() // SECTOR)
        for first in range(0, region.sector_count, self._chunk_sectors):
            count = min(self._chunk_sectors, region.sector_count - first)
            size = count * SECTOR
            data = None
            if first < zero_from:
                data = region.read(source.read, first * SECTOR, size)
                if data == self._zeros(size):
                    data = None
            if data is None:
                yield _Run(table, first, count, None)
                continue
            table.crc = zlib.crc32(data, table.crc)
            encoded = executor.submit(self._encode, data) if executor else self._encode(data)
            yield _Run(table, first, count, encoded)

    def _finish(self, run: _Run) -> None:
        """Write one run's bytes (if any) and record its chunk row."""
        rows = run.table.rows
        if run.encoded is None:
            if rows and rows[-_ROW] == ChunkType.IGNORE:
                rows[-_ROW + 2] += run.sector_count  # one ignore chunk for a whole zero stretch
            else:
                rows.extend((ChunkType.IGNORE, run.first_sector, run.sector_count, self._offset, 0))
        else:
            kind, payload = run.encoded if isinstance(run.encoded, tuple) else run.encoded.result()
            rows.extend((kind, run.first_sector, run.sector_count, self._offset, len(payload)))
            self._fork_crc = zlib.crc32(payload, self._fork_crc)
            self._write_all(payload)
        if self._progress is not None:
            self._progress(run.sector_count * SECTOR)

    def _entry(self, table: _Table) -> BlkxEntry:
        region = table.region
        chunks = [
            Chunk(kind, 0, first, count, offset, length)
            for kind, first, count, offset, length in table.rows_iter()
        ]
        chunks.append(Chunk(ChunkType.TERMINATOR, 0, region.sector_count, 0, self._offset, 0))
        data_sectors = [c.sector_count for c in chunks if c.type not in _NO_DATA]
        block_table = BlockTable(
            first_sector=region.first_sector,
            sector_count=region.sector_count,
            data_start=0,
            # hdiutil's rule: the largest run a reader must inflate, plus 8.
            buffer_sectors=max(data_sectors) + 8 if data_sectors else 0,
            descriptor=region.descriptor,
            checksum=Checksum.of_crc32(table.crc),
            chunks=tuple(chunks),
        )
        return BlkxEntry(region.id, region.name, BLKX_ATTRIBUTES, block_table)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._offset += len(data)


_NO_DATA = (ChunkType.IGNORE, ChunkType.ZERO, ChunkType.COMMENT, ChunkType.TERMINATOR)


# ----------------------------------------------------------------------------------------
# Raw
# ----------------------------------------------------------------------------------------


def _write_raw(
    source: Source, plan: DiskLayout, fd: int, progress: ProgressCallback | None, workers: int
) -> None:
    """The expanded disk, with holes where it is zero (the file is sparse, not shorter)."""
    sink = _SparseFile(fd)
    if isinstance(source, UdifSource) and plan.is_identity:
        # The reader decodes ahead on its own thread pool; nothing to re-cut.
        source.image.copy_raw(cast(BinaryIO, sink), progress, workers)
    else:
        block = DEFAULT_CHUNK_SECTORS * SECTOR
        for region in plan.regions:
            readable = min(region.size, -(-region.zero_from() // SECTOR) * SECTOR)
            for offset in range(0, readable, block):
                size = min(block, readable - offset)
                sink.write(region.read(source.read, offset, size))
                if progress is not None:
                    progress(size)
            sink.skip(region.size - readable)
            if progress is not None and region.size > readable:
                progress(region.size - readable)
    sink.finish(plan.size)


class _SparseFile:
    """A write-only stream that seeks over all-zero blocks instead of writing them.

    The result reads the same; it just takes no disk space where the disk is
    empty, which for a mostly-free NetBoot volume is most of it.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._position = 0
        self._zeros = _Zeros()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if isinstance(data, memoryview):
            # memoryview == bytes compares item by item (4 ms per MiB); a copy is 0.1 ms.
            data = data.tobytes()
        size = len(data)
        if data != self._zeros(size):
            _pwrite_all(self._fd, data, self._position)
        self._position += size
        return size

    def skip(self, size: int) -> None:
        self._position += size

    def finish(self, size: int) -> None:
        if self._position != size:
            raise AssertionError(f"wrote {self._position} bytes of a {size}-byte disk")
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


# ----------------------------------------------------------------------------------------
# OUT, all or nothing
# ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_output(out: Path, overwrite: bool) -> Iterator[int]:
    """A descriptor on a new temporary file beside `out`, which becomes `out` on success.

    Same directory, so the final rename is atomic and never copies. Without
    `overwrite` the temporary file is hard-linked to `out`, which fails if
    something created `out` meanwhile, instead of clobbering it.
    """
    temporary = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as error:
        # Name OUT, not the temporary file the user never asked for.
        raise OSError(error.errno, error.strerror, str(out)) from None
    try:
        yield fd
        os.close(fd)
        fd = -1
        _publish(temporary, out, overwrite)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def _publish(temporary: Path, out: Path, overwrite: bool) -> None:
    if overwrite:
        temporary.replace(out)
        return
    try:
        os.link(temporary, out)
    except FileExistsError:
        raise _exists(out) from None
    except OSError:
        # No hard links here (FAT, some FUSE): check, then rename; the race is ours to lose.
        if os.path.lexists(out):
            raise _exists(out) from None
        temporary.replace(out)
        return
    temporary.unlink()


def _exists(out: Path) -> UdifError:
    return UdifError(str(out), None, "already exists (use --force to replace it)")
