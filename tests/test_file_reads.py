"""Reads of a file in ranges: bytes sent, bytes covered at least once, done."""

from __future__ import annotations

import random

import pytest

from netboot.admin.file_reads import FileRead, FileReads

KEY = ("52:54:00:12:34:56", "/Mac.nbi/NetBoot.dmg")


def test_sequential_ranges_complete_the_file() -> None:
    read = FileRead(1000)
    for offset in range(0, 1000, 100):
        assert not read.complete
        read.add(offset, 100)
    assert (read.sent, read.covered, read.complete, read.done) == (1000, 1000, True, True)


def test_rereads_count_as_sent_but_cover_nothing_new() -> None:
    read = FileRead(1000)
    read.add(0, 600)
    read.add(100, 200)
    read.add(0, 600)
    assert (read.sent, read.covered, read.complete) == (1400, 600, False)
    read.add(500, 500)
    assert (read.covered, read.complete) == (1000, True)


def test_ranges_out_of_order_merge_into_one_span() -> None:
    read = FileRead(100)
    for offset in (50, 10, 80, 30, 0, 60):
        read.add(offset, 10)
    assert read.covered == 60 and not read.complete
    read.add(15, 70)  # bridges every gap but 90..100
    assert read.covered == 90
    read.add(90, 10)
    assert read.complete


@pytest.mark.parametrize("seed", range(20))
def test_coverage_is_the_union_of_the_ranges(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 5000)
    read = FileRead(size)
    union: set[int] = set()
    while not read.complete:
        offset, length = rng.randrange(size), rng.randint(1, 400)
        read.add(offset, length)
        union.update(range(offset, min(offset + length, size)))
        assert read.covered == len(union)
        assert read.complete == (len(union) == size)


def test_a_span_past_the_end_or_unknown_covers_only_what_exists() -> None:
    read = FileRead(100)
    read.add(90, 50)
    assert (read.sent, read.covered) == (50, 10)
    read.add(-1, 500)  # a multipart body: sent, not placed
    assert (read.sent, read.covered, read.complete) == (550, 10, False)
    read.add(100, 5)  # nothing of the file there (the file grew since, say)
    assert (read.sent, read.covered) == (555, 10)


def test_an_empty_file_is_complete_at_once() -> None:
    assert FileRead(0).complete


def test_a_closed_read_is_done_until_it_reads_on() -> None:
    reads = FileReads()
    read = reads.sent(KEY, 0, 10, 100)
    assert not read.done
    assert reads.closed(KEY) is read and read.done and not read.complete
    assert reads.sent(KEY, 10, 10, 100) is read
    assert (read.done, read.sent) == (False, 20)
    assert reads.closed(("52:54:00:00:00:01", "/x")) is None


def test_a_file_of_another_size_is_a_new_read() -> None:
    reads = FileReads()
    first = reads.sent(KEY, 0, 10, 100)
    second = reads.sent(KEY, 0, 10, 200)
    assert second is not first and second.sent == 10


def test_reads_are_bounded_least_recently_read_dropped() -> None:
    reads = FileReads(limit=2)
    reads.sent(("a", "/f"), 0, 1, 10)
    reads.sent(("b", "/f"), 0, 1, 10)
    reads.sent(("a", "/f"), 1, 1, 10)
    reads.sent(("c", "/f"), 0, 1, 10)
    assert len(reads) == 2
    assert reads.closed(("b", "/f")) is None
    assert reads.closed(("a", "/f")) is not None
