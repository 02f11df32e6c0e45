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

Several daemons may share one store (PostgreSQL, issue #21). `peers` says
which of them answers a new client (`netboot/dhcp/peers.py`); a client whose
lease this daemon wrote, or that names it, is answered here whatever the
split says. When the store is unreachable, new leases pause (silence, never
a guess) while a renewal of a lease this daemon granted is ACKed from memory
for the time that lease has left, which promises nothing the database does
not already hold.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network

from netboot.dhcp.boot import BootSettings, NoBoot, boot_offer
from netboot.dhcp.lease_file import LeaseDatabaseError
from netboot.dhcp.lease_store import LeaseBackend, LeaseStoreUnavailable
from netboot.dhcp.leases import Lease, LeaseState
from netboot.dhcp.peers import PeerView, alone, answers
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
    takeover_after: int = 3
    """With peers: a client whose `secs` reach this is answered by any daemon."""


@dataclass(frozen=True, slots=True)
class Event:
    """A change of lease state (its kind is the answer's), for the journey log and status page."""

    address: str
    """The address whose lease was offered, bound, released or declined."""


KNOWN_LIMIT = 65536
"""Leases remembered for renewals while the store is down: a pool's worth at most."""


class LeaseServer:
    def __init__(
        self,
        store: LeaseBackend,
        network: NetworkSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.network = network
        self.clock = clock
        self.peers: PeerView = alone(store.server_id)
        """The live daemons on the store; the heartbeat loop replaces it."""
        self._known: OrderedDict[bytes, Lease] = OrderedDict()
        """Leases ACKed here, newest last, to renew from while the store is down."""
        self._offered: OrderedDict[bytes, bool] = OrderedDict()
        """Clients offered an address here and not yet heard REQUESTing, newest last:
        a REQUEST naming another server reads the store only for these."""
        self._options: dict[str, tuple[NetworkSettings, tuple[tuple[int, bytes], ...]]] = {}
        """Each server address's network options, with the settings they were made from."""

    def answer(
        self, request: DhcpPacket, client: BootClient, server: str
    ) -> tuple[Answer | Silence, Event | None]:
        client_id = client_identifier(request)
        try:
            return self._answer(request, client, client_id, server)
        except LeaseStoreUnavailable as error:
            return self._store_down(request, client, client_id, server, error), None
        except LeaseDatabaseError as error:
            # One operation refused (a lock or statement timeout, a busy file): this
            # request goes unanswered and its client retries; the store is still up.
            return Silence(
                SilenceReason.STORE_DOWN, f"lease database refused the operation: {error}"
            ), None

    def _answer(
        self, request: DhcpPacket, client: BootClient, client_id: bytes, server: str
    ) -> tuple[Answer | Silence, Event | None]:
        message = request.message_type
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
        if not self._ours(request):
            return self._peers_client(request), None
        lease = self.store.offer(
            client_id, request.mac, _option_address(request, Option.REQUESTED_ADDRESS)
        )
        if lease is None:
            return Silence(
                SilenceReason.POOL_EXHAUSTED, "address pool exhausted: no OFFER", loud=True
            ), None
        self._note_offer(client_id)
        address = str(lease.address)  # once: the reply, the summary and the event share it
        packet, boot = self._lease_reply(request, client, server, MessageType.OFFER, address)
        summary = f"OFFER {address}{boot}"
        answer = Answer(OutcomeKind.OFFER, packet, self._destination(request), summary)
        return answer, Event(address)

    def _request(
        self, request: DhcpPacket, client: BootClient, client_id: bytes, server: str
    ) -> tuple[Answer | Silence, Event | None]:
        chosen_server = _option_address(request, Option.SERVER_IDENTIFIER)
        requested = _option_address(request, Option.REQUESTED_ADDRESS)
        if chosen_server is not None:  # SELECTING
            offered_here = self._offered.pop(client_id, False)
            if chosen_server != dotted_address(server):
                # Only an offer made here is ours to take back, and only when alone:
                # with peers the client's row is shared, and two daemons may both
                # have offered (a takeover); the chosen one can bind the row between
                # our read and a release, which would then free a bound lease. The
                # offer is left to expire instead. Without an offer of ours the store
                # is not even read.
                release = offered_here and self.peers.alone
                held = self.store.lease_for(client_id) if release else None
                mine = held is not None and held.server_id == self.store.server_id
                if mine and held is not None and held.state == LeaseState.OFFERED:
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
            if not self._ours(request, held):
                return self._peers_client(request), None
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
            if not self.peers.alone and not self._ours(request, self.store.lease_for(client_id)):
                return self._peers_client(request), None
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
        self._remember(client_id, lease)
        bound = str(lease.address)
        packet, boot = self._lease_reply(request, client, server, MessageType.ACK, bound)
        summary = f"ACK {bound}{boot}"
        answer = Answer(OutcomeKind.ACK, packet, self._destination(request), summary)
        return answer, Event(bound)

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
        self,
        request: DhcpPacket,
        client: BootClient,
        server: str,
        kind: int,
        yiaddr: str,
        lease_time: int | None = None,
    ) -> tuple[DhcpPacket, str]:
        """The OFFER or ACK of the lease on `yiaddr`, and the words on its boot file.
        `lease_time` None: the configured one (the lease was just written for it)."""
        options = [
            (Option.MESSAGE_TYPE, bytes((kind,))),
            *self._network_options(server, lease_time),
        ]
        siaddr, file, boot = ZERO, b"", ""
        offer = boot_offer(client, request.mac, server, self.network.boot, full_mode=True)
        if not isinstance(offer, NoBoot):
            options += [o for o in boot_options(offer, request, server) if o[0] != 54]
            siaddr, file, boot = offer.siaddr, boot_file_field(offer), f", {offer.description}"
        elif client.wants_boot:
            boot = f", no boot file: {offer.reason}"
        packet = reply_to(request, options, yiaddr=yiaddr, siaddr=siaddr, file=file)
        return packet, boot

    def _network_options(
        self, server: str, lease_time: int | None = None
    ) -> tuple[tuple[int, bytes], ...]:
        """Every OFFER and ACK carries these; made once per server address and settings
        (a reload replaces `network`), not per reply. A `lease_time` of its own (a
        renewal from memory) gets options made for it alone."""
        cached = self._options.get(server)
        if lease_time is None and cached is not None and cached[0] is self.network:
            return cached[1]
        network = self.network
        keep = lease_time is None
        if lease_time is None:
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
        if keep:
            self._options[server] = (network, tuple(options))
        return tuple(options)

    def _ours(self, request: DhcpPacket, held: Lease | None = None) -> bool:
        """Whether this daemon answers the request's client: its share of the MACs, a
        client that waited, or one whose lease this daemon wrote."""
        if answers(self.peers, request.mac, request.secs, self.network.takeover_after):
            return True
        return held is not None and held.server_id == self.store.server_id

    def _peers_client(self, request: DhcpPacket) -> Silence:
        owner = self.peers.owner(request.mac)
        return Silence(SilenceReason.PEER_SHARE, f"a client of the peer {owner}")

    def _note_offer(self, client_id: bytes) -> None:
        offered = self._offered
        offered[client_id] = True
        offered.move_to_end(client_id)
        while len(offered) > KNOWN_LIMIT:
            offered.popitem(last=False)

    def _remember(self, client_id: bytes, lease: Lease) -> None:
        known = self._known
        known[client_id] = lease
        known.move_to_end(client_id)
        while len(known) > KNOWN_LIMIT:
            known.popitem(last=False)

    def _store_down(
        self,
        request: DhcpPacket,
        client: BootClient,
        client_id: bytes,
        server: str,
        error: LeaseStoreUnavailable,
    ) -> Answer | Silence:
        """The store cannot be reached: ACK a renewal of a lease granted here, for the
        time it has left; everything else waits, silent, for the store to return."""
        if request.message_type == MessageType.REQUEST:
            chosen = _option_address(request, Option.SERVER_IDENTIFIER)
            wanted = _address(request.ciaddr) or _option_address(request, Option.REQUESTED_ADDRESS)
            known = self._known.get(client_id)
            now = self.clock()
            if (
                known is not None
                and chosen is None
                and wanted == known.address
                and known.state == LeaseState.BOUND
                and known.expires - now >= 1
            ):
                left = int(known.expires - now)
                packet, boot = self._lease_reply(
                    request, client, server, MessageType.ACK, str(known.address), lease_time=left
                )
                summary = (
                    f"ACK {known.address} for the {left} s it has left (lease database down){boot}"
                )
                return Answer(OutcomeKind.ACK, packet, self._destination(request), summary)
        return Silence(
            SilenceReason.STORE_DOWN, f"lease database unreachable, no new lease: {error}"
        )

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
def dotted_address(text: str) -> IPv4Address:
    """Our own address (a request's receiving one) as a value, to compare with an
    option's: they are few, and parsing the text for every REQUEST was measurable."""
    return IPv4Address(text)


_MEMBERS: dict[tuple[str, int], tuple[IPv4Network, bool]] = {}
MEMBERS_KEPT = 1024


def in_subnet(address: str, subnet: IPv4Network) -> bool:
    """Whether a dotted quad lies in `subnet`. Asked of every request's relay or
    receiving address, which are few, so the answers are kept rather than parsed again.

    Kept by the subnet's identity, not its value: hashing an IPv4Network (Python
    code) cost more than the lookup saved. The entry holds the subnet itself, so
    its id cannot be reused by another while the entry is kept."""
    key = (address, id(subnet))
    known = _MEMBERS.get(key)
    if known is not None and known[0] is subnet:
        return known[1]
    inside = IPv4Address(address) in subnet
    if len(_MEMBERS) >= MEMBERS_KEPT:
        _MEMBERS.clear()
    _MEMBERS[key] = (subnet, inside)
    return inside


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
