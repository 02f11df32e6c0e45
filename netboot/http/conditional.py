"""Validators and conditional requests (RFC 9110 sections 8.8 and 13) for static files.

A file's ETag is strong and made from its inode, size and modification time,
so it changes whenever the file is replaced or rewritten. Precedence follows
RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since; If-Range decides
whether a Range applies at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Validators:
    etag: str
    last_modified: str
    mtime: int
    """Whole seconds, the precision of HTTP dates."""

    @classmethod
    def for_file(cls, inode: int, size: int, mtime_ns: int) -> Validators:
        return _validators(inode, size, mtime_ns)


@lru_cache(maxsize=1024)
def _validators(inode: int, size: int, mtime_ns: int) -> Validators:
    """Remembered: a Mac asks for thousands of ranges of one file, whose HTTP date and
    ETag formatting was a tenth of the Python time per range."""
    seconds = mtime_ns // 1_000_000_000
    when = datetime.fromtimestamp(seconds, tz=UTC)
    return Validators(
        etag=f'"{inode:x}-{size:x}-{mtime_ns:x}"',
        last_modified=format_datetime(when, usegmt=True),
        mtime=seconds,
    )


def _http_date(text: str) -> int | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def not_modified(
    validators: Validators, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """True when the answer is 304 Not Modified (GET and HEAD)."""
    if if_none_match is not None:
        tags = _tags(if_none_match)
        weak_match = [t[2:] if t.startswith("W/") else t for t in tags]
        return "*" in tags or validators.etag in weak_match
    if if_modified_since is not None:
        since = _http_date(if_modified_since)
        return since is not None and validators.mtime <= since
    return False


def range_applies(validators: Validators, if_range: str | None) -> bool:
    """If-Range: serve the ranges only if the representation is unchanged."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == validators.etag  # strong comparison; a weak tag never matches
    since = _http_date(value)
    return since is not None and since == validators.mtime
