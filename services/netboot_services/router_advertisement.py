"""Answering Router Solicitations with a lifetime-0 RA, for lab nets (opt-in).

One raw ICMPv6 socket per served interface, filtered to RS messages, in the
all-routers group ff02::2; each RS gets `netboot.dhcp.router_advertisement`'s
message back to the all-nodes group ff02::1 with hop limit 255, from the
interface's link-local address (the kernel picks it). See that module for
why.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path
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
)
from netboot_services.counters import Counters
from netboot_services.dhcp import SO_BINDTODEVICE

log = Logger(namespace="netboot.ra")

ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
ICMP6_FILTER = 1


@dataclass
class RaCounters(Counters):
    solicitations: int = 0
    advertisements: int = 0


@implementer(IReadDescriptor)
class _Responder:
    def __init__(
        self, sock: socket.socket, interface: str, mac: bytes, counters: RaCounters
    ) -> None:
        self.sock = sock
        self.interface = interface
        self.index = socket.if_nametoindex(interface)
        self.advertisement = lifetime_zero_advertisement(mac)
        self.counters = counters

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
            try:
                self.sock.sendto(self.advertisement, (ALL_NODES, 0, 0, self.index))
            except OSError as error:
                log.warn("cannot send an RA on {interface}: {error}", interface=self.interface,
                         error=str(error))  # fmt: skip
                continue
            self.counters.advertisements += 1
            log.debug(
                "router solicitation from {source} on {interface}: answered with lifetime 0",
                source=source[0],
                interface=self.interface,
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


def interface_mac(interface: str) -> bytes:
    text = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))


class RouterAdvertisementService(Service):
    """Answers RS on each named interface while running."""

    def __init__(self, reactor: Any, interfaces: tuple[str, ...]) -> None:
        self.reactor = reactor
        self.interfaces = interfaces
        self.counters = RaCounters()
        self.responders: list[_Responder] = []

    def startService(self) -> None:  # noqa: N802
        super().startService()
        for interface in self.interfaces:
            sock = open_responder_socket(interface)
            responder = _Responder(sock, interface, interface_mac(interface), self.counters)
            self.responders.append(responder)
            self.reactor.addReader(responder)
            log.info(
                "answering IPv6 router solicitations on {interface} with lifetime 0 "
                "(lab mode: ends iPXE's IPv6 wait)",
                interface=interface,
            )

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        for responder in self.responders:
            self.reactor.removeReader(responder)
            responder.sock.close()
        self.responders.clear()
