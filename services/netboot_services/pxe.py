"""The PXE handler on the shared port-67 listener (and the port-4011 boot server).

It claims what BSDP does not: PXE ROMs, iPXE and UEFI HTTP boot in proxy
mode; in full mode every DHCP client on the pool's subnet. Decisions come from
`netboot.dhcp` (`proxy.py`, `server.py`); this adapter supplies the clock
and the address a request arrived on, logs each client's journey by MAC,
feeds the client tracker, and in full mode warns about rival DHCP servers
whose offers it overhears on port 68.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from twisted.logger import Logger

from netboot.dhcp.boot import BootSettings
from netboot.dhcp.options import (
    BOOTREQUEST,
    PXE_BOOT_SERVER_PORT,
    SERVER_PORT,
    MessageType,
    Option,
)
from netboot.dhcp.packet import ZERO, DhcpPacket
from netboot.dhcp.proxy import Answer, Silence, proxy_answer
from netboot.dhcp.pxe import BootClient, ClientKind, classify
from netboot.dhcp.server import Event, LeaseServer
from netboot.errors import MalformedPacket
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters
from netboot_services.dhcp import Arrival, HandlerResult
from netboot_services.ratelimit import OncePerInterval

log = Logger(namespace="netboot.pxe")

RIVAL_WARNING_INTERVAL = 300.0


@dataclass
class PxeCounters(Counters):
    requests: int = 0
    proxy_offers: int = 0
    boot_server_acks: int = 0
    offers: int = 0
    acks: int = 0
    naks: int = 0
    releases: int = 0
    declines: int = 0
    informs: int = 0
    exhausted: int = 0
    ignored: int = 0
    rival_offers: int = 0


class PxeHandler:
    name = "pxe"

    def __init__(
        self,
        boot: BootSettings,
        clock: Callable[[], float],
        lease_server: LeaseServer | None = None,
        own_addresses: Callable[[], set[str]] = set,
    ) -> None:
        self.boot = boot
        self.clock = clock
        self.lease_server = lease_server
        self.own_addresses = own_addresses
        self.counters = PxeCounters()
        self.clients = ClientTracker()
        self.rivals: dict[str, float] = {}
        """Rival DHCP servers by server identifier, with when each was last heard."""
        self._rival_log = OncePerInterval(RIVAL_WARNING_INTERVAL)
        self._loud_log = OncePerInterval()

    @property
    def full_mode(self) -> bool:
        return self.lease_server is not None

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None:
        if packet.op != BOOTREQUEST:
            if self.full_mode:
                self._overheard(packet, arrival)
            return HandlerResult()
        if arrival.watch_only:
            return HandlerResult()  # a client's broadcast overheard on port 68
        client = classify(packet)
        leasing = self.lease_server is not None and not arrival.boot_server
        mac_wants_address = leasing and packet.message_type != MessageType.INFORM
        if client.kind is ClientKind.BSDP and not mac_wants_address:
            return None  # BSDP INFORMs are the BSDP handler's; Macs get addresses in full mode
        if not leasing and not client.wants_boot:
            return None  # plain DHCP in proxy mode: the site's server answers
        if arrival.local_address == ZERO:
            return HandlerResult(malformed="arrived without IP_PKTINFO; cannot tell our address")
        self.counters.requests += 1
        mac = str(packet.mac)
        message = _message_name(packet.message_type)
        try:
            outcome: Answer | Silence
            event: Event | None = None
            if leasing and self._on_pool_network(packet, arrival):
                assert self.lease_server is not None
                outcome, event = self.lease_server.answer(packet, client, arrival.local_address)
            elif client.wants_boot:
                outcome = self._proxy(packet, client, arrival)
            else:
                return None
        except MalformedPacket as error:
            return HandlerResult(malformed=str(error))
        now = self.clock()
        if not isinstance(outcome, Answer):
            self.counters.ignored += 1
            self._count_silence(packet, outcome.reason)
            if event is not None:
                self.clients.note(event.address, event.stage, now, outcome.reason, mac)
            if outcome.loud and self._loud_log.allow(f"{mac} {outcome.reason}", now):
                log.warn(
                    "{mac} {message}: {reason}",
                    mac=mac,
                    message=message,
                    reason=outcome.reason,
                    client=client.describe(),
                )
            else:
                log.debug(
                    "{mac} {message}: {reason}", mac=mac, message=message, reason=outcome.reason
                )
            return HandlerResult()
        self._count_answer(outcome)
        address = event.address if event is not None else _client_address(packet, arrival)
        stage = event.stage if event is not None else outcome.summary.split(":")[0].lower()
        self.clients.note(address, stage, now, f"{message} -> {outcome.summary}", mac)
        log.info(
            "{mac} {message} via {server}: {summary}",
            mac=mac,
            message=message,
            server=arrival.local_address,
            summary=outcome.summary,
            client=client.describe(),
            destination=f"{outcome.destination[0]}:{outcome.destination[1]}",
        )
        return HandlerResult(replies=((outcome.packet, outcome.destination),))

    def _proxy(self, packet: DhcpPacket, client: BootClient, arrival: Arrival) -> Answer | Silence:
        port = PXE_BOOT_SERVER_PORT if arrival.boot_server else SERVER_PORT
        return proxy_answer(packet, client, arrival.local_address, port, arrival.source, self.boot)

    def _on_pool_network(self, packet: DhcpPacket, arrival: Arrival) -> bool:
        """Leases only where the pool is: the receiving interface's subnet or a relay's."""
        assert self.lease_server is not None
        subnet = self.lease_server.network.subnet
        where = packet.giaddr if packet.giaddr != ZERO else arrival.local_address
        return IPv4Address(where) in subnet

    def _count_answer(self, answer: Answer) -> None:
        kind = answer.packet.message_type
        if answer.summary.startswith("proxy OFFER"):
            self.counters.proxy_offers += 1
        elif answer.summary.startswith("4011 ACK"):
            self.counters.boot_server_acks += 1
        elif kind == MessageType.OFFER:
            self.counters.offers += 1
        elif kind == MessageType.NAK:
            self.counters.naks += 1
        elif answer.summary.startswith("INFORM"):
            self.counters.informs += 1
        else:
            self.counters.acks += 1

    def _count_silence(self, packet: DhcpPacket, reason: str) -> None:
        if reason.startswith("released"):
            self.counters.releases += 1
        elif "quarantined" in reason:
            self.counters.declines += 1
        elif "exhausted" in reason:
            self.counters.exhausted += 1

    def _overheard(self, packet: DhcpPacket, arrival: Arrival) -> None:
        """Another server's OFFER or ACK: in full mode, a rival handing out addresses."""
        if packet.message_type not in (MessageType.OFFER, MessageType.ACK):
            return
        raw = packet.option(Option.SERVER_IDENTIFIER)
        server = str(IPv4Address(raw)) if raw is not None and len(raw) == 4 else arrival.source[0]
        own = self.own_addresses()
        if server in own or arrival.source[0] in own:
            return
        if packet.yiaddr == ZERO:
            return  # a proxyDHCP server: boot information only, no rival for addresses
        self.counters.rival_offers += 1
        now = self.clock()
        self.rivals[server] = now
        if self._rival_log.allow(server, now):
            log.critical(
                "RIVAL DHCP SERVER {rival} (from {source}) is handing out addresses on this "
                "segment ({address} to {mac}); clients may take its leases instead of ours. "
                "Full mode belongs on an isolated lab net: stop the other server or use "
                "dhcp.mode = proxy.",
                rival=server,
                source=arrival.source[0],
                address=packet.yiaddr,
                mac=str(packet.mac),
            )


def _message_name(kind: int | None) -> str:
    try:
        return MessageType(kind).name if kind is not None else "BOOTP"
    except ValueError:
        return f"type {kind}"


def _client_address(packet: DhcpPacket, arrival: Arrival) -> str:
    if packet.ciaddr != ZERO:
        return packet.ciaddr
    return str(packet.mac)
