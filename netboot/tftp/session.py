"""The read-transfer state machine: one RRQ served to one client.

Theory of operation
-------------------
The session is sans-I/O. The service feeds it what the client sent and when
(`feed(packet, now)`), wakes it when its `deadline()` passes (`on_timer(now)`),
and carries out the actions it returns: `Send(datagram)` and, once, `Finished`.
It never reads the clock or touches a socket, so every loss, duplicate and
timeout can be replayed in a test with explicit times.

States::

    NEGOTIATING --ACK 0--> SENDING --ACK of last block--> DONE
         |                   |
         +--ERROR 8----------+--> DONE (client aborted; quiet after an OACK)
         +--ERROR n / DATA / patience runs out--> DONE (failed)

Without options the session starts in SENDING with block 1. In SENDING it
keeps a *window* of up to `windowsize` blocks (RFC 7440; 1 is RFC 1350's
lock step) starting at `base`, the oldest block not yet acknowledged, and sends
the whole window each time the window moves. An ACK is mapped from its 16-bit
wire number to the absolute block number nearest the window (so transfers
past block 65535 roll over, wire numbers restarting at 0), and then:

* ACK inside the window: the blocks up to it are done; the window moves to
  the next block and is sent whole, which also retransmits whatever the client
  missed after the acknowledged block.
* ACK of the block just before the window (a duplicate): ignored. Answering
  duplicates is the Sorcerer's Apprentice bug (every block sent twice, then
  four times, ...); lost blocks are resent by the timer instead.
* Anything else (an old ACK, a block not yet sent): ignored.

Retransmission: when the deadline passes without progress, the last
transmission (OACK or window) is sent again and the next wait is longer
(backoff); from the second repeat of a window on, the next window goes out
with it (`REACH_AHEAD_AFTER`), for a client that has the window and stopped
answering repeats of it. The OACK is the exception: the client's own timer
recovers a lost OACK or ACK 0, and some clients abort on a repeated OACK,
so ours is repeated only after `OACK_REPEAT_AFTER` s, or at once when the
client repeats its RRQ. The retry schedule bounds *patience*; measured round
trips set the *pace*. Patience is what the schedule waits in all, each entry and then the
last once more (1+2+4+8+8+8 = 31 s by default): the transfer fails when its
waits since the last progress add up to that, never sooner. The pace matters
because only our timer recovers a lost DATA (duplicate ACKs are ignored,
above): with a fixed first wait of 1 s, a lock-step transfer of 10,000 blocks
over a LAN with 20 % loss waits about 2,000 s, on a link whose round trip is a
millisecond. So the session times round trips the way RFC 6298 does (SRTT and
RTTVAR, RTO = SRTT + max(G, 4 RTTVAR)), clamped between `min_timeout` and the
first schedule entry. After k retransmissions since the last progress it waits
RTO * 2**k, but never longer than the first schedule entry (nor entry k) nor past the
patience, so a small RTO only means more retransmissions before the same
give-up time (see `_next_wait` for why the first entry).

Karn's algorithm keeps the samples honest: a round trip is measured only from
a transmission that was not repeated to an ACK naming a block sent in it for
the first time, since the ACK of a repeated window cannot say which copy it
answers (the OACK's ACK 0 counts the same way). And the backoff carries over
to the next window until such a sample arrives, when the ACK came later than
an RTO after our latest copy: otherwise a round trip that grew past the RTO
would have every window retransmitted before its ACK and would never be
measured. (An ACK within an RTO of a repeat only says a packet was lost.)
Once the client has answered, the first schedule entry stands in for the
RTO until the first sample, so no wait is longer than it either; before any
answer, and with `adaptive=False`, the waits are the schedule's entries.
Progress resets the count of retransmissions and the patience.

A client's `timeout` option (RFC 2349, T seconds) is acknowledged and read
as what it is, the client's own retransmission interval: it bounds the
patience, T for each schedule entry and once more (6 s from curl: 36 s),
and no wait of ours is longer than T, but it does not set our pace. The
pace still follows the measured round trip: a server that waited T after
every loss would stall a lock-step transfer T seconds per lost packet (curl
at 5 % loss each way: 6.3x dnsmasq's time), while a client that asked T
repeats its own ACK only after T, so only our timer recovers a loss sooner.
Retransmitting sooner than T harms no client: a duplicate DATA is answered
at most with a duplicate ACK, which we ignore (docs/protocols/tftp.md §2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from netboot.config import TFTP_MIN_RETRY_TIMEOUT, TFTP_RETRY_SCHEDULE
from netboot.tftp.options import Negotiated
from netboot.tftp.source import BlockSource
from netboot.tftp.wire import Ack, Error, ErrorCode, OptionAck, Packet, build, data_datagram

DEFAULT_RETRY_SCHEDULE = TFTP_RETRY_SCHEDULE
"""The configuration's default (`[tftp] retry_schedule`), defined once there."""
DEFAULT_MIN_TIMEOUT = TFTP_MIN_RETRY_TIMEOUT
"""The configuration's default (`[tftp] min_retry_timeout`), defined once there."""

CLOCK_GRANULARITY = 0.001
"""RFC 6298's G, in seconds: the reactor's timers are no finer than a millisecond."""

OACK_REPEAT_AFTER = 16.0
"""Seconds of silence after our OACK before we send it again (docs/protocols/tftp.md §3).

Silence after an OACK means the OACK or its ACK 0 was lost. A client whose
OACK was lost asks again (a repeated RRQ, answered with the OACK at once),
and one whose ACK 0 was lost sends it again: iPXE within 0.25 s, EDK2 4 s,
atftp and U-Boot 5 s, curl 5 s. Only GRUB never repeats an ACK, and waits
about 31 s for data. A repeated OACK is harmless to all of them but atftp,
which aborts on it ("unexpected OACK"); so ours comes after three of atftp's
5 s ACK repeats could have arrived, and well within GRUB's patience."""
REACH_AHEAD_AFTER = 2
"""Repeats of a window without an answer, after which the next window goes out with it
(and one more window after each further REACH_AHEAD_AFTER repeats).

Most clients answer every repeated block with an ACK, so for them only loss
keeps a window unanswered, and the extra blocks cost little. atftp answers a
repeated block once ("extra ACK") and then ignores repeats until it has heard
nothing for 5 s, which a server repeating sooner never leaves: when both its
ACK and its extra ACK are lost, it already has the window and waits for the
next block, and gets it only from the blocks sent ahead (docs/protocols/tftp.md §4). If
those ACKs are lost too, it has the blocks sent ahead as well: the next window then goes
out along."""
_MAX_BACKOFF = 64
"""Doublings of the RTO at most; far past any schedule entry, and 2.0**64 is finite."""

_ROUNDING = 1e-9
"""Seconds: a wait this close to the end of the patience ends there (float sums differ)."""


class State(Enum):
    NEGOTIATING = "negotiating"
    SENDING = "sending"
    DONE = "done"


class Outcome(Enum):
    COMPLETED = "completed"
    ABORTED_AFTER_OPTIONS = "aborted after option negotiation"
    """ERROR 8 in answer to our OACK: EDK2's tsize probe, a normal end."""
    PEER_ERROR = "peer sent an error"
    TIMED_OUT = "timed out"
    PROTOCOL_ERROR = "protocol error"

    @property
    def is_failure(self) -> bool:
        return self in (Outcome.PEER_ERROR, Outcome.TIMED_OUT, Outcome.PROTOCOL_ERROR)


@dataclass(frozen=True, slots=True)
class Send:
    datagram: bytes


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: Outcome
    detail: str = ""


Action = Send | Finished


class ReadSession:
    def __init__(
        self,
        source: BlockSource,
        negotiated: Negotiated,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        *,
        min_timeout: float = DEFAULT_MIN_TIMEOUT,
        adaptive: bool = True,
    ) -> None:
        """`retry_schedule` bounds the patience, `min_timeout` is the RTO's floor.

        `adaptive=False` waits the schedule's entries whatever the round trip.
        """
        if not retry_schedule:
            raise ValueError("the retry schedule needs at least one timeout")
        if not min_timeout > 0:
            raise ValueError(f"min_timeout must be above 0 seconds (got {min_timeout!r})")
        self.source = source
        self.negotiated = negotiated
        client_timeout = negotiated.timeout
        self._schedule = tuple(
            entry if client_timeout is None else min(entry, client_timeout)
            for entry in retry_schedule
        )
        """The server's waits, none longer than a client's `timeout`."""
        self._min_timeout = min_timeout
        self._adaptive = adaptive
        self._patience = (
            sum(self._fixed_wait(k) for k in range(len(self._schedule) + 1))
            if client_timeout is None
            else client_timeout * (len(self._schedule) + 1)
        )
        self.state = State.NEGOTIATING if negotiated.acknowledged else State.SENDING
        self._base = 1
        self._window: list[bytes] = []
        self._last_block: int | None = None
        self._next_unsent = 1
        """The lowest block never sent: blocks from here on go out for the first time."""
        self._fresh_from = 1
        """The lowest block the current transmission sent for the first time."""
        self._sent_at: float | None = None
        """When the current transmission went out; None once it was repeated (Karn)."""
        self._last_sent_at = 0.0
        """When anything last went out, first copy or repeat."""
        self._srtt: float | None = None
        self._rto: float | None = None
        """Kept with SRTT and RTTVAR, since every transmission asks for it."""
        self._rttvar = 0.0
        self._backoff = 0
        """Doublings carried over from windows that were retransmitted (Karn)."""
        self._answered = False
        """The client has made progress at least once: it is there, even without a sample."""
        self._retries = 0
        self._waited = 0.0
        """Seconds of the patience used up since the last progress: the waits that ran out."""
        self._wait = 0.0
        self._final = False
        """The wait under way ends the patience: when it runs out, the transfer fails."""
        self._deadline: float | None = None
        self.bytes_sent = 0
        """Payload bytes sent, retransmissions included."""
        self.bytes_acknowledged = 0
        """Payload bytes the client has acknowledged: how far the transfer has got."""
        self.retransmissions = 0
        self.outcome: Outcome | None = None

    # -- inputs -------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The first transmission: the OACK, or the first window."""
        if self.state is State.NEGOTIATING:
            return self._transmit(now, repeat=False)
        return self._advance(0, now)

    def feed(self, packet: Packet, now: float) -> list[Action]:
        if self.state is State.DONE:
            return []
        if isinstance(packet, Ack):
            return self._on_ack(packet.block, now)
        if isinstance(packet, Error):
            if self.state is State.NEGOTIATING and packet.code == ErrorCode.OPTION_NEGOTIATION:
                return self._finish(Outcome.ABORTED_AFTER_OPTIONS, packet.message)
            return self._finish(Outcome.PEER_ERROR, f"error {packet.code}: {packet.message}")
        reply = Error(ErrorCode.ILLEGAL_OPERATION, "only ACK and ERROR belong in a read transfer")
        kind = type(packet).__name__
        return [Send(build(reply)), *self._finish(Outcome.PROTOCOL_ERROR, f"client sent {kind}")]

    def on_timer(self, now: float) -> list[Action]:
        if self.state is State.DONE or self._deadline is None or now < self._deadline:
            return []
        if self._final:
            reply = Error(ErrorCode.NOT_DEFINED, "timed out waiting for an acknowledgement")
            detail = f"no answer after {self._retries} retransmissions"
            return [Send(build(reply)), *self._finish(Outcome.TIMED_OUT, detail)]
        self._waited += self._wait
        self._retries += 1
        self.retransmissions += 1
        if self._retries % REACH_AHEAD_AFTER == 0 and self.state is State.SENDING:
            self._reach_ahead()
        return self._transmit(now, repeat=True)

    def retransmit_initial(self, now: float) -> list[Action]:
        """The client repeated its RRQ (our first answer was lost): answer again."""
        if self.state is State.DONE or self._base != 1:
            return []
        self.retransmissions += 1
        return self._transmit(now, repeat=True)

    def deadline(self) -> float | None:
        return None if self.state is State.DONE else self._deadline

    @property
    def rto(self) -> float | None:
        """The retransmission timeout the measured round trips give, in seconds.

        Clamped to [min_timeout, first schedule entry], before any backoff.
        None until the first round trip is measured, and always when the
        session does not adapt (`adaptive=False`).
        """
        return self._rto

    # -- internals ----------------------------------------------------------

    def _fixed_wait(self, retries: int) -> float:
        """The schedule's wait after `retries` retransmissions (capped at the client's T)."""
        return self._schedule[min(retries, len(self._schedule) - 1)]

    def _next_wait(self) -> float:
        """The schedule's entry; with a measured round trip, the RTO backed off to the first.

        (Or to the entry itself, should a schedule shrink.)
        The backed-off RTO stops at the first entry rather than climbing the
        schedule: with one window in flight, a retransmission a second cannot
        congest anything, and at 20 % loss each way (36 % of round trips lost)
        the ~30 tries that 31 s of patience then allows make a lost block
        practically impossible, where a climb to 8 s allows 12 (a 14 MiB
        kernel would fail about one time in twenty).
        """
        if self.state is State.NEGOTIATING:
            return max(self._fixed_wait(self._retries), OACK_REPEAT_AFTER)
        rto = self._rto
        if rto is None:
            if not (self._adaptive and self._answered):
                return self._fixed_wait(self._retries)
            # The client answers, but no round trip is measured yet: the first entry
            # stands in for the RTO. Karn leaves many transfers without a sample for
            # long (a repeated OACK, then windows at 20 % loss that are seldom answered
            # cleanly), and climbing the schedule meanwhile left atftp 4 and 8 s of
            # silence per lost round trip. A client that never answered still gets the
            # schedule's climb: it may be gone, and repeats every second would not help.
            rto = self._schedule[0]
        if not (self._retries or self._backoff):
            return rto  # the common case: already within the first entry
        backed_off = rto * 2.0 ** min(self._backoff + self._retries, _MAX_BACKOFF)
        return min(self._fixed_wait(self._retries), self._schedule[0], backed_off)

    def _on_ack(self, wire_block: int, now: float) -> list[Action]:
        if self.state is State.NEGOTIATING:
            if wire_block != 0:
                return []  # not the answer to our OACK; the timer resends it
            self._measure(now, first_sent=True)
            self.state = State.SENDING
            return self._advance(0, now)
        # The absolute block this ACK names, counted from just before the window.
        acked = self._base - 1 + ((wire_block - (self._base - 1)) & 0xFFFF)
        if acked == self._base - 1 or acked >= self._base + len(self._window):
            return []  # a duplicate, a stale ACK, or a block never sent
        self._measure(now, first_sent=acked >= self._fresh_from)
        return self._advance(acked, now)

    def _measure(self, now: float, first_sent: bool) -> None:
        """Progress: take a round-trip sample if it is unambiguous (Karn), else keep backing off.

        `first_sent`: the ACK names a block that the current transmission sent
        for the first time, so no earlier copy can have caused it.
        """
        self._answered = True
        if not self._adaptive:
            return
        if self._sent_at is None or not first_sent:
            # No sample (Karn). Keep backing off only if the answer came later than
            # an RTO after our latest copy: then the round trip may have outgrown
            # the RTO. An answer within an RTO of a repeat says a packet was lost,
            # not that the path is slow; carrying the backoff then would make
            # every later loss cost the longest wait (windowed transfers at 20 %
            # loss rarely get a clean sample, and slowed down twentyfold).
            rto = self._rto
            if rto is not None and now - self._last_sent_at > rto:
                self._backoff = min(self._backoff + self._retries, _MAX_BACKOFF)
            else:
                self._backoff = 0
            return
        sample = max(0.0, now - self._sent_at)
        if self._srtt is None:
            self._srtt, self._rttvar = sample, sample / 2
        else:  # RFC 6298 2.3: RTTVAR first, from the SRTT before this sample
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - sample)
            self._srtt = 0.875 * self._srtt + 0.125 * sample
        estimate = self._srtt + max(CLOCK_GRANULARITY, 4 * self._rttvar)
        self._rto = min(self._schedule[0], max(self._min_timeout, estimate))
        self._backoff = 0

    def _advance(self, acked: int, now: float) -> list[Action]:
        newly = acked - self._base + 1
        if self._last_block is not None and acked == self._last_block:
            self.bytes_acknowledged += sum(len(payload) for payload in self._window[:newly])
            return self._finish(Outcome.COMPLETED)
        # Only the last block is short, and it is acknowledged only by the ACK that completes.
        self.bytes_acknowledged += newly * self.negotiated.blksize
        del self._window[:newly]
        self._base = acked + 1
        self._retries = 0
        self._waited = 0.0
        self._fill_window()
        return self._transmit(now, repeat=False)

    def _reach_ahead(self) -> None:
        """Add the next window to the one repeated in vain (see `REACH_AHEAD_AFTER`).
        Its blocks go out in a repeat, so no ACK of them is timed."""
        blksize = self.negotiated.blksize
        for _ in range(self.negotiated.windowsize):
            if self._last_block is not None:
                break
            payload = self.source.read(blksize)
            self._window.append(payload)
            if len(payload) < blksize:
                self._last_block = self._base + len(self._window) - 1
        self._next_unsent = max(self._next_unsent, self._base + len(self._window))

    def _fill_window(self) -> None:
        blksize = self.negotiated.blksize
        while len(self._window) < self.negotiated.windowsize and self._last_block is None:
            payload = self.source.read(blksize)
            self._window.append(payload)
            if len(payload) < blksize:
                self._last_block = self._base + len(self._window) - 1

    def _transmit(self, now: float, repeat: bool) -> list[Action]:
        """Send the OACK or the window and arm the timer.

        `repeat`: a retransmission (timer or repeated RRQ), which no ACK may
        time. Otherwise the window moved, and the blocks it adds are new.
        """
        self._sent_at = None if repeat else now
        self._last_sent_at = now
        self._arm(now)
        if self.state is State.NEGOTIATING:
            return [Send(build(OptionAck(self.negotiated.acknowledged)))]
        if not repeat:
            self._fresh_from = self._next_unsent
            self._next_unsent = self._base + len(self._window)
        sends: list[Action] = []
        for offset, payload in enumerate(self._window):
            sends.append(Send(data_datagram(self._base + offset, payload)))
            self.bytes_sent += len(payload)
        return sends

    def _arm(self, now: float) -> None:
        """The next deadline: the next wait, cut short where the patience ends."""
        wait = self._next_wait()
        remaining = self._patience - self._waited
        self._final = wait >= remaining - _ROUNDING
        if wait > remaining + _ROUNDING:  # not just a rounding of the same time
            wait = remaining
        self._wait = wait
        self._deadline = now + wait

    def _finish(self, outcome: Outcome, detail: str = "") -> list[Action]:
        self.state = State.DONE
        self.outcome = outcome
        self._deadline = None
        self._window.clear()
        return [Finished(outcome, detail)]
