"""One wake-up of the port-67 listener (`DhcpService.wakeup`), without sockets.

All the datagrams one wake-up reads are answered inside one lease batch (group
commit) and their replies leave only after it: a reader that looks at the lease
file when asked to send shows the commit already made. A batch whose commit
fails withholds the replies that promise a lease and sends the others.
Full mode runs over a real lease store in `tmp_path` on a Twisted `Clock`.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from netboot.dhcp.boot import BootSettings
from netboot.dhcp.leases import AddressPool, LeaseStore
from netboot.dhcp.server import LeaseServer, NetworkSettings
from netboot.dhcpwire.options import BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import NetbootError
from netboot_services.dhcp import (
    Arrival,
    DhcpDispatcher,
    DhcpService,
    Outgoing,
    Received,
    _PacketSocket,
    open_socket,
)
from netboot_services.pxe import PxeHandler

SERVER = "192.0.2.10"
START = 1_700_000_000.0
ON_67 = Arrival(("0.0.0.0", 68), SERVER, 2)
BOOT = BootSettings(boot_files={"bios": "undionly.kpxe"})
NETWORK = NetworkSettings(subnet=IPv4Network("192.0.2.0/24"), boot=BOOT)
BIOS = ((60, b"PXEClient:Arch:00000:UNDI:002001"), (93, b"\x00\x00"))


def datagram(
    message: int, mac_byte: int, *options: tuple[int, bytes], ciaddr: str = "0.0.0.0"
) -> bytes:
    packet = DhcpPacket(
        op=BOOTREQUEST,
        xid=0x1000 + mac_byte,
        chaddr=bytes((0x52, 0x54, 0, 0, 0, mac_byte)) + bytes(10),
        flags=0x8000,
        ciaddr=ciaddr,
        options=((Option.MESSAGE_TYPE, bytes((message,))), *options),
    )
    return build_packet(packet)


def discover(mac_byte: int) -> Received:
    return Received(datagram(MessageType.DISCOVER, mac_byte), ON_67)


class LeaseFileReader:
    """A socket stand-in that records each reply with what the lease file held then."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sent: list[tuple[Outgoing, int]] = []

    def send(self, outgoing: Outgoing, arrival: Arrival) -> bool:
        with sqlite3.connect(self.path) as other:  # another connection: sees commits only
            (rows,) = other.execute("SELECT count(*) FROM lease").fetchone()
        self.sent.append((outgoing, rows))
        return True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LeaseStore]:
    clock = Clock()
    clock.advance(START)
    pool = AddressPool(IPv4Address("192.0.2.100"), IPv4Address("192.0.2.199"))
    with LeaseStore(tmp_path / "leases.sqlite", pool, clock.seconds) as leases:
        yield leases


def service_over(handler: Any) -> DhcpService:
    clock = Clock()
    clock.advance(START)
    return DhcpService(DhcpDispatcher([handler], clock.seconds), clock, 0, ())


@pytest.fixture
def handler(store: LeaseStore) -> PxeHandler:
    """The full-mode PXE handler over the store."""
    clock = Clock()
    clock.advance(START)
    return PxeHandler(BOOT, clock.seconds, LeaseServer(store, NETWORK))


@pytest.fixture
def reader(tmp_path: Path) -> LeaseFileReader:
    return LeaseFileReader(tmp_path / "leases.sqlite")


def test_a_wakeups_offers_leave_after_the_one_commit_that_holds_them(
    store: LeaseStore, handler: PxeHandler, reader: LeaseFileReader
) -> None:
    service = service_over(handler)
    statements: list[str] = []
    store._file.db.set_trace_callback(statements.append)
    service.wakeup(reader, [discover(n) for n in range(1, 4)])  # type: ignore[arg-type]
    assert statements.count("COMMIT") == 1  # one transaction, one fsync, for three offers
    assert [rows for _, rows in reader.sent] == [3, 3, 3]  # all three on disk before the first
    yiaddrs = {parse_packet(out.datagram).yiaddr for out, _ in reader.sent}
    assert yiaddrs == {"192.0.2.100", "192.0.2.101", "192.0.2.102"}
    assert all(out.leased for out, _ in reader.sent)


class FailingCommit:
    """A handler whose batch fails on commit; it answers with a lease reply and a proxy one."""

    name = "failing"

    def __init__(self, inner: PxeHandler) -> None:
        self.inner = inner

    @contextmanager
    def batch(self) -> Iterator[None]:
        yield
        raise NetbootError("disk full")

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> Any:
        return self.inner.handle(packet, arrival)


def test_a_failed_commit_withholds_the_lease_replies_and_sends_the_rest(
    handler: PxeHandler, reader: LeaseFileReader
) -> None:
    service = service_over(FailingCommit(handler))
    on_4011 = Arrival(("192.0.2.9", 68), SERVER, 2, boot_server=True)
    request = datagram(MessageType.REQUEST, 9, *BIOS, ciaddr="192.0.2.9")
    wakeup = [discover(1), Received(request, on_4011), discover(2)]
    service.wakeup(reader, wakeup)  # type: ignore[arg-type]
    ((sent, _),) = reader.sent  # the port-4011 ACK promises no lease: it leaves
    assert not sent.leased
    assert parse_packet(sent.datagram).message_type == MessageType.ACK
    counters = service.dispatcher.counters
    assert (counters.commit_errors, counters.withheld_replies) == (1, 2)


def test_requests_that_waited_too_long_are_dropped_unanswered_and_counted(
    handler: PxeHandler, reader: LeaseFileReader
) -> None:
    service = service_over(handler)
    stale = Received(datagram(MessageType.DISCOVER, 1), ON_67, waited=0.7)
    fresh = Received(datagram(MessageType.DISCOVER, 2), ON_67, waited=0.06)
    service.wakeup(reader, [stale, fresh])  # type: ignore[arg-type]
    (sent,) = [parse_packet(out.datagram) for out, _ in reader.sent]
    assert sent.chaddr[:6] == bytes((0x52, 0x54, 0, 0, 0, 2))
    counters = service.dispatcher.counters
    assert (counters.datagrams, counters.shed_late, counters.shed_discovers) == (2, 1, 0)
    assert handler.counters.requests == 1  # the stale one never reached the lease store


class Recording:
    """The listener's side of a socket: records what each wake-up brought."""

    def __init__(self) -> None:
        self.wakeups: list[list[Received]] = []

    def wakeup(self, reader: Any, received: list[Received]) -> None:
        self.wakeups.append(received)


def stamping_on(reader: _PacketSocket, listener: Recording, port: int) -> bool:
    """Whether the kernel stamps datagrams as they arrive, probed for up to 5 s.

    Linux turns receive stamps on through deferred work after the first socket
    on the host asks (net_enable_timestamp); until it has run, a datagram is
    stamped when it is read and seems not to have waited at all.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for _ in range(50):
            client.sendto(datagram(MessageType.DISCOVER, 9), ("127.0.0.1", port))
            time.sleep(0.1)
            reader.doRead()
            (probe,) = listener.wakeups.pop()
            if probe.waited >= 0.05:
                return True
    return False


def test_the_socket_reports_how_long_each_datagram_waited() -> None:
    sock = open_socket(0, None)
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 212992
        listener = Recording()
        reader = _PacketSocket(sock, listener, "all")  # type: ignore[arg-type]
        port = sock.getsockname()[1]
        assert stamping_on(reader, listener, port), "the kernel never stamped a datagram"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(datagram(MessageType.DISCOVER, 1), ("127.0.0.1", port))
            time.sleep(0.2)
            client.sendto(datagram(MessageType.DISCOVER, 2), ("127.0.0.1", port))
        reader.doRead()
    finally:
        sock.close()
    ((first, second),) = listener.wakeups
    assert 0.15 < first.waited < 5
    assert 0 <= second.waited < first.waited - 0.1
    assert first.arrival.local_address == "127.0.0.1"
