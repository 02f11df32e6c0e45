"""Validators and conditional requests for static files (netboot.http.conditional).

RFC 9110 8.8 (ETag, Last-Modified) and 13 (If-None-Match, If-Modified-Since,
If-Range): If-None-Match uses the weak comparison and wins over
If-Modified-Since; If-Range uses the strong comparison, so a weak tag never
lets a Range apply.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.http.conditional import Validators, not_modified, range_applies

INODE = 0x1234
SIZE = 4096
MTIME_NS = 1_700_000_000_123_456_789  # Tue, 14 Nov 2023 22:13:20.123456789 UTC
MTIME = 1_700_000_000

LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
SECOND_LATER = "Tue, 14 Nov 2023 22:13:21 GMT"
SECOND_EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"
RFC850_SAME = "Tuesday, 14-Nov-23 22:13:20 GMT"
ASCTIME_SAME = "Tue Nov 14 22:13:20 2023"

IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT"
)
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e\x80-\xff]*"')  # RFC 9110 8.8.3 entity-tag, not W/

GARBAGE_DATES = [
    "",
    "yesterday",
    "not a date",
    "Tue, 14 Nov 2023",
    "Tue, 32 Nov 2023 22:13:20 GMT",
    "Tue, 14 Foo 2023 22:13:20 GMT",
    "Tue, 14 Nov 99999 22:13:20 GMT",
    "1 2 3 4 5",
    "1700000000",
]


@pytest.fixture
def validators() -> Validators:
    return Validators.for_file(INODE, SIZE, MTIME_NS)


# --- Validators.for_file ---------------------------------------------------------------


def test_for_file_gives_a_strong_quoted_etag(validators: Validators) -> None:
    assert STRONG_ETAG.fullmatch(validators.etag), validators.etag
    assert not validators.etag.startswith("W/")


def test_for_file_gives_an_imf_fixdate_last_modified(validators: Validators) -> None:
    assert validators.last_modified == LAST_MODIFIED
    assert IMF_FIXDATE.fullmatch(validators.last_modified)


def test_for_file_keeps_whole_seconds_of_mtime(validators: Validators) -> None:
    assert validators.mtime == MTIME
    assert int(parsedate_to_datetime(validators.last_modified).timestamp()) == MTIME


@pytest.mark.parametrize(
    ("inode", "size", "mtime_ns"),
    [
        (INODE + 1, SIZE, MTIME_NS),
        (INODE, SIZE + 1, MTIME_NS),
        (INODE, SIZE, MTIME_NS + 1_000_000_000),
        (INODE, SIZE, MTIME_NS + 1),  # same second: the ETag still sees the rewrite
    ],
    ids=["inode", "size", "mtime", "mtime-nanoseconds"],
)
def test_etag_changes_with_each_part(inode: int, size: int, mtime_ns: int) -> None:
    changed = Validators.for_file(inode, size, mtime_ns)
    assert changed.etag != Validators.for_file(INODE, SIZE, MTIME_NS).etag
    assert STRONG_ETAG.fullmatch(changed.etag)


def test_etag_is_stable_for_the_same_file() -> None:
    assert Validators.for_file(INODE, SIZE, MTIME_NS) == Validators.for_file(INODE, SIZE, MTIME_NS)


@pytest.mark.parametrize(
    ("mtime_ns", "last_modified"),
    [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784_111_777_000_000_000, "Sun, 06 Nov 1994 08:49:37 GMT"),  # RFC 9110's example
        (4_102_444_800_999_999_999, "Fri, 01 Jan 2100 00:00:00 GMT"),
    ],
)
def test_last_modified_examples(mtime_ns: int, last_modified: str) -> None:
    assert Validators.for_file(1, 0, mtime_ns).last_modified == last_modified


# --- not_modified: If-None-Match ---------------------------------------------------------


def test_no_conditions_means_modified(validators: Validators) -> None:
    assert not not_modified(validators, None, None)


@pytest.mark.parametrize(
    ("if_none_match", "expected"),
    [
        pytest.param("{etag}", True, id="exact"),
        pytest.param(" {etag} ", True, id="exact-with-whitespace"),
        pytest.param('"other", {etag}', True, id="in-list"),
        pytest.param('"a",{etag},"b"', True, id="in-list-no-spaces"),
        pytest.param('"a", , {etag}', True, id="list-with-empty-element"),
        pytest.param("*", True, id="star"),
        pytest.param("W/{etag}", True, id="weak-form-matches-weakly"),
        pytest.param('"x", W/{etag}', True, id="weak-form-in-list"),
        pytest.param('"other"', False, id="other-tag"),
        pytest.param('"a", "b"', False, id="list-without-it"),
        pytest.param('W/"other"', False, id="other-weak-tag"),
        pytest.param("{bare}", False, id="unquoted-tag"),
        pytest.param('"{bare}-x"', False, id="longer-tag"),
        pytest.param("", False, id="empty"),
    ],
)
def test_if_none_match(validators: Validators, if_none_match: str, expected: bool) -> None:
    header = if_none_match.format(etag=validators.etag, bare=validators.etag.strip('"'))
    assert not_modified(validators, header, None) is expected


# --- not_modified: If-Modified-Since -----------------------------------------------------


@pytest.mark.parametrize(
    ("if_modified_since", "expected"),
    [
        pytest.param(LAST_MODIFIED, True, id="equal"),
        pytest.param(SECOND_LATER, True, id="later"),
        pytest.param("Mon, 01 Jan 2035 00:00:00 GMT", True, id="much-later"),
        pytest.param(SECOND_EARLIER, False, id="earlier"),
        pytest.param("Thu, 01 Jan 1970 00:00:00 GMT", False, id="epoch"),
        pytest.param(RFC850_SAME, True, id="rfc850-equal"),
        pytest.param(ASCTIME_SAME, True, id="asctime-equal"),
    ],
)
def test_if_modified_since(validators: Validators, if_modified_since: str, expected: bool) -> None:
    assert not_modified(validators, None, if_modified_since) is expected


@pytest.mark.parametrize("garbage", GARBAGE_DATES)
def test_garbage_if_modified_since_is_ignored(validators: Validators, garbage: str) -> None:
    assert not not_modified(validators, None, garbage)


@pytest.mark.parametrize(
    "overflowing",
    [
        "Tue, 14 Nov 2023 22:13:20 +99999999999999999999",
        "Tue, 14 Nov 2023 99999999999999999999:13:20 GMT",
    ],
    ids=["zone-offset", "hour"],
)
def test_overflowing_if_modified_since_is_ignored(validators: Validators, overflowing: str) -> None:
    assert not not_modified(validators, None, overflowing)


# --- precedence ----------------------------------------------------------------------------


def test_if_none_match_miss_wins_over_matching_if_modified_since(
    validators: Validators,
) -> None:
    assert not not_modified(validators, '"other"', SECOND_LATER)


def test_if_none_match_hit_wins_over_failing_if_modified_since(validators: Validators) -> None:
    assert not_modified(validators, validators.etag, SECOND_EARLIER)


def test_if_none_match_wins_even_over_garbage_if_modified_since(
    validators: Validators,
) -> None:
    assert not_modified(validators, "*", "garbage")
    assert not not_modified(validators, '"other"', "garbage")


# --- range_applies: If-Range -----------------------------------------------------------


@pytest.mark.parametrize(
    ("if_range", "expected"),
    [
        pytest.param(None, True, id="absent"),
        pytest.param("{etag}", True, id="matching-strong-etag"),
        pytest.param(" {etag} ", True, id="matching-strong-etag-with-whitespace"),
        pytest.param('"other"', False, id="other-strong-etag"),
        pytest.param('"{bare}x"', False, id="longer-strong-etag"),
        pytest.param("W/{etag}", False, id="weak-form-of-our-etag"),
        pytest.param('W/"other"', False, id="other-weak-etag"),
        pytest.param("{etag}, {etag}", False, id="a-list-is-not-an-etag"),
        pytest.param(LAST_MODIFIED, True, id="matching-date"),
        pytest.param(RFC850_SAME, True, id="matching-rfc850-date"),
        pytest.param(ASCTIME_SAME, True, id="matching-asctime-date"),
        pytest.param(SECOND_LATER, False, id="later-date"),
        pytest.param(SECOND_EARLIER, False, id="earlier-date"),
        pytest.param("*", False, id="star"),
        pytest.param("{bare}", False, id="unquoted-etag"),
    ],
)
def test_if_range(validators: Validators, if_range: str | None, expected: bool) -> None:
    header = (
        None
        if if_range is None
        else if_range.format(etag=validators.etag, bare=validators.etag.strip('"'))
    )
    assert range_applies(validators, header) is expected


@pytest.mark.parametrize("garbage", GARBAGE_DATES)
def test_garbage_if_range_means_whole_file(validators: Validators, garbage: str) -> None:
    assert not range_applies(validators, garbage)


def test_overflowing_if_range_means_whole_file(validators: Validators) -> None:
    assert not range_applies(validators, "Tue, 14 Nov 2023 22:13:20 +99999999999999999999")


# --- properties ------------------------------------------------------------------------

DATE_LIKE = st.builds(
    lambda day, month, year, hms, zone: f"Tue, {day} {month} {year} {hms} {zone}",
    st.integers(0, 40).map(str),
    st.sampled_from(["Nov", "Foo", ""]),
    st.one_of(st.integers(0, 99999).map(str), st.just("")),
    st.sampled_from(["22:13:20", "99:99:99", "1:2", ""]),
    st.one_of(st.sampled_from(["GMT", "UTC", "-0000", "+2359", "-2400", "EST", ""])),
)
HEADER_TEXT = st.one_of(st.text(max_size=40), DATE_LIKE)


@settings(max_examples=300)
@given(HEADER_TEXT, st.integers(0, 2**62))
def test_no_header_value_makes_the_checks_raise(text: str, mtime_ns: int) -> None:
    """Any If-None-Match, If-Modified-Since or If-Range text gives an answer, not an error.

    The numbers stay within what email.utils can hold; see the xfail tests above
    for the ones that overflow.
    """
    validators = Validators.for_file(INODE, SIZE, mtime_ns)
    assert isinstance(not_modified(validators, text, None), bool)
    assert isinstance(not_modified(validators, None, text), bool)
    assert isinstance(range_applies(validators, text), bool)
