"""UDP port 547: the DHCPv6 listener (docs/protocols/dhcpv6.md §14).

Clients send every DHCPv6 message to the link-scoped group ff02::1:2
(ALL_DHCP_RELAY_AGENTS_AND_SERVERS), so the server must know which interface
a message came in on: the answer goes back out of it, and the boot URLs name
that interface's address. As on port 67, this module reads the socket itself,
with `recvmsg` and IPV6_PKTINFO (the destination and the interface index),
joins ff02::1:2 on each served interface, and sends with the interface as the
scope id, which link-local and multicast destinations need. With
`server.interfaces` set there is one socket per interface (SO_BINDTODEVICE),
otherwise one for all, joined on every interface.

In proxy mode the service also owns UDP 4011 over IPv6 (`boot_server_port`):
EDK2's PXEv6, after a proxy offer (an Advertise with boot options and no
IA_NA), sends its boot-service Request by unicast to the host of our boot file
URL, from and to port 4011, and reads the Reply there (docs/protocols/dhcpv6.md
§12). Those sockets join no group and go to the same decision; the reply
leaves from the socket the Request came in on, so from port 4011.

What to answer is the pure core's (`netboot.dhcp6`'s `answer`): this adapter
is handed that decision as a function, with the settings it decides with
(swapped whole on reload, like every service's), and only carries its
`Outcome6` out: sends the replies, counts the kind, logs one line per
outcome on `netboot.dhcp6` (fields `outcome`, `mac`, `duid`, `address`,
`client`; the lab reads them), and notes the client's step in the tracker so
its journey shows the DHCPv6 step and later TFTP/HTTP from the leased address
are tied to its MAC. A datagram that does not parse is counted and logged at
most once per client per minute; a decision that raises is a bug of ours,
counted and logged with its traceback, never allowed to stop the reactor.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface
from typing import Any, Generic, TypeVar

from twisted.application.service import Service
from twisted.logger import Logger

from netboot.dhcp.pxe import ClientKind
from netboot.dhcp6.outcome import Arrival6, Outcome6, Outgoing6
from netboot.dhcp6wire.options import ALL_DHCP_RELAY_AGENTS_AND_SERVERS
from netboot.dhcp6wire.packet import Dhcp6Message, RelayMessage, parse_message
from netboot.errors import MalformedPacket
from netboot.hostport import join_host_port
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters
from netboot_services.dhcp import (
    READS_PER_WAKEUP,
    SO_BINDTODEVICE,
    Ancillary,
    PacketReader,
    stop_reading,
)
from netboot_services.interfaces import ipv6_addresses
from netboot_services.ratelimit import OncePerInterval

log = Logger(namespace="netboot.dhcp6")

_PKTINFO = struct.Struct("@16sI")  # struct in6_pktinfo: ipi6_addr, ipi6_ifindex
ADDRESSES_MAX_AGE = 30.0
"""Seconds an interface's address list is trusted before iproute2 is asked again: an
address added after start (DAD done, an admin's change) shows in URLs soon."""


S = TypeVar("S")
Message6 = Dhcp6Message | RelayMessage
Decide6 = Callable[[Message6, Arrival6, S, float], Outcome6]
"""The decision: message, arrival, settings, now -> outcome (the core's `answer` with
its lease store bound in)."""


@dataclass
class Dhcp6Counters(Counters):
    datagrams: int = 0
    malformed: int = 0
    replies: int = 0
    send_errors: int = 0
    handler_errors: int = 0
    """Datagrams that crashed the decision: bugs of ours, logged with a traceback."""
    boot_server_datagrams: int = 0
    """Of `datagrams`, those that came in on the boot-server port (4011): EDK2's
    boot-service Requests after our proxy offers."""
    advertises: int = 0
    bound: int = 0
    released: int = 0
    declined: int = 0
    confirmed: int = 0
    not_on_link: int = 0
    info_replies: int = 0
    boot_info: int = 0
    no_addrs: int = 0
    no_binding: int = 0
    ignored: int = 0


COUNTERS: Mapping[str, str] = {
    "advertise": "advertises",
    "bound": "bound",
    "released": "released",
    "declined": "declined",
    "confirmed": "confirmed",
    "not_on_link": "not_on_link",
    "info_reply": "info_replies",
    "boot_info": "boot_info",
    "no_addrs": "no_addrs",
    "no_binding": "no_binding",
    "ignored": "ignored",
    "malformed": "malformed",
}
"""The counter of each outcome kind (every `Dhcp6OutcomeKind` value)."""

JOURNEY_STAGES: Mapping[str, str | None] = {
    "advertise": "dhcp offer",
    "bound": "dhcp ack",
    "boot_info": "proxy offer",
    "info_reply": "inform ack",
    "released": "dhcp release",
    "declined": "dhcp decline",
    "confirmed": None,
    "not_on_link": None,
    "no_addrs": None,
    "no_binding": None,
    "ignored": None,
    "malformed": None,
}
"""The client tracker's step per kind: the journey's stages are family-blind, so an
Advertise is the offer and a binding Reply the ack, as on port 67."""

QUIET = frozenset({"ignored"})
"""Kinds logged at debug only: in proxy mode every non-boot client beside the site's
server is ignored, and that is no news."""
BOOT_CLIENTS = frozenset({ClientKind.PXE, ClientKind.HTTP_BOOT, ClientKind.IPXE})


def describe_client(source: IPv6Address, port: int, interface: str) -> str:
    """`[addr]:port`, a link-local address with its `%interface` scope."""
    return join_host_port(host_text(source, interface), port)


def host_text(address: IPv6Address, interface: str) -> str:
    """An address as logs, the status page and journeys show it: link-local with `%scope`."""
    return f"{address}%{interface}" if address.is_link_local else str(address)


class _Dhcp6Socket(PacketReader):
    """A port-547 socket: each datagram comes with IPV6_PKTINFO."""

    protocol = "dhcp6"
    ancillary_size = socket.CMSG_SPACE(_PKTINFO.size)
    logger = log

    def __init__(
        self,
        sock: socket.socket,
        listener: Dhcp6Service[Any],
        label: str,
        boot_server: bool = False,
    ) -> None:
        super().__init__(sock, label)
        self.listener = listener
        self.boot_server = boot_server
        """A port-4011 socket (EDK2's boot-service Requests), not a port-547 one."""

    def received(self, datagram: bytes, ancillary: Ancillary, source: Any) -> None:
        destination, ifindex = IPv6Address(0), source[3]
        for level, kind, data in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                packed, ifindex = _PKTINFO.unpack(data[: _PKTINFO.size])
                destination = IPv6Address(packed)
        host = IPv6Address(source[0].partition("%")[0])
        self.listener.datagram(self, datagram, host, source[1], destination, ifindex)

    def send(self, outgoing: Outgoing6) -> bool:
        """Send one reply; a link-local or multicast destination is scoped to its interface."""
        destination = outgoing.destination
        scoped = destination.is_link_local or destination.is_multicast
        scope = outgoing.interface_index if scoped else 0
        try:
            self.sock.sendto(outgoing.payload, (str(destination), outgoing.port, 0, scope))
        except OSError as error:
            log.warn(
                "cannot send a DHCPv6 reply to {destination}: {error}",
                destination=f"[{destination}]:{outgoing.port}",
                error=str(error),
            )
            return False
        return True


def open_socket(port: int, interface: str | None, groups: Sequence[int]) -> socket.socket:
    """An IPv6-only UDP socket on `port`, joined to ff02::1:2 on each interface index."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        if interface:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        sock.bind(("::", port))
        for index in groups:
            group = ALL_DHCP_RELAY_AGENTS_AND_SERVERS.packed + struct.pack("@I", index)
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
            except OSError as error:
                if interface:
                    raise
                # Serving every interface: one without multicast (lo) cannot join.
                log.debug(
                    "not joining {group} on interface {index}: {error}",
                    group=str(ALL_DHCP_RELAY_AGENTS_AND_SERVERS),
                    index=index,
                    error=str(error),
                )
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Dhcp6Service(Service, Generic[S]):
    """Owns the port-547 sockets and carries the decision's outcomes to the wire."""

    def __init__(
        self,
        decide: Decide6[S],
        settings: S,
        reactor: Any,
        port: int,
        interfaces: tuple[str, ...],
        clients: ClientTracker | None = None,
        addresses_of: Callable[[str], list[IPv6Interface]] = ipv6_addresses,
        boot_server_port: int | None = None,
    ) -> None:
        self.decide = decide
        self.settings = settings
        """What `decide` decides with; `apply_runtime` swaps it whole on reload."""
        self.reactor = reactor
        self.port = port
        self.interfaces = interfaces
        self.boot_server_port = boot_server_port
        """The IPv6 PXE boot server's port (4011; proxy mode), None: not served."""
        self.clients = clients if clients is not None else ClientTracker()
        self.addresses_of = addresses_of
        self.counters = Dhcp6Counters()
        self.sockets: list[_Dhcp6Socket] = []
        self._addresses: dict[str, tuple[float, tuple[IPv6Interface, ...]]] = {}
        self._names: dict[int, str] = {}
        self._malformed_log = OncePerInterval()
        self._bug_log = OncePerInterval()

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._listen(self.port, boot_server=False)
        if self.boot_server_port is not None:
            self._listen(self.boot_server_port, boot_server=True)

    def _listen(self, port: int, *, boot_server: bool) -> None:
        """`port` on each served interface (or one socket for all). Port 547 joins
        ff02::1:2 there; the boot server's 4011 joins nothing, since EDK2 sends its
        boot-service Request by unicast to our boot file URL's host."""
        for interface in self.interfaces or (None,):
            groups: list[int]
            if boot_server:
                groups = []
            elif interface:
                groups = [socket.if_nametoindex(interface)]
            else:
                groups = [index for index, _ in socket.if_nameindex()]
            sock = open_socket(port, interface, groups)
            port = sock.getsockname()[1]  # a picked port: every interface on the same one
            reader = _Dhcp6Socket(sock, self, f"{interface or 'all'}:{port}", boot_server)
            self.sockets.append(reader)
            self.reactor.addReader(reader)
            where = f"interface {interface}" if interface else "every interface"
            if boot_server:
                log.info("DHCPv6 PXE boot server listening on UDP {port} ({where})",
                         port=port, where=where)  # fmt: skip
            else:
                log.info("DHCPv6 listening on UDP {port} ({where}), joined {group}",
                         port=port, where=where,
                         group=str(ALL_DHCP_RELAY_AGENTS_AND_SERVERS))  # fmt: skip

    def stopService(self) -> None:  # noqa: N802
        super().stopService()
        stop_reading(self.reactor, self.sockets)

    @property
    def bound_port(self) -> int | None:
        """The port-547 role's port as bound (one port, on every interface socket)."""
        ports = [r.sock.getsockname()[1] for r in self.sockets if not r.boot_server]
        return ports[0] if ports else None

    @property
    def bound_boot_server_port(self) -> int | None:
        """The port-4011 role's port as bound; None when it is not served."""
        ports = [r.sock.getsockname()[1] for r in self.sockets if r.boot_server]
        return ports[0] if ports else None

    def interface_name(self, index: int) -> str:
        name = self._names.get(index)
        if name is None:
            try:
                name = socket.if_indextoname(index)
            except OSError:
                name = str(index)
            self._names[index] = name
        return name

    def server_addresses(self, interface: str, now: float) -> tuple[IPv6Interface, ...]:
        """The interface's addresses, read again once they are `ADDRESSES_MAX_AGE` old."""
        cached = self._addresses.get(interface)
        if cached is not None and now - cached[0] < ADDRESSES_MAX_AGE:
            return cached[1]
        try:
            found = tuple(self.addresses_of(interface))
        except OSError as error:
            log.warn("cannot list {interface}'s addresses: {error}", interface=interface,
                     error=str(error))  # fmt: skip
            found = cached[1] if cached is not None else ()
        self._addresses[interface] = (now, found)
        return found

    def datagram(
        self,
        reader: _Dhcp6Socket,
        datagram: bytes,
        source: IPv6Address,
        source_port: int,
        destination: IPv6Address,
        ifindex: int,
    ) -> None:
        self.counters.datagrams += 1
        if reader.boot_server:
            self.counters.boot_server_datagrams += 1
        now = self.reactor.seconds()
        interface = self.interface_name(ifindex)
        client = describe_client(source, source_port, interface)
        try:
            message = parse_message(datagram)
        except MalformedPacket as error:
            self._malformed(host_text(source, interface), client, str(error), now)
            return
        arrival = Arrival6(
            source=source,
            source_port=source_port,
            interface=interface,
            interface_index=ifindex,
            destination=destination,
            server_addresses=self.server_addresses(interface, now),
        )
        try:
            outcome = self.decide(message, arrival, self.settings, now)
        except Exception:  # noqa: BLE001 - the datagram boundary: a bug must not stop port 547
            self.counters.handler_errors += 1
            if self._bug_log.allow("decide", now):
                log.failure(
                    "bug: DHCPv6 datagram from {client} crashed its decision; dropped "
                    "(further crashes are counted, not logged, for a minute)",
                    client=client,
                )
            return
        self.carry_out(reader, message, outcome, arrival, client, now)

    def carry_out(
        self,
        reader: _Dhcp6Socket,
        message: Message6,
        outcome: Outcome6,
        arrival: Arrival6,
        client: str,
        now: float,
    ) -> None:
        """Count, log, note and send what the decision said."""
        kind = str(outcome.kind)
        if kind == "malformed":
            self._malformed(host_text(arrival.source, arrival.interface), client,
                            outcome.reason, now)  # fmt: skip
            return
        counter = COUNTERS[kind]
        setattr(self.counters, counter, getattr(self.counters, counter) + 1)
        name = message_name(message)
        self._note(outcome, arrival, kind, name, now)
        fields: dict[str, object] = {"outcome": kind, "client": client}
        if outcome.mac is not None:
            fields["mac"] = str(outcome.mac)
        if outcome.client_duid is not None:
            fields["duid"] = outcome.client_duid.hex()
        if outcome.addresses:
            fields["address"] = str(outcome.addresses[0])
        if outcome.boot_url is not None:
            fields["boot_url"] = outcome.boot_url
        (log.debug if kind in QUIET else log.info)(
            "DHCPv6 {message} from {client} on {interface}: {outcome} ({reason})",
            message=name,
            interface=arrival.interface,
            reason=outcome.reason,
            **fields,
        )
        for outgoing in outcome.replies:
            if reader.send(outgoing):
                self.counters.replies += 1
            else:
                self.counters.send_errors += 1

    def _note(self, outcome: Outcome6, arrival: Arrival6, kind: str, name: str, now: float) -> None:
        """The client's step: keyed by the leased address (else its own), tied to its MAC,
        so TFTP and HTTP from that address later join the same journey."""
        stage = JOURNEY_STAGES[kind]
        if stage is None:
            return
        if outcome.addresses:
            address = str(outcome.addresses[0])
        else:
            address = host_text(arrival.source, arrival.interface)
        wants_boot = outcome.client_kind in BOOT_CLIENTS
        self.clients.note(
            address,
            stage,
            now,
            f"DHCPv6 {name} -> {kind}: {outcome.reason}",
            str(outcome.mac) if outcome.mac is not None else None,
            kind="pc" if wants_boot else None,
            firmware="ipxe" if outcome.client_kind is ClientKind.IPXE else None,
        )

    def _malformed(self, host: str, client: str, reason: str, now: float) -> None:
        self.counters.malformed += 1
        if self._malformed_log.allow(host, now):
            log.warn(
                "malformed DHCPv6 packet from {client}: {reason} (further ones from this "
                "client are counted, not logged, for a minute)",
                client=client,
                reason=reason,
                outcome="malformed",
            )


def message_name(message: Message6) -> str:
    """The client's message type under any relays, as logs name it (`SOLICIT via relay`)."""
    inner = message.innermost if isinstance(message, RelayMessage) else message
    kind = inner.kind
    name = kind.name if kind is not None else f"type {inner.msg_type}"
    return f"{name} via relay" if isinstance(message, RelayMessage) else name


__all__ = [
    "READS_PER_WAKEUP",
    "Arrival6",
    "Decide6",
    "Dhcp6Counters",
    "Dhcp6Service",
    "Outcome6",
    "Outgoing6",
]
