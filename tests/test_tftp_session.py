"""The read-transfer state machine, driven with explicit times; and the block sources.

Every test plays the client by hand: it feeds ACKs and ERRORs with a `now`
of its choosing and calls `on_timer` at the deadlines the session announces,
then asserts exactly which datagrams the session sent. Nothing sleeps.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, BinaryIO, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.tftp.options import Negotiated, TransferLimits, negotiate
from netboot.tftp.session import (
    DEFAULT_MIN_TIMEOUT,
    DEFAULT_RETRY_SCHEDULE,
    OACK_REPEAT_AFTER,
    Action,
    Finished,
    Outcome,
    ReadSession,
    Send,
    State,
)
from netboot.tftp.source import NetasciiSource, OctetSource
from netboot.tftp.wire import (
    Ack,
    Data,
    Error,
    ErrorCode,
    OptionAck,
    Packet,
    ReadRequest,
    WriteRequest,
    parse,
)

LOCK_STEP = Negotiated()
"""No options: blksize 512, windowsize 1, no OACK."""


def pattern(size: int) -> bytes:
    """`size` bytes that differ from block to block, so a misplaced block shows."""
    return bytes((i * 7 + i // 512) % 251 for i in range(size))


def octet(data: bytes) -> OctetSource:
    return OctetSource(io.BytesIO(data), len(data))


def with_options(
    blksize: int = 512,
    windowsize: int = 1,
    timeout: float | None = None,
    **acknowledged: str,
) -> Negotiated:
    """Negotiated parameters that send an OACK (at least one acknowledged option)."""
    acknowledged = acknowledged or {"blksize": str(blksize)}
    return Negotiated(blksize, windowsize, timeout, acknowledged)


def session(
    data: bytes,
    negotiated: Negotiated = LOCK_STEP,
    schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
    *,
    min_timeout: float = DEFAULT_MIN_TIMEOUT,
    adaptive: bool = True,
) -> ReadSession:
    return ReadSession(
        octet(data), negotiated, schedule, min_timeout=min_timeout, adaptive=adaptive
    )


def sent(actions: Sequence[Action]) -> list[Packet]:
    """The packets among the actions, decoded the way the client would."""
    return [parse(action.datagram) for action in actions if isinstance(action, Send)]


def ended(actions: Sequence[Action]) -> list[Finished]:
    return [action for action in actions if isinstance(action, Finished)]


def data(block: int, whole: bytes, blksize: int = 512) -> Data:
    """DATA `block` of `whole`, with its wire (16-bit) block number."""
    return Data(block & 0xFFFF, whole[(block - 1) * blksize : block * blksize])


def drive(s: ReadSession, limit: int = 200_000) -> tuple[bytes, list[Packet]]:
    """A perfect client: ACK 0 for the OACK, then the last block of each window."""
    received = bytearray()
    log: list[Packet] = []
    actions = s.start(0.0)
    for step in range(limit):
        packets = sent(actions)
        log += packets
        if s.state is State.DONE:
            break
        assert packets, f"the session stalled at step {step}"
        last = packets[-1]
        if isinstance(last, OptionAck):
            actions = s.feed(Ack(0), float(step))
            continue
        assert isinstance(last, Data)
        for packet in packets:
            assert isinstance(packet, Data)
            received += packet.payload
        actions = s.feed(Ack(last.block), float(step))
    else:
        pytest.fail(f"no end after {limit} steps")
    assert ended(actions) == [Finished(Outcome.COMPLETED)]
    return bytes(received), log


class Zeros:
    """A source of `size` zero bytes made on demand, for files of 32 MiB and more."""

    def __init__(self, size: int) -> None:
        self.size: int | None = size
        self._left = size
        self.closed = False

    def read(self, count: int) -> bytes:
        count = min(count, self._left)
        self._left -= count
        return bytes(count)

    def close(self) -> None:
        self.closed = True


class Trickle:
    """A stream that returns at most 3 bytes per read, like a pipe."""

    def __init__(self, content: bytes) -> None:
        self._content = io.BytesIO(content)
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        return self._content.read(min(size, 3) if size >= 0 else 3)

    def close(self) -> None:
        self.closed = True


# --- without options: RFC 1350 lock step ---------------------------------------------------


def test_without_options_data_1_goes_out_immediately() -> None:
    whole = pattern(1000)
    s = session(whole)
    assert s.state is State.SENDING
    assert sent(s.start(10.0)) == [data(1, whole)]
    assert s.deadline() == 10.0 + DEFAULT_RETRY_SCHEDULE[0]


def test_lock_step_sends_one_block_per_ack_until_the_short_block() -> None:
    whole = pattern(3 * 512 + 100)
    s = session(whole)
    assert sent(s.start(0.0)) == [data(1, whole)]
    assert sent(s.feed(Ack(1), 0.1)) == [data(2, whole)]
    assert sent(s.feed(Ack(2), 0.2)) == [data(3, whole)]
    assert sent(s.feed(Ack(3), 0.3)) == [data(4, whole)]
    assert len(data(4, whole).payload) == 100
    assert s.feed(Ack(4), 0.4) == [Finished(Outcome.COMPLETED)]
    assert s.state is State.DONE and s.outcome is Outcome.COMPLETED
    assert s.deadline() is None
    assert s.bytes_sent == len(whole) and s.retransmissions == 0


@pytest.mark.parametrize(
    ("size", "blocks"),
    [
        pytest.param(0, 1, id="empty"),
        pytest.param(1, 1, id="one-byte"),
        pytest.param(511, 1, id="block-minus-one"),
        pytest.param(512, 2, id="exactly-one-block"),
        pytest.param(513, 2, id="block-and-one"),
        pytest.param(1024, 3, id="exactly-two-blocks"),
        pytest.param(10_000, 20, id="multi-block"),
    ],
)
def test_lock_step_delivers_the_file(size: int, blocks: int) -> None:
    whole = pattern(size)
    received, log = drive(session(whole))
    assert received == whole
    assert [p.block for p in log if isinstance(p, Data)] == list(range(1, blocks + 1))
    last = log[-1]
    assert isinstance(last, Data) and len(last.payload) < 512


def test_a_file_that_is_a_multiple_of_blksize_ends_with_an_empty_block() -> None:
    whole = pattern(512)
    s = session(whole)
    assert sent(s.start(0.0)) == [Data(1, whole)]
    assert sent(s.feed(Ack(1), 1.0)) == [Data(2, b"")]
    assert s.feed(Ack(2), 2.0) == [Finished(Outcome.COMPLETED)]


def test_empty_file_is_one_empty_block() -> None:
    s = session(b"")
    assert sent(s.start(0.0)) == [Data(1, b"")]
    assert s.feed(Ack(1), 0.5) == [Finished(Outcome.COMPLETED)]
    assert s.bytes_sent == 0


# --- with options: the OACK -----------------------------------------------------------------


def test_options_are_acknowledged_before_any_data() -> None:
    whole = pattern(2000)
    negotiated = negotiate({"blksize": "1024", "tsize": "0"}, len(whole), TransferLimits())
    s = session(whole, negotiated)
    assert s.state is State.NEGOTIATING
    assert sent(s.start(0.0)) == [OptionAck({"blksize": "1024", "tsize": "2000"})]
    assert s.deadline() == OACK_REPEAT_AFTER
    assert sent(s.feed(Ack(0), 0.2)) == [data(1, whole, 1024)]
    assert s.state is State.SENDING
    assert sent(s.feed(Ack(1), 0.3)) == [data(2, whole, 1024)]
    assert s.feed(Ack(2), 0.4) == [Finished(Outcome.COMPLETED)]


@pytest.mark.parametrize("block", [1, 2, 5, 65535])
def test_acks_other_than_0_are_ignored_while_negotiating(block: int) -> None:
    s = session(pattern(100), with_options(blksize=8))
    s.start(0.0)
    assert s.feed(Ack(block), 0.1) == []
    assert s.state is State.NEGOTIATING
    assert s.deadline() == OACK_REPEAT_AFTER  # unchanged: the timer resends the OACK
    assert sent(s.feed(Ack(0), 0.2)) == [Data(1, pattern(100)[:8])]


def test_a_repeated_ack_0_after_negotiation_is_a_duplicate() -> None:
    whole = pattern(600)
    s = session(whole, with_options())
    s.start(0.0)
    assert sent(s.feed(Ack(0), 0.1)) == [data(1, whole)]
    assert s.feed(Ack(0), 0.2) == []
    assert sent(s.feed(Ack(1), 0.3)) == [data(2, whole)]


@pytest.mark.parametrize(
    "requested",
    [
        {"blksize": "8"},
        {"blksize": "1468"},
        {"timeout": "2"},
        {"tsize": "0"},
        {"windowsize": "4"},
        {"blksize": "1468", "windowsize": "4", "tsize": "0"},
        {"blksize": "100", "timeout": "1", "tsize": "0", "windowsize": "16"},
    ],
    ids=lambda requested: "+".join(requested),
)
@pytest.mark.parametrize("size", [0, 8, 100, 1468, 5000])
def test_every_option_combination_delivers_the_file(requested: dict[str, str], size: int) -> None:
    whole = pattern(size)
    negotiated = negotiate(requested, size, TransferLimits())
    received, log = drive(session(whole, negotiated))
    assert received == whole
    assert log[0] == OptionAck(negotiated.acknowledged)
    assert all(len(p.payload) <= negotiated.blksize for p in log if isinstance(p, Data))


# --- windows (RFC 7440) ---------------------------------------------------------------------


def test_windowsize_4_sends_four_blocks_per_ack() -> None:
    whole = pattern(512 * 9 + 1)  # 10 blocks
    s = session(whole, with_options(windowsize=4))
    s.start(0.0)
    assert sent(s.feed(Ack(0), 0.1)) == [data(b, whole) for b in (1, 2, 3, 4)]
    assert sent(s.feed(Ack(4), 0.2)) == [data(b, whole) for b in (5, 6, 7, 8)]
    assert sent(s.feed(Ack(8), 0.3)) == [data(9, whole), data(10, whole)]
    assert s.feed(Ack(10), 0.4) == [Finished(Outcome.COMPLETED)]
    assert s.bytes_sent == len(whole)


def test_an_ack_in_the_middle_of_the_window_resends_from_there() -> None:
    """The client lost block 3: it acknowledges 2, and the window restarts at 3."""
    whole = pattern(512 * 20)
    s = session(whole, with_options(windowsize=4))
    s.start(0.0)
    s.feed(Ack(0), 0.1)
    assert sent(s.feed(Ack(2), 0.2)) == [data(b, whole) for b in (3, 4, 5, 6)]
    # The client's repeated ACK 2 (for blocks 4 and then...) is a duplicate now.
    assert s.feed(Ack(2), 0.21) == []
    assert sent(s.feed(Ack(6), 0.3)) == [data(b, whole) for b in (7, 8, 9, 10)]
    assert s.retransmissions == 0  # an early ACK is not a timeout


def test_the_last_window_may_be_short_and_a_mid_window_ack_keeps_it() -> None:
    whole = pattern(512 * 2 + 10)  # blocks 1, 2 and a short 3
    s = session(whole, with_options(windowsize=4))
    s.start(0.0)
    assert sent(s.feed(Ack(0), 0.1)) == [data(b, whole) for b in (1, 2, 3)]
    assert sent(s.feed(Ack(1), 0.2)) == [data(2, whole), data(3, whole)]
    assert s.feed(Ack(3), 0.3) == [Finished(Outcome.COMPLETED)]


def test_bytes_acknowledged_follow_the_clients_acks_not_what_was_sent() -> None:
    whole = pattern(512 * 9 + 100)  # 9 whole blocks and a short 10th
    s = session(whole, with_options(windowsize=4))
    s.start(0.0)
    assert s.bytes_acknowledged == 0
    s.feed(Ack(0), 0.1)
    assert s.bytes_acknowledged == 0  # the OACK's ACK carries no data
    s.feed(Ack(2), 0.2)  # 3 and 4 lost: resent, and not acknowledged yet
    assert s.bytes_acknowledged == 2 * 512
    s.feed(Ack(2), 0.25)  # a duplicate moves nothing
    s.feed(Ack(6), 0.3)
    assert s.bytes_acknowledged == 6 * 512
    s.feed(Ack(9), 0.4)
    assert s.bytes_acknowledged == 9 * 512 < s.bytes_sent
    assert s.feed(Ack(10), 0.5) == [Finished(Outcome.COMPLETED)]
    assert s.bytes_acknowledged == len(whole)


@pytest.mark.parametrize("windowsize", [1, 2, 4, 16, 64])
@pytest.mark.parametrize("size", [0, 511, 512, 4096, 20_000])
def test_every_windowsize_delivers_the_file(windowsize: int, size: int) -> None:
    whole = pattern(size)
    s = session(whole, with_options(windowsize=windowsize))
    received, _ = drive(s)
    assert received == whole
    assert s.bytes_acknowledged == size


# --- loss, duplicates, stale packets ----------------------------------------------------------


def test_lost_data_is_resent_by_the_timer() -> None:
    whole = pattern(2000)
    s = session(whole)
    s.start(0.0)
    assert sent(s.feed(Ack(1), 0.5)) == [data(2, whole)]  # ... and this one is lost
    assert s.deadline() == 1.5
    assert s.on_timer(1.0) == []  # too early: nothing
    assert s.on_timer(1.4999) == []
    assert sent(s.on_timer(1.5)) == [data(2, whole)]
    assert s.retransmissions == 1
    assert sent(s.feed(Ack(2), 1.6)) == [data(3, whole)]


def test_lost_data_in_a_window_resends_the_whole_window_on_timeout() -> None:
    whole = pattern(512 * 10)
    s = session(whole, with_options(windowsize=4))
    s.start(0.0)
    window = sent(s.feed(Ack(0), 0.0))  # all four lost, or the client's ACK was
    assert sent(s.on_timer(1.0)) == window
    assert s.retransmissions == 1 and s.bytes_sent == 2 * 4 * 512


def test_lost_ack_then_the_late_ack_still_counts() -> None:
    """The client's ACK 1 is lost; the timer resends DATA 1; the client ACKs again."""
    whole = pattern(1500)
    s = session(whole)
    s.start(0.0)
    assert sent(s.on_timer(1.0)) == [data(1, whole)]
    assert sent(s.feed(Ack(1), 1.1)) == [data(2, whole)]
    assert s.deadline() == 1.1 + DEFAULT_RETRY_SCHEDULE[0]  # progress resets the schedule


def test_duplicate_acks_never_send_anything() -> None:
    """Sorcerer's Apprentice: DATA 2 went out twice, so ACK 2 comes back twice.

    Answering both would send every later block twice, then four times...
    The second ACK 2 must be ignored, and every block sent exactly once after.
    """
    whole = pattern(512 * 5 + 1)
    s = session(whole)
    log = sent(s.start(0.0))
    log += sent(s.feed(Ack(1), 0.1))
    log += sent(s.on_timer(1.1))  # the ACK 2 was only slow: DATA 2 again
    log += sent(s.feed(Ack(2), 1.2))  # -> DATA 3
    log += sent(s.feed(Ack(2), 1.3))  # duplicate -> nothing
    log += sent(s.feed(Ack(3), 1.4))  # -> DATA 4
    log += sent(s.feed(Ack(3), 1.5))  # duplicate -> nothing
    log += sent(s.feed(Ack(4), 1.6))
    log += sent(s.feed(Ack(5), 1.7))
    log += sent(s.feed(Ack(5), 1.8))
    assert [p.block for p in log if isinstance(p, Data)] == [1, 2, 2, 3, 4, 5, 6]
    assert s.feed(Ack(6), 1.9) == [Finished(Outcome.COMPLETED)]


def test_many_duplicates_in_a_window_never_send_anything() -> None:
    whole = pattern(512 * 40)
    s = session(whole, with_options(windowsize=8))
    s.start(0.0)
    s.feed(Ack(0), 0.0)
    assert len(sent(s.feed(Ack(8), 0.1))) == 8
    for step in range(20):
        assert s.feed(Ack(8), 0.2 + step / 100) == []
    assert s.feed(Ack(0), 0.5) == []


def test_a_stale_ack_from_far_back_is_ignored() -> None:
    whole = pattern(8 * 300)
    s = session(whole, with_options(blksize=8))
    s.start(0.0)
    s.feed(Ack(0), 0.0)
    for block in range(1, 101):
        s.feed(Ack(block), block / 1000)
    deadline = s.deadline()
    for stale in (1, 50, 98, 99):
        assert s.feed(Ack(stale), 1.0) == []
    assert s.deadline() == deadline
    assert sent(s.feed(Ack(101), 1.0)) == [data(102, whole, 8)]


@pytest.mark.parametrize("ahead", [1, 2, 100, 30_000])
def test_an_ack_for_a_block_not_yet_sent_is_ignored(ahead: int) -> None:
    whole = pattern(512 * 20)
    s = session(whole, with_options(windowsize=4))
    s.start(0.0)
    s.feed(Ack(0), 0.0)  # blocks 1-4 are out
    assert s.feed(Ack(4 + ahead), 0.1) == []
    assert sent(s.feed(Ack(4), 0.2)) == [data(b, whole) for b in (5, 6, 7, 8)]


def test_an_ack_past_the_end_of_the_file_is_ignored() -> None:
    whole = pattern(100)
    s = session(whole)
    s.start(0.0)
    assert s.feed(Ack(2), 0.1) == []
    assert s.state is State.SENDING
    assert s.feed(Ack(1), 0.2) == [Finished(Outcome.COMPLETED)]


# --- block number rollover ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blksize", "windowsize"),
    [
        pytest.param(8, 1, id="blksize-8-lock-step"),
        pytest.param(512, 1, id="blksize-512-32MiB-lock-step"),
        pytest.param(512, 16, id="blksize-512-32MiB-window-16"),
    ],
)
def test_block_numbers_roll_over_past_65535(blksize: int, windowsize: int) -> None:
    size = blksize * 65536 + 3  # blocks 1..65537: the last two go out as 0 and 1
    source = Zeros(size)
    s = ReadSession(source, with_options(blksize=blksize, windowsize=windowsize))
    actions = s.start(0.0)
    wire_blocks: list[int] = []
    received = 0
    for step in range(200_000):
        datagrams = [a.datagram for a in actions if isinstance(a, Send)]
        if s.state is State.DONE:
            break
        last = 0
        for datagram in datagrams:
            if datagram[:2] == b"\x00\x03":  # DATA; the OACK is acknowledged with 0
                last = int.from_bytes(datagram[2:4], "big")
                wire_blocks.append(last)
                received += len(datagram) - 4
        actions = s.feed(Ack(last), float(step))
    assert ended(actions) == [Finished(Outcome.COMPLETED)]
    assert received == size == s.bytes_sent
    assert len(wire_blocks) == 65537
    assert wire_blocks[:2] == [1, 2]
    assert wire_blocks[-4:] == [65534, 65535, 0, 1]


def test_acks_across_the_rollover_map_to_the_window() -> None:
    """A window straddling 65535: a mid-window ACK 0 means block 65536, not 0."""
    blksize = 8
    size = blksize * 65540
    s = ReadSession(Zeros(size), with_options(blksize=blksize, windowsize=4))
    s.start(0.0)
    s.feed(Ack(0), 0.0)
    for block in range(4, 65532, 4):
        s.feed(Ack(block), 0.0)  # window now 65529..65532
    window = sent(s.feed(Ack(65532), 0.0))
    assert [p.block for p in window if isinstance(p, Data)] == [65533, 65534, 65535, 0]
    assert s.feed(Ack(65532), 0.1) == []  # duplicate just before the window
    assert s.feed(Ack(1), 0.1) == []  # block 65537: not sent yet
    assert s.feed(Ack(65530), 0.1) == []  # stale
    moved = sent(s.feed(Ack(0), 0.2))  # block 65536: inside the window
    assert [p.block for p in moved if isinstance(p, Data)] == [1, 2, 3, 4]
    assert s.feed(Ack(0), 0.3) == []  # now a duplicate


# --- timeouts ---------------------------------------------------------------------------------


def timeline(s: ReadSession, limit: int = 100) -> tuple[list[float], list[list[Packet]], Finished]:
    """Fire the timer at each deadline until the session gives up."""
    deadlines: list[float] = []
    resent: list[list[Packet]] = []
    for _ in range(limit):
        deadline = s.deadline()
        assert deadline is not None
        deadlines.append(deadline)
        actions = s.on_timer(deadline)
        if ended(actions):
            resent.append(sent(actions))
            (end,) = ended(actions)
            return deadlines, resent, end
        resent.append(sent(actions))
    pytest.fail("the session never gave up")


def test_timeouts_back_off_along_the_schedule_then_fail() -> None:
    whole = pattern(100)
    s = session(whole)
    s.start(0.0)
    deadlines, resent, end = timeline(s)
    # Waits of 1, 2, 4, 8, 8 before each retransmission, then one last 8 before giving up.
    assert deadlines == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0]
    assert resent[:-1] == [[data(1, whole)]] * len(DEFAULT_RETRY_SCHEDULE)
    assert resent[-1] == [Error(ErrorCode.NOT_DEFINED, "timed out waiting for an acknowledgement")]
    assert end.outcome is Outcome.TIMED_OUT and end.outcome.is_failure
    assert s.retransmissions == len(DEFAULT_RETRY_SCHEDULE)
    assert s.state is State.DONE and s.deadline() is None


def test_a_custom_schedule_sets_the_waits_and_the_count() -> None:
    s = session(pattern(100), schedule=(0.5, 0.25))
    assert sent(s.start(100.0)) == [Data(1, pattern(100))]
    deadlines, resent, end = timeline(s)
    assert deadlines == [100.5, 100.75, 101.0]
    assert resent[:-1] == [[Data(1, pattern(100))]] * 2
    assert end.outcome is Outcome.TIMED_OUT


def test_a_custom_schedule_shorter_than_the_oack_wait_ends_it_there() -> None:
    s = session(pattern(100), with_options(), schedule=(0.5, 0.25))
    assert sent(s.start(100.0)) == [OptionAck({"blksize": "512"})]
    deadlines, _, end = timeline(s)
    assert deadlines == [101.0]  # the whole patience, without a repeated OACK
    assert end.outcome is Outcome.TIMED_OUT


def test_a_client_timeout_caps_each_wait_and_sets_the_patience() -> None:
    """T = 3 s: no wait is longer than T, and the transfer keeps trying T per schedule
    entry and once more (18 s), as long as T's waits would have lasted."""
    negotiated = negotiate({"timeout": "3"}, 100, TransferLimits())
    s = session(pattern(100), negotiated, adaptive=False)
    s.start(0.0)
    s.feed(Ack(0), 0.0)
    deadlines, resent, end = timeline(s)
    assert deadlines == [1.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0]  # waits 1, 2, then 3 each
    assert s.retransmissions == len(resent) - 1 == 6  # the last answer is the error
    assert end.outcome is Outcome.TIMED_OUT


def test_a_client_timeout_longer_than_the_schedule_only_lengthens_the_patience() -> None:
    negotiated = negotiate({"timeout": "6"}, 100, TransferLimits())  # curl's
    s = session(pattern(100), negotiated, adaptive=False)
    s.start(0.0)
    s.feed(Ack(0), 0.0)
    deadlines, _, end = timeline(s)
    waits = [b - a for a, b in zip([0.0, *deadlines], deadlines, strict=False)]
    assert waits[:5] == [1.0, 2.0, 4.0, 6.0, 6.0]  # the schedule, 8 s capped at T
    assert deadlines[-1] == 36.0  # 6 s x (5 entries + 1)
    assert end.outcome is Outcome.TIMED_OUT


def test_progress_resets_the_backoff() -> None:
    whole = pattern(2000)
    s = session(whole)
    s.start(0.0)
    s.on_timer(1.0)  # retransmission 1, next wait 2
    s.on_timer(3.0)  # retransmission 2, next wait 4
    assert s.deadline() == 7.0
    s.feed(Ack(1), 4.0)
    assert s.deadline() == 5.0  # back to the first wait
    deadlines, _, _ = timeline(s)
    # The ACK answered a repeat (no sample), but the client is there: the first entry
    # stands in for the RTO, every wait is 1 s, and the patience (31 s) is the same.
    assert deadlines == [5.0 + k for k in range(31)]


def test_the_oack_is_repeated_only_after_the_clients_own_timers_had_their_turn() -> None:
    """atftp aborts on a second OACK; every client but GRUB repeats its RRQ or ACK 0 itself
    within 6 s, and GRUB waits about 31 s. So 16 s of silence first (docs/protocols/tftp.md)."""
    s = session(pattern(10), with_options(tsize="10"))
    s.start(0.0)
    assert s.deadline() == OACK_REPEAT_AFTER
    assert s.on_timer(OACK_REPEAT_AFTER - 0.001) == []
    assert sent(s.on_timer(OACK_REPEAT_AFTER)) == [OptionAck({"tsize": "10"})]
    assert sent(s.feed(Ack(0), OACK_REPEAT_AFTER + 0.5)) == [Data(1, pattern(10))]


def test_a_repeated_rrq_gets_the_oack_at_once() -> None:
    s = session(pattern(10), with_options(tsize="10"))
    s.start(0.0)
    assert sent(s.retransmit_initial(5.0)) == [OptionAck({"tsize": "10"})]  # the OACK was lost
    assert s.deadline() == 5.0 + OACK_REPEAT_AFTER


def test_a_silent_client_still_gives_up_within_the_patience() -> None:
    s = session(pattern(10), with_options(tsize="10"))
    s.start(0.0)
    deadlines, _, end = timeline(s)
    assert deadlines == [OACK_REPEAT_AFTER, 31.0]  # one repeat, then the patience ends
    assert end.outcome is Outcome.TIMED_OUT


# --- adaptive retransmission timeout (RFC 6298, Karn) -----------------------------------------
#
# Times below are sums of powers of two, so deadlines compare exactly where they can.

PATIENCE = sum(DEFAULT_RETRY_SCHEDULE) + DEFAULT_RETRY_SCHEDULE[-1]
"""31 s: the default schedule's waits, the last twice; what today's transfers wait in all."""


def rfc6298_rto(samples: Sequence[float], floor: float, ceiling: float) -> float:
    """RTO after `samples`, written out from RFC 6298 2.2-2.4 (G = 1 ms)."""
    srtt, rttvar = samples[0], samples[0] / 2
    for sample in samples[1:]:
        rttvar = (1 - 1 / 4) * rttvar + 1 / 4 * abs(srtt - sample)
        srtt = (1 - 1 / 8) * srtt + 1 / 8 * sample
    return min(ceiling, max(floor, srtt + max(0.001, 4 * rttvar)))


def sampled(rtt: float, now: float = 0.0, **kwargs: Any) -> ReadSession:
    """A lock-step session whose DATA 1 was answered after `rtt`: one sample, DATA 2 out."""
    s = session(pattern(512 * 200), **kwargs)
    s.start(now)
    s.feed(Ack(1), now + rtt)
    return s


def test_there_is_no_rto_before_the_first_round_trip() -> None:
    s = session(pattern(2000))
    s.start(0.0)
    assert s.rto is None
    assert s.deadline() == DEFAULT_RETRY_SCHEDULE[0]


def test_the_first_round_trip_sets_srtt_to_it_and_rttvar_to_half() -> None:
    whole = pattern(2000)
    s = session(whole)
    s.start(10.0)
    assert sent(s.feed(Ack(1), 10.25)) == [data(2, whole)]
    # SRTT 0.25, RTTVAR 0.125: RTO = 0.25 + 4 * 0.125.
    assert s.rto == 0.75
    assert s.deadline() == 11.0


def test_later_round_trips_are_smoothed_as_rfc_6298_says() -> None:
    s = session(pattern(512 * 20))
    s.start(0.0)
    s.feed(Ack(1), 0.25)
    s.feed(Ack(2), 0.375)  # 0.125: RTTVAR 3/4 * 0.125 + 1/4 * 0.125, SRTT 7/8 * 0.25 + 1/8 * 0.125
    assert s.rto == 0.234375 + 4 * 0.125
    assert s.deadline() == 0.375 + 0.734375
    rtts = [0.25, 0.125, 0.0625, 0.5, 0.3, 0.01, 0.2]
    now = 0.375
    for block, rtt in enumerate(rtts[2:], start=3):
        now += rtt
        s.feed(Ack(block), now)
        expected = rfc6298_rto(rtts[:block], DEFAULT_MIN_TIMEOUT, 1.0)
        assert s.rto == pytest.approx(expected)
        assert s.deadline() == pytest.approx(now + expected)


def test_the_oack_round_trip_is_the_first_sample() -> None:
    s = session(pattern(2000), with_options())
    s.start(0.0)
    s.feed(Ack(0), 0.125)
    assert s.rto == 0.125 + 4 * 0.0625
    assert s.deadline() == 0.5


def test_karn_a_repeated_oack_is_not_timed() -> None:
    s = session(pattern(2000), with_options())
    s.start(0.0)
    s.retransmit_initial(1.0)  # OACK again: ACK 0 may answer either copy
    s.feed(Ack(0), 1.0625)
    assert s.rto is None
    assert s.deadline() == 1.0625 + DEFAULT_RETRY_SCHEDULE[0]


def test_without_a_sample_the_waits_stay_at_the_first_entry_while_windows_are_lost() -> None:
    """The atftp run that failed: OACK repeated (no sample), then windows lost in a row.

    Climbing the schedule there left the client 4 and 8 s of silence; the first
    entry stands in for the RTO until a round trip is measured.
    """
    s = session(pattern(512 * 200), with_options(windowsize=16))
    s.start(0.0)
    s.retransmit_initial(5.0)
    s.feed(Ack(0), 5.001)
    assert s.rto is None
    now = 5.001
    for _ in range(5):  # every window and every ACK lost
        deadline = s.deadline()
        assert deadline is not None
        assert deadline - now == pytest.approx(DEFAULT_RETRY_SCHEDULE[0])
        now = deadline
        assert sent(s.on_timer(now))
    assert s.rto is None


def test_without_a_sample_a_fixed_schedule_still_climbs() -> None:
    s = session(pattern(512 * 200), with_options(windowsize=16), adaptive=False)
    s.start(0.0)
    s.feed(Ack(0), 0.001)
    waits = []
    now = 0.001
    for _ in range(3):
        deadline = s.deadline()
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        s.on_timer(now)
    assert waits == pytest.approx(list(DEFAULT_RETRY_SCHEDULE[:3]))


def test_karn_a_first_window_answered_again_for_a_repeated_request_is_not_timed() -> None:
    s = session(pattern(2000))
    s.start(0.0)
    s.retransmit_initial(0.5)
    s.feed(Ack(1), 0.5625)
    assert s.rto is None


def test_karn_a_retransmitted_window_answered_at_once_is_not_timed_and_ends_the_backoff() -> None:
    whole = pattern(512 * 10)
    s = sampled(0.125)  # SRTT 0.125, RTTVAR 0.0625: RTO 0.375; DATA 2 out at 0.125
    assert s.deadline() == 0.5
    assert sent(s.on_timer(0.5)) == [data(2, whole)]
    assert s.deadline() == 0.5 + 0.75  # backoff: 2 * RTO
    # The ACK 2 may answer either copy: it moves the window but is no sample.
    assert sent(s.feed(Ack(2), 0.625)) == [data(3, whole)]
    assert s.rto == 0.375
    # It came within an RTO of the repeat: a packet was lost, the path is not slow,
    # so the next window waits the plain RTO.
    assert s.deadline() == 0.625 + 0.375


def test_karn_a_retransmitted_window_answered_late_keeps_the_backoff() -> None:
    whole = pattern(512 * 10)
    s = sampled(0.125)  # RTO 0.375; DATA 2 out at 0.125
    s.on_timer(0.5)  # DATA 2 again
    # ACK 2 comes 0.5 s after the repeat, more than an RTO: the round trip may
    # have outgrown the RTO, so the doubled RTO carries over to the next window,
    # else every window would be resent before its ACK and never timed.
    assert sent(s.feed(Ack(2), 1.0)) == [data(3, whole)]
    assert s.deadline() == 1.0 + 0.75
    # DATA 3 went out once: its ACK is a sample (0.125), and the backoff is over.
    s.feed(Ack(3), 1.125)
    assert s.rto == 0.125 + 4 * 0.046875
    assert s.deadline() == 1.125 + 0.3125


def test_karn_a_round_trip_that_grew_past_the_rto_is_learnt() -> None:
    """The client slows from 1 ms to 0.3 s per block: the carried backoff lets an ACK through."""
    s = sampled(0.001)  # RTO at the floor: 0.05
    now = 0.001
    for block in range(2, 12):
        answer = now + 0.3
        while (deadline := s.deadline()) is not None and deadline <= answer:
            s.on_timer(deadline)
        s.feed(Ack(block), answer)
        now = answer
    rto = s.rto
    assert rto is not None and rto > 0.3
    resent = s.retransmissions
    s.feed(Ack(12), now + 0.3)
    assert s.retransmissions == resent  # the pace now fits the client


def test_karn_an_ack_of_a_block_resent_by_a_moved_window_is_not_timed() -> None:
    whole = pattern(512 * 40)
    s = session(whole, with_options(windowsize=4))
    s.start(0.0)
    s.feed(Ack(0), 0.125)  # blocks 1-4 out at 0.125
    s.feed(Ack(2), 0.25)  # a sample; blocks 3-6 out at 0.25, 3 and 4 for the second time
    rto = s.rto
    assert rto == 0.125 + 4 * 0.046875
    # The ACK 4 may answer the first copy of block 4: no sample.
    assert sent(s.feed(Ack(4), 0.3)) == [data(b, whole) for b in (5, 6, 7, 8)]
    assert s.rto == rto
    assert s.deadline() == pytest.approx(0.3 + rto)  # no timeout: no backoff either
    # Block 8 was sent once, at 0.3: timed.
    s.feed(Ack(8), 0.425)
    assert s.rto == pytest.approx(rfc6298_rto([0.125, 0.125, 0.125], DEFAULT_MIN_TIMEOUT, 1.0))


@pytest.mark.parametrize("min_timeout", [DEFAULT_MIN_TIMEOUT, 0.2, 0.001])
def test_the_rto_never_drops_below_min_timeout(min_timeout: float) -> None:
    s = sampled(0.0001, min_timeout=min_timeout)
    rto = s.rto
    # 0.0001 + max(G = 0.001, 4 * 0.00005): the clock's granularity, then the floor.
    assert rto == max(min_timeout, 0.0011)
    assert s.deadline() == 0.0001 + rto


def test_the_rto_never_exceeds_the_first_schedule_entry() -> None:
    s = sampled(5.0)
    assert s.rto == DEFAULT_RETRY_SCHEDULE[0]
    assert s.deadline() == 5.0 + DEFAULT_RETRY_SCHEDULE[0]


def test_the_first_schedule_entry_wins_over_a_larger_min_timeout() -> None:
    s = sampled(0.001, schedule=(0.02, 0.04), min_timeout=0.05)
    assert s.rto == 0.02
    assert s.deadline() == 0.001 + 0.02


def test_backoff_doubles_the_rto_up_to_the_first_schedule_entry() -> None:
    schedule = (0.5, 0.5, 1.0, 1.0)
    s = sampled(0.125, schedule=schedule)  # RTO 0.375, DATA 2 out at 0.125
    deadlines, resent, end = timeline(s)
    waits = [b - a for a, b in zip([0.125, *deadlines[:-1]], deadlines, strict=True)]
    # 0.375, then 0.75 cut to the first entry, 0.5, until the patience's last 0.125:
    # a lost block gets many tries instead of a climb to the schedule's longest wait.
    assert waits == [0.375, *[0.5] * 7, 0.125]
    assert deadlines[-1] == 0.125 + sum(schedule) + schedule[-1]
    assert len(resent) - 1 == s.retransmissions == 8
    assert end.outcome is Outcome.TIMED_OUT


def test_backoff_stays_within_a_shrinking_schedules_entries() -> None:
    s = sampled(0.125, schedule=(1.0, 0.25))  # RTO 0.375
    deadlines, _, _ = timeline(s)
    waits = [b - a for a, b in zip([0.125, *deadlines[:-1]], deadlines, strict=True)]
    assert waits[:3] == [0.375, 0.25, 0.25]


@pytest.mark.parametrize(
    ("rtt", "retransmissions"),
    [
        pytest.param(None, 5, id="no-sample"),
        # 0.01, 0.02, 0.04, ..., 0.64 (1.27 s), then 29 waits of 1 s and the last 0.73 s
        pytest.param(0.001, 36, id="rto-at-floor"),
        pytest.param(0.125, 31, id="rto-0.375"),  # 0.375, 0.75, 29 x 1, 0.875
        pytest.param(5.0, 30, id="rto-at-ceiling"),  # 31 waits of 1 s
    ],
)
def test_the_transfer_gives_up_after_the_same_patience_whatever_the_rto(
    rtt: float | None, retransmissions: int
) -> None:
    """31 s after the last progress, as without adaptation; a small RTO only resends more."""
    whole = pattern(512 * 10)
    s = session(whole)
    s.start(0.0)
    progress = 0.0
    if rtt is not None:
        s.feed(Ack(1), rtt)
        progress = rtt
    deadlines, resent, end = timeline(s)
    assert deadlines[-1] == pytest.approx(progress + PATIENCE, abs=1e-9)
    assert all(b < progress + PATIENCE for b in deadlines[:-1])
    assert s.retransmissions == retransmissions
    assert resent[-1] == [Error(ErrorCode.NOT_DEFINED, "timed out waiting for an acknowledgement")]
    assert end == Finished(Outcome.TIMED_OUT, f"no answer after {retransmissions} retransmissions")


def test_a_client_timeout_does_not_stop_the_pace_following_the_round_trip() -> None:
    """curl asks `timeout 6`: a loss must still cost one RTO, not 6 s (issue #17)."""
    whole = pattern(512 * 10)
    s = session(whole, negotiate({"timeout": "6", "blksize": "512"}, len(whole), TransferLimits()))
    s.start(0.0)
    s.feed(Ack(0), 0.001)  # the OACK's round trip: 1 ms
    s.feed(Ack(1), 0.002)
    assert s.rto == DEFAULT_MIN_TIMEOUT  # the floor, well under T
    assert s.deadline() == pytest.approx(0.002 + DEFAULT_MIN_TIMEOUT)
    deadlines, resent, end = timeline(s)
    waits = [b - a for a, b in zip([0.002, *deadlines], deadlines, strict=False)]
    floor = DEFAULT_MIN_TIMEOUT
    assert waits[:4] == pytest.approx([floor, 2 * floor, 4 * floor, 8 * floor])  # backing off
    assert max(waits) <= 1.0  # ... to the schedule's first entry, never to T
    assert deadlines[-1] == pytest.approx(0.002 + 36.0)  # T bounds the patience
    assert end.outcome is Outcome.TIMED_OUT
    assert len(resent) > 30


def test_adaptive_false_waits_the_schedule_as_before() -> None:
    whole = pattern(512 * 10)
    s = session(whole, adaptive=False)
    s.start(0.0)
    for block in range(1, 5):
        s.feed(Ack(block), block / 1024)  # fast round trips: not timed
    assert s.rto is None
    progress = 4 / 1024
    assert s.deadline() == progress + 1.0
    deadlines, _, end = timeline(s)
    assert deadlines == [progress + t for t in (1.0, 3.0, 7.0, 15.0, 23.0, 31.0)]
    assert end == Finished(Outcome.TIMED_OUT, "no answer after 5 retransmissions")


def lossy_lock_step(adaptive: bool) -> float:
    """Seconds to send 100 blocks over a 1 ms link that loses every 5th DATA once."""
    s = session(pattern(512 * 99 + 1), adaptive=adaptive)
    actions = s.start(0.0)
    now = 0.0
    lost: set[int] = set()
    while s.state is not State.DONE:
        (packet,) = sent(actions)
        assert isinstance(packet, Data)
        if packet.block % 5 == 0 and packet.block not in lost:
            lost.add(packet.block)
            deadline = s.deadline()
            assert deadline is not None
            now = deadline
            actions = s.on_timer(now)
        else:
            now += 0.001
            actions = s.feed(Ack(packet.block), now)
    assert s.outcome is Outcome.COMPLETED and s.retransmissions == 20
    return now


def test_on_a_fast_lossy_link_a_loss_costs_the_rto_not_the_first_schedule_entry() -> None:
    # 100 round trips of 1 ms, and 20 waits for the timer.
    assert lossy_lock_step(adaptive=False) == pytest.approx(0.1 + 20 * 1.0)
    # The RTO sits at its floor, and the block after each loss is timed again.
    assert lossy_lock_step(adaptive=True) == pytest.approx(0.1 + 20 * DEFAULT_MIN_TIMEOUT)


def test_min_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_timeout must be above 0"):
        session(b"", min_timeout=0.0)


lossy_link = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.floats(min_value=0.0, max_value=3.0), st.integers(0, 3)),
        st.tuples(st.just("lose"), st.just(0.0), st.just(0)),
        st.tuples(st.just("duplicate"), st.floats(min_value=0.0, max_value=0.5), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.01, max_value=4.0), min_size=1, max_size=5),
    st.floats(min_value=0.001, max_value=1.0),
    st.booleans(),
    st.sampled_from([1, 4]),
    st.booleans(),
    lossy_link,
)
def test_no_link_makes_the_session_give_up_early_or_wait_past_the_schedule(
    schedule: list[float],
    min_timeout: float,
    adaptive: bool,
    windowsize: int,
    oack: bool,
    script: list[tuple[str, float, int]],
) -> None:
    """Any round trips and losses: waits within the schedule; failure only after the patience.

    Patience is the schedule's waits with the last one twice (what today's count-based
    transfers waited), so never below sum(schedule); timers fire on time here, so the
    give-up also lands exactly on it. With `adaptive=False` every wait is the entry itself.
    """
    patience = sum(schedule) + schedule[-1]
    acknowledged = {"blksize": "8"} if oack else {}
    s = ReadSession(
        Zeros(8 * 100_000),
        Negotiated(8, windowsize, None, acknowledged),
        schedule,
        min_timeout=min_timeout,
        adaptive=adaptive,
    )
    now = progress = 0.0
    retries = 0  # retransmissions since the last progress
    window: list[int] = []  # wire numbers of the blocks last sent; [0] stands for the OACK
    negotiating = oack

    def check(actions: list[Action], moved: bool) -> None:
        nonlocal progress, retries, window, negotiating
        packets = sent(actions)
        if s.state is State.DONE:
            (end,) = ended(actions)
            assert end.outcome is Outcome.TIMED_OUT  # the file is far too long to finish
            assert now - progress == pytest.approx(patience, abs=1e-6)
            assert now - progress >= sum(schedule)
            if not adaptive and not negotiating:  # the OACK waits OACK_REPEAT_AFTER instead
                assert retries == len(schedule)
            return
        negotiating = s.state is State.NEGOTIATING
        if moved:
            progress, retries = now, 0
        rto = s.rto
        if rto is not None:
            assert min(min_timeout, schedule[0]) <= rto <= schedule[0]
        assert adaptive or rto is None
        if packets:
            window = [p.block if isinstance(p, Data) else 0 for p in packets]
            deadline = s.deadline()
            assert deadline is not None
            entry = schedule[min(retries, len(schedule) - 1)]
            if negotiating:
                entry = max(entry, OACK_REPEAT_AFTER)
            wait = deadline - now
            assert 0 < wait <= entry + 1e-9
            if not adaptive and not negotiating:
                assert deadline == now + entry  # exactly as before
            assert deadline <= progress + patience + 1e-6

    check(s.start(now), moved=True)
    for kind, delay, pick in [*script, *[("lose", 0.0, 0)] * 10_000]:
        if s.state is State.DONE:
            break
        deadline = s.deadline()
        assert deadline is not None
        if kind == "lose" or now + delay >= deadline:  # the timer fires first
            now = deadline
            actions = s.on_timer(now)
            if not ended(actions):
                retries += 1
            check(actions, moved=False)
        elif kind == "duplicate":
            if s.state is State.SENDING:  # the ACK of the block just before the window
                now += delay
                assert s.feed(Ack((window[0] - 1) & 0xFFFF), now) == []
                assert s.deadline() == deadline
        else:
            now += delay
            actions = s.feed(Ack(window[min(pick, len(window) - 1)]), now)
            check(actions, moved=bool(actions))
    assert s.state is State.DONE


# --- errors from the client -------------------------------------------------------------------


def test_error_8_right_after_the_oack_is_a_quiet_abort() -> None:
    """EDK2 asks tsize, reads the OACK, and aborts with ERROR 8 to retry for real."""
    s = session(pattern(5000), negotiate({"tsize": "0"}, 5000, TransferLimits()))
    s.start(0.0)
    actions = s.feed(Error(ErrorCode.OPTION_NEGOTIATION, "User aborted the transfer"), 0.01)
    assert actions == [Finished(Outcome.ABORTED_AFTER_OPTIONS, "User aborted the transfer")]
    assert sent(actions) == []  # never answer an error
    assert not Outcome.ABORTED_AFTER_OPTIONS.is_failure
    assert s.state is State.DONE and s.deadline() is None
    assert s.bytes_sent == 0


def test_error_8_once_data_flows_is_a_peer_error() -> None:
    s = session(pattern(5000), with_options())
    s.start(0.0)
    s.feed(Ack(0), 0.1)
    (end,) = s.feed(Error(ErrorCode.OPTION_NEGOTIATION, "User aborted the transfer"), 0.2)
    assert isinstance(end, Finished) and end.outcome is Outcome.PEER_ERROR
    assert "error 8" in end.detail


@pytest.mark.parametrize("negotiated", [LOCK_STEP, with_options()], ids=["sending", "negotiating"])
@pytest.mark.parametrize(
    "error",
    [
        Error(ErrorCode.NOT_DEFINED, ""),
        Error(ErrorCode.DISK_FULL, "Disk full or allocation exceeded"),
        Error(ErrorCode.ACCESS_VIOLATION, "no"),
        Error(300, "vendor code"),
    ],
    ids=lambda error: f"error-{error.code}",
)
def test_any_other_error_ends_the_transfer_as_a_peer_error(
    negotiated: Negotiated, error: Error
) -> None:
    s = session(pattern(5000), negotiated)
    s.start(0.0)
    actions = s.feed(error, 0.5)
    assert actions == [Finished(Outcome.PEER_ERROR, f"error {error.code}: {error.message}")]
    assert s.outcome is Outcome.PEER_ERROR and s.outcome.is_failure
    assert s.deadline() is None


@pytest.mark.parametrize("negotiated", [LOCK_STEP, with_options()], ids=["sending", "negotiating"])
@pytest.mark.parametrize(
    "packet",
    [
        Data(1, b"upload"),
        ReadRequest("Alpha.nbi/i386/booter"),
        WriteRequest("upload"),
        OptionAck({"blksize": "512"}),
    ],
    ids=lambda packet: type(packet).__name__,
)
def test_packets_that_do_not_belong_in_a_read_are_a_protocol_error(
    negotiated: Negotiated, packet: Packet
) -> None:
    s = session(pattern(5000), negotiated)
    s.start(0.0)
    actions = s.feed(packet, 0.5)
    assert sent(actions) == [
        Error(ErrorCode.ILLEGAL_OPERATION, "only ACK and ERROR belong in a read transfer")
    ]
    assert ended(actions) == [
        Finished(Outcome.PROTOCOL_ERROR, f"client sent {type(packet).__name__}")
    ]
    assert s.state is State.DONE and s.deadline() is None


# --- the repeated request ---------------------------------------------------------------------


def test_retransmit_initial_resends_the_oack() -> None:
    s = session(pattern(100), with_options(tsize="100"))
    s.start(0.0)
    assert sent(s.retransmit_initial(0.7)) == [OptionAck({"tsize": "100"})]
    assert s.retransmissions == 1
    assert s.deadline() == 0.7 + OACK_REPEAT_AFTER


def test_retransmit_initial_resends_the_first_window() -> None:
    whole = pattern(512 * 10)
    s = session(whole, Negotiated(windowsize=2))  # windowsize without an OACK: hypothetical
    s.start(0.0)
    assert sent(s.retransmit_initial(0.3)) == [data(1, whole), data(2, whole)]
    assert s.retransmissions == 1
    assert s.bytes_sent == 4 * 512


def test_retransmit_initial_does_nothing_once_the_transfer_moved_on() -> None:
    whole = pattern(512 * 10)
    s = session(whole)
    s.start(0.0)
    s.feed(Ack(1), 0.1)
    assert s.retransmit_initial(0.2) == []
    assert s.retransmissions == 0


# --- a client that stops answering repeats (atftp) ----------------------------------------------


def fire(s: ReadSession) -> float:
    """The session's deadline, when its timer fires."""
    deadline = s.deadline()
    assert deadline is not None
    return deadline


def test_after_two_unanswered_repeats_the_next_block_goes_out_too() -> None:
    """atftp's lock step: it has block 2 but its ACK and its one extra ACK were lost; it
    ignores more copies of block 2 until 5 s of silence. Block 3 is what it can take."""
    whole = pattern(512 * 5)
    s = session(whole)
    s.start(0.0)
    s.feed(Ack(1), 0.1)  # block 2 goes out, its ACK is lost
    assert sent(s.on_timer(fire(s))) == [data(2, whole)]  # the extra ACK is lost too
    assert sent(s.on_timer(fire(s))) == [data(2, whole), data(3, whole)]
    assert sent(s.feed(Ack(3), fire(s) - 0.01)) == [data(4, whole)]  # block 3, in order
    assert s.retransmissions == 2


def test_every_second_repeat_in_vain_reaches_one_block_further() -> None:
    """atftp has blocks 2 and 3 sent ahead too, and those ACKs were lost as well."""
    whole = pattern(512 * 8)
    s = session(whole)
    s.start(0.0)
    s.feed(Ack(1), 0.1)
    blocks = [[p.block for p in sent(s.on_timer(fire(s)))] for _ in range(5)]  # type: ignore[attr-defined]
    assert blocks == [[2], [2, 3], [2, 3], [2, 3, 4], [2, 3, 4]]
    assert sent(s.feed(Ack(4), fire(s) - 0.01)) == [data(5, whole)]


def test_a_window_repeated_in_vain_takes_the_next_window_along() -> None:
    whole = pattern(512 * 20)
    s = session(whole, Negotiated(512, 4, None, {}))
    s.start(0.0)  # blocks 1-4; the client has them all, every ACK is lost
    first = sent(s.on_timer(fire(s)))
    assert [p.block for p in first if isinstance(p, Data)] == [1, 2, 3, 4]
    repeat = sent(s.on_timer(fire(s)))
    assert [p.block for p in repeat if isinstance(p, Data)] == list(range(1, 9))
    assert sent(s.feed(Ack(8), fire(s) - 0.5)) == [data(b, whole) for b in range(9, 13)]


def test_blocks_sent_ahead_in_a_repeat_are_never_timed() -> None:
    whole = pattern(512 * 10)
    s = session(whole)
    s.start(0.0)
    s.on_timer(fire(s))
    sent_ahead = sent(s.on_timer(fire(s)))
    assert sent_ahead == [data(1, whole), data(2, whole)]  # blocks 1 and 2, in a repeat
    now = fire(s) - 0.5
    s.feed(Ack(1), now)
    s.feed(Ack(2), now + 0.001)  # block 2 went out in the repeat, then again with block 3
    assert s.rto is None  # neither ACK can say which copy it answers (Karn)


def test_reaching_ahead_stops_at_the_last_block() -> None:
    whole = pattern(512 + 10)
    s = session(whole)
    s.start(0.0)
    s.feed(Ack(1), 0.1)  # block 2, the last (10 bytes)
    s.on_timer(fire(s))
    assert sent(s.on_timer(fire(s))) == [data(2, whole)]
    assert s.feed(Ack(2), fire(s) - 0.01) == [Finished(Outcome.COMPLETED)]


# --- counters and the end ---------------------------------------------------------------------


def test_bytes_sent_and_retransmissions_count_every_transmission() -> None:
    whole = pattern(512 * 3 + 7)
    s = session(whole, with_options(windowsize=2))
    s.start(0.0)
    s.on_timer(OACK_REPEAT_AFTER)  # OACK again: no payload
    assert (s.bytes_sent, s.retransmissions) == (0, 1)
    t = OACK_REPEAT_AFTER
    s.feed(Ack(0), t + 1.1)  # blocks 1, 2
    assert s.bytes_sent == 1024
    s.on_timer(t + 2.1)  # blocks 1, 2 again
    assert (s.bytes_sent, s.retransmissions) == (2048, 2)
    s.feed(Ack(1), t + 2.2)  # blocks 2, 3
    assert s.bytes_sent == 3072
    s.feed(Ack(3), t + 2.3)  # block 4 (7 bytes)
    assert s.bytes_sent == 3079
    s.feed(Ack(4), t + 2.4)
    assert (s.bytes_sent, s.retransmissions, s.outcome) == (3079, 2, Outcome.COMPLETED)


def finished_sessions() -> list[ReadSession]:
    completed = session(b"")
    completed.start(0.0)
    completed.feed(Ack(1), 0.1)
    aborted = session(b"x", with_options())
    aborted.start(0.0)
    aborted.feed(Error(8, ""), 0.1)
    timed_out = session(b"x", schedule=(1.0,))
    timed_out.start(0.0)
    timed_out.on_timer(1.0)
    timed_out.on_timer(2.0)
    return [completed, aborted, timed_out]


@pytest.mark.parametrize("done", finished_sessions(), ids=["completed", "aborted", "timed-out"])
def test_nothing_happens_after_done(done: ReadSession) -> None:
    assert done.state is State.DONE
    outcome, counters = done.outcome, (done.bytes_sent, done.retransmissions)
    for packet in (Ack(0), Ack(1), Ack(2), Error(0, ""), Data(1, b""), ReadRequest("x")):
        assert done.feed(packet, 50.0) == []
    assert done.on_timer(1000.0) == []
    assert done.retransmit_initial(1000.0) == []
    assert done.deadline() is None
    assert (done.outcome, (done.bytes_sent, done.retransmissions)) == (outcome, counters)


def test_an_empty_retry_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one timeout"):
        session(b"", schedule=())


def test_outcomes_that_are_failures() -> None:
    assert {o for o in Outcome if o.is_failure} == {
        Outcome.PEER_ERROR,
        Outcome.TIMED_OUT,
        Outcome.PROTOCOL_ERROR,
    }


# --- every (state, input) pair: hypothesis ----------------------------------------------------

events = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(min_value=0, max_value=0xFFFF)),
        st.tuples(st.just("ack-near"), st.integers(min_value=-3, max_value=5)),
        st.tuples(st.just("timer"), st.floats(min_value=0, max_value=20)),
        st.tuples(st.just("error"), st.integers(min_value=0, max_value=8)),
        st.tuples(st.just("rrq"), st.just(0)),
        st.tuples(st.just("data"), st.integers(min_value=0, max_value=3)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=3000),
    st.sampled_from([8, 100, 512]),
    st.sampled_from([1, 2, 4]),
    st.booleans(),
    events,
)
def test_any_sequence_of_inputs_keeps_the_session_consistent(
    size: int,
    blksize: int,
    windowsize: int,
    oack: bool,
    script: list[tuple[str, float]],
) -> None:
    """Each input gives either nothing, a valid next transmission, or one end."""
    whole = pattern(size)
    acknowledged = {"blksize": str(blksize)} if oack else {}
    s = session(whole, Negotiated(blksize, windowsize, None, acknowledged), schedule=(1.0, 2.0))
    now = 0.0
    highest_ack = 0  # the highest block the session moved past
    finished_count = 0
    actions: list[Action] = list(s.start(now))
    for kind, value in script:
        for packet in sent(actions):
            if isinstance(packet, Data):
                absolute = packet.block  # files here stay far below the rollover
                # a window, and the next one sent ahead after repeats (REACH_AHEAD_AFTER)
                assert highest_ack < absolute <= highest_ack + 2 * windowsize
                assert packet == data(absolute, whole, blksize)
        finished_count += len(ended(actions))
        assert finished_count <= 1
        if s.state is State.DONE:
            assert s.deadline() is None and s.outcome is not None
        if kind == "ack" or kind == "ack-near":
            block = int(value) if kind == "ack" else max(0, highest_ack + int(value))
            before = s.state
            actions = s.feed(Ack(block), now)
            data_sent = [p for p in sent(actions) if isinstance(p, Data)]
            if data_sent and before is State.SENDING:
                assert block > highest_ack, "a send answered a duplicate or stale ACK"
            if data_sent or ended(actions):
                highest_ack = max(highest_ack, block if before is State.SENDING else 0)
        elif kind == "timer":
            now += value
            actions = s.on_timer(now)
        elif kind == "error":
            actions = s.feed(Error(int(value), "x"), now)
            if actions:
                assert sent(actions) == [] and len(ended(actions)) == 1
        elif kind == "rrq":
            actions = s.retransmit_initial(now)
        else:
            actions = s.feed(Data(int(value), b""), now)
            if actions:
                assert ended(actions)[0].outcome is Outcome.PROTOCOL_ERROR
    finished_count += len(ended(actions))
    assert finished_count <= 1
    assert (s.state is State.DONE) == (s.outcome is not None)


# --- sources ----------------------------------------------------------------------------------


def test_octet_source_reads_forward_in_blocks() -> None:
    source = octet(b"0123456789")
    assert source.size == 10
    assert [source.read(4), source.read(4), source.read(4), source.read(4)] == [
        b"0123",
        b"4567",
        b"89",
        b"",
    ]


def test_octet_source_fills_each_block_from_short_reads() -> None:
    content = pattern(100)
    stream = Trickle(content)
    source = OctetSource(cast(BinaryIO, stream), len(content))
    assert source.read(64) == content[:64]
    assert source.read(64) == content[64:]
    assert source.read(64) == b""
    source.close()
    assert stream.closed


def test_octet_source_close_closes_the_stream() -> None:
    stream = io.BytesIO(b"x")
    OctetSource(stream, 1).close()
    assert stream.closed


def netascii(raw: bytes, reads: Sequence[int], chunk_size: int) -> list[bytes]:
    source = NetasciiSource(io.BytesIO(raw), chunk_size=chunk_size)
    return [source.read(count) for count in reads]


@pytest.mark.parametrize(
    ("raw", "converted"),
    [
        (b"", b""),
        (b"plain", b"plain"),
        (b"line\n", b"line\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"bare\rcr", b"bare\r\x00cr"),
        (b"\r\n", b"\r\x00\r\n"),  # a CR that is data, then a line end
        (b"\n\n\r\r", b"\r\n\r\n\r\x00\r\x00"),
        (b"\x00", b"\x00"),
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 65536])
def test_netascii_converts_line_ends(raw: bytes, converted: bytes, chunk_size: int) -> None:
    source = NetasciiSource(io.BytesIO(raw), chunk_size=chunk_size)
    assert source.size is None  # only known after conversion
    assert source.read(1000) == converted
    assert source.read(1000) == b""


def test_netascii_conversion_across_chunk_and_block_boundaries() -> None:
    raw = b"ab\ncd\r\n\n\rz"
    expected = b"ab\r\ncd\r\x00\r\n\r\n\r\x00z"
    # chunk_size 1: every CR and LF is read alone; blocks of 3 cut CR LF pairs in half.
    parts = netascii(raw, [3] * 8, chunk_size=1)
    assert b"".join(parts) == expected
    assert [len(p) for p in parts] == [3, 3, 3, 3, 3, 0, 0, 0]


@settings(max_examples=100)
@given(
    st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n").replace(b"b", b"\r")),
    st.integers(min_value=1, max_value=17),
    st.integers(min_value=1, max_value=40),
)
def test_netascii_is_the_same_whatever_the_chunk_and_block_sizes(
    raw: bytes, chunk_size: int, blksize: int
) -> None:
    expected = raw.replace(b"\r", b"\r\x00").replace(b"\n", b"\r\n")
    parts = netascii(raw, [blksize] * (len(expected) // blksize + 2), chunk_size)
    assert b"".join(parts) == expected
    # Every block but the last is full: the session relies on it to find the end.
    full = [p for p in parts if p]
    assert all(len(p) == blksize for p in full[:-1])


def test_a_netascii_transfer_has_no_tsize_and_delivers_the_converted_text() -> None:
    raw = b"#!ipxe\ndhcp\nchain http://10.0.0.1/boot.ipxe\r\n" * 20
    source = NetasciiSource(io.BytesIO(raw), chunk_size=7)
    negotiated = negotiate({"tsize": "0", "blksize": "64"}, source.size, TransferLimits())
    assert negotiated.acknowledged == {"blksize": "64"}
    received, _ = drive(ReadSession(source, negotiated))
    assert received == raw.replace(b"\r", b"\r\x00").replace(b"\n", b"\r\n")
