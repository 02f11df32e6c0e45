"""The Range header (RFC 9110 section 14), parsed against a representation's size.

`parse_ranges` answers one of three things:

* `None`: serve the whole representation (no header, another unit, a syntax
  error, or more ranges than we accept; RFC 9110 lets a server ignore Range);
* `Unsatisfiable`: 416, with `Content-Range: bytes */<size>`;
* for an empty representation asked for a non-zero suffix, `None` too: RFC
  9110 14.1.1 makes only such a range satisfiable there, and what it selects
  is the empty whole; any other range of an empty file is unsatisfiable;
* a list of `ByteRange`, each clipped to the size, overlapping or adjacent
  ones merged and put in order (RFC 9110 14.2 allows coalescing; it is also
  what defeats the "many overlapping ranges" attack), to answer with 206.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGES = 100
"""More ranges than this in one request: serve the whole file instead."""

_ONE_RANGE = re.compile(r"bytes=([0-9]{1,19})-([0-9]{1,19})")
"""`bytes=A-B` exactly, as a Mac asks for each piece of its root image."""


@dataclass(frozen=True, slots=True, order=True)
class ByteRange:
    start: int
    end: int
    """Inclusive, as in Content-Range."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    size: int

    def content_range(self) -> str:
        return f"bytes */{self.size}"


def _digits(text: str) -> int | None:
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    return int(text)


def parse_ranges(
    header: str | None, size: int, max_ranges: int = MAX_RANGES
) -> list[ByteRange] | Unsatisfiable | None:
    if header is None:
        return None
    plain = _ONE_RANGE.fullmatch(header)
    if plain is not None:  # the common form, decided as the general loop below decides it
        start, stop = int(plain[1]), int(plain[2])
        if stop < start:
            return None
        if start >= size:
            return Unsatisfiable(size)
        return [ByteRange(start, min(stop, size - 1))]
    unit, equals, specs = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    parts = specs.split(",")
    if len(parts) > max_ranges:
        return None
    wanted: list[ByteRange] = []
    valid_specs = 0
    nonzero_suffix = False
    for part in parts:
        part = part.strip()
        if not part:
            continue  # RFC 9110 allows empty list elements
        first_text, dash, last_text = part.partition("-")
        if not dash:
            return None
        if not first_text.strip():  # suffix: the last N bytes
            suffix = _digits(last_text)
            if suffix is None:
                return None
            valid_specs += 1
            nonzero_suffix = nonzero_suffix or suffix > 0
            if suffix > 0 and size > 0:
                wanted.append(ByteRange(max(0, size - suffix), size - 1))
            continue
        first = _digits(first_text)
        open_ended = not last_text.strip()
        last = None if open_ended else _digits(last_text)
        if first is None or (not open_ended and (last is None or last < first)):
            return None
        valid_specs += 1
        if first < size:
            end = size - 1 if last is None else min(last, size - 1)
            wanted.append(ByteRange(first, end))
    if valid_specs == 0 or (size == 0 and nonzero_suffix):
        return None
    if not wanted:
        return Unsatisfiable(size)
    return _coalesce(wanted)


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    merged: list[ByteRange] = []
    for current in sorted(ranges):
        if merged and current.start <= merged[-1].end + 1:
            last = merged[-1]
            merged[-1] = ByteRange(last.start, max(last.end, current.end))
        else:
            merged.append(current)
    return merged
