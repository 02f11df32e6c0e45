"""The Range header against a file's size (netboot.http.ranges, RFC 9110 section 14).

`parse_ranges` answers None (serve the whole file), `Unsatisfiable` (416) or a
sorted list of clipped, coalesced `ByteRange`s (206).
"""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.http.ranges import MAX_RANGES, ByteRange, Unsatisfiable, parse_ranges

R = ByteRange
WHOLE = None
"""parse_ranges's answer for "ignore the header and serve the whole file"."""


def unsatisfiable(size: int) -> Unsatisfiable:
    return Unsatisfiable(size)


def many(spec: str, count: int) -> str:
    return "bytes=" + ",".join([spec] * count)


# --- the table: (header, size) -> result -------------------------------------------------

TABLE = [
    # size 10 ------------------------------------------------------------------------------
    pytest.param(None, 10, WHOLE, id="absent"),
    pytest.param("items=0-1", 10, WHOLE, id="other-unit"),
    pytest.param("bytes", 10, WHOLE, id="unit-without-equals"),
    pytest.param("0-1", 10, WHOLE, id="no-unit"),
    pytest.param("Bytes=0-0", 10, [R(0, 0)], id="unit-is-case-insensitive"),
    pytest.param("bytes=0-0", 10, [R(0, 0)], id="first-byte"),
    pytest.param("bytes=-1", 10, [R(9, 9)], id="last-byte"),
    pytest.param("bytes=-0", 10, unsatisfiable(10), id="empty-suffix-unsatisfiable"),
    pytest.param("bytes=-10", 10, [R(0, 9)], id="suffix-exactly-the-file"),
    pytest.param("bytes=-20", 10, [R(0, 9)], id="suffix-longer-than-file"),
    pytest.param("bytes=5-", 10, [R(5, 9)], id="open-ended"),
    pytest.param("bytes=0-", 10, [R(0, 9)], id="open-ended-from-zero"),
    pytest.param("bytes=9-", 10, [R(9, 9)], id="open-ended-last-byte"),
    pytest.param("bytes=10-", 10, unsatisfiable(10), id="open-ended-at-end"),
    pytest.param("bytes=50-", 10, unsatisfiable(10), id="open-ended-past-end"),
    pytest.param("bytes=10-20", 10, unsatisfiable(10), id="first-past-end"),
    pytest.param("bytes=5-100", 10, [R(5, 9)], id="last-past-end-clipped"),
    pytest.param("bytes=0-9", 10, [R(0, 9)], id="whole-file-as-range"),
    pytest.param("bytes=5-4", 10, WHOLE, id="last-before-first"),
    pytest.param("bytes=5-5", 10, [R(5, 5)], id="one-byte-in-the-middle"),
    pytest.param(" bytes = 0-1 ,\t3 - 4 ", 10, [R(0, 1), R(3, 4)], id="whitespace"),
    pytest.param("bytes=0-1,,3-4,", 10, [R(0, 1), R(3, 4)], id="empty-list-elements"),
    pytest.param("bytes=, ,0-0", 10, [R(0, 0)], id="leading-empty-elements"),
    pytest.param("bytes=", 10, WHOLE, id="no-specs"),
    pytest.param("bytes=,,,", 10, WHOLE, id="only-empty-elements"),
    pytest.param("bytes=0-1,4-5,8-9", 10, [R(0, 1), R(4, 5), R(8, 9)], id="several-in-order"),
    pytest.param("bytes=8-9,0-1,4-5", 10, [R(0, 1), R(4, 5), R(8, 9)], id="several-sorted"),
    pytest.param("bytes=0-5,3-8", 10, [R(0, 8)], id="overlapping-coalesced"),
    pytest.param("bytes=3-8,0-5", 10, [R(0, 8)], id="overlapping-out-of-order"),
    pytest.param("bytes=0-1,2-3", 10, [R(0, 3)], id="adjacent-coalesced"),
    pytest.param("bytes=0-9,2-3", 10, [R(0, 9)], id="contained-coalesced"),
    pytest.param("bytes=0-0,0-0,0-0", 10, [R(0, 0)], id="duplicates-coalesced"),
    pytest.param("bytes=-3,0-7", 10, [R(0, 9)], id="suffix-and-range-coalesced"),
    pytest.param("bytes=0-1,3-4,2-2", 10, [R(0, 4)], id="gap-filled-later"),
    pytest.param("bytes=20-30,0-1", 10, [R(0, 1)], id="unsatisfiable-spec-dropped"),
    pytest.param("bytes=-0,3-4", 10, [R(3, 4)], id="empty-suffix-dropped"),
    pytest.param("bytes=10-,-2", 10, [R(8, 9)], id="open-past-end-dropped"),
    pytest.param("bytes=10-,20-30,-0", 10, unsatisfiable(10), id="all-specs-unsatisfiable"),
    pytest.param("bytes=0-1,x-2", 10, WHOLE, id="one-bad-spec-spoils-all"),
    pytest.param("bytes=0-1,5-4", 10, WHOLE, id="one-backwards-spec-spoils-all"),
    pytest.param("bytes=a-b", 10, WHOLE, id="letters"),
    pytest.param("bytes=0-x", 10, WHOLE, id="letter-last"),
    pytest.param("bytes=5", 10, WHOLE, id="no-dash"),
    pytest.param("bytes=-", 10, WHOLE, id="lone-dash"),
    pytest.param("bytes=1.5-2", 10, WHOLE, id="decimal"),
    pytest.param("bytes=0x1-2", 10, WHOLE, id="hex"),
    pytest.param("bytes=+1-2", 10, WHOLE, id="plus-sign"),
    pytest.param("bytes=1 2-3", 10, WHOLE, id="space-inside-number"),
    pytest.param("bytes=\u0663-4", 10, WHOLE, id="arabic-indic-digit"),
    pytest.param("bytes=\u00b2-3", 10, WHOLE, id="superscript-digit"),
    pytest.param("bytes=\uff11-3", 10, WHOLE, id="fullwidth-digit"),
    pytest.param("bytes=--5", 10, WHOLE, id="negative-suffix"),
    pytest.param("bytes=-5-10", 10, WHOLE, id="negative-first"),
    pytest.param("bytes=0--5", 10, WHOLE, id="negative-last"),
    pytest.param("bytes=0-" + "9" * 20, 10, WHOLE, id="huge-last"),
    pytest.param("bytes=" + "1" * 20 + "-", 10, WHOLE, id="huge-first"),
    pytest.param("bytes=-" + "9" * 20, 10, WHOLE, id="huge-suffix"),
    pytest.param("bytes=-" + "9" * 400, 10, WHOLE, id="enormous-suffix"),
    pytest.param("bytes=0-" + "9" * 19, 10, [R(0, 9)], id="19-digit-last-clipped"),
    pytest.param("bytes=0-1=2", 10, WHOLE, id="second-equals"),
    pytest.param(many("0-0", MAX_RANGES), 10, [R(0, 0)], id="max-ranges-accepted"),
    pytest.param(many("0-0", MAX_RANGES + 1), 10, WHOLE, id="too-many-ranges"),
    pytest.param(many("-1", MAX_RANGES + 1), 10, WHOLE, id="too-many-suffixes"),
    # size 0: no range of an empty file is satisfiable ------------------------------------
    pytest.param(None, 0, WHOLE, id="empty-file-absent"),
    pytest.param("items=0-0", 0, WHOLE, id="empty-file-other-unit"),
    pytest.param("bytes=0-0", 0, unsatisfiable(0), id="empty-file-first-byte"),
    pytest.param("bytes=0-", 0, unsatisfiable(0), id="empty-file-open-ended"),
    pytest.param("bytes=-1", 0, WHOLE, id="empty-file-suffix"),  # RFC 9110 14.1.1
    pytest.param("bytes=-0", 0, unsatisfiable(0), id="empty-file-empty-suffix"),
    pytest.param("bytes=0-100", 0, unsatisfiable(0), id="empty-file-range"),
    pytest.param("bytes=0-0,-5,3-", 0, WHOLE, id="empty-file-several"),
    pytest.param("bytes=5-3", 0, WHOLE, id="empty-file-backwards"),
    pytest.param("bytes=x", 0, WHOLE, id="empty-file-garbage"),
    # size 1 ------------------------------------------------------------------------------
    pytest.param("bytes=0-0", 1, [R(0, 0)], id="one-byte-first"),
    pytest.param("bytes=-1", 1, [R(0, 0)], id="one-byte-suffix"),
    pytest.param("bytes=-5", 1, [R(0, 0)], id="one-byte-long-suffix"),
    pytest.param("bytes=-0", 1, unsatisfiable(1), id="one-byte-empty-suffix"),
    pytest.param("bytes=0-", 1, [R(0, 0)], id="one-byte-open-ended"),
    pytest.param("bytes=1-", 1, unsatisfiable(1), id="one-byte-open-past-end"),
    pytest.param("bytes=0-5", 1, [R(0, 0)], id="one-byte-clipped"),
    pytest.param("bytes=0-0,-1,0-", 1, [R(0, 0)], id="one-byte-all-coalesced"),
    pytest.param("bytes=1-0", 1, WHOLE, id="one-byte-backwards"),
    # size 10000 --------------------------------------------------------------------------
    pytest.param("bytes=0-0", 10000, [R(0, 0)], id="big-first-byte"),
    pytest.param("bytes=-1", 10000, [R(9999, 9999)], id="big-last-byte"),
    pytest.param("bytes=-500", 10000, [R(9500, 9999)], id="big-suffix"),
    pytest.param("bytes=-0", 10000, unsatisfiable(10000), id="big-empty-suffix"),
    pytest.param("bytes=-20000", 10000, [R(0, 9999)], id="big-suffix-longer"),
    pytest.param("bytes=9999-", 10000, [R(9999, 9999)], id="big-open-last-byte"),
    pytest.param("bytes=10000-", 10000, unsatisfiable(10000), id="big-open-at-end"),
    pytest.param("bytes=9000-20000", 10000, [R(9000, 9999)], id="big-clipped"),
    pytest.param("bytes=0-499,500-999", 10000, [R(0, 999)], id="big-adjacent"),
    pytest.param("bytes=0-0,-1", 10000, [R(0, 0), R(9999, 9999)], id="big-first-and-last"),
    pytest.param(
        "bytes=500-600,601-999,0-99,200-299",
        10000,
        [R(0, 99), R(200, 299), R(500, 999)],
        id="big-mixed",
    ),
    pytest.param("bytes=20000-,0-9", 10000, [R(0, 9)], id="big-mixed-satisfiable"),
    pytest.param("bytes=100-50", 10000, WHOLE, id="big-backwards"),
]


@pytest.mark.parametrize(("header", "size", "expected"), TABLE)
def test_parse_ranges(
    header: str | None, size: int, expected: list[ByteRange] | Unsatisfiable | None
) -> None:
    assert parse_ranges(header, size) == expected


def test_a_lower_max_ranges_is_honoured() -> None:
    assert parse_ranges("bytes=0-0,2-2,4-4", 10, max_ranges=3) == [R(0, 0), R(2, 2), R(4, 4)]
    assert parse_ranges("bytes=0-0,2-2,4-4,6-6", 10, max_ranges=3) is WHOLE


def test_ten_thousand_ranges_are_refused_quickly() -> None:
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(10_000))
    started = time.perf_counter()
    assert parse_ranges(header, 1_000_000) is WHOLE
    assert time.perf_counter() - started < 0.5


def test_ten_thousand_overlapping_ranges_coalesce_quickly_when_allowed() -> None:
    """The coalescer itself is not quadratic: the many-ranges attack collapses to one range."""
    header = "bytes=" + ",".join(f"{i}-{i + 100}" for i in range(10_000))
    started = time.perf_counter()
    assert parse_ranges(header, 1_000_000, max_ranges=20_000) == [R(0, 10_099)]
    assert time.perf_counter() - started < 1.0


# --- ByteRange and Unsatisfiable -------------------------------------------------------


@pytest.mark.parametrize(
    ("byte_range", "size", "length", "content_range"),
    [
        (R(0, 0), 1, 1, "bytes 0-0/1"),
        (R(0, 9), 10, 10, "bytes 0-9/10"),
        (R(5, 9), 10, 5, "bytes 5-9/10"),
        (R(9500, 9999), 10000, 500, "bytes 9500-9999/10000"),
    ],
)
def test_byte_range_length_and_content_range(
    byte_range: ByteRange, size: int, length: int, content_range: str
) -> None:
    assert byte_range.length == length
    assert byte_range.content_range(size) == content_range


@pytest.mark.parametrize(("size", "content_range"), [(0, "bytes */0"), (10, "bytes */10")])
def test_unsatisfiable_content_range(size: int, content_range: str) -> None:
    assert Unsatisfiable(size).content_range() == content_range


# --- properties -----------------------------------------------------------------------

SIZES = st.one_of(st.sampled_from([0, 1, 10, 10_000]), st.integers(0, 2**63))
NUMBERS = st.one_of(
    st.integers(0, 12).map(str),
    st.integers(0, 2**70).map(str),
    st.sampled_from(["", " ", "-1", "a", "0x1", "\u0663", "1.5", "9" * 25]),
)
SPECS = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", NUMBERS, NUMBERS),
    st.sampled_from(["", " ", "-", "5", "--1", "0-0-0"]),
    st.text(max_size=8),
)
GRAMMATICAL = st.builds(
    lambda unit, specs: f"{unit}={','.join(specs)}",
    st.sampled_from(["bytes", "Bytes", " bytes ", "items", ""]),
    st.lists(SPECS, max_size=12),
)
HEADERS = st.one_of(st.none(), st.text(max_size=60), GRAMMATICAL)


@settings(max_examples=500)
@given(HEADERS, SIZES)
def test_any_header_gives_sorted_disjoint_ranges_inside_the_file(
    header: str | None, size: int
) -> None:
    result = parse_ranges(header, size)
    if result is None:
        return
    if isinstance(result, Unsatisfiable):
        assert result.size == size
        return
    assert size > 0, "a file of size 0 has no satisfiable range"
    assert 0 < len(result) <= MAX_RANGES
    for byte_range in result:
        assert 0 <= byte_range.start <= byte_range.end < size
    for before, after in pairwise(result):
        assert after.start > before.end + 1, "overlapping or adjacent ranges were not merged"


# A model: each spec is (first, last) with last None for "first-", or (None, suffix).
MODEL_SPECS = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 40), st.one_of(st.none(), st.integers(0, 40))),
        st.tuples(st.none(), st.integers(0, 40)),
    ),
    min_size=1,
    max_size=8,
)


def _model(specs: list[tuple[int | None, int | None]], size: int) -> set[int] | None:
    """The bytes the specs ask for, or None when one spec is syntactically invalid."""
    wanted: set[int] = set()
    for first, last in specs:
        if first is None:
            assert last is not None
            wanted.update(range(max(0, size - last), size))
        elif last is None:
            wanted.update(range(first, size))
        elif last < first:
            return None
        else:
            wanted.update(range(first, min(last, size - 1) + 1))
    if size == 0 and any(first is None and last for first, last in specs):
        return None  # RFC 9110 14.1.1: a non-zero suffix of an empty file is the whole
    return wanted


def _render(first: int | None, last: int | None) -> str:
    return f"{'' if first is None else first}-{'' if last is None else last}"


@settings(max_examples=300)
@given(MODEL_SPECS, st.integers(0, 30))
def test_ranges_cover_exactly_the_requested_bytes(
    specs: list[tuple[int | None, int | None]], size: int
) -> None:
    header = "bytes=" + ",".join(_render(first, last) for first, last in specs)
    result = parse_ranges(header, size)
    wanted = _model(specs, size)
    if wanted is None:
        assert result is WHOLE
    elif not wanted:
        assert result == Unsatisfiable(size)
    else:
        assert isinstance(result, list)
        covered = {i for r in result for i in range(r.start, r.end + 1)}
        assert covered == wanted


@settings(max_examples=500)
@given(
    st.integers(0, 10**20),
    st.integers(0, 10**20),
    st.integers(0, 5000) | st.integers(0, 10**19),
)
def test_a_plain_range_is_decided_as_the_general_form_decides_it(
    first: int, last: int, size: int
) -> None:
    # A trailing empty list element (RFC 9110 allows it) takes the general loop,
    # past the `bytes=A-B` shortcut; both must answer alike.
    assert parse_ranges(f"bytes={first}-{last}", size) == parse_ranges(
        f"bytes={first}-{last},", size
    )
