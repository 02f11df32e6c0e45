"""Router advertisements on lab nets (opt-in): lifetime 0 for iPXE, or the DHCPv6 lab's.

One raw ICMPv6 socket per served interface, filtered to RS messages, in the
all-routers group ff02::2; each RS gets `netboot.dhcp.router_advertisement`'s
message back to the all-nodes group ff02::1 with hop limit 255, from the
interface's link-local address (the kernel picks it). See that module for
why.

With a prefix (`[dhcp6] router_advertisements`) the message is the managed
RA (the pool's /64, M and O set), and it is also sent unsolicited: every
10-30 s after a faster start, and an answer to an RS waits until 3 s after
the last multicast RA (RFC 4861 6.2.4, 6.2.6; docs/protocols/dhcpv6.md §13).
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Network
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netboot.dhcp.router_advertisement import (
    HOP_LIMIT,
    ROUTER_SOLICITATION,
    is_router_solicitation,
    lifetime_zero_advertisement,
    managed_advertisement,
    solicited_send_time,
    unsolicited_delay,
)
from netboot_services.counters import Counters
from netboot_services.dhcp import SO_BINDTODEVICE
from netboot_services.interfaces import interface_mac

log = Logger(namespace="netboot.ra")

ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
ICMP6_FILTER = 1


@dataclass
class RaCounters(Counters):
    solicitations: int = 0
    advertisements: int = 0
    unsolicited: int = 0
    """Periodic RAs of a DHCPv6 lab net (also in `advertisements`)."""


@implementer(IReadDescriptor)
class _Responder:
    def __init__(
        self,
        sock: socket.socket,
        interface: str,
        advertisement: bytes,
        counters: RaCounters,
        reactor: Any,
        periodic: bool,
        draw: Callable[[], float],
    ) -> None:
        self.sock = sock
        self.interface = interface
        self.index = socket.if_nametoindex(interface)
        self.advertisement = advertisement
        self.counters = counters
        self.reactor = reactor
        self.periodic = periodic
        """Managed RAs: sent unsolicited too, multicast RAs kept 3 s apart."""
        self.draw = draw
        self.sent_unsolicited = 0
        self.last_multicast: float | None = None
        self.pending: Any = None
        """The next scheduled RA (a reactor call), or None."""

    def start(self) -> None:
        if self.periodic:
            self._unsolicited()

    def stop(self) -> None:
        if self.pending is not None and self.pending.active():
            self.pending.cancel()
        self.pending = None

    def _unsolicited(self, solicited: bool = False) -> None:
        """Send the RA that was due, and schedule the next periodic one."""
        self.pending = None
        if self._advertise() and not solicited:
            self.counters.unsolicited += 1
        self._schedule(unsolicited_delay(self.sent_unsolicited, self.draw()))
        if not solicited:
            self.sent_unsolicited += 1

    def _schedule(self, delay: float, solicited: bool = False) -> None:
        self.stop()
        self.pending = self.reactor.callLater(delay, self._unsolicited, solicited)

    def _advertise(self) -> bool:
        try:
            self.sock.sendto(self.advertisement, (ALL_NODES, 0, 0, self.index))
        except OSError as error:
            log.warn("cannot send an RA on {interface}: {error}", interface=self.interface,
                     error=str(error))  # fmt: skip
            return False
        self.counters.advertisements += 1
        self.last_multicast = self.reactor.seconds()
        return True

    def _answer(self) -> str:
        """Answer an RS: at once, or (managed RAs) by moving the next RA to the earliest
        moment RFC 4861 allows; the periodic schedule continues from there."""
        if not self.periodic:
            self._advertise()
            return "answered with lifetime 0"
        now = self.reactor.seconds()
        when = solicited_send_time(now, self.last_multicast)
        if self.pending is not None and self.pending.getTime() <= when:
            return "the next RA is due sooner"
        self._schedule(when - now, solicited=True)
        return f"managed RA in {when - now:.1f} s"

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:  # noqa: N802
        return f"ra({self.interface})"

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        self.sock.close()

    def doRead(self) -> None:  # noqa: N802
        for _ in range(16):
            try:
                message, source = self.sock.recvfrom(1500)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.warn("RA socket {interface}: {error}", interface=self.interface, error=error)
                return
            if not is_router_solicitation(message):
                continue
            self.counters.solicitations += 1
            log.debug(
                "router solicitation from {source} on {interface}: {answer}",
                source=source[0],
                interface=self.interface,
                answer=self._answer(),
            )


def open_responder_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        # ICMP6_FILTER: a bit set blocks that type; let only solicitations through.
        blocked = [0xFFFFFFFF] * 8
        blocked[ROUTER_SOLICITATION >> 5] &= ~(1 << (ROUTER_SOLICITATION & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *blocked))
        index = socket.if_nametoindex(interface)
        group = socket.inet_pton(socket.AF_INET6, ALL_ROUTERS) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class RouterAdvertisementService(Service):
    """Answers RS on each named interface while running; with a prefix, also advertises
    the DHCPv6 lab's managed RA periodically."""

    def __init__(
        self,
        reactor: Any,
        interfaces: tuple[str, ...],
        prefix: IPv6Network | None = None,
        draw: Callable[[], float] = random.random,
        router_lifetime: int = 0,
    ) -> None:
        self.reactor = reactor
        self.interfaces = interfaces
        self.prefix = prefix
        """The DHCPv6 pool's /64 (managed RAs); None: lifetime-0 answers only."""
        self.router_lifetime = router_lifetime
        """The managed RAs' router lifetime (`[dhcp6] router_lifetime`)."""
        self.draw = draw
        self.counters = RaCounters()
        self.responders: list[_Responder] = []

    def startService(self) -> None:  # noqa: N802
        super().startService()
        for interface in self.interfaces:
            sock = open_responder_socket(interface)
            mac = interface_mac(interface)
            if self.prefix is None:
                advertisement = lifetime_zero_advertisement(mac)
            else:
                advertisement = managed_advertisement(mac, self.prefix, self.router_lifetime)
            responder = _Responder(
                sock,
                interface,
                advertisement,
                self.counters,
                self.reactor,
                periodic=self.prefix is not None,
                draw=self.draw,
            )
            self.responders.append(responder)
            self.reactor.addReader(responder)
            responder.start()
            if self.prefix is None:
                log.info(
                    "answering IPv6 router solicitations on {interface} with lifetime 0 "
                    "(lab mode: ends iPXE's IPv6 wait)",
                    interface=interface,
                )
            else:
                log.info(
                    "advertising {prefix} on-link with M and O set on {interface}, "
                    "router lifetime 0 (lab mode: clients ask DHCPv6)",
                    prefix=str(self.prefix),
                    interface=interface,
                )

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        for responder in self.responders:
            responder.stop()
            self.reactor.removeReader(responder)
            responder.sock.close()
        self.responders.clear()
