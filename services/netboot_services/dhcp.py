"""UDP port 67: one listener that BSDP and the PXE handlers share.

A DHCP server must know which interface a broadcast arrived on, to answer as
that interface's address (option 54, and the BSDP server identifier a Mac
copies into its SELECT). Twisted's UDP port does not expose that, so this
module reads the socket itself with `recvmsg` and IP_PKTINFO and hands the
reactor a small read descriptor. With `server.interfaces` set, there is one
socket per interface (SO_BINDTODEVICE); otherwise one for all.

A wake-up's datagrams (up to `READS_PER_WAKEUP`) are handled together: each is
dissected once, the shedding plan (`netboot.port67.shedding`, from the time each
waited in the socket, which SO_TIMESTAMPNS tells) drops what could not be
answered in time, the rest are offered to the handlers in order
(`netboot.port67.dispatch`; the first that claims it decides) inside the
handlers' batch, and the replies leave after the batch commits: an ACK only
ever promises a lease that is on disk. A datagram that
does not dissect, or that a handler calls malformed, is counted and logged at
most once per client per minute; anything no handler claims is ignored quietly.
`Arrival`, `Outgoing`, `Handler` and `HandlerResult` live in `netboot.port67`
and are re-exported here for the handlers and tests that import them so.
"""

from __future__ import annotations

import socket
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from netboot.dhcpwire.options import MessageType
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import DhcpPacket, parse_packet, peek_message_type
from netboot.errors import MalformedPacket
from netboot.hostport import join_host_port
from netboot.port67.arrival import Address, Arrival
from netboot.port67.dispatch import Handler, HandlerResult, Outgoing, batch, dispatch_packet
from netboot.port67.shedding import SheddingPolicy, Waiting, plan
from netboot_services.counters import Counters
from netboot_services.logging import HotPathLogger
from netboot_services.ratelimit import OncePerInterval

log = HotPathLogger(namespace="netboot.dhcp")

__all__ = [
    "Address",
    "Arrival",
    "DhcpCounters",
    "DhcpDispatcher",
    "DhcpService",
    "Handler",
    "HandlerResult",
    "Outgoing",
]
READS_PER_WAKEUP = 64
_PKTINFO = struct.Struct("@i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_TIMESPEC = struct.Struct("@ll")  # struct timespec: seconds, nanoseconds (CLOCK_REALTIME)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux: each datagram carries the time the kernel received it (SCM_TIMESTAMPNS).

The first socket on a host to ask turns receive stamping on through deferred
work (net_enable_timestamp); a datagram that arrived before that runs is
stamped when it is read, so it counts as not having waited: never shed wrongly."""
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
RECEIVE_BUFFER = 16 * 1024 * 1024
"""Bytes the kernel may queue on a port-67 socket: a burst of a lab powering on
waits there rather than being dropped before we see it (shedding then drops what
waited too long, cheaply). 4 MiB filled at 10,000 DISCOVERs/s before the shedding
deadline came, so the kernel dropped REQUESTs blindly. SO_RCVBUFFORCE passes
net.core.rmem_max as root; the kernel takes memory only for what is queued."""


@dataclass
class DhcpCounters(Counters):
    datagrams: int = 0
    malformed: int = 0
    unclaimed: int = 0
    replies: int = 0
    send_errors: int = 0
    handler_errors: int = 0
    """Datagrams that crashed a handler: bugs of ours, logged with a traceback."""
    commit_errors: int = 0
    """Wake-ups whose lease batch did not commit (their lease replies were withheld)."""
    withheld_replies: int = 0
    """OFFERs and ACKs not sent because the batch holding their lease did not commit."""
    shed_late: int = 0
    """Requests dropped unanswered: they waited in the socket past the shedding deadline."""
    shed_discovers: int = 0
    """DISCOVERs dropped unanswered: beyond an overloaded wake-up's budget."""


@dataclass(frozen=True, slots=True)
class Received:
    """One datagram as the listener read it."""

    datagram: bytes
    arrival: Arrival
    waited: float = 0.0
    """Seconds it sat in the socket before we read it (kernel timestamp; 0: unknown)."""


class DhcpDispatcher:
    """The listener's counters and malformed-packet log around `netboot.port67.dispatch`."""

    def __init__(self, handlers: list[Handler], clock: Callable[[], float]) -> None:
        self.handlers = handlers
        self.clock = clock
        self.counters = DhcpCounters()
        self._malformed_log = OncePerInterval()

    def receive(self, datagram: bytes, arrival: Arrival) -> list[Outgoing]:
        packet = self.dissect(datagram, arrival)
        return [] if packet is None else self.answer(packet, arrival)

    def dissect(self, datagram: bytes, arrival: Arrival) -> DhcpPacket | None:
        """The datagram as a packet, counted; None (counted, logged) when it is not one."""
        self.counters.datagrams += 1
        try:
            return parse_packet(datagram)
        except MalformedPacket as error:
            self._malformed(arrival, str(error))
            return None

    def answer(self, packet: DhcpPacket, arrival: Arrival) -> list[Outgoing]:
        result = dispatch_packet(packet, arrival, self.handlers)
        if result.malformed is not None:
            self._malformed(arrival, result.malformed)
        elif not result.claimed:
            self.counters.unclaimed += 1
        self.counters.replies += len(result.outgoing)
        return list(result.outgoing)

    def batch(self) -> AbstractContextManager[None]:
        """The handlers' group commit, around every datagram of one wake-up."""
        return batch(self.handlers)

    def _malformed(self, arrival: Arrival, reason: str) -> None:
        self.counters.malformed += 1
        host = arrival.source[0]
        if self._malformed_log.allow(host, self.clock()):
            log.warn(
                "malformed DHCP packet from {client}: {reason} (further ones from this "
                "client are counted, not logged, for a minute)",
                client=join_host_port(host, arrival.source[1]),
                reason=reason,
                outcome=OutcomeKind.MALFORMED.value,
            )


Ancillary = list[tuple[int, int, bytes]]


@implementer(IReadDescriptor)
class PacketReader(ABC):
    """A UDP socket the reactor watches, read with recvmsg so that each datagram comes
    with its packet information; at most `READS_PER_WAKEUP` datagrams per wake-up, so a
    storm on one socket leaves the reactor its turns. Port 67 and port 547 each say
    what their packet information is (`received`)."""

    protocol = "dhcp"
    """Names the socket in Twisted's log prefix and in read errors."""
    ancillary_size = socket.CMSG_SPACE(_PKTINFO.size)
    logger = log

    def __init__(self, sock: socket.socket, label: str) -> None:
        self.sock = sock
        self.label = label

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:  # noqa: N802
        return f"{self.protocol}({self.label})"

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        self.sock.close()

    def doRead(self) -> None:  # noqa: N802
        batch: list[tuple[bytes, Ancillary, Any]] = []
        for _ in range(READS_PER_WAKEUP):
            try:
                datagram, ancillary, _, source = self.sock.recvmsg(65536, self.ancillary_size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                self.logger.warn(
                    "{protocol} socket {label}: {error}",
                    protocol=self.protocol.upper(),
                    label=self.label,
                    error=str(error),
                )
                break
            batch.append((datagram, ancillary, source))
        if batch:
            self.received_all(batch)

    def received_all(self, batch: list[tuple[bytes, Ancillary, Any]]) -> None:
        """Every datagram of one wake-up; one at a time unless a reader does better."""
        for datagram, ancillary, source in batch:
            self.received(datagram, ancillary, source)

    @abstractmethod
    def received(self, datagram: bytes, ancillary: Ancillary, source: Any) -> None:
        """One datagram, its ancillary data and its sender's socket address."""


def stop_reading(reactor: Any, readers: list[Any]) -> None:
    """Take each reader off the reactor and close its socket; the list ends empty."""
    for reader in readers:
        reactor.removeReader(reader)
        reader.sock.close()
    readers.clear()


class _PacketSocket(PacketReader):
    """A port-67 (or 4011, or 68) socket: each datagram comes with IP_PKTINFO."""

    def __init__(
        self,
        sock: socket.socket,
        listener: DhcpService,
        label: str,
        boot_server: bool = False,
        watch_only: bool = False,
    ) -> None:
        super().__init__(sock, label)
        self.listener = listener
        self.boot_server = boot_server
        self.watch_only = watch_only

    ancillary_size = socket.CMSG_SPACE(_PKTINFO.size) + socket.CMSG_SPACE(_TIMESPEC.size)

    def received_all(self, batch: list[tuple[bytes, Ancillary, Any]]) -> None:
        """A wake-up's datagrams go to the listener together: one batch, one commit."""
        now = time.time()  # the kernel stamps datagrams with the wall clock
        self.listener.wakeup(self, [self.arrived(*item, now) for item in batch])

    def received(self, datagram: bytes, ancillary: Ancillary, source: Any) -> None:
        self.received_all([(datagram, ancillary, source)])

    def arrived(self, datagram: bytes, ancillary: Ancillary, source: Any, now: float) -> Received:
        local, ifindex, waited = "0.0.0.0", 0, 0.0  # noqa: S104 - unknown until PKTINFO says
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                ifindex, spec_dst, _ = _PKTINFO.unpack(data[: _PKTINFO.size])
                local = socket.inet_ntoa(spec_dst)
            elif level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = _TIMESPEC.unpack(data[: _TIMESPEC.size])
                waited = max(0.0, now - (seconds + nanoseconds * 1e-9))
        arrival = Arrival(source, local, ifindex, self.boot_server, self.watch_only)
        return Received(datagram, arrival, waited)

    def send(self, outgoing: Outgoing, arrival: Arrival) -> bool:
        """Send out of the interface the request came in on, as its address.

        IP_PKTINFO on sendmsg picks the interface and source address; without
        it a broadcast reply would leave by the default route.
        """
        ancillary = []
        if arrival.ifindex:
            info = _PKTINFO.pack(arrival.ifindex, socket.inet_aton(arrival.local_address), bytes(4))
            ancillary.append((socket.IPPROTO_IP, IP_PKTINFO, info))
        try:
            self.sock.sendmsg([outgoing.datagram], ancillary, 0, outgoing.destination)
        except OSError as error:
            log.warn(
                "cannot send a DHCP reply to {destination}: {error}",
                destination=join_host_port(*outgoing.destination),
                error=str(error),
            )
            return False
        return True


def open_socket(port: int, interface: str | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        _enlarge_receive_buffer(sock)
        if interface:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        sock.bind(("", port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    """`RECEIVE_BUFFER`, past the system limit when allowed, else as far as it lets us."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


class DhcpService(Service):
    """Owns the port-67 sockets and feeds the dispatcher."""

    def __init__(
        self,
        dispatcher: DhcpDispatcher,
        reactor: Any,
        port: int,
        interfaces: tuple[str, ...],
        boot_server_port: int | None = None,
        watch_port: int | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.reactor = reactor
        self.port = port
        self.interfaces = interfaces
        self.boot_server_port = boot_server_port
        """PXE's port 4011 (None: not served)."""
        self.watch_port = watch_port
        """The DHCP client port 68, read to overhear rival servers (None: not read)."""
        self.sockets: list[_PacketSocket] = []
        self.shedding = SheddingPolicy()
        self._bug_log = OncePerInterval()
        self._shed_logged = (0, 0)
        """The shed counters at the last shedding log line."""

    def startService(self) -> None:  # noqa: N802
        super().startService()
        roles = [(self.port, False, False)]
        if self.boot_server_port is not None:
            roles.append((self.boot_server_port, True, False))
        if self.watch_port is not None:
            roles.append((self.watch_port, False, True))
        for interface in self.interfaces or (None,):
            for port, boot_server, watch_only in roles:
                sock = open_socket(port, interface)
                label = f"{interface or 'all'}:{sock.getsockname()[1]}"
                reader = _PacketSocket(sock, self, label, boot_server, watch_only)
                self.sockets.append(reader)
                self.reactor.addReader(reader)
                log.info(
                    "{what} listening on UDP {port} ({where}); handlers: {handlers}",
                    what="PXE boot server"
                    if boot_server
                    else "DHCP watch (rival servers)"
                    if watch_only
                    else "DHCP/BSDP",
                    port=sock.getsockname()[1],
                    where=f"interface {interface}" if interface else "every interface",
                    handlers=", ".join(h.name for h in self.dispatcher.handlers),
                )

    def stopService(self) -> None:  # noqa: N802
        super().stopService()
        stop_reading(self.reactor, self.sockets)

    @property
    def ports(self) -> list[int]:
        """The port-67 role's ports (one per interface socket)."""
        return [
            reader.sock.getsockname()[1]
            for reader in self.sockets
            if not reader.boot_server and not reader.watch_only
        ]

    @property
    def boot_server_ports(self) -> list[int]:
        return [reader.sock.getsockname()[1] for reader in self.sockets if reader.boot_server]

    @property
    def bound_port(self) -> int | None:
        """The port-67 role's port as bound (one port, on every interface socket)."""
        return self.ports[0] if self.ports else None

    @property
    def bound_boot_server_port(self) -> int | None:
        return self.boot_server_ports[0] if self.boot_server_ports else None

    def datagram(self, reader: _PacketSocket, datagram: bytes, arrival: Arrival) -> None:
        """One datagram alone: a wake-up of one."""
        self.wakeup(reader, [Received(datagram, arrival)])

    def wakeup(self, reader: _PacketSocket, received: Sequence[Received]) -> None:
        """Answer one wake-up's datagrams inside one batch, then send the replies.

        The batch is the handlers' group commit: every lease the answers promise is
        on disk, in one fsync, before the first of them leaves. If the commit fails
        the lease replies are withheld (counted, logged): the clients retry, and no
        client is told of a lease that is not stored.
        """
        dispatcher = self.dispatcher
        chosen = [
            (packet, item)
            for item in self._shed(received)
            if (packet := dispatcher.dissect(item.datagram, item.arrival)) is not None
        ]
        replies: list[tuple[Outgoing, Arrival]] = []
        try:
            with dispatcher.batch():
                for packet, datagram in chosen:
                    arrival = datagram.arrival
                    replies.extend((out, arrival) for out in self._answer(packet, arrival))
        except Exception as error:  # noqa: BLE001 - a failed commit must not stop port 67
            replies = self._withhold_leased(replies, error)
        counters = dispatcher.counters
        for item, arrival in replies:
            if arrival.watch_only:
                continue
            if not reader.send(item, arrival):
                counters.send_errors += 1

    def _shed(self, received: Sequence[Received]) -> list[Received]:
        """What of the wake-up to answer (`netboot.port67.shedding`), decided before any
        is dissected (the message type is peeked); the rest is counted, unread."""
        waiting = [
            Waiting(peek_message_type(item.datagram) == MessageType.DISCOVER, item.waited)
            for item in received
        ]
        decided = plan(waiting, self.shedding)
        if decided.late or decided.discovers:
            counters = self.dispatcher.counters
            counters.datagrams += len(decided.late) + len(decided.discovers)
            counters.shed_late += len(decided.late)
            counters.shed_discovers += len(decided.discovers)
            self._log_shedding()
        return [received[i] for i in decided.answer]

    def _log_shedding(self) -> None:
        """Once a minute at most: how much was shed since the last line."""
        counters = self.dispatcher.counters
        if not self._bug_log.allow("shed", self.reactor.seconds()):
            return
        late = counters.shed_late - self._shed_logged[0]
        discovers = counters.shed_discovers - self._shed_logged[1]
        self._shed_logged = (counters.shed_late, counters.shed_discovers)
        log.warn(
            "DHCP overloaded: dropped {late} requests that waited too long (DISCOVERs over"
            " {discover_deadline} s, others over {deadline} s) and {discovers} DISCOVERs beyond"
            " {budget} per wake-up, unanswered; the clients retry (counted in shed_late and"
            " shed_discovers; logged at most once a minute)",
            late=late,
            discovers=discovers,
            discover_deadline=self.shedding.discover_deadline,
            deadline=self.shedding.deadline,
            budget=f"{self.shedding.discovers}-{self.shedding.young_discovers}",
        )

    def _answer(self, packet: DhcpPacket, arrival: Arrival) -> list[Outgoing]:
        try:
            return self.dispatcher.answer(packet, arrival)
        except Exception:  # noqa: BLE001 - the datagram boundary: a bug must not stop port 67
            self.dispatcher.counters.handler_errors += 1
            if self._bug_log.allow("handler", self.reactor.seconds()):
                log.failure(
                    "bug: DHCP datagram from {client} crashed its handler; dropped "
                    "(further crashes are counted, not logged, for a minute)",
                    client=join_host_port(*arrival.source),
                )
            return []

    def _withhold_leased(
        self, replies: list[tuple[Outgoing, Arrival]], error: Exception
    ) -> list[tuple[Outgoing, Arrival]]:
        """The batch did not commit: only the replies that promise no lease may leave."""
        kept = [(item, arrival) for item, arrival in replies if not item.leased]
        counters = self.dispatcher.counters
        counters.commit_errors += 1
        counters.withheld_replies += len(replies) - len(kept)
        if self._bug_log.allow("commit", self.reactor.seconds()):
            log.error(
                "lease database: a batch of {count} DHCP replies did not commit ({error});"
                " their leases were withheld and the clients will retry (further failures"
                " are counted, not logged, for a minute)",
                count=len(replies) - len(kept),
                error=str(error),
            )
        return kept
