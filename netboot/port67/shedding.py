"""Which of one wake-up's datagrams port 67 answers, and which it drops unanswered.

A server offered more than it can answer must not spend its time on work that
is wasted anyway (receive livelock): a request that waited in the socket
longer than its client waits for a reply (perfdhcp gives up after 1 s; a real
client retransmits by then) gets an answer nobody reads, and an OFFER made
while the REQUESTs of earlier offers queue behind it only pushes those out.
So, from the values the listener measured (each datagram's message type and
how long it waited in the socket) and nothing else:

* a datagram that waited past the `deadline` is dropped, whatever it is: it
  costs a parse and not a lease write;
* a DISCOVER that waited past `discover_deadline` (half of it) is dropped
  too: its REQUEST would queue behind as long again. This is what keeps the
  socket short under any overload: stale DISCOVERs are read and dropped far
  faster than they arrive, until the ones read are fresh (a standing queue of
  about `discover_deadline`, as CoDel keeps one), so the REQUESTs behind them
  are answered in time;
* the wake-up is overloaded when even its newest datagram waited `backlog`
  seconds or more: the socket holds more than we answer as it comes;
* overloaded, everything that finishes an exchange (REQUEST, RELEASE, DECLINE,
  INFORM, BSDP) is answered first, and a budget of DISCOVERs after them,
  oldest first: finishing a started exchange is worth more than starting one.
  The budget follows the queue's age (`discover_budget`): `young_discovers`
  when the newest datagram waited just `backlog`, falling to `discovers` as it
  nears `discover_deadline`, so a short queue is not starved of new exchanges
  and a long one stops growing. Not overloaded, everything is answered in
  arrival order.

The listener counts and logs what was dropped (`DhcpCounters.shed_late`:
past a deadline; `shed_discovers`: beyond the budget); the clients retry, as
they would after a lost datagram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEADLINE = 1.0
"""Seconds a request may wait in the socket and still be worth an answer."""
DISCOVER_DEADLINE = 0.5
"""Seconds a DISCOVER may wait: its REQUEST must still fit in the client's patience.
0.25 s shed a tenth of the DISCOVERs at 1,000/s on a loaded 2-core machine (the
scheduler alone delays a wake-up that long); 0.5 s answers them all."""
BACKLOG = 0.1
"""Seconds the newest datagram of a wake-up waited: beyond it, the socket is behind."""
DISCOVERS_WHEN_OVERLOADED = 8
"""DISCOVERs answered per wake-up, at least, when overloaded (queue near `discover_deadline`)."""
DISCOVERS_WHEN_JUST_BEHIND = 64
"""DISCOVERs answered per wake-up when overloaded by just `backlog` (a full wake-up)."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """One datagram of a wake-up, as far as shedding cares."""

    starts_exchange: bool
    """A DISCOVER: answering it starts an exchange rather than finishing one."""
    waited: float
    """Seconds between the kernel receiving it and the listener reading it (0: unknown)."""


@dataclass(frozen=True, slots=True)
class SheddingPolicy:
    deadline: float = DEADLINE
    discover_deadline: float = DISCOVER_DEADLINE
    backlog: float = BACKLOG
    discovers: int = DISCOVERS_WHEN_OVERLOADED
    young_discovers: int = DISCOVERS_WHEN_JUST_BEHIND


@dataclass(frozen=True, slots=True)
class Plan:
    """Indices into the wake-up's datagrams; every index is in exactly one field."""

    answer: tuple[int, ...]
    """The datagrams to answer, in the order to answer them."""
    late: tuple[int, ...] = ()
    """Dropped: they waited past their deadline."""
    discovers: tuple[int, ...] = ()
    """Dropped: DISCOVERs beyond the overloaded wake-up's budget."""
    overloaded: bool = False


def plan(waiting: Sequence[Waiting], policy: SheddingPolicy = SheddingPolicy()) -> Plan:
    """What to answer of one wake-up's datagrams, in arrival order (see the module)."""
    late = tuple(i for i, w in enumerate(waiting) if w.waited > _deadline(w, policy))
    fresh = [i for i, w in enumerate(waiting) if w.waited <= _deadline(w, policy)]
    newest = min((w.waited for w in waiting), default=0.0)
    overloaded = bool(waiting) and newest >= policy.backlog
    if not overloaded:
        return Plan(tuple(fresh), late)
    finishing = [i for i in fresh if not waiting[i].starts_exchange]
    starting = [i for i in fresh if waiting[i].starts_exchange]
    budget = discover_budget(newest, policy)
    answered = tuple(finishing + starting[:budget])
    return Plan(answered, late, tuple(starting[budget:]), overloaded=True)


def _deadline(waiting: Waiting, policy: SheddingPolicy) -> float:
    return policy.discover_deadline if waiting.starts_exchange else policy.deadline


def discover_budget(newest: float, policy: SheddingPolicy) -> int:
    """DISCOVERs an overloaded wake-up answers, given how long its newest datagram waited.

    WHY: the newest datagram's wait is the queue's length in seconds, and a REQUEST
    for an OFFER made now queues about as long. Just behind (`backlog`), new
    exchanges fit: answer up to `young_discovers`. Near `discover_deadline` every
    DISCOVER answered lengthens a queue that is already as long as a client waits:
    answer only `discovers`, enough to keep exchanges starting. Linear in between,
    never below `discovers` nor above `young_discovers` (whichever is larger bounds)."""
    fewest = max(policy.discovers, 0)
    most = max(policy.young_discovers, fewest)
    span = policy.discover_deadline - policy.backlog
    if span <= 0:
        return fewest
    headroom = min(max((policy.discover_deadline - newest) / span, 0.0), 1.0)
    return fewest + int((most - fewest) * headroom)
