"""How far a client has read a file served in byte ranges: bytes sent, and bytes covered.

A Mac reads its root image over HTTP in thousands of ranges, re-reading some
and skipping others, over one keep-alive connection or several in turn. The
console shows it as one transfer per (client, file): `sent` counts every
byte that went out; the file is `complete` once every byte of it went out at
least once; it is `done` when complete, or when the connection that read it
last closed (a reader that stops halfway is done too, as far as anyone can
tell). Reading on after that makes it not done again, with `sent` counting on.

Cheap per range, because the HTTP service calls it for every response:
mostly sequential reads keep one covered span, extended in place.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

MAX_READS = 1024
"""Files followed at once (across clients); past it the least recently read is dropped."""

ReadKey = tuple[str, str]
"""(client, file): a MAC and the request path, say."""


class FileRead:
    """One client's reads of one file."""

    __slots__ = ("_ends", "_starts", "closed", "complete", "covered", "sent", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.covered = 0
        """Distinct bytes of the file sent at least once."""
        self.complete = size == 0
        self.closed = False
        self._starts: list[int] = []
        self._ends: list[int] = []
        """Covered spans [start, end), sorted and never touching: dropped once complete."""

    @property
    def done(self) -> bool:
        return self.complete or self.closed

    def add(self, offset: int, length: int) -> None:
        """`length` bytes sent from `offset` (negative: not one span, e.g. a multipart body)."""
        self.sent += length
        self.closed = False
        if self.complete or offset < 0 or length <= 0 or offset >= self.size:
            return
        start, end = offset, min(offset + length, self.size)
        starts, ends = self._starts, self._ends
        if ends and ends[-1] == start:  # the next range of a sequential read
            ends[-1] = end
            self.covered += end - start
        else:
            first = bisect_right(starts, start)
            if first and ends[first - 1] >= start:
                first -= 1
            last = first
            removed = 0
            while last < len(starts) and starts[last] <= end:
                start, end = min(start, starts[last]), max(end, ends[last])
                removed += ends[last] - starts[last]
                last += 1
            starts[first:last] = (start,)
            ends[first:last] = (end,)
            self.covered += end - start - removed
        if self.covered >= self.size:
            self.complete = True
            self._starts, self._ends = [], []


class FileReads:
    """The reads under way, by (client, file); bounded, the least recently read dropped."""

    def __init__(self, limit: int = MAX_READS) -> None:
        self.limit = limit
        self._reads: OrderedDict[ReadKey, FileRead] = OrderedDict()

    def __len__(self) -> int:
        return len(self._reads)

    def sent(self, key: ReadKey, offset: int, length: int, size: int) -> FileRead:
        """Record a response of `length` bytes from `offset` of a file of `size` bytes.

        A file whose size changed (replaced on disk) is a new read.
        """
        read = self._reads.get(key)
        if read is None or read.size != size:
            read = self._reads[key] = FileRead(size)
            while len(self._reads) > self.limit:
                self._reads.popitem(last=False)
        else:
            self._reads.move_to_end(key)
        read.add(offset, length)
        return read

    def closed(self, key: ReadKey) -> FileRead | None:
        """The connection that read `key` last closed; None when it is no longer followed."""
        read = self._reads.get(key)
        if read is not None:
            read.closed = True
        return read
