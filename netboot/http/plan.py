"""What to answer a GET or HEAD of a static file, decided as a value.

`plan` takes the request (method, the name it resolved to, its headers), the
file's facts from one `stat`, and the multipart boundary, and returns a
`ResponsePlan`: the status, every header the service sets, and the body as
parts, either bytes to send as they are (multipart framing, the 416 text) or
a span of the file. The service only writes the status and headers and
streams the parts; so ranges, 304 and 416 are decided here, where a table
test can check them without a socket, and the random boundary is an input so
a plan is the same every time it is made.

The order of decisions follows RFC 9110 13.2.2: If-None-Match (or, without
it, If-Modified-Since) may answer 304 first; If-Range then decides whether
Range applies at all; Range answers 206, 416 or, when it is ignored, 200.
A 304 carries the validators and no Content-Length (RFC 9110 8.6: it may
only repeat the 200's length, and saying nothing is as good).
A HEAD gets the headers a GET would get and no body parts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Literal

from netboot.http.conditional import Validators, not_modified, range_applies
from netboot.http.media import content_type
from netboot.http.ranges import ByteRange, Unsatisfiable, parse_ranges

Method = Literal["GET", "HEAD"]
HeaderLookup = Callable[[str], str | None] | Mapping[str, str]
"""A request's headers: a function from a field name to its value, or a mapping
whose keys are field names in any case."""

UNSATISFIABLE_TEXT = b"range not satisfiable\n"
"""The body of a 416, for people reading it with curl."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the answer depends on from one `stat` of the open file."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def from_stat(cls, info: os.stat_result) -> FileFacts:
        return cls(size=info.st_size, mtime_ns=info.st_mtime_ns, inode=info.st_ino)

    @property
    def validators(self) -> Validators:
        return Validators.for_file(self.inode, self.size, self.mtime_ns)


@dataclass(frozen=True, slots=True)
class Inline:
    """Bytes of the body made here: multipart framing, the 416 text."""

    data: bytes

    @property
    def length(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class FileSpan:
    """`length` bytes of the file from `offset`, read when they are sent."""

    offset: int
    length: int


BodyPart = Inline | FileSpan


@dataclass(frozen=True, slots=True)
class ResponsePlan:
    status: int
    headers: tuple[tuple[str, str], ...]
    """In the order they are to be set; names as they go on the wire."""
    body: tuple[BodyPart, ...] = ()
    """Empty for HEAD, 304 and an empty body; never holds an empty part."""

    @property
    def sole_span(self) -> FileSpan | None:
        """The file span that is the whole body, if it is one: what sendfile can send."""
        if len(self.body) == 1 and isinstance(self.body[0], FileSpan):
            return self.body[0]
        return None

    def header(self, name: str) -> str | None:
        """The value of the header `name` (any case), or None when the plan sets none."""
        wanted = name.lower()
        return next((value for field, value in self.headers if field.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class FileFields:
    """What every answer about one version of a file says: its validators, its type."""

    always: tuple[tuple[str, str], ...]
    """Accept-Ranges, ETag and Last-Modified, on every answer but the 416, in this order."""
    media: str
    """The Content-Type of the file's bytes."""


@lru_cache(maxsize=1024)
def file_fields(name: str, facts: FileFacts) -> FileFields:
    """Remembered per file version: a Mac asks for thousands of ranges of one image."""
    validators = facts.validators
    always = (
        ("Accept-Ranges", "bytes"),
        ("ETag", validators.etag),
        ("Last-Modified", validators.last_modified),
    )
    return FileFields(always, content_type(name))


def single_range(headers: HeaderLookup, size: int) -> ByteRange | None:
    """The range of a GET that `plan` answers with a 206 of that one span, unconditionally.

    The question of the service's quick path: a request with no If-None-Match,
    If-Modified-Since or If-Range whose Range is one satisfiable range. Any
    other request answers None here, whatever `plan` makes of it.
    """
    header = _lookup(headers)
    if (
        header("If-None-Match") is not None
        or header("If-Modified-Since") is not None
        or header("If-Range") is not None
    ):
        return None
    ranges = parse_ranges(header("Range"), size)
    if isinstance(ranges, list) and len(ranges) == 1:
        return ranges[0]
    return None


def plan(
    method: Method,
    name: str | PurePosixPath,
    headers: HeaderLookup,
    facts: FileFacts,
    boundary: str,
) -> ResponsePlan:
    """The answer to `method` of the file `name` (its facts `facts`) with `headers`.

    `boundary` separates the parts of a multipart/byteranges body (RFC 9110
    14.6; 1 to 70 characters of RFC 2046's bchars, `secrets.token_hex(16)`
    does) and is used only when several ranges are asked for.
    """
    header = _lookup(headers)
    validators = facts.validators
    fields_of_file = file_fields(str(name), facts)
    always = fields_of_file.always
    if not_modified(validators, header("If-None-Match"), header("If-Modified-Since")):
        return ResponsePlan(304, always)
    ranges = None
    if range_applies(validators, header("If-Range")):
        ranges = parse_ranges(header("Range"), facts.size)
    media = fields_of_file.media
    status = 206
    fields: tuple[tuple[str, str], ...]
    body: tuple[BodyPart, ...]
    if isinstance(ranges, Unsatisfiable):
        status = 416
        fields = (("Content-Range", ranges.content_range()), ("Content-Type", "text/plain"))
        body = (Inline(UNSATISFIABLE_TEXT),)
    elif ranges is None:
        status = 200
        fields = (("Content-Type", media),)
        body = (FileSpan(0, facts.size),) if facts.size else ()
    elif len(ranges) == 1:
        (single,) = ranges
        fields = (("Content-Range", single.content_range(facts.size)), ("Content-Type", media))
        body = (FileSpan(single.start, single.length),)
    else:
        fields = (("Content-Type", f"multipart/byteranges; boundary={boundary}"),)
        body = _multipart(ranges, facts.size, media, boundary)
    length = sum(part.length for part in body)
    return ResponsePlan(
        status,
        (*always, *fields, ("Content-Length", str(length))),
        () if method == "HEAD" else body,
    )


def _lookup(headers: HeaderLookup) -> Callable[[str], str | None]:
    if isinstance(headers, Mapping):
        lowered = {field.lower(): value for field, value in headers.items()}
        return lambda field: lowered.get(field.lower())
    return headers


def _multipart(
    ranges: list[ByteRange], size: int, media: str, boundary: str
) -> tuple[BodyPart, ...]:
    """RFC 9110 14.6: each range after a delimiter and its own part headers, then the close."""
    parts: list[BodyPart] = []
    for number, byte_range in enumerate(ranges):
        delimiter = (
            ("\r\n" if number else "")
            + f"--{boundary}\r\nContent-Type: {media}\r\n"
            + f"Content-Range: {byte_range.content_range(size)}\r\n\r\n"
        )
        parts.append(Inline(delimiter.encode()))
        parts.append(FileSpan(byte_range.start, byte_range.length))
    parts.append(Inline(f"\r\n--{boundary}--\r\n".encode()))
    return tuple(parts)
