"""The PXE handler's decision, on port 67 and the port-4011 boot server.

It claims what BSDP does not: PXE ROMs, iPXE and UEFI HTTP boot in proxy
mode; in full mode every DHCP client on the pool's subnet (Macs asking for
an address included). What to answer is `netboot.dhcp`'s (`proxy.py`,
`server.py`); this chooses between them, leases only where the pool is, and
turns the answer into an `Outcome`. A bound Mac's lease OFFER carries the
boot fields of the BSDP OFFER the fast path would have sent (`mac_boot`),
rather than the Mac getting two OFFERs (docs/protocols/bsdp.md §1.2). In
full mode it also recognises rival servers in the replies it overhears on
port 68.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

from netboot.bsdp.policy import with_boot_fields
from netboot.dhcp.boot import BootSettings
from netboot.dhcp.proxy import Answer, Silence, SilenceReason, proxy_answer
from netboot.dhcp.pxe import ClientKind, classify
from netboot.dhcp.server import Event, LeaseServer, in_subnet
from netboot.dhcpwire.options import (
    BOOTREQUEST,
    PXE_BOOT_SERVER_PORT,
    SERVER_PORT,
    MessageType,
    Option,
)
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import ZERO, DhcpPacket
from netboot.errors import MalformedPacket
from netboot.port67.arrival import Arrival
from netboot.port67.outcome import NO_LOCAL_ADDRESS, Outcome

SILENT_KINDS = {
    SilenceReason.RELEASED: OutcomeKind.RELEASED,
    SilenceReason.DECLINED: OutcomeKind.DECLINED,
    SilenceReason.POOL_EXHAUSTED: OutcomeKind.POOL_EXHAUSTED,
}
"""Silences with a kind of their own; every other reason is IGNORED."""


def pxe_outcome(
    packet: DhcpPacket,
    arrival: Arrival,
    boot: BootSettings,
    lease_server: LeaseServer | None,
    own_addresses: Callable[[], set[str]],
    mac_boot: Callable[[DhcpPacket, Arrival], DhcpPacket | None] | None = None,
) -> Outcome | None:
    """None: not this handler's packet, for the next one.

    `lease_server` None is proxy mode. `own_addresses` is asked only for a
    reply overheard in full mode, to tell our own offers from a rival's.
    `mac_boot` gives a Mac's fast-path BSDP OFFER, if it is bound here, whose
    boot fields its lease OFFER then carries.
    """
    if packet.op != BOOTREQUEST:
        rival = rival_server(packet, arrival, own_addresses()) if lease_server else None
        if rival is not None:
            summary = f"{rival} offered {packet.yiaddr} to {packet.mac}"
            return Outcome(OutcomeKind.RIVAL_OFFER, summary, packet.mac, rival=rival)
        return Outcome(OutcomeKind.OVERHEARD, "a server's reply", packet.mac)
    if arrival.watch_only:
        return Outcome(OutcomeKind.OVERHEARD, "a client's broadcast overheard on 68", packet.mac)
    client = classify(packet)
    leasing = lease_server is not None and not arrival.boot_server
    mac_wants_address = leasing and packet.message_type != MessageType.INFORM
    if client.kind is ClientKind.BSDP and not mac_wants_address:
        return None  # BSDP INFORMs are the BSDP handler's; Macs get addresses in full mode
    if not leasing and not client.wants_boot:
        return None  # plain DHCP in proxy mode: the site's server answers
    mac = packet.mac
    if arrival.local_address == ZERO:
        return Outcome(OutcomeKind.MALFORMED, NO_LOCAL_ADDRESS, mac, client=client)
    event: Event | None = None
    try:
        result: Answer | Silence
        if lease_server is not None and leased_here(lease_server, packet, arrival):
            result, event = lease_server.answer(packet, client, arrival.local_address)
        elif client.wants_boot:
            port = PXE_BOOT_SERVER_PORT if arrival.boot_server else SERVER_PORT
            server = arrival.local_address
            result = proxy_answer(packet, client, server, port, arrival.source, boot)
        else:
            return None
    except MalformedPacket as error:
        return Outcome(OutcomeKind.MALFORMED, str(error), mac, client=client)
    address = event.address if event is not None else _client_address(packet)
    if isinstance(result, Silence):
        kind = SILENT_KINDS.get(result.code, OutcomeKind.IGNORED)
        return Outcome(
            kind, result.reason, mac, address, reason=result.code, loud=result.loud, client=client
        )
    reply, summary = result.packet, result.summary
    if client.kind is ClientKind.BSDP and result.kind is OutcomeKind.OFFER and mac_boot:
        bsdp_offer = mac_boot(packet, arrival)
        if bsdp_offer is not None:
            reply = with_boot_fields(reply, bsdp_offer)
            summary += f", BSDP boot file {bsdp_offer.file.decode(errors='replace')}"
    replies = ((reply, result.destination),)
    return Outcome(result.kind, summary, mac, address, replies=replies, client=client)


def leased_here(lease_server: LeaseServer | None, packet: DhcpPacket, arrival: Arrival) -> bool:
    """Whether our full-mode server leases to this request's client (so its DISCOVER is ours)."""
    if lease_server is None or arrival.boot_server or arrival.watch_only:
        return False
    return on_pool_network(lease_server, packet, arrival)


def on_pool_network(lease_server: LeaseServer, packet: DhcpPacket, arrival: Arrival) -> bool:
    """Leases only where the pool is: the receiving interface's subnet or a relay's."""
    where = packet.giaddr if packet.giaddr != ZERO else arrival.local_address
    return in_subnet(where, lease_server.network.subnet)


def rival_server(packet: DhcpPacket, arrival: Arrival, own: set[str]) -> str | None:
    """The identifier of another server whose OFFER or ACK hands out an address, if this is one.

    A proxyDHCP server's offer (no yiaddr) gives boot information only: no
    rival for addresses. Our own replies (by identifier or source) are not rivals.
    """
    if packet.message_type not in (MessageType.OFFER, MessageType.ACK):
        return None
    server = replying_server(packet, arrival)
    if server in own or arrival.source[0] in own:
        return None
    if packet.yiaddr == ZERO:
        return None
    return server


def replying_server(packet: DhcpPacket, arrival: Arrival) -> str:
    """Who sent a reply overheard: its server identifier (option 54), else its source."""
    raw = packet.option(Option.SERVER_IDENTIFIER)
    return str(IPv4Address(raw)) if raw is not None and len(raw) == 4 else arrival.source[0]


def _client_address(packet: DhcpPacket) -> str:
    """A client without a lease event is filed under its ciaddr, else its MAC."""
    if packet.ciaddr != ZERO:
        return packet.ciaddr
    return str(packet.mac)
