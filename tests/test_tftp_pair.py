"""Our server session and our client joined by a fake link, with loss, reordering and duplicates.

The link is a discrete-event simulation: every datagram gets an arrival time
(a fixed latency, plus jitter to reorder), and time jumps to the next arrival
or, when nothing is in flight before it, to the earliest deadline of either
side. What one side sends reaches the other only through `wire.parse`, so the
pair also checks that each side's datagrams are what the other understands.
Every loop is bounded; nothing sleeps.
"""

from __future__ import annotations

import heapq
import io
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.tftp.client import Deliver, ReadClient
from netboot.tftp.options import TransferLimits, blksize_for_mtu, negotiate
from netboot.tftp.session import DEFAULT_RETRY_SCHEDULE, Finished, Outcome, ReadSession, Send
from netboot.tftp.source import OctetSource
from netboot.tftp.wire import Ack, Data, OptionAck, Packet, ReadRequest, parse

Side = Literal["client", "server"]
"""Who receives a datagram."""
LATENCY = 0.001
LIMITS = TransferLimits(max_blksize=blksize_for_mtu(1500), max_windowsize=64)
PATIENT = (1.0,) * 12
"""A long retry schedule for lossy links, so a bad run of luck does not end a test."""

Drop = Callable[[Side, int], bool]
"""Given who would receive it and its number in that direction (from 1): lose it?"""


def no_loss(to: Side, number: int) -> bool:
    return False


def every_nth(n: int, toward: Side | None = None) -> Drop:
    """Lose every n-th datagram toward one side, or in each direction."""

    def drop(to: Side, number: int) -> bool:
        return (toward is None or to == toward) and number % n == 0

    return drop


def at_random(rate: float, seed: int) -> Drop:
    rng = random.Random(seed)

    def drop(to: Side, number: int) -> bool:
        return rng.random() < rate

    return drop


def only(numbers: set[int], toward: Side) -> Drop:
    """Lose exactly these datagrams toward one side."""
    return lambda to, number: to == toward and number in numbers


@dataclass
class Link:
    drop: Drop = no_loss
    jitter: float = 0.0
    """Extra random delay of up to this many seconds: reorders datagrams sent together."""
    duplicate: float = 0.0
    """Chance that a datagram arrives twice."""
    seed: int = 0
    sent: dict[Side, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    """Datagrams sent toward each side, lost ones included."""
    lost: dict[Side, int] = field(default_factory=lambda: {"client": 0, "server": 0})


@dataclass
class Result:
    delivered: bytes
    client: ReadClient
    server: ReadSession | None
    server_end: Finished | None
    client_end: Finished | None
    link: Link
    now: float
    to_server: list[Packet]
    """Every datagram that reached the server, decoded."""
    to_client: list[Packet]


def run(
    content: bytes,
    options: Mapping[str, str] | None = None,
    link: Link | None = None,
    schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
    limits: TransferLimits = LIMITS,
    max_events: int = 100_000,
    adaptive: bool = True,
) -> Result:
    """One read of `content` from our server by our client, over `link`."""
    link = link or Link()
    rng = random.Random(link.seed)
    client = ReadClient("Alpha.nbi/i386/booter", options, schedule)
    server: ReadSession | None = None
    in_flight: list[tuple[float, int, Side, bytes]] = []
    sequence = 0
    now = 0.0
    delivered = bytearray()
    ends: dict[Side, Finished] = {}
    seen: dict[Side, list[Packet]] = {"client": [], "server": []}

    def post(actions: Sequence[object], to: Side) -> None:
        nonlocal sequence
        for action in actions:
            if isinstance(action, Finished):
                sender: Side = "server" if to == "client" else "client"
                assert sender not in ends, f"{sender} finished twice"
                ends[sender] = action
            elif isinstance(action, Deliver):
                delivered.extend(action.payload)
            elif isinstance(action, Send):
                link.sent[to] += 1
                if link.drop(to, link.sent[to]):
                    link.lost[to] += 1
                    continue
                copies = 2 if rng.random() < link.duplicate else 1
                for _ in range(copies):
                    sequence += 1
                    arrival = now + LATENCY + rng.uniform(0, link.jitter)
                    heapq.heappush(in_flight, (arrival, sequence, to, action.datagram))

    def receive(to: Side, datagram: bytes) -> None:
        nonlocal server
        packet = parse(datagram)  # both sides must only ever send well-formed packets
        seen[to].append(packet)
        if to == "client":
            post(client.feed(packet, now), "server")
        elif server is None:
            assert isinstance(packet, ReadRequest)
            source = OctetSource(io.BytesIO(content), len(content))
            negotiated = negotiate(packet.options, len(content), limits)
            session = ReadSession(source, negotiated, schedule, adaptive=adaptive)
            server = session
            post(session.start(now), "client")
        elif isinstance(packet, ReadRequest):
            post(server.retransmit_initial(now), "client")
        else:
            post(server.feed(packet, now), "client")

    post(client.start(now), "server")
    for _ in range(max_events):
        server_deadline = server.deadline() if server is not None else None
        deadlines = [d for d in (client.deadline(), server_deadline) if d is not None]
        if not in_flight and not deadlines:
            break
        next_timer = min(deadlines, default=float("inf"))
        if in_flight and in_flight[0][0] <= next_timer:
            now, _, to, datagram = heapq.heappop(in_flight)
            receive(to, datagram)
            continue
        now = next_timer
        post(client.on_timer(now), "server")
        if server is not None:
            post(server.on_timer(now), "client")
    else:
        pytest.fail(f"the pair was still talking after {max_events} events")

    return Result(
        bytes(delivered),
        client,
        server,
        ends.get("server"),
        ends.get("client"),
        link,
        now,
        seen["server"],
        seen["client"],
    )


def pattern(size: int) -> bytes:
    return bytes((i * 13 + i // 1000) % 256 for i in range(size))


def assert_delivered(result: Result, content: bytes) -> None:
    assert result.client_end == Finished(Outcome.COMPLETED)
    assert result.delivered == content
    assert result.client.received == len(content)
    assert result.server is not None and result.server_end is not None
    if result.server_end.outcome is not Outcome.COMPLETED:
        # Only losing the client's last ACK (which nobody repeats) may leave the server
        # waiting after the client is done; it then gives up on its own.
        assert result.server_end.outcome is Outcome.TIMED_OUT
        assert result.link.lost["server"] > 0


# --- lossless -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1468, 1469, 20_000, 100_000])
@pytest.mark.parametrize("blksize", [512, 1468])
@pytest.mark.parametrize("windowsize", [1, 4, 16])
def test_lossless_transfer_is_exact_and_sends_nothing_twice(
    size: int, blksize: int, windowsize: int
) -> None:
    content = pattern(size)
    options = {"blksize": str(blksize), "windowsize": str(windowsize), "tsize": "0"}
    result = run(content, options)
    assert_delivered(result, content)
    assert result.server_end == Finished(Outcome.COMPLETED)
    assert result.client.tsize == size
    assert (result.client.blksize, result.client.windowsize) == (blksize, windowsize)
    assert result.server is not None
    assert result.server.retransmissions == 0
    assert result.server.bytes_sent == size
    blocks = size // blksize + 1
    data = [p for p in result.to_client if isinstance(p, Data)]
    assert [p.block for p in data] == list(range(1, blocks + 1))
    acks = [p.block for p in result.to_server if isinstance(p, Ack)]
    window_ends = [*range(windowsize, blocks, windowsize), blocks]
    assert acks == [0, *window_ends]
    assert result.now < 0.1 * (len(window_ends) + 2)  # no timer ever fired


def test_without_options_there_is_no_oack() -> None:
    content = pattern(1500)
    result = run(content)
    assert_delivered(result, content)
    assert not any(isinstance(p, OptionAck) for p in result.to_client)
    assert [p.block for p in result.to_server if isinstance(p, Ack)] == [1, 2, 3]


def test_ovmf_first_read_over_the_pair() -> None:
    content = pattern(50_000)
    result = run(content, {"blksize": "1468", "windowsize": "4", "tsize": "0"})
    assert_delivered(result, content)
    assert result.to_client[0] == OptionAck(
        {"blksize": "1468", "tsize": "50000", "windowsize": "4"}
    )


def test_options_the_server_caps_are_what_the_client_uses() -> None:
    content = pattern(30_000)
    limits = TransferLimits(max_blksize=1024, max_windowsize=2)
    result = run(content, {"blksize": "8192", "windowsize": "16"}, limits=limits)
    assert_delivered(result, content)
    assert (result.client.blksize, result.client.windowsize) == (1024, 2)


# --- loss -------------------------------------------------------------------------------------

# A loss period that divides the length of a retransmitted burst loses the same block on
# every retry (every 3rd datagram against a last window of 3 blocks), which stalls any
# go-back-N sender; periods toward the client are therefore longer than the largest window.
LOSSY = {
    "every-17th-data": lambda: Link(drop=every_nth(17, "client")),
    "every-23rd-data": lambda: Link(drop=every_nth(23, "client")),
    "every-5th-ack": lambda: Link(drop=every_nth(5, "server")),
    "every-2nd-ack": lambda: Link(drop=every_nth(2, "server")),
    "every-19th-both-ways": lambda: Link(drop=every_nth(19)),
    "random-10%": lambda: Link(drop=at_random(0.10, seed=1)),
    "random-25%": lambda: Link(drop=at_random(0.25, seed=2)),
    "reordered": lambda: Link(jitter=0.005, seed=3),
    "duplicated": lambda: Link(duplicate=0.3, seed=4),
    "reordered-duplicated-lossy": lambda: Link(
        drop=at_random(0.1, seed=5), jitter=0.005, duplicate=0.2, seed=5
    ),
}


@pytest.mark.parametrize("make_link", LOSSY.values(), ids=LOSSY.keys())
@pytest.mark.parametrize("blksize", [512, 1468])
@pytest.mark.parametrize("windowsize", [1, 4, 16])
def test_lossy_link_still_delivers_the_file(
    make_link: Callable[[], Link], blksize: int, windowsize: int
) -> None:
    content = pattern(40_000)
    options = {"blksize": str(blksize), "windowsize": str(windowsize), "tsize": "0"}
    result = run(content, options, make_link(), schedule=PATIENT)
    assert_delivered(result, content)


@pytest.mark.parametrize("windowsize", [1, 16])
def test_on_a_fast_link_losing_a_fifth_each_way_a_loss_costs_the_rto_not_a_second(
    windowsize: int,
) -> None:
    """Simulated time, 1 ms each way: the adaptive timeout makes recovery five times cheaper.

    Windows rarely give a clean round-trip sample at this loss; were the backoff of a
    recovered window carried over regardless, every loss would cost the schedule's
    first second again, and the two times would be alike.
    """
    content = pattern(512 * 1500)
    options = {"blksize": "512", "windowsize": str(windowsize)}
    adaptive = run(content, options, Link(drop=at_random(0.2, 3)), max_events=300_000)
    fixed = run(content, options, Link(drop=at_random(0.2, 3)), max_events=300_000, adaptive=False)
    assert_delivered(adaptive, content)
    assert_delivered(fixed, content)
    assert adaptive.now < fixed.now / 5


def test_lost_oack_is_resent_by_the_server_timer() -> None:
    content = pattern(3000)
    result = run(content, {"blksize": "1024"}, Link(drop=only({1}, "client")))
    assert_delivered(result, content)
    assert result.server is not None and result.server.retransmissions >= 1
    assert result.server_end == Finished(Outcome.COMPLETED)


def test_lost_rrq_is_repeated_by_the_client() -> None:
    content = pattern(3000)
    result = run(content, {"blksize": "1024"}, Link(drop=only({1}, "server")))
    assert_delivered(result, content)
    assert result.now >= DEFAULT_RETRY_SCHEDULE[0]
    assert result.server_end == Finished(Outcome.COMPLETED)


def test_lost_first_data_is_answered_by_the_repeated_rrq() -> None:
    """Without options the answer to the RRQ is DATA 1; losing it makes the client ask again."""
    content = pattern(3000)
    result = run(content, None, Link(drop=only({1}, "client")))
    assert_delivered(result, content)
    assert result.server_end == Finished(Outcome.COMPLETED)
    assert sum(isinstance(p, ReadRequest) for p in result.to_server) >= 1


def test_losing_the_first_block_of_a_window_costs_one_timeout() -> None:
    """The client's gap ACK equals its previous ACK, which the server must take for a
    duplicate (Sorcerer's Apprentice); the server's timer resends the window."""
    content = pattern(512 * 40)
    # Toward the client: OACK, DATA 1-4, then DATA 5 (the 6th) is lost.
    result = run(content, {"windowsize": "4"}, Link(drop=only({6}, "client")))
    assert_delivered(result, content)
    assert result.server_end == Finished(Outcome.COMPLETED)
    assert result.server is not None and result.server.retransmissions == 1
    assert result.server.bytes_sent == len(content) + 4 * 512


def test_losing_a_block_inside_a_window_costs_at_most_one_window() -> None:
    content = pattern(512 * 40)  # 41 blocks, the last one empty
    # Toward the client: OACK, DATA 1-5, then DATA 6 (the 7th) is lost. The client ACKs 5
    # on seeing 7, and the server restarts the window at 6 without waiting for its timer.
    result = run(content, {"windowsize": "4"}, Link(drop=only({7}, "client")))
    assert_delivered(result, content)
    assert result.server is not None and result.server.retransmissions == 0
    assert result.server.bytes_sent <= len(content) + 4 * 512


def test_lost_final_ack_leaves_the_server_to_time_out_quietly() -> None:
    """RFC 1350's last-ACK problem: the client is done, the server retries and gives up."""
    content = pattern(1000)  # DATA 1, DATA 2; the client's datagrams: RRQ, ACK 1, ACK 2
    result = run(content, None, Link(drop=only({3}, "server")))
    assert result.client_end == Finished(Outcome.COMPLETED)
    assert result.delivered == content
    assert result.server_end is not None and result.server_end.outcome is Outcome.TIMED_OUT


def test_a_dead_link_times_both_sides_out() -> None:
    result = run(pattern(5000), {"blksize": "1024"}, Link(drop=every_nth(1, "client")))
    assert result.client_end is not None and result.client_end.outcome is Outcome.TIMED_OUT
    assert result.server_end is not None and result.server_end.outcome is Outcome.TIMED_OUT
    assert result.delivered == b""
    assert result.now < 100  # bounded by the schedules


# --- hypothesis ---------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=20_000),
    blksize=st.sampled_from([8, 100, 512, 1024, 1468]),
    windowsize=st.sampled_from([1, 2, 4, 8, 16]),
    loss=st.one_of(
        st.tuples(st.just("nth"), st.integers(min_value=2, max_value=12)),  # over the window
        st.tuples(st.just("random"), st.integers(min_value=0, max_value=2**16)),
    ),
    toward=st.sampled_from(["client", "server", None]),
    jitter=st.sampled_from([0.0, 0.002]),
    duplicate=st.sampled_from([0.0, 0.1]),
)
def test_any_file_any_options_any_loss_arrives_intact(
    size: int,
    blksize: int,
    windowsize: int,
    loss: tuple[str, int],
    toward: Side | None,
    jitter: float,
    duplicate: float,
) -> None:
    kind, value = loss
    # A period longer than any burst (see LOSSY), so no block is lost on every retry.
    nth = every_nth(windowsize + value, toward)
    drop = nth if kind == "nth" else at_random(0.1, seed=value)
    content = pattern(size)
    options = {"blksize": str(blksize), "windowsize": str(windowsize), "tsize": "0"}
    link = Link(drop=drop, jitter=jitter, duplicate=duplicate, seed=value)
    result = run(content, options, link, schedule=PATIENT)
    assert_delivered(result, content)
