"""What a GET or HEAD of a static file is answered with (netboot.http.plan), without a socket.

Each table row is a request's headers against one file (10000 bytes, a fixed
inode and mtime) and the whole plan expected: status, every header in order,
and the body parts. Multipart framing is checked byte for byte and, for
random ranges, against Python's own MIME parser; single ranges against a
slice of the file.
"""

from __future__ import annotations

import random
from email import policy
from email.parser import BytesParser
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.http.plan import (
    UNSATISFIABLE_TEXT,
    FileFacts,
    FileSpan,
    Inline,
    ResponsePlan,
    plan,
    single_range,
)
from netboot.nbi.catalog import scan_catalog
from tests.test_ipxe_http import Request, make_resource

SIZE = 10_000
INODE = 0x1234
MTIME_NS = 1_700_000_000_123_456_789
FACTS = FileFacts(size=SIZE, mtime_ns=MTIME_NS, inode=INODE)
NAME = "Alpha.nbi/NetBoot.dmg"
DMG = "application/x-apple-diskimage"
BOUNDARY = "3d6b6a416f9b4c2f"

ETAG = f'"1234-2710-{MTIME_NS:x}"'
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
SECOND_EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"
SECOND_LATER = "Tue, 14 Nov 2023 22:13:21 GMT"
ALWAYS = (("Accept-Ranges", "bytes"), ("ETag", ETAG), ("Last-Modified", LAST_MODIFIED))


def whole(size: int = SIZE) -> tuple[tuple[tuple[str, str], ...], tuple[FileSpan, ...]]:
    return (("Content-Type", DMG), ("Content-Length", str(size))), (FileSpan(0, size),)


def partial(
    first: int, last: int, size: int = SIZE
) -> tuple[tuple[tuple[str, str], ...], tuple[FileSpan, ...]]:
    fields = (
        ("Content-Range", f"bytes {first}-{last}/{size}"),
        ("Content-Type", DMG),
        ("Content-Length", str(last - first + 1)),
    )
    return fields, (FileSpan(first, last - first + 1),)


UNSATISFIABLE = (
    (
        ("Content-Range", f"bytes */{SIZE}"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "22"),
    ),
    (Inline(b"range not satisfiable\n"),),
)
NOT_MODIFIED: tuple[tuple[tuple[str, str], ...], tuple[FileSpan, ...]] = ((), ())

# (request headers, status, (headers after ALWAYS, body parts))
TABLE = [
    pytest.param({}, 200, whole(), id="no-range"),
    pytest.param({"Range": "bytes=0-99"}, 206, partial(0, 99), id="single-range"),
    pytest.param({"Range": "bytes=5000-5000"}, 206, partial(5000, 5000), id="one-byte"),
    pytest.param({"Range": "bytes=-500"}, 206, partial(9500, 9999), id="suffix"),
    pytest.param({"Range": "bytes=-20000"}, 206, partial(0, 9999), id="suffix-longer-than-file"),
    pytest.param({"Range": "bytes=100-"}, 206, partial(100, 9999), id="open"),
    pytest.param({"Range": "bytes=9000-20000"}, 206, partial(9000, 9999), id="past-end-clamped"),
    pytest.param({"Range": "bytes=0-5,3-8"}, 206, partial(0, 8), id="overlap-coalesced"),
    pytest.param({"Range": "bytes=20000-,0-9"}, 206, partial(0, 9), id="past-end-spec-dropped"),
    pytest.param({"Range": "bytes=10000-"}, 416, UNSATISFIABLE, id="open-at-end-416"),
    pytest.param({"Range": "bytes=20000-30000,-0"}, 416, UNSATISFIABLE, id="all-past-end-416"),
    pytest.param({"Range": "bytes=x-y"}, 200, whole(), id="malformed-ignored"),
    pytest.param({"Range": "bytes=5-4"}, 200, whole(), id="backwards-ignored"),
    pytest.param({"Range": "items=0-9"}, 200, whole(), id="other-unit-ignored"),
    pytest.param({"If-None-Match": ETAG}, 304, NOT_MODIFIED, id="if-none-match"),
    pytest.param({"If-None-Match": f'"x", W/{ETAG}'}, 304, NOT_MODIFIED, id="if-none-match-weak"),
    pytest.param({"If-None-Match": "*"}, 304, NOT_MODIFIED, id="if-none-match-star"),
    pytest.param({"If-None-Match": '"other"'}, 200, whole(), id="if-none-match-other"),
    pytest.param({"If-Modified-Since": LAST_MODIFIED}, 304, NOT_MODIFIED, id="ims-equal"),
    pytest.param({"If-Modified-Since": SECOND_LATER}, 304, NOT_MODIFIED, id="ims-later"),
    pytest.param({"If-Modified-Since": SECOND_EARLIER}, 200, whole(), id="ims-earlier"),
    pytest.param({"If-Modified-Since": "yesterday"}, 200, whole(), id="ims-garbage"),
    pytest.param(
        {"If-None-Match": '"other"', "If-Modified-Since": SECOND_LATER},
        200,
        whole(),
        id="if-none-match-wins-over-ims",
    ),
    pytest.param(
        {"If-None-Match": ETAG, "Range": "bytes=0-9"}, 304, NOT_MODIFIED, id="304-before-range"
    ),
    pytest.param(
        {"If-None-Match": ETAG, "Range": "bytes=20000-"}, 304, NOT_MODIFIED, id="304-before-416"
    ),
    pytest.param(
        {"If-Range": ETAG, "Range": "bytes=0-9"}, 206, partial(0, 9), id="if-range-etag-matches"
    ),
    pytest.param(
        {"If-Range": '"other"', "Range": "bytes=0-9"}, 200, whole(), id="if-range-etag-differs"
    ),
    pytest.param(
        {"If-Range": f"W/{ETAG}", "Range": "bytes=0-9"}, 200, whole(), id="if-range-weak-etag"
    ),
    pytest.param(
        {"If-Range": LAST_MODIFIED, "Range": "bytes=0-9"},
        206,
        partial(0, 9),
        id="if-range-date-matches",
    ),
    pytest.param(
        {"If-Range": SECOND_EARLIER, "Range": "bytes=0-9"}, 200, whole(), id="if-range-date-differs"
    ),
    pytest.param(
        {"If-Range": '"other"', "Range": "bytes=20000-"},
        200,
        whole(),
        id="if-range-differs-so-no-416",
    ),
    pytest.param({"If-Range": ETAG}, 200, whole(), id="if-range-without-range"),
]


@pytest.mark.parametrize(("request_headers", "status", "expected"), TABLE)
def test_get(
    request_headers: dict[str, str],
    status: int,
    expected: tuple[tuple[tuple[str, str], ...], tuple[FileSpan | Inline, ...]],
) -> None:
    fields, body = expected
    assert plan("GET", NAME, request_headers, FACTS, BOUNDARY) == ResponsePlan(
        status, ALWAYS + fields, body
    )


@pytest.mark.parametrize(("request_headers", "status", "expected"), TABLE)
def test_head_has_the_get_status_and_headers_and_no_body(
    request_headers: dict[str, str],
    status: int,
    expected: tuple[tuple[tuple[str, str], ...], tuple[FileSpan | Inline, ...]],
) -> None:
    fields, _ = expected
    head = plan("HEAD", NAME, request_headers, FACTS, BOUNDARY)
    assert head == ResponsePlan(status, ALWAYS + fields, ())
    assert head.sole_span is None


def test_a_304_has_no_content_length() -> None:
    """RFC 9110 8.6: a 304 may only repeat the 200's length; it says none."""
    answer = plan("GET", NAME, {"If-None-Match": ETAG}, FACTS, BOUNDARY)
    assert answer.header("content-length") is None
    assert answer.header("etag") == ETAG


# --- multipart/byteranges ------------------------------------------------------------------


def test_multiple_ranges_are_framed_exactly() -> None:
    answer = plan("GET", NAME, {"Range": "bytes=20-29,0-9,-5"}, FACTS, BOUNDARY)
    head = f"Content-Type: {DMG}\r\nContent-Range: bytes"
    framing = [
        f"--{BOUNDARY}\r\n{head} 0-9/10000\r\n\r\n".encode(),
        f"\r\n--{BOUNDARY}\r\n{head} 20-29/10000\r\n\r\n".encode(),
        f"\r\n--{BOUNDARY}\r\n{head} 9995-9999/10000\r\n\r\n".encode(),
        f"\r\n--{BOUNDARY}--\r\n".encode(),
    ]
    assert framing[0] == (
        b"--3d6b6a416f9b4c2f\r\nContent-Type: application/x-apple-diskimage\r\n"
        b"Content-Range: bytes 0-9/10000\r\n\r\n"
    )
    length = sum(map(len, framing)) + 10 + 10 + 5
    assert answer == ResponsePlan(
        206,
        (
            *ALWAYS,
            ("Content-Type", f"multipart/byteranges; boundary={BOUNDARY}"),
            ("Content-Length", str(length)),
        ),
        (
            Inline(framing[0]),
            FileSpan(0, 10),
            Inline(framing[1]),
            FileSpan(20, 10),
            Inline(framing[2]),
            FileSpan(9995, 5),
            Inline(framing[3]),
        ),
    )
    assert answer.sole_span is None


def test_the_boundary_is_the_one_given() -> None:
    one = plan("GET", NAME, {"Range": "bytes=0-0,5-5"}, FACTS, "one")
    other = plan("GET", NAME, {"Range": "bytes=0-0,5-5"}, FACTS, "other")
    assert one.header("content-type") == "multipart/byteranges; boundary=one"
    assert other.header("content-type") == "multipart/byteranges; boundary=other"
    assert one == plan("GET", NAME, {"Range": "bytes=0-0,5-5"}, FACTS, "one")


# --- an empty file ---------------------------------------------------------------------------

EMPTY = FileFacts(size=0, mtime_ns=MTIME_NS, inode=INODE)


@pytest.mark.parametrize(
    ("request_headers", "status", "fields"),
    [
        pytest.param({}, 200, (("Content-Type", DMG), ("Content-Length", "0")), id="no-range"),
        pytest.param(
            {"Range": "bytes=-1"},
            200,
            (("Content-Type", DMG), ("Content-Length", "0")),
            id="suffix-is-the-empty-whole",
        ),
        pytest.param(
            {"Range": "bytes=0-0"},
            416,
            (
                ("Content-Range", "bytes */0"),
                ("Content-Type", "text/plain"),
                ("Content-Length", "22"),
            ),
            id="first-byte-416",
        ),
    ],
)
def test_an_empty_file(
    request_headers: dict[str, str], status: int, fields: tuple[tuple[str, str], ...]
) -> None:
    answer = plan("GET", NAME, request_headers, EMPTY, BOUNDARY)
    assert (answer.status, answer.headers[3:]) == (status, fields)
    assert answer.headers[1] == ("ETag", f'"1234-0-{MTIME_NS:x}"')
    assert answer.body == ((Inline(UNSATISFIABLE_TEXT),) if status == 416 else ())


# --- how the headers and the name come in ---------------------------------------------------


def test_a_mapping_is_read_in_any_case_and_a_callable_as_it_answers() -> None:
    expected = plan("GET", NAME, {"Range": "bytes=0-9"}, FACTS, BOUNDARY)
    assert plan("GET", NAME, {"range": "bytes=0-9"}, FACTS, BOUNDARY) == expected
    assert plan("GET", NAME, {"RANGE": "bytes=0-9"}, FACTS, BOUNDARY) == expected
    asked: list[str] = []

    def lookup(name: str) -> str | None:
        asked.append(name)
        return "bytes=0-9" if name == "Range" else None

    assert plan("GET", NAME, lookup, FACTS, BOUNDARY) == expected
    assert set(asked) == {"If-None-Match", "If-Modified-Since", "If-Range", "Range"}


@pytest.mark.parametrize(
    ("name", "media"),
    [
        ("Alpha.nbi/NetBoot.dmg", "application/x-apple-diskimage"),
        (PurePosixPath("boot/ipxe.efi"), "application/efi"),
        ("boot/IPXE.EFI", "application/efi"),
        ("boot.ipxe", "text/plain"),
        ("notes.txt", "text/plain"),
        ("Alpha.nbi/i386/booter", "application/octet-stream"),
    ],
)
def test_the_content_type_follows_the_name(name: str | PurePosixPath, media: str) -> None:
    assert plan("GET", name, {}, FACTS, BOUNDARY).header("Content-Type") == media
    assert (
        plan("GET", name, {"Range": "bytes=0-0"}, FACTS, BOUNDARY).header("Content-Type") == media
    )


def test_the_facts_come_from_a_stat(tmp_path: Path) -> None:
    path = tmp_path / "image.dmg"
    path.write_bytes(b"x" * 123)
    info = path.stat()
    assert FileFacts.from_stat(info) == FileFacts(123, info.st_mtime_ns, info.st_ino)


# --- properties: the planned bytes are the asked-for bytes ------------------------------------


def assemble(answer: ResponsePlan, data: bytes) -> bytes:
    """The body as the service would send it, from the file's content."""
    return b"".join(
        part.data if isinstance(part, Inline) else data[part.offset : part.offset + part.length]
        for part in answer.body
    )


def facts_of(data: bytes) -> FileFacts:
    return FileFacts(size=len(data), mtime_ns=MTIME_NS, inode=INODE)


# One spec: (first, last) for "first-last", (first, None) for "first-", (None, n) for "-n".
Spec = tuple[int | None, int | None]


@st.composite
def files_and_specs(draw: st.DrawFn, most: int) -> tuple[bytes, list[Spec]]:
    """A file's content and up to `most` range specs, mostly inside it, some past its end."""
    size = draw(st.integers(1, 3000))
    data = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    number = st.integers(0, size + 20)
    spec = st.one_of(
        st.tuples(number, number).map(lambda pair: (min(pair), max(pair))),
        st.tuples(number, st.none()),
        st.tuples(st.none(), number),
    )
    return data, draw(st.lists(spec, min_size=1, max_size=most))


def render(spec: Spec) -> str:
    first, last = spec
    return f"{'' if first is None else first}-{'' if last is None else last}"


def asked(spec: Spec, size: int) -> range:
    """The offsets one spec names in a file of `size` bytes, computed without ByteRange."""
    first, last = spec
    if first is None:
        assert last is not None
        return range(max(0, size - last), size)
    return range(first, size if last is None else min(last + 1, size))


@settings(max_examples=300)
@given(files_and_specs(most=1))
def test_a_single_range_plans_exactly_its_slice(file_and_specs: tuple[bytes, list[Spec]]) -> None:
    data, (spec,) = file_and_specs
    answer = plan("GET", NAME, {"Range": f"bytes={render(spec)}"}, facts_of(data), BOUNDARY)
    offsets = asked(spec, len(data))
    wanted = data[offsets.start : offsets.stop]
    if not wanted:
        assert answer.status == 416
        assert answer.header("Content-Range") == f"bytes */{len(data)}"
        return
    assert answer.status == 206
    span = answer.sole_span
    assert span is not None
    assert assemble(answer, data) == wanted
    assert answer.header("Content-Length") == str(len(wanted))
    last = span.offset + span.length - 1
    assert answer.header("Content-Range") == f"bytes {span.offset}-{last}/{len(data)}"
    assert data[span.offset : last + 1] == wanted


@settings(max_examples=300)
@given(
    files_and_specs(most=3),
    st.dictionaries(
        st.sampled_from(["If-None-Match", "if-modified-since", "If-Range"]),
        st.sampled_from(["", "*", ETAG, LAST_MODIFIED, "Thu, 01 Jan 1970 00:00:00 GMT"]),
        max_size=2,
    ),
)
def test_single_range_is_plans_206_of_one_span_for_a_request_without_conditions(
    file_and_specs: tuple[bytes, list[Spec]], conditions: dict[str, str]
) -> None:
    data, specs = file_and_specs
    headers = {"Range": "bytes=" + ",".join(render(spec) for spec in specs), **conditions}
    facts = FileFacts(size=len(data), mtime_ns=MTIME_NS, inode=INODE)
    answer = plan("GET", NAME, headers, facts, BOUNDARY)
    span = answer.sole_span
    one_span = answer.status == 206 and span is not None
    found = single_range(headers, len(data))
    if found is not None:
        assert one_span and span == FileSpan(found.start, found.length)
        assert answer.header("Content-Range") == found.content_range(len(data))
    else:
        assert conditions or not one_span


@settings(max_examples=300)
@given(files_and_specs(most=6))
def test_several_ranges_parse_back_as_mime_parts_holding_the_asked_for_bytes(
    file_and_specs: tuple[bytes, list[Spec]],
) -> None:
    data, specs = file_and_specs
    header = "bytes=" + ",".join(map(render, specs))
    answer = plan("GET", NAME, {"Range": header}, facts_of(data), BOUNDARY)
    body = assemble(answer, data)
    if answer.status != 206:
        assert not any(asked(spec, len(data)) for spec in specs)
        return
    assert answer.header("Content-Length") == str(len(body))
    wanted = {offset for spec in specs for offset in asked(spec, len(data))}
    content_type = answer.header("Content-Type")
    assert content_type is not None
    if not content_type.startswith("multipart/"):
        assert answer.sole_span is not None
        assert (
            set(range(answer.sole_span.offset, answer.sole_span.offset + answer.sole_span.length))
            == wanted
        )
        return
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    covered: set[int] = set()
    for part in message.iter_parts():
        assert part["Content-Type"] == DMG
        first, last = map(
            int, part["Content-Range"].removeprefix("bytes ").split("/")[0].split("-")
        )
        assert part.get_payload(decode=True) == data[first : last + 1]
        covered.update(range(first, last + 1))
    assert covered == wanted


# --- through ImageResource: the parts are streamed as planned ---------------------------------


@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param({}, id="whole"),
        pytest.param({"Range": "bytes=10-19"}, id="single"),
        pytest.param({"Range": "bytes=0-9,200-299,-7"}, id="multipart"),
        pytest.param({"Range": "bytes=99999-"}, id="416"),
        pytest.param({"If-Modified-Since": SECOND_LATER}, id="304"),
    ],
)
def test_the_resource_writes_the_plan(tmp_path: Path, request_headers: dict[str, str]) -> None:
    """Driven with Twisted's DummyRequest (no transport, so the pread producer) and no root."""
    boot = tmp_path / "boot"
    boot.mkdir()
    data = bytes(range(256)) * 17
    (boot / "ipxe.efi").write_bytes(data)
    (tmp_path / "images").mkdir()
    resource = make_resource(scan_catalog(tmp_path / "images"), boot_files=boot)
    request = Request("/boot/ipxe.efi")
    for field, value in request_headers.items():
        request.requestHeaders.setRawHeaders(field, [value])
    request.render(resource)
    assert request.finished == 1
    facts = FileFacts.from_stat((boot / "ipxe.efi").stat())
    content_type = request.header(b"content-type")
    boundary = ""
    if content_type is not None and content_type.startswith(b"multipart/"):
        boundary = content_type.decode().partition("boundary=")[2]
    expected = plan("GET", "ipxe.efi", request_headers, facts, boundary)
    assert request.status == expected.status
    sent = [(name.decode(), values) for name, values in request.responseHeaders.getAllRawHeaders()]
    assert sent == [(field, [value.encode()]) for field, value in expected.headers]
    assert request.body == assemble(expected, data)
