"""Which datagrams of one wake-up port 67 answers under overload (netboot.port67.shedding)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netboot.port67.shedding import Plan, SheddingPolicy, Waiting, discover_budget, plan

POLICY = SheddingPolicy(
    deadline=1.0, discover_deadline=0.25, backlog=0.05, discovers=2, young_discovers=2
)
AGEING = SheddingPolicy(
    deadline=1.0, discover_deadline=0.5, backlog=0.1, discovers=8, young_discovers=64
)


def discover(waited: float) -> Waiting:
    return Waiting(starts_exchange=True, waited=waited)


def request(waited: float) -> Waiting:
    return Waiting(starts_exchange=False, waited=waited)


def test_a_keeping_up_wakeup_is_answered_whole_in_arrival_order() -> None:
    waiting = [discover(0.01), request(0.0), discover(0.02), discover(0.0), discover(0.0)]
    assert plan(waiting, POLICY) == Plan(answer=(0, 1, 2, 3, 4))


def test_requests_wait_longer_than_discovers_before_they_are_dropped() -> None:
    waiting = [discover(0.3), request(0.3), request(1.2), discover(0.1)]
    decided = plan(waiting, POLICY)
    assert decided.late == (0, 2)  # the DISCOVER past 0.25 s, the REQUEST past 1 s
    assert decided.answer == (1, 3)
    assert decided.overloaded  # even the newest waited 0.1 s: the socket is behind


def test_overloaded_requests_come_first_and_discovers_are_capped() -> None:
    waiting = [discover(0.1), discover(0.1), request(0.1), discover(0.1), request(0.2)]
    decided = plan(waiting, POLICY)
    assert decided.answer == (2, 4, 0, 1)  # finish exchanges, then the oldest DISCOVERs
    assert decided.discovers == (3,)
    assert decided.late == ()


def test_the_budget_falls_from_young_to_fewest_as_the_queue_ages() -> None:
    assert discover_budget(0.1, AGEING) == 64  # just behind: a full wake-up
    assert discover_budget(0.3, AGEING) == 36  # half way: 8 + 56 / 2
    assert discover_budget(0.5, AGEING) == 8  # as long as a DISCOVER may wait
    assert discover_budget(2.0, AGEING) == 8


def test_a_young_queue_answers_more_discovers_than_an_old_one() -> None:
    young = [discover(0.12)] * 40 + [request(0.12)]
    old = [discover(0.45)] * 40 + [request(0.45)]
    assert len(plan(young, AGEING).answer) == 41  # the REQUEST and every DISCOVER
    decided = plan(old, AGEING)
    assert decided.answer[0] == 40  # the REQUEST first
    assert len(decided.answer) == 1 + discover_budget(0.45, AGEING)
    assert decided.discovers == tuple(range(discover_budget(0.45, AGEING), 40))


def test_an_empty_wakeup_is_no_plan() -> None:
    assert plan([], POLICY) == Plan(answer=())


@given(
    st.lists(st.builds(Waiting, st.booleans(), st.floats(min_value=0, max_value=3)), max_size=80),
    st.integers(min_value=0, max_value=64),
    st.integers(min_value=0, max_value=64),
)
def test_every_datagram_is_answered_or_dropped_exactly_once(
    waiting: list[Waiting], fewest: int, young: int
) -> None:
    policy = SheddingPolicy(discovers=fewest, young_discovers=young)
    decided = plan(waiting, policy)
    budget = discover_budget(min((w.waited for w in waiting), default=0.0), policy)
    every = decided.answer + decided.late + decided.discovers
    assert sorted(every) == list(range(len(waiting)))
    answered_discovers = [i for i in decided.answer if waiting[i].starts_exchange]
    if decided.overloaded:
        assert len(answered_discovers) <= budget
        first_discover = next(
            (n for n, i in enumerate(decided.answer) if waiting[i].starts_exchange),
            len(decided.answer),
        )
        assert all(not waiting[i].starts_exchange for i in decided.answer[:first_discover])
        assert all(waiting[i].starts_exchange for i in decided.answer[first_discover:])
    else:
        assert decided.discovers == ()
        assert list(decided.answer) == sorted(decided.answer)
    for i in decided.late:
        limit = policy.discover_deadline if waiting[i].starts_exchange else policy.deadline
        assert waiting[i].waited > limit


@given(
    st.floats(min_value=0, max_value=3),
    st.floats(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=64),
    st.integers(min_value=0, max_value=64),
)
def test_the_budget_never_grows_with_age_and_stays_in_its_bounds(
    waited: float, later: float, fewest: int, young: int
) -> None:
    policy = SheddingPolicy(discovers=fewest, young_discovers=young)
    older = waited + later
    assert discover_budget(older, policy) <= discover_budget(waited, policy)
    assert fewest <= discover_budget(waited, policy) <= max(fewest, young)
