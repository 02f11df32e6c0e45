"""The receiving side of a read transfer, for `netboot tftp get` and for tests.

Same shape as the server's session: `start(now)`, `feed(packet, now)`,
`on_timer(now)`, `deadline()`; actions are `Send`, `Deliver` (payload to
append to the output, in order) and `Finished`.

As an RFC 7440 receiver it acknowledges the last block of each window (or the
short final block); when a block arrives out of order it acknowledges the last
block received in order, so the sender restarts the window from there. A
duplicate block is answered with the same acknowledgement again, which is what
a lock-step (RFC 1350) server needs when our ACK was lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netboot.tftp.options import DEFAULT_BLKSIZE
from netboot.tftp.session import DEFAULT_RETRY_SCHEDULE, Finished, Outcome, Send
from netboot.tftp.wire import Ack, Data, Error, OptionAck, Packet, ReadRequest, build


@dataclass(frozen=True, slots=True)
class Deliver:
    payload: bytes


ClientAction = Send | Deliver | Finished


class ReadClient:
    def __init__(
        self,
        filename: str,
        options: Mapping[str, str] | None = None,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
    ) -> None:
        self.filename = filename
        self.requested = dict(options or {})
        self._schedule = tuple(retry_schedule)
        self.blksize = DEFAULT_BLKSIZE
        self.windowsize = 1
        self.tsize: int | None = None
        self.negotiated: dict[str, str] = {}
        self._expected = 1
        self._in_window = 0
        self._last_sent = build(ReadRequest(filename, "octet", self.requested))
        self._retries = 0
        self._deadline: float | None = None
        self.received = 0
        self.done = False
        self.outcome: Outcome | None = None

    def start(self, now: float) -> list[ClientAction]:
        return self._send(self._last_sent, now)

    def deadline(self) -> float | None:
        return None if self.done else self._deadline

    def feed(self, packet: Packet, now: float) -> list[ClientAction]:
        if self.done:
            return []
        if isinstance(packet, OptionAck) and self._expected == 1 and self._in_window == 0:
            return self._on_oack(packet, now)
        if isinstance(packet, Data):
            return self._on_data(packet, now)
        if isinstance(packet, Error):
            return self._finish(Outcome.PEER_ERROR, f"server error {packet.code}: {packet.message}")
        return []

    def on_timer(self, now: float) -> list[ClientAction]:
        if self.done or self._deadline is None or now < self._deadline:
            return []
        if self._retries >= len(self._schedule):
            return self._finish(Outcome.TIMED_OUT, f"no answer after {self._retries} retries")
        self._retries += 1
        return self._send(self._last_sent, now)

    def _on_oack(self, packet: OptionAck, now: float) -> list[ClientAction]:
        self.negotiated = dict(packet.options)
        for name, value in packet.options.items():
            if name not in self.requested or not value.isdigit():
                error = build(Error(8, f"unexpected option {name}={value}"))
                return [Send(error), *self._finish(Outcome.PROTOCOL_ERROR, f"bad OACK {name}")]
        self.blksize = int(packet.options.get("blksize", DEFAULT_BLKSIZE))
        self.windowsize = int(packet.options.get("windowsize", 1))
        if "tsize" in packet.options:
            self.tsize = int(packet.options["tsize"])
        return self._send(build(Ack(0)), now)

    def _on_data(self, packet: Data, now: float) -> list[ClientAction]:
        expected_wire = self._expected & 0xFFFF
        if packet.block != expected_wire:
            # A duplicate or a gap: say where we are, so the sender resumes there with
            # a new window, which our count must follow.
            self._in_window = 0
            return self._send(build(Ack((self._expected - 1) & 0xFFFF)), now, progress=False)
        if len(packet.payload) > self.blksize:
            error = build(Error(4, "block larger than negotiated"))
            return [Send(error), *self._finish(Outcome.PROTOCOL_ERROR, "oversized block")]
        actions: list[ClientAction] = [Deliver(packet.payload)]
        self.received += len(packet.payload)
        self._expected += 1
        self._in_window += 1
        last = len(packet.payload) < self.blksize
        if last or self._in_window >= self.windowsize:
            self._in_window = 0
            actions += self._send(build(Ack(packet.block)), now)
        else:
            self._retries = 0
            self._deadline = now + self._schedule[0]
        if last:
            actions += self._finish(Outcome.COMPLETED)
        return actions

    def _send(self, datagram: bytes, now: float, progress: bool = True) -> list[ClientAction]:
        if progress and datagram != self._last_sent:
            self._retries = 0
        self._last_sent = datagram
        self._deadline = now + self._schedule[min(self._retries, len(self._schedule) - 1)]
        return [Send(datagram)]

    def _finish(self, outcome: Outcome, detail: str = "") -> list[ClientAction]:
        self.done = True
        self.outcome = outcome
        return [Finished(outcome, detail)]
