"""Full DHCP (RFC 2131) for an isolated lab net: addresses and boot files at once.

DISCOVER gets an OFFER of an address the lease store holds for the client a
little while; REQUEST binds it (ACK) or is refused (NAK); RELEASE, DECLINE
and INFORM do what RFC 2131 section 4.3 says. A PXE, iPXE or HTTP-boot
client's OFFER and ACK also carry its boot file with `PXEClient` and 43.6 =
0x08, which EDK2 ranks above any address-plus-proxy pair and iPXE takes as
both its address and its proxy offer: no 4011 round trip, no proxy wait.

The store decides who holds which address; this module only reads the
request's state (selecting, init-reboot, renewing) from its fields, as RFC
2131 table 4 lays out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network

from netboot.dhcp.boot import BootSettings, NoBoot, boot_offer
from netboot.dhcp.leases import Lease, LeaseStore
from netboot.dhcp.proxy import (
    Answer,
    Silence,
    SilenceReason,
    boot_file_field,
    boot_options,
    reply_destination,
)
from netboot.dhcp.pxe import BootClient
from netboot.dhcpwire.options import BROADCAST, CLIENT_PORT, MessageType, Option
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import ZERO, DhcpPacket, reply_to
from netboot.errors import MalformedPacket


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """What a leased client is told about its network."""

    subnet: IPv4Network
    lease_time: int = 3600
    router: str | None = None
    dns_servers: tuple[str, ...] = ()
    domain_name: str = ""
    boot: BootSettings = field(default_factory=BootSettings)


@dataclass(frozen=True, slots=True)
class Event:
    """A change of lease state (its kind is the answer's), for the journey log and status page."""

    address: str
    """The address whose lease was offered, bound, released or declined."""


class LeaseServer:
    def __init__(self, store: LeaseStore, network: NetworkSettings) -> None:
        self.store = store
        self.network = network
        self._options: dict[str, tuple[NetworkSettings, tuple[tuple[int, bytes], ...]]] = {}
        """Each server address's network options, with the settings they were made from."""

    def answer(
        self, request: DhcpPacket, client: BootClient, server: str
    ) -> tuple[Answer | Silence, Event | None]:
        message = request.message_type
        client_id = client_identifier(request)
        if message == MessageType.DISCOVER:
            return self._discover(request, client, client_id, server)
        if message == MessageType.REQUEST:
            return self._request(request, client, client_id, server)
        if message == MessageType.RELEASE:
            address = _address(request.ciaddr)
            if address is not None and self.store.release(client_id, address):
                return Silence(SilenceReason.RELEASED, f"released {address}"), Event(str(address))
            return Silence(
                SilenceReason.NO_RECORD, "RELEASE of an address this client does not hold"
            ), None
        if message == MessageType.DECLINE:
            address = _option_address(request, Option.REQUESTED_ADDRESS)
            if address is not None and self.store.decline(client_id, address):
                return (
                    Silence(
                        SilenceReason.DECLINED,
                        f"client says {address} is in use: quarantined",
                        loud=True,
                    ),
                    Event(str(address)),
                )
            return Silence(
                SilenceReason.NO_RECORD, "DECLINE of an address this client does not hold"
            ), None
        if message == MessageType.INFORM:
            return self._inform(request, client, server), None
        return Silence(
            SilenceReason.WRONG_MESSAGE, f"message type {message} is not for a server"
        ), None

    # -- one handler per message ---------------------------------------------------

    def _discover(
        self, request: DhcpPacket, client: BootClient, client_id: bytes, server: str
    ) -> tuple[Answer | Silence, Event | None]:
        if not self._on_our_subnet(request, server):
            return Silence(
                SilenceReason.FOREIGN_SUBNET, "relayed from a subnet that is not the pool's"
            ), None
        lease = self.store.offer(
            client_id, request.mac, _option_address(request, Option.REQUESTED_ADDRESS)
        )
        if lease is None:
            return Silence(
                SilenceReason.POOL_EXHAUSTED, "address pool exhausted: no OFFER", loud=True
            ), None
        packet, boot = self._lease_reply(request, client, server, MessageType.OFFER, lease)
        summary = f"OFFER {lease.address}{boot}"
        answer = Answer(OutcomeKind.OFFER, packet, self._destination(request), summary)
        return answer, Event(str(lease.address))

    def _request(
        self, request: DhcpPacket, client: BootClient, client_id: bytes, server: str
    ) -> tuple[Answer | Silence, Event | None]:
        chosen_server = _option_address(request, Option.SERVER_IDENTIFIER)
        requested = _option_address(request, Option.REQUESTED_ADDRESS)
        if chosen_server is not None:  # SELECTING
            if str(chosen_server) != server:
                held = self.store.lease_for(client_id)
                if held is not None and held.state == "offered":
                    self.store.release(client_id, held.address)
                return Silence(
                    SilenceReason.OTHER_SERVER, f"client chose the server {chosen_server}"
                ), None
            if requested is None:
                return self._nak(request, server, "REQUEST names us but no address"), None
            address = requested
        elif requested is not None:  # INIT-REBOOT
            if not self._on_our_subnet(request, server) or requested not in self.network.subnet:
                return self._nak(request, server, f"{requested} is not on this network"), None
            held = self.store.lease_for(client_id)
            holder = self.store.holder(requested)
            if held is None and (holder is None or holder.client_id == client_id):
                return Silence(
                    SilenceReason.NO_RECORD,
                    f"INIT-REBOOT for {requested}: no record of this client",
                ), None
            address = requested
        else:  # RENEWING or REBINDING
            renewing = _address(request.ciaddr)
            if renewing is None:
                return Silence(
                    SilenceReason.INCOMPLETE, "REQUEST with neither server, address nor ciaddr"
                ), None
            address = renewing
        hostname = request.option(Option.HOST_NAME)
        lease = self.store.bind(
            client_id,
            request.mac,
            address,
            self.network.lease_time,
            hostname.decode("utf-8", "replace") if hostname else None,
        )
        if lease is None:
            return self._nak(request, server, f"{address} is not available to this client"), None
        packet, boot = self._lease_reply(request, client, server, MessageType.ACK, lease)
        summary = f"ACK {lease.address}{boot}"
        answer = Answer(OutcomeKind.ACK, packet, self._destination(request), summary)
        return answer, Event(str(lease.address))

    def _inform(self, request: DhcpPacket, client: BootClient, server: str) -> Answer | Silence:
        if request.ciaddr == ZERO:
            return Silence(SilenceReason.INCOMPLETE, "INFORM without ciaddr")
        options = [(Option.MESSAGE_TYPE, bytes((MessageType.ACK,))), *self._network_options(server)]
        options = [o for o in options if o[0] != Option.LEASE_TIME]
        siaddr, file, summary = ZERO, b"", "INFORM ACK"
        offer = boot_offer(client, request.mac, server, self.network.boot, full_mode=True)
        if not isinstance(offer, NoBoot):
            options += [o for o in boot_options(offer, request, server) if o[0] != 54]
            siaddr, file, summary = (
                offer.siaddr,
                boot_file_field(offer),
                f"INFORM ACK, {offer.description}",
            )
        packet = reply_to(request, options, siaddr=siaddr, file=file)
        return Answer(OutcomeKind.INFORM_ACK, packet, (request.ciaddr, CLIENT_PORT), summary)

    # -- helpers -----------------------------------------------------------------------

    def _lease_reply(
        self, request: DhcpPacket, client: BootClient, server: str, kind: int, lease: Lease
    ) -> tuple[DhcpPacket, str]:
        options = [(Option.MESSAGE_TYPE, bytes((kind,))), *self._network_options(server)]
        siaddr, file, boot = ZERO, b"", ""
        offer = boot_offer(client, request.mac, server, self.network.boot, full_mode=True)
        if not isinstance(offer, NoBoot):
            options += [o for o in boot_options(offer, request, server) if o[0] != 54]
            siaddr, file, boot = offer.siaddr, boot_file_field(offer), f", {offer.description}"
        elif client.wants_boot:
            boot = f", no boot file: {offer.reason}"
        packet = reply_to(request, options, yiaddr=str(lease.address), siaddr=siaddr, file=file)
        return packet, boot

    def _network_options(self, server: str) -> tuple[tuple[int, bytes], ...]:
        """Every OFFER and ACK carries these; made once per server address and settings
        (a reload replaces `network`), not per reply."""
        cached = self._options.get(server)
        if cached is not None and cached[0] is self.network:
            return cached[1]
        network = self.network
        lease_time = network.lease_time
        options: list[tuple[int, bytes]] = [
            (Option.SERVER_IDENTIFIER, IPv4Address(server).packed),
            (Option.LEASE_TIME, lease_time.to_bytes(4, "big")),
            (Option.RENEWAL_TIME, (lease_time // 2).to_bytes(4, "big")),
            (Option.REBINDING_TIME, (lease_time * 7 // 8).to_bytes(4, "big")),
            (Option.SUBNET_MASK, network.subnet.netmask.packed),
        ]
        if network.router:
            options.append((Option.ROUTER, IPv4Address(network.router).packed))
        if network.dns_servers:
            packed = b"".join(IPv4Address(a).packed for a in network.dns_servers)
            options.append((Option.DNS_SERVERS, packed))
        if network.domain_name:
            options.append((Option.DOMAIN_NAME, network.domain_name.encode()))
        self._options[server] = (network, tuple(options))
        return tuple(options)

    def _nak(self, request: DhcpPacket, server: str, why: str) -> Answer:
        options = [
            (Option.MESSAGE_TYPE, bytes((MessageType.NAK,))),
            (Option.SERVER_IDENTIFIER, IPv4Address(server).packed),
            (Option.MESSAGE, why.encode()[:255]),
        ]
        # RFC 2131 4.3.2: a NAK goes to the relay or is broadcast; never unicast.
        packet = replace(reply_to(request, options), ciaddr=ZERO)
        destination = (
            reply_destination(packet) if request.giaddr != ZERO else (BROADCAST, CLIENT_PORT)
        )
        return Answer(OutcomeKind.NAK, packet, destination, f"NAK: {why}")

    def _destination(self, request: DhcpPacket) -> tuple[str, int]:
        return reply_destination(request)

    def _on_our_subnet(self, request: DhcpPacket, server: str) -> bool:
        """A relayed request must come from the pool's subnet; a direct one from ours."""
        where = request.giaddr if request.giaddr != ZERO else server
        return in_subnet(where, self.network.subnet)


@lru_cache(maxsize=1024)
def in_subnet(address: str, subnet: IPv4Network) -> bool:
    """Whether a dotted quad lies in `subnet`. Asked of every request's relay or
    receiving address, which are few, so the answers are kept rather than parsed again."""
    return IPv4Address(address) in subnet


def client_identifier(request: DhcpPacket) -> bytes:
    """Option 61, else hardware type + chaddr: the lease key (RFC 2132 9.14)."""
    sent = request.option(Option.CLIENT_IDENTIFIER)
    if sent:
        return sent
    return bytes((request.htype,)) + request.chaddr[: request.hlen if request.hlen <= 16 else 16]


def _address(text: str) -> IPv4Address | None:
    return None if text == ZERO else IPv4Address(text)


def _option_address(request: DhcpPacket, code: int) -> IPv4Address | None:
    raw = request.option(code)
    if raw is None:
        return None
    if len(raw) != 4:
        raise MalformedPacket(f"option {code} is {len(raw)} bytes, not an IPv4 address")
    return IPv4Address(raw)
