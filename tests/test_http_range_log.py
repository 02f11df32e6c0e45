"""Which range responses get an access-log line (netboot.http.range_log), without a socket."""

from __future__ import annotations

from netboot.http.range_log import RangeLogging, RangeRuns, RangeSummary

MIB = 1024 * 1024
IMAGE = ("GET", "/Mac.nbi/NetBoot.dmg")
OTHER = ("GET", "/Mac.nbi/Other.dmg")


def header(n: int) -> bytes:
    return f"bytes={n * MIB}-{(n + 1) * MIB - 1}".encode()


def test_the_first_range_of_a_path_is_logged_at_once_and_the_rest_held() -> None:
    runs: RangeRuns[tuple[str, str]] = RangeRuns()
    assert runs.range_sent(IMAGE, 100.0, MIB, header(0)) == RangeLogging(None, own_line=True)
    for n in range(1, 5):
        assert runs.range_sent(IMAGE, 100.0 + n, MIB, header(n)) == RangeLogging(None, False)
    assert runs.end() == RangeSummary(IMAGE, ranges=4, sent=4 * MIB, seconds=4.0,
                                      last_range=header(4))  # fmt: skip
    assert runs.end() is None  # said once


def test_a_new_path_ends_the_run_with_its_summary_and_gets_its_own_first_line() -> None:
    runs: RangeRuns[tuple[str, str]] = RangeRuns()
    runs.range_sent(IMAGE, 0.0, MIB, header(0))
    runs.range_sent(IMAGE, 0.5, 100, b"bytes=0-99")
    logging = runs.range_sent(OTHER, 1.0, MIB, header(7))
    assert logging == RangeLogging(RangeSummary(IMAGE, 1, 100, 0.5, b"bytes=0-99"), True)
    # Back to the first path: a new run, its first range logged again.
    logging = runs.range_sent(IMAGE, 2.0, MIB, header(1))
    assert logging == RangeLogging(None, own_line=True)  # OTHER had nothing held


def test_continued_reading_is_summarised_every_period() -> None:
    runs: RangeRuns[tuple[str, str]] = RangeRuns(period=10.0)
    runs.range_sent(IMAGE, 0.0, MIB, header(0))
    summaries = []
    for n in range(1, 251):  # 25 s at 10 ranges a second
        logging = runs.range_sent(IMAGE, n / 10, MIB, header(n))
        assert not logging.own_line
        if logging.summary is not None:
            summaries.append(logging.summary)
    assert [(s.ranges, s.seconds) for s in summaries] == [(100, 10.0), (100, 10.0)]
    rest = runs.end()
    assert rest is not None and (rest.ranges, rest.seconds) == (50, 5.0)
    # Every byte is in exactly one line: the first range's own, then the summaries.
    assert MIB + sum(s.sent for s in summaries) + rest.sent == 251 * MIB


def test_a_single_range_needs_no_summary() -> None:
    runs: RangeRuns[tuple[str, str]] = RangeRuns()
    runs.range_sent(IMAGE, 0.0, MIB, header(0))
    assert runs.end() is None
    assert RangeRuns[tuple[str, str]]().end() is None
