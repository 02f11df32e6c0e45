"""A reactor double for UDP services: Twisted's Clock plus in-memory ports.

`listenUDP` hands each protocol a transport that records what it writes, so a
test can feed a datagram to any port and read back every datagram sent, with
time advanced only by `clock.advance()`. `FakeTransferPorts` makes TFTP's
transfer ports of the same fake ports; `addReader`/`removeReader` only record,
for services that bring their own sockets (a test calls `doRead` itself).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock

Address = tuple[str, int]


@dataclass
class FakePort:
    reactor: FakeUdpReactor
    number: int
    interface: str
    protocol: Any
    sent: list[tuple[bytes, Address]] = field(default_factory=list)
    listening: bool = True

    # The transport side, as a DatagramProtocol sees it.
    def write(self, datagram: bytes, address: Address) -> None:
        assert self.listening, "write on a closed port"
        self.sent.append((datagram, address))
        self.reactor.sent.append((self.number, datagram, address))

    def getHost(self) -> IPv4Address:  # noqa: N802
        return IPv4Address("UDP", self.interface or "0.0.0.0", self.number)

    def stopListening(self) -> None:  # noqa: N802
        self.listening = False
        self.protocol.doStop()

    # The TFTP service's TransferPort side.
    def send(self, datagram: bytes, address: Address) -> None:
        self.write(datagram, address)

    def close(self) -> None:
        self.stopListening()

    def deliver(self, datagram: bytes, source: Address) -> None:
        assert self.listening, f"port {self.number} is closed"
        self.protocol.datagramReceived(datagram, source)


class FakeUdpReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[int, FakePort] = {}
        self.sent: list[tuple[int, bytes, Address]] = []
        self._ephemeral = itertools.count(40000)
        self.readers: set[Any] = set()

    def listenUDP(  # noqa: N802
        self,
        port: int,
        protocol: Any,
        interface: str = "",
        maxPacketSize: int = 8192,  # noqa: N803
    ) -> FakePort:
        number = port or next(self._ephemeral)
        assert number not in self.ports or not self.ports[number].listening, "port in use"
        fake = FakePort(self, number, interface, protocol)
        self.ports[number] = fake
        protocol.makeConnection(fake)
        return fake

    def open_ports(self) -> list[int]:
        return [n for n, p in self.ports.items() if p.listening]

    def take_sent(self) -> list[tuple[int, bytes, Address]]:
        sent, self.sent = self.sent, []
        return sent

    def addReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.add(reader)

    def removeReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.discard(reader)


class _Relay(DatagramProtocol):
    def __init__(self, receive: Any) -> None:
        self.receive = receive

    def datagramReceived(self, datagram: bytes, address: Address) -> None:  # noqa: N802
        self.receive(datagram, address, False)


class FakeTransferPorts:
    """TFTP transfer ports as fake ports of `reactor` (never busy-polled)."""

    def __init__(self, reactor: FakeUdpReactor) -> None:
        self.reactor = reactor

    def open(self, interface: str, receive: Any) -> FakePort:
        return self.reactor.listenUDP(0, _Relay(receive), interface)

    def close(self) -> None:
        pass
