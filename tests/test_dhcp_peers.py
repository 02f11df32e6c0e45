"""Which daemon answers which client when several share one lease database."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from netboot.dhcp.peers import DEAD_AFTER, PeerView, alone, answers, live_peers
from netboot.macaddr import MacAddress, mac_from_bytes


@dataclass(frozen=True)
class Seen:
    server_id: str
    seen: float


def mac(number: int) -> MacAddress:
    return mac_from_bytes(bytes((2, 0)) + number.to_bytes(4, "big"))


def test_the_live_list_is_sorted_holds_me_and_drops_the_silent() -> None:
    beats = [Seen("b", 100.0), Seen("c", 100.0 - 2 * DEAD_AFTER - 0.1), Seen("a", 99.0)]
    view = live_peers("z", beats, now=100.0, interval=2.0)
    assert view == PeerView("z", ("a", "b", "z"))


def test_the_daemons_kept_are_live_whatever_their_heartbeat_says() -> None:
    beats = [Seen("b", 0.0), Seen("c", 100.0)]
    assert live_peers("a", beats, now=100.0, interval=2.0, keep=("b",)).live == ("a", "b", "c")
    assert live_peers("a", beats, now=100.0, interval=2.0).live == ("a", "c")


def test_a_daemon_that_heard_no_one_answers_everyone() -> None:
    assert all(answers(alone("a"), mac(n), secs=0, takeover_after=3) for n in range(50))


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=50, unique=True))
def test_exactly_one_live_daemon_answers_each_new_client(numbers: list[int]) -> None:
    names = ("a", "b", "c")
    for number in numbers:
        willing = [
            me for me in names if answers(PeerView(me, names), mac(number), 0, takeover_after=3)
        ]
        assert len(willing) == 1


def test_the_split_is_even_enough_and_moves_on_when_a_daemon_dies() -> None:
    macs = [mac(n) for n in range(3000)]
    three = Counter(PeerView("a", ("a", "b", "c")).owner(m) for m in macs)
    assert set(three) == {"a", "b", "c"} and min(three.values()) > 800
    two = PeerView("a", ("a", "c"))
    assert {two.owner(m) for m in macs} == {"a", "c"}


def test_a_client_that_waited_is_answered_by_anyone() -> None:
    view = PeerView("a", ("a", "b"))
    theirs = next(m for m in (mac(n) for n in range(100)) if view.owner(m) == "b")
    assert not answers(view, theirs, secs=2, takeover_after=3)
    assert answers(view, theirs, secs=3, takeover_after=3)
