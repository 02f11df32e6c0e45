"""Many UDP sockets behind one reactor reader: TFTP's transfer ports.

Why not a Twisted UDP port per transfer: for each datagram Twisted's reactor
enters a logging context (`callWithLogger`), and its `Port.doRead` reads until
the socket says EAGAIN, a second system call and a raised exception per
datagram. A lock-step transfer moves one datagram each way per block, so in a
boot storm of 50 lock-step clients that overhead was a quarter of the server's
time per block.

Here every transfer socket is registered with one inner epoll, and the reactor
watches only the inner epoll's descriptor. When it is readable, `doRead` asks
it which sockets have data and reads exactly one datagram from each (the
epoll is level-triggered, so a socket with more waiting is reported again in
the next round), then asks again, for up to `MAX_ROUNDS` rounds: a busy server
handles many datagrams per reactor wake-up, and no socket waits behind another
one's backlog. The bound keeps the reactor's timers and other ports served.

Busy polling, for the quiet case: a lock-step transfer alone is bound by
latency, and going back to sleep in the reactor costs more than the block
itself. When the owner's `spin_budget()` says so, `doRead` keeps asking the
inner epoll (without blocking) for that long after the last datagram before
returning; datagrams found that way are handed over with `polled=True`, and a
spin that found nothing calls `spin_missed()`.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

from twisted.logger import Logger
from twisted.python.failure import Failure

from netboot.hostport import join_host_port
from netboot_services.listeners import ipv6_socket, is_ipv6, peer_address
from netboot_services.ratelimit import OncePerInterval

log = Logger(namespace="netboot.udp")

Address = tuple[str, int]
Receive = Callable[[bytes, Address, bool], None]
"""Called with a datagram, its sender, and whether busy polling found it."""

MAX_ROUNDS = 8
"""Rounds of one datagram per ready socket before the reactor gets its turn."""
READ_SIZE = 65536


def _bound_socket(interface: str) -> socket.socket:
    """A non-blocking UDP socket on an ephemeral port of `interface`, either family."""
    if is_ipv6(interface):
        return ipv6_socket(socket.SOCK_DGRAM, interface, 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((interface, 0))
    except BaseException:
        sock.close()
        raise
    return sock


class MuxedPort:
    """One socket of the mux: its port number, a way to send, and a way to close."""

    def __init__(self, mux: DatagramMux, sock: socket.socket, receive: Receive) -> None:
        self.mux = mux
        self.socket = sock
        self.receive = receive
        self.number: int = sock.getsockname()[1]
        self.send: Callable[[bytes, Address], object] = sock.sendto
        """Send straight on the socket; raises OSError when the kernel refuses."""

    def close(self) -> None:
        self.mux.forget(self)


class DatagramMux:
    """The inner epoll and its sockets, registered with the reactor while any is open."""

    def __init__(
        self,
        reactor: object,
        spin_budget: Callable[[], float] = lambda: 0.0,
        spin_missed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`clock` times busy polls only; it is never protocol time."""
        self.reactor = reactor
        self.spin_budget = spin_budget
        self.spin_missed = spin_missed
        self.clock = clock
        self._epoll: select.epoll | None = None
        self._ports: dict[int, MuxedPort] = {}
        self._bug_log = OncePerInterval()

    def open(self, interface: str, receive: Receive) -> MuxedPort:
        """A new socket on an ephemeral port of `interface` ("" for every IPv4 address,
        `::` for every IPv6 one, `fe80::1%nb0` a link-local one)."""
        sock = _bound_socket(interface)
        try:
            if self._epoll is None:
                self._epoll = select.epoll()
                self.reactor.addReader(self)  # type: ignore[attr-defined]
            self._epoll.register(sock.fileno(), select.EPOLLIN)
        except BaseException:
            sock.close()
            raise
        port = MuxedPort(self, sock, receive)
        self._ports[sock.fileno()] = port
        return port

    def forget(self, port: MuxedPort) -> None:
        fd = port.socket.fileno()
        if self._ports.pop(fd, None) is None:
            return
        if self._epoll is not None:
            self._epoll.unregister(fd)
        port.socket.close()
        if not self._ports:
            self.close()

    def close(self) -> None:
        """Close every socket and stop being watched by the reactor."""
        for port in list(self._ports.values()):
            port.socket.close()
        self._ports.clear()
        if self._epoll is not None:
            self.reactor.removeReader(self)  # type: ignore[attr-defined]
            self._epoll.close()
            self._epoll = None

    def __len__(self) -> int:
        return len(self._ports)

    # -- what the reactor calls (IReadDescriptor) -------------------------------

    def fileno(self) -> int:
        return -1 if self._epoll is None else self._epoll.fileno()

    def logPrefix(self) -> str:  # noqa: N802
        return "tftp-transfers"

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        self.close()

    def doRead(self) -> None:  # noqa: N802
        if self._epoll is None:
            return
        budget = self.spin_budget()
        clock = self.clock
        spin_until = clock() + budget if budget > 0 else 0.0
        polled = False
        rounds = 0
        while rounds < MAX_ROUNDS:
            epoll = self._epoll
            if epoll is None:
                return  # a handler closed the last port
            ready = epoll.poll(0)
            if ready:
                rounds += 1
                self._read_one_each(ready, polled)
                if budget > 0:
                    polled = True
                    spin_until = clock() + budget
            elif budget <= 0:
                return
            elif clock() > spin_until:
                self.spin_missed()
                return

    def _read_one_each(self, ready: list[tuple[int, int]], polled: bool) -> None:
        ports = self._ports
        for fd, _events in ready:
            port = ports.get(fd)
            if port is None:
                continue  # closed by a handler earlier in this round
            try:
                datagram, address = port.socket.recvfrom(READ_SIZE)
            except OSError:
                # Nothing after all, or the error an ICMP unreachable left on the
                # socket (reading clears it): the sender's timer takes it from here.
                continue
            try:
                # IPv4 senders come as (host, port); IPv6 ones with flow and scope ids.
                peer = address if len(address) == 2 else peer_address(address)
                port.receive(datagram, peer, polled)
            except Exception:  # noqa: BLE001 - the datagram boundary: a bug must not stop the others
                if self._bug_log.allow("handler", self.clock()):
                    log.failure(
                        "bug: datagram from {client} crashed its handler; dropped "
                        "(further crashes are counted, not logged, for a minute)",
                        client=join_host_port(*peer_address(address)),
                    )
