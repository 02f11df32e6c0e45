"""Download one file over TFTP: the driver of `netboot tftp get`.

The protocol is `netboot.tftp.client.ReadClient`; this protocol sends its
datagrams, learns the server's transfer port from the first answer (RFC 1350
section 4), answers strangers with ERROR 5 and keeps one timer.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol

from netboot.errors import MalformedPacket
from netboot.tftp.client import ClientAction, Deliver, ReadClient
from netboot.tftp.session import Finished, Outcome
from netboot.tftp.wire import Error, ErrorCode, build, parse

Address = tuple[str, int]


class Download(DatagramProtocol):
    noisy = False

    def __init__(self, client: ReadClient, server: Address, sink: BinaryIO, reactor: Any) -> None:
        self.client = client
        self.server = server
        self.sink = sink
        self.reactor = reactor
        self.peer: Address | None = None
        self.timer: DelayedCall | None = None
        self.started = 0.0
        self.finished = 0.0
        self.done: Deferred[Finished] = Deferred()

    def startProtocol(self) -> None:  # noqa: N802
        self.started = self.reactor.seconds()
        self._run(self.client.start(self.started))

    def datagramReceived(self, datagram: bytes, address: Address) -> None:  # noqa: N802
        if self.peer is None and address[0] == self.server[0]:
            self.peer = address
        if address != self.peer:
            if datagram[:2] != b"\x00\x05":
                self._write(build(Error(ErrorCode.UNKNOWN_TRANSFER_ID, "not my transfer")), address)
            return
        try:
            packet = parse(datagram)
        except MalformedPacket:
            return
        self._run(self.client.feed(packet, self.reactor.seconds()))

    def _write(self, datagram: bytes, address: Address) -> None:
        transport: Any = self.transport
        transport.write(datagram, address)

    def _run(self, actions: list[ClientAction]) -> None:
        for action in actions:
            if isinstance(action, Deliver):
                self.sink.write(action.payload)
            elif isinstance(action, Finished):
                self._finish(action)
                return
            else:
                self._write(action.datagram, self.peer or self.server)
        deadline = self.client.deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self.reactor.seconds())
            if self.timer is not None and self.timer.active():
                self.timer.reset(delay)
            else:
                self.timer = self.reactor.callLater(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._run(self.client.on_timer(self.reactor.seconds()))

    def _finish(self, finished: Finished) -> None:
        self.finished = self.reactor.seconds()
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if not self.done.called:
            self.done.callback(finished)

    def cancel(self) -> None:
        if not self.client.done:
            self._finish(Finished(Outcome.TIMED_OUT, "cancelled"))
