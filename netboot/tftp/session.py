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
         +--ERROR n / DATA / timeout after the last retry--> DONE (failed)

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
transmission (OACK or window) is sent again and the next timeout is taken from
the retry schedule (backoff); after the last one the transfer fails. A client
that asked for `timeout` (RFC 2349) gets that value on every retry instead.
Progress resets the schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from netboot.tftp.options import Negotiated
from netboot.tftp.source import BlockSource
from netboot.tftp.wire import Ack, Data, Error, ErrorCode, OptionAck, Packet, build

DEFAULT_RETRY_SCHEDULE = (1.0, 2.0, 4.0, 8.0, 8.0)
"""Seconds to wait before each retransmission; its length bounds the retries."""


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
    ) -> None:
        if not retry_schedule:
            raise ValueError("the retry schedule needs at least one timeout")
        self.source = source
        self.negotiated = negotiated
        self._schedule = tuple(retry_schedule)
        self.state = State.NEGOTIATING if negotiated.acknowledged else State.SENDING
        self._base = 1
        self._window: list[bytes] = []
        self._last_block: int | None = None
        self._retries = 0
        self._deadline: float | None = None
        self.bytes_sent = 0
        """Payload bytes sent, retransmissions included."""
        self.retransmissions = 0
        self.outcome: Outcome | None = None

    # -- inputs -------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The first transmission: the OACK, or the first window."""
        if self.state is State.NEGOTIATING:
            return self._transmit(now)
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
        if self._retries >= len(self._schedule):
            reply = Error(ErrorCode.NOT_DEFINED, "timed out waiting for an acknowledgement")
            detail = f"no answer after {self._retries} retransmissions"
            return [Send(build(reply)), *self._finish(Outcome.TIMED_OUT, detail)]
        self._retries += 1
        self.retransmissions += 1
        return self._transmit(now)

    def retransmit_initial(self, now: float) -> list[Action]:
        """The client repeated its RRQ (our first answer was lost): answer again."""
        if self.state is State.DONE or self._base != 1:
            return []
        self.retransmissions += 1
        return self._transmit(now)

    def deadline(self) -> float | None:
        return None if self.state is State.DONE else self._deadline

    # -- internals ----------------------------------------------------------

    def _timeout(self) -> float:
        if self.negotiated.timeout is not None:
            return self.negotiated.timeout
        return self._schedule[min(self._retries, len(self._schedule) - 1)]

    def _on_ack(self, wire_block: int, now: float) -> list[Action]:
        if self.state is State.NEGOTIATING:
            if wire_block != 0:
                return []  # not the answer to our OACK; the timer resends it
            self.state = State.SENDING
            return self._advance(0, now)
        # The absolute block this ACK names, counted from just before the window.
        acked = self._base - 1 + ((wire_block - (self._base - 1)) & 0xFFFF)
        if acked == self._base - 1 or acked >= self._base + len(self._window):
            return []  # a duplicate, a stale ACK, or a block never sent
        return self._advance(acked, now)

    def _advance(self, acked: int, now: float) -> list[Action]:
        if self._last_block is not None and acked == self._last_block:
            return self._finish(Outcome.COMPLETED)
        del self._window[: acked - self._base + 1]
        self._base = acked + 1
        self._retries = 0
        self._fill_window()
        return self._transmit(now)

    def _fill_window(self) -> None:
        blksize = self.negotiated.blksize
        while len(self._window) < self.negotiated.windowsize and self._last_block is None:
            payload = self.source.read(blksize)
            self._window.append(payload)
            if len(payload) < blksize:
                self._last_block = self._base + len(self._window) - 1

    def _transmit(self, now: float) -> list[Action]:
        self._deadline = now + self._timeout()
        if self.state is State.NEGOTIATING:
            return [Send(build(OptionAck(self.negotiated.acknowledged)))]
        sends: list[Action] = []
        for offset, payload in enumerate(self._window):
            sends.append(Send(build(Data(self._base + offset, payload))))
            self.bytes_sent += len(payload)
        return sends

    def _finish(self, outcome: Outcome, detail: str = "") -> list[Action]:
        self.state = State.DONE
        self.outcome = outcome
        self._deadline = None
        self._window.clear()
        return [Finished(outcome, detail)]
