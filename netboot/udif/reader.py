"""Random access to a UDIF image's expanded bytes, without inflating the whole image.

Theory of operation: `open` reads the trailer, the resource plist and every
`mish` table, checks them once (tables do not overlap, chunks tile their table,
chunk data lies inside the data fork, chunk sizes are capped) and builds an
index of *runs*: one per chunk that covers sectors, with its absolute byte
range in the expanded disk. `read(offset, size)` bisects that index, decodes
only the chunks the range touches, and keeps a few MiB of recently decoded
chunks, so the HTTP service can answer range requests from a compressed image
and a checker can look at the partition map without a scratch copy.

Sectors that no table covers read as zeros (reader checklist,
docs/protocols/udif.md §10). `copy_raw` and `verify` walk all runs in disk
order, decoding on a thread pool with a bounded window, so memory stays flat
whatever the image size.
"""

from __future__ import annotations

import bisect
import itertools
import os
import threading
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple, Protocol

from netboot.errors import UdifError
from netboot.udif.blkx import ZERO_TYPES, Chunk, ChunkType, chunk_type_name
from netboot.udif.chunks import MAX_CHUNK_SIZE, decode_chunk
from netboot.udif.partitions import Partition, read_partitions
from netboot.udif.resources import (
    MAX_XML_SIZE,
    BlkxEntry,
    parse_plist,
    parse_resource_fork,
)
from netboot.udif.sector import SECTOR
from netboot.udif.trailer import CHECKSUM_NONE, KOLY_SIZE, Checksum, Koly

CACHE_BYTES = 8 << 20  # decoded chunks kept for read(); eight hdiutil-sized chunks
ZERO_PIECE = 1 << 20  # zero runs are handed out in pieces of this size
WINDOW_BYTES = 32 << 20  # expanded bytes in flight in copy_raw / verify
WINDOW_RUNS = 256  # runs (decoded or zero) queued ahead of the writer
_ZEROS = bytes(ZERO_PIECE)

Progress = Callable[[int], None]


class _Run(NamedTuple):
    """A stretch of the expanded image served by one chunk entry."""

    start: int  # absolute byte offset in the expanded image
    length: int
    chunk: Chunk
    entry: int  # index into UdifImage.entries


@dataclass
class VerifyReport:
    """What `verify` found. Statuses: "valid", "invalid", "absent", "unknown type", "error".

    "error" (tables only) means a chunk of that table could not be decoded, so
    its checksum could not be computed; the reason is in `problems`.
    """

    data_fork: str = "absent"
    master: str = "absent"
    tables: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Storage(Protocol):
    """Where an image's bytes are: a file here, or HTTP ranges (the lab's simulated Mac).

    `pread` raises OSError on failure and may return fewer bytes only at the end.
    """

    def size(self) -> int: ...
    def pread(self, size: int, offset: int) -> bytes: ...
    def close(self) -> None: ...


class FileStorage:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class UdifImage:
    """An open, validated UDIF image; use `UdifImage.open(path)` as a context manager."""

    def __init__(
        self,
        path: Path,
        storage: Storage,
        koly: Koly,
        entries: list[BlkxEntry],
        byte_length: int | None = None,
    ) -> None:
        self.path = path
        self.koly = koly
        self.entries = entries
        self._storage = storage
        self._name = str(path)
        self._runs = _index(entries, koly, self._name)
        self._starts = [run.start for run in self._runs]
        tables_end = max((run.start + run.length for run in self._runs), default=0)
        # libdmg-hfsplus leaves the trailer's sector count at 0; the tables still say
        # how big the disk is, so the larger of the two wins (verify reports the gap).
        self.size = max(koly.sector_count * SECTOR, tables_end)
        self.byte_length = (
            byte_length
            if byte_length is not None and self.size - SECTOR < byte_length <= self.size
            else self.size
        )
        """The disk's length in bytes: `size` less the padding of a last partial sector,
        when the writer recorded the input's length (resources.BYTE_LENGTH_KEY)."""
        self._tables_end = tables_end
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> UdifImage:
        """Open and validate `path`; raises UdifError (also for I/O errors) naming the file."""
        path = Path(path)
        name = str(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as error:
            raise UdifError(name, None, f"cannot open: {error.strerror}") from None
        return cls.open_storage(path, FileStorage(fd))

    @classmethod
    def open_storage(cls, path: str | Path, storage: Storage) -> UdifImage:
        """Open an image whose bytes `storage` reads; `path` names it in errors."""
        path = Path(path)
        try:
            koly, entries, byte_length = _load(storage, str(path))
        except BaseException:
            storage.close()
            raise
        return cls(path, storage, koly, entries, byte_length)

    def close(self) -> None:
        self._storage.close()

    def __enter__(self) -> UdifImage:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- random access ---------------------------------------------------------

    def read(self, offset: int, size: int) -> bytes:
        """Up to `size` expanded bytes from `offset` (short only at the end of the image)."""
        if offset < 0 or size < 0:
            raise ValueError(f"negative offset or size: {offset}, {size}")
        end = min(offset + size, self.size)
        parts: list[bytes] = []
        position = offset
        index = max(bisect.bisect_right(self._starts, position) - 1, 0)
        while position < end:
            run = self._runs[index] if index < len(self._runs) else None
            if run is None or position < run.start:  # sectors no table covers
                stop = end if run is None else min(end, run.start)
                parts.append(bytes(stop - position))
                position = stop
                continue
            run_end = run.start + run.length
            if position >= run_end:
                index += 1
                continue
            stop = min(end, run_end)
            if run.chunk.type in ZERO_TYPES:
                parts.append(bytes(stop - position))
            else:
                data = self._cached(index, run)
                parts.append(data[position - run.start : stop - run.start])
            position = stop
            index += 1
        return b"".join(parts)

    def _cached(self, index: int, run: _Run) -> bytes:
        with self._lock:
            data = self._cache.get(index)
            if data is not None:
                self._cache.move_to_end(index)
                return data
        data = self.decoded(run.chunk, self.entries[run.entry])
        if len(data) <= CACHE_BYTES // 2:
            with self._lock:
                if index not in self._cache:
                    self._cache[index] = data
                    self._cache_bytes += len(data)
                while self._cache_bytes > CACHE_BYTES:
                    _, evicted = self._cache.popitem(last=False)
                    self._cache_bytes -= len(evicted)
        return data

    def decoded(self, chunk: Chunk, entry: BlkxEntry) -> bytes:
        """The expanded bytes of one chunk of `entry` (exactly sector_count * 512 of them)."""
        expected = chunk.sector_count * SECTOR
        if chunk.type in ZERO_TYPES:
            return decode_chunk(chunk.type, b"", expected, self._name, 0)
        at = self.koly.data_fork_offset + entry.table.data_start + chunk.data_offset
        return decode_chunk(
            chunk.type, self._pread(at, chunk.data_length), expected, self._name, at
        )

    def _pread(self, offset: int, size: int) -> bytes:
        try:
            data = self._storage.pread(size, offset)
        except OSError as error:
            raise UdifError(self._name, offset, f"read failed: {error.strerror}") from None
        if len(data) != size:
            raise UdifError(self._name, offset, f"file ends {size - len(data)} bytes early")
        return data

    def iter_chunks(self) -> Iterator[tuple[int, int, Chunk, BlkxEntry]]:
        """(offset in the expanded image, length, chunk, entry) for every run, in disk order.

        Zero-fill and ignore entries longer than 1 MiB come out as 1 MiB pieces
        (copies of the entry with adjusted sectors), so `decoded()` of anything
        this yields stays small; sectors no table covers are not yielded.
        """
        for run in self._runs:
            entry = self.entries[run.entry]
            if run.chunk.type not in ZERO_TYPES or run.length <= ZERO_PIECE:
                yield run.start, run.length, run.chunk, entry
                continue
            for piece in range(0, run.length, ZERO_PIECE):
                length = min(ZERO_PIECE, run.length - piece)
                chunk = replace(
                    run.chunk,
                    first_sector=run.chunk.first_sector + piece // SECTOR,
                    sector_count=length // SECTOR,
                )
                yield run.start + piece, length, chunk, entry

    def chunk_counts(self) -> dict[str, int]:
        """How many chunk entries of each type the tables hold (comments and terminators too)."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            for chunk in entry.table.chunks:
                name = chunk_type_name(chunk.type)
                counts[name] = counts.get(name, 0) + 1
        return counts

    def partitions(self) -> list[Partition]:
        """The partitions of the expanded disk (APM, GPT, MBR, or one bare volume)."""
        return read_partitions(self.read, self.size, self._name)[1]

    # -- whole-image passes ----------------------------------------------------

    def copy_raw(
        self, out: BinaryIO, progress: Progress | None = None, workers: int | None = None
    ) -> None:
        """Write the whole expanded image to `out`, in order, decoding on `workers` threads.

        At most 2 x workers chunks (and about 32 MiB) are decoded ahead of the
        writer, so memory stays bounded for any image size. `progress`, if
        given, is called with the number of bytes just written.
        """
        with closing(self._decode_in_order(workers, include_gaps=True)) as stream:
            for run, data in stream:
                if data is None:
                    _write_zeros(out, run.length)
                elif isinstance(data, UdifError):
                    raise data
                else:
                    out.write(data)
                if progress is not None:
                    progress(run.length)

    def verify(self, progress: Progress | None = None, workers: int | None = None) -> VerifyReport:
        """Decode every chunk and check every checksum; problems are collected, not raised.

        Per-table CRC32s skip ignore chunks and count zero-fill chunks as zeros
        (docs/protocols/udif.md §3); the data-fork CRC32 covers the stored bytes; the
        master CRC32 covers the tables' CRC values in plist order.
        """
        report = VerifyReport()
        crcs = [0] * len(self.entries)
        failed: set[int] = set()
        for run, data in self._decode_in_order(workers, include_gaps=False):
            if isinstance(data, UdifError):
                if run.entry not in failed:
                    report.problems.append(str(data))
                failed.add(run.entry)
            elif data is None:
                if run.chunk.type == ChunkType.ZERO:
                    crcs[run.entry] = _crc_zeros(crcs[run.entry], run.length)
            else:
                crcs[run.entry] = zlib.crc32(data, crcs[run.entry])
            if progress is not None:
                progress(run.length)
        for index, entry in enumerate(self.entries):
            status = "error" if index in failed else _status(entry.table.checksum, crcs[index])
            report.tables.append((entry.name, status))
            if status == "invalid":
                report.problems.append(
                    f"{self._name}: blkx {index} {entry.name!r}: CRC32 is {crcs[index]:08X}, "
                    f"the table says {entry.table.checksum.crc32:08X}"
                )
        report.data_fork = self._check(report, "data fork", self.koly.data_checksum, self._fork_crc)
        report.master = self._check(report, "master", self.koly.master_checksum, self._master_crc)
        if self.koly.sector_count * SECTOR != self._tables_end:
            report.problems.append(
                f"{self._name}: trailer sector count {self.koly.sector_count}, "
                f"the tables end at sector {self._tables_end // SECTOR}"
            )
        return report

    def _check(
        self, report: VerifyReport, what: str, checksum: Checksum, compute: Callable[[], int]
    ) -> str:
        if checksum.crc32 is None:
            return _status(checksum, 0)
        try:
            actual = compute()
        except UdifError as error:
            report.problems.append(str(error))
            return "error"
        status = _status(checksum, actual)
        if status == "invalid":
            report.problems.append(
                f"{self._name}: {what} CRC32 is {actual:08X}, the trailer says {checksum.crc32:08X}"
            )
        return status

    def _fork_crc(self) -> int:
        crc, position = 0, self.koly.data_fork_offset
        end = position + self.koly.data_fork_length
        while position < end:
            block = self._pread(position, min(ZERO_PIECE, end - position))
            crc = zlib.crc32(block, crc)
            position += len(block)
        return crc

    def _master_crc(self) -> int:
        values = [entry.table.checksum.crc32 for entry in self.entries]
        return zlib.crc32(
            b"".join(value.to_bytes(4, "big") for value in values if value is not None)
        )

    def _decode_in_order(
        self, workers: int | None, *, include_gaps: bool
    ) -> Generator[tuple[_Run, bytes | UdifError | None], None, None]:
        """Every run in disk order with its bytes (None for zero/ignore runs and gaps).

        Decoding errors are yielded, not raised, so verify can go on. Decoding
        runs ahead on a thread pool: zlib, bz2, lzma and LZFSE release the GIL.
        """
        workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        pending: deque[tuple[_Run, Future[bytes] | None]] = deque()
        in_flight = futures = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="udif") as pool:
            try:
                for run in self._runs_with_gaps(include_gaps):
                    job = None
                    if run.chunk.type not in ZERO_TYPES:
                        job = pool.submit(self.decoded, run.chunk, self.entries[run.entry])
                        in_flight, futures = in_flight + run.length, futures + 1
                    pending.append((run, job))
                    # zero pieces cost nothing to decode, but a sparse terabyte is
                    # a million of them: the queue's length is bounded too
                    while (
                        futures >= 2 * workers
                        or in_flight > WINDOW_BYTES
                        or len(pending) > WINDOW_RUNS
                    ):
                        done, job = pending.popleft()
                        if job is not None:
                            in_flight, futures = in_flight - done.length, futures - 1
                        yield done, _result(job)
                while pending:
                    done, job = pending.popleft()
                    yield done, _result(job)
            finally:
                for _, job in pending:
                    if job is not None:
                        job.cancel()

    def _runs_with_gaps(self, include_gaps: bool) -> Iterator[_Run]:
        position = 0
        for run in self._runs:
            if include_gaps and run.start > position:
                yield from _zero_runs(position, run.start - position)
            if run.chunk.type in ZERO_TYPES:
                yield from _zero_runs(run.start, run.length, run.chunk, run.entry)
            else:
                yield run
            position = run.start + run.length
        if include_gaps and self.size > position:
            yield from _zero_runs(position, self.size - position)


def _result(job: Future[bytes] | None) -> bytes | UdifError | None:
    if job is None:
        return None
    try:
        return job.result()
    except UdifError as error:
        return error


_GAP = Chunk(ChunkType.ZERO, 0, 0, 0, 0, 0)


def _zero_runs(start: int, length: int, chunk: Chunk = _GAP, entry: int = -1) -> Iterator[_Run]:
    for piece in range(0, length, ZERO_PIECE):
        yield _Run(start + piece, min(ZERO_PIECE, length - piece), chunk, entry)


def _write_zeros(out: BinaryIO, length: int) -> None:
    view = memoryview(_ZEROS)
    while length > 0:
        piece = min(length, ZERO_PIECE)
        out.write(view[:piece])
        length -= piece


def _crc_zeros(crc: int, length: int) -> int:
    view = memoryview(_ZEROS)
    while length > 0:
        piece = min(length, ZERO_PIECE)
        crc = zlib.crc32(view[:piece], crc)
        length -= piece
    return crc


def _status(checksum: Checksum, actual: int) -> str:
    if checksum.kind == CHECKSUM_NONE:
        return "absent"
    if checksum.crc32 is None:
        return "unknown type"
    return "valid" if checksum.crc32 == actual else "invalid"


# -- opening -------------------------------------------------------------------


def _load(fd: Storage, name: str) -> tuple[Koly, list[BlkxEntry], int | None]:
    try:
        file_size = fd.size()
    except OSError as error:
        raise UdifError(name, None, f"cannot stat: {error.strerror}") from None
    if file_size < KOLY_SIZE:
        raise UdifError(name, 0, f"truncated trailer: the file is {file_size} bytes, less than 512")
    trailer_at = file_size - KOLY_SIZE
    koly = Koly.parse(_read_exactly(fd, name, trailer_at, KOLY_SIZE), name, trailer_at)
    if koly.segment_count > 1:
        raise UdifError(
            name,
            trailer_at + 56,
            f"segment {koly.segment_number} of {koly.segment_count}: "
            "segmented images (.dmgpart) are not supported",
        )
    _inside(
        name, trailer_at + 24, "data fork", koly.data_fork_offset, koly.data_fork_length, trailer_at
    )
    if koly.xml_length > 0:
        _inside(
            name, trailer_at + 216, "property list", koly.xml_offset, koly.xml_length, trailer_at
        )
        if koly.xml_length > MAX_XML_SIZE:
            raise UdifError(
                name, koly.xml_offset, f"property list of {koly.xml_length} bytes exceeds 16 MiB"
            )
        xml = _read_exactly(fd, name, koly.xml_offset, koly.xml_length)
        return koly, *parse_plist(xml, name, koly.xml_offset)
    if koly.rsrc_fork_length > 0:
        _inside(
            name,
            trailer_at + 40,
            "resource fork",
            koly.rsrc_fork_offset,
            koly.rsrc_fork_length,
            trailer_at,
        )
        if koly.rsrc_fork_length > MAX_XML_SIZE:
            raise UdifError(name, koly.rsrc_fork_offset, "resource fork exceeds 16 MiB")
        fork = _read_exactly(fd, name, koly.rsrc_fork_offset, koly.rsrc_fork_length)
        return koly, parse_resource_fork(fork, name, koly.rsrc_fork_offset), None
    raise UdifError(
        name, trailer_at + 216, "the trailer names no property list and no resource fork"
    )


def _inside(name: str, field_at: int, what: str, offset: int, length: int, limit: int) -> None:
    if offset + length > limit:
        raise UdifError(
            name,
            field_at,
            f"{what} at {offset}+{length} runs past the trailer at byte {limit}",
        )


def _read_exactly(fd: Storage, name: str, offset: int, size: int) -> bytes:
    try:
        data = fd.pread(size, offset)
    except OSError as error:
        raise UdifError(name, offset, f"read failed: {error.strerror}") from None
    if len(data) != size:
        raise UdifError(name, offset, f"file ends {size - len(data)} bytes early")
    return data


def _index(entries: list[BlkxEntry], koly: Koly, name: str) -> list[_Run]:
    """Check every table against the data fork and each other; return the runs in disk order."""
    fork_start, fork_end = koly.data_fork_offset, koly.data_fork_offset + koly.data_fork_length
    runs: list[_Run] = []
    for index, entry in enumerate(entries):
        table = entry.table
        for number, chunk in enumerate(table.chunks):
            where = f"blkx {index} {entry.name!r} chunk {number} ({chunk_type_name(chunk.type)})"
            if chunk.type in (ChunkType.COMMENT, ChunkType.TERMINATOR) or chunk.sector_count == 0:
                continue
            if chunk.has_data:
                at = fork_start + table.data_start + chunk.data_offset
                if (
                    chunk.sector_count * SECTOR > MAX_CHUNK_SIZE
                    or chunk.data_length > MAX_CHUNK_SIZE
                ):
                    raise UdifError(name, at, f"{where}: exceeds the 64 MiB chunk limit")
                if at + chunk.data_length > fork_end:
                    raise UdifError(
                        name,
                        at,
                        f"{where}: data {at}+{chunk.data_length} "
                        f"runs past the data fork end {fork_end}",
                    )
            start = (table.first_sector + chunk.first_sector) * SECTOR
            runs.append(_Run(start, chunk.sector_count * SECTOR, chunk, index))
    runs.sort(key=lambda run: run.start)
    for before, after in itertools.pairwise(runs):
        if before.start + before.length > after.start:
            raise UdifError(
                name,
                koly.xml_offset,
                f"blkx {before.entry} and {after.entry} overlap at sector {after.start // SECTOR}",
            )
    return runs
