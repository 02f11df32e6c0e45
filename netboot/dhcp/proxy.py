"""proxyDHCP (PXE 2.1): boot information beside a site's own DHCP server.

A proxy never hands out an address: its OFFER has yiaddr 0 and no lease,
mask, router or DNS option, so it can run on a LAN that has a DHCP server.
It answers DISCOVERs on port 67 from PXE, iPXE and HTTP-boot clients, never
REQUESTs on 67 (those belong to the address server), and REQUESTs on port
4011 from UEFI ROMs that were told to ask there (variant B of
docs/protocols/pxe.md §4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from netboot.dhcp.boot import BootOffer, BootSettings, NoBoot, boot_offer
from netboot.dhcp.pxe import BootClient, pxe_boot_item_echo
from netboot.dhcpwire.options import (
    BROADCAST,
    CLIENT_PORT,
    PXE_BOOT_SERVER_PORT,
    SERVER_PORT,
    MessageType,
    Option,
)
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import ZERO, DhcpPacket, reply_to

Destination = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Answer:
    kind: OutcomeKind
    """PROXY_OFFER, BOOT_SERVER_ACK, OFFER, ACK, NAK or INFORM_ACK."""
    packet: DhcpPacket
    destination: Destination
    summary: str
    """For the log (for people; nothing parses it)."""


class SilenceReason(StrEnum):
    """Why a request gets no reply: the code behind `Silence.reason`'s text."""

    WRONG_MESSAGE = "wrong_message"
    """A message type this port or this server does not answer."""
    NO_BOOT = "no_boot"
    """A boot client we cannot serve (no file for its architecture, HTTP off, ...)."""
    FOREIGN_SUBNET = "foreign_subnet"
    OTHER_SERVER = "other_server"
    NO_RECORD = "no_record"
    """An INIT-REBOOT (or RELEASE, DECLINE) for an address we hold nothing about."""
    INCOMPLETE = "incomplete"
    """A REQUEST or INFORM lacking the fields that say what it wants."""
    RELEASED = "released"
    DECLINED = "declined"
    """The client found the address in use: it is quarantined."""
    POOL_EXHAUSTED = "pool_exhausted"
    PEER_SHARE = "peer_share"
    """A new client whose MAC falls to another live daemon on the same lease database."""
    STORE_DOWN = "store_down"
    """The lease database is unreachable: no new lease until it is back (never a guess)."""


@dataclass(frozen=True, slots=True)
class Silence:
    """No reply; `reason` is logged at debug level (or warned, when `loud`)."""

    code: SilenceReason
    reason: str
    loud: bool = False


def boot_options(offer: BootOffer, request: DhcpPacket, server: str) -> list[tuple[int, bytes]]:
    """Options 54, 60, 67, 43, 175 and 97 that carry a boot offer (docs/protocols/pxe.md §2.2)."""
    options: list[tuple[int, bytes]] = [
        (Option.SERVER_IDENTIFIER, _ip(server)),
        (Option.VENDOR_CLASS, offer.vendor_class),
        (Option.BOOTFILE_NAME, offer.file),
    ]
    if offer.option43 is not None:
        options.append((Option.VENDOR_SPECIFIC, offer.option43))
    if offer.option175 is not None:
        options.append((175, offer.option175))
    uuid = request.option(Option.CLIENT_UUID)
    if uuid is not None:
        options.append((Option.CLIENT_UUID, uuid))
    return options


def boot_file_field(offer: BootOffer) -> bytes:
    """The name for BOOTP's `file` too (old ROMs read only it), when it fits."""
    return offer.file if len(offer.file) <= 127 else b""


def reply_destination(request: DhcpPacket) -> Destination:
    """RFC 2131 4.1: the relay, else the client's address, else broadcast."""
    if request.giaddr != ZERO:
        return (request.giaddr, SERVER_PORT)
    if request.ciaddr != ZERO:
        return (request.ciaddr, CLIENT_PORT)
    return (BROADCAST, CLIENT_PORT)


def proxy_answer(
    request: DhcpPacket,
    client: BootClient,
    server: str,
    local_port: int,
    source: Destination,
    settings: BootSettings,
) -> Answer | Silence:
    message = request.message_type
    boot_server = local_port == PXE_BOOT_SERVER_PORT
    if boot_server and message not in (MessageType.REQUEST, MessageType.INFORM):
        return Silence(SilenceReason.WRONG_MESSAGE, f"message type {message} on port 4011")
    if not boot_server and message != MessageType.DISCOVER:
        return Silence(
            SilenceReason.WRONG_MESSAGE,
            f"message type {message} on port 67 is the address server's business",
        )
    offer = boot_offer(client, request.mac, server, settings, full_mode=False)
    if isinstance(offer, NoBoot):
        return Silence(
            SilenceReason.NO_BOOT, offer.reason, loud=True
        )  # a boot client we cannot serve: say why
    options = boot_options(offer, request, server)
    if boot_server:
        options = [(code, value) for code, value in options if code != Option.VENDOR_SPECIFIC]
        if client.boot_item is not None:
            options.append((Option.VENDOR_SPECIFIC, pxe_boot_item_echo(client.boot_item)))
        ack = reply_to(
            request,
            [(Option.MESSAGE_TYPE, bytes((MessageType.ACK,))), *options],
            siaddr=offer.siaddr,
            sname=server.encode(),
            file=boot_file_field(offer),
        )
        # The client unicast from its new address; answer where it came from.
        return Answer(OutcomeKind.BOOT_SERVER_ACK, ack, source, f"4011 ACK: {offer.description}")
    packet = reply_to(
        request,
        [(Option.MESSAGE_TYPE, bytes((MessageType.OFFER,))), *options],
        siaddr=offer.siaddr,
        file=boot_file_field(offer),
    )
    via = " (asks 4011 next)" if offer.via_boot_server else ""
    summary = f"proxy OFFER: {offer.description}{via}"
    return Answer(OutcomeKind.PROXY_OFFER, packet, reply_destination(request), summary)


def _ip(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))
