"""TFTP's and HTTP's listeners for both families: IPv4 through Twisted, IPv6 on our own sockets.

Why not `listenUDP`/`listenTCP` with `::`: Twisted leaves IPV6_V6ONLY at the
system's default (0 on Linux), so a `::` listener also takes IPv4, collides
with the 0.0.0.0 one on the same port, and would name IPv4 clients
`::ffff:a.b.c.d`. Here every IPv6 socket is made with IPV6_V6ONLY=1 and bound
to `(address, port, 0, scope id)`, then handed to Twisted (`adoptStreamPort`)
or read by `ScopedUdpPort`.

Why our own UDP reader: Twisted's UDP port hands a datagram's sender on as
`addr[:2]`, dropping the scope id, so a link-local client (a UEFI PXEv6 ROM
may talk from `fe80::…`) could be neither answered nor named. `ScopedUdpPort`
names the sender `fe80::…%nb0` (the zone as the interface's name, which
Python's `sendto` resolves back), the form logs and the status page show.

IPv6 sockets are bound with IP_FREEBIND: an address the lab or a network
manager has just added is still tentative (duplicate address detection) for
a second or so, and binding it would fail with EADDRNOTAVAIL although it
will work shortly.
"""

from __future__ import annotations

import errno
import socket
from functools import lru_cache
from typing import Any

from twisted.internet.address import IPv6Address
from twisted.logger import Logger

from netboot.hostport import join_host_port
from netboot_services.ratelimit import OncePerInterval

log = Logger(namespace="netboot.udp")

Address = tuple[str, int]
READS_PER_WAKEUP = 64
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


def is_ipv6(host: str) -> bool:
    """Whether a listen address or peer host is IPv6 (`::`, `fd4e::1`, `fe80::1%nb0`)."""
    return ":" in host


@lru_cache(maxsize=64)
def zone_name(scope_id: int) -> str:
    """An interface index as its name (the zone of a link-local address); the number
    when the interface is gone."""
    try:
        return socket.if_indextoname(scope_id)
    except OSError:
        return str(scope_id)


def scoped_host(host: str, scope_id: int) -> str:
    """`host`, with `%zone` when the kernel gave a scope id (link-local peers)."""
    return f"{host}%{zone_name(scope_id)}" if scope_id and "%" not in host else host


def peer_address(address: tuple[Any, ...]) -> Address:
    """A `recvfrom` address as (host, port), an IPv6 link-local host with its zone."""
    if len(address) == 4 and address[3]:
        return scoped_host(address[0], address[3]), address[1]
    return address[0], address[1]


def listen_label(host: str) -> str:
    """A listen address as the "listening on {address}:{port}" lines name it."""
    return "0.0.0.0" if not host else f"[{host}]" if is_ipv6(host) else host  # noqa: S104


def ipv6_socket(kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    """A non-blocking IPv6-only socket bound to `host` (`::`, or an address, link-local
    with `%zone`) and `port`."""
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if host != "::":
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        # getaddrinfo turns `fe80::1%nb0` into (address, port, 0, index of nb0).
        sockaddr = socket.getaddrinfo(host, port, socket.AF_INET6, kind, 0, socket.AI_NUMERICHOST)
        sock.bind(sockaddr[0][4])
    except BaseException:
        sock.close()
        raise
    return sock


def listen_tcp(reactor: Any, port: int, factory: Any, host: str, backlog: int = 50) -> Any:
    """A listening TCP port on `host` ("" for every IPv4 address, `::` for every IPv6)."""
    if not is_ipv6(host):
        return reactor.listenTCP(port, factory, interface=host)
    sock = ipv6_socket(socket.SOCK_STREAM, host, port)
    try:
        sock.listen(backlog)
        return reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
    finally:
        sock.close()  # Twisted holds its own duplicate of the descriptor


def listen_udp(reactor: Any, port: int, protocol: Any, host: str) -> Any:
    """A UDP port on `host`; IPv6 ones name link-local senders with their zone."""
    if not is_ipv6(host):
        return reactor.listenUDP(port, protocol, interface=host)
    scoped = ScopedUdpPort(reactor, ipv6_socket(socket.SOCK_DGRAM, host, port), protocol)
    scoped.start()
    return scoped


class ScopedUdpPort:
    """An IPv6 UDP socket read for a `DatagramProtocol`, as Twisted's port would, but
    with each sender's zone kept; also the protocol's transport (`write`)."""

    def __init__(self, reactor: Any, sock: socket.socket, protocol: Any) -> None:
        self.reactor = reactor
        self.socket = sock
        self.protocol = protocol
        self._bug_log = OncePerInterval()

    def start(self) -> None:
        self.protocol.makeConnection(self)
        self.reactor.addReader(self)

    def getHost(self) -> IPv6Address:  # noqa: N802
        host, port, flow, scope = self.socket.getsockname()
        return IPv6Address("UDP", scoped_host(host, scope), port, flow, scope)

    def write(self, datagram: bytes, address: Address) -> None:
        """Raises OSError when the kernel refuses the datagram."""
        self.socket.sendto(datagram, address)

    def stopListening(self) -> None:  # noqa: N802
        if self.socket.fileno() < 0:
            return
        self.reactor.removeReader(self)
        self.socket.close()
        self.protocol.doStop()

    # -- what the reactor calls (IReadDescriptor) -------------------------------

    def fileno(self) -> int:
        return self.socket.fileno()

    def logPrefix(self) -> str:  # noqa: N802
        return "udp6"

    def connectionLost(self, reason: object) -> None:  # noqa: N802
        self.stopListening()

    def doRead(self) -> None:  # noqa: N802
        for _ in range(READS_PER_WAKEUP):
            try:
                datagram, address = self.socket.recvfrom(65536)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EBADF, errno.ENOTSOCK):
                    return
                continue  # an ICMP error left on the socket; reading it cleared it
            peer = peer_address(address)
            try:
                self.protocol.datagramReceived(datagram, peer)
            except Exception:  # noqa: BLE001 - the datagram boundary: a bug must not stop the port
                if self._bug_log.allow("handler", self.reactor.seconds()):
                    log.failure(
                        "bug: datagram from {client} crashed its handler; dropped "
                        "(further crashes are counted, not logged, for a minute)",
                        client=join_host_port(*peer),
                    )
