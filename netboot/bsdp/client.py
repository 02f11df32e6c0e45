"""The client side of BSDP, as a Mac's firmware runs it: for `netboot bsdp probe`.

Builds INFORM[LIST] and INFORM[SELECT] the way Apple's BSDPClient does (option
order 53, 55, 57, 60, 43; inside 43 for LIST 1, 2, [5], 12, [11]; for SELECT
1, 2, [5], 3, 8) and reads the ACKs: the answering server's identifier and
priority, its default and selected image, and every image of its list, as
Apple's client library reads them (BSDPClient/BSDPClient.c): the option-43
instances of one packet are merged, packets are not. A server's later
ACK[LIST] replaces its earlier one, as `bsdpc` does, so what we show is what
a Mac would show.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netboot.bsdp.options import (
    VERSION_1_1,
    BootImage,
    BsdpMessage,
    MessageType,
    decode_instances,
    encode,
)
from netboot.bsdp.vendor_class import PREFIX, client_class_bytes
from netboot.dhcpwire.options import BOOTREPLY, BOOTREQUEST, Option
from netboot.dhcpwire.options import MessageType as DhcpType
from netboot.dhcpwire.packet import DhcpPacket
from netboot.errors import MalformedPacket
from netboot.nbi.image_id import BootImageId

PARAMETER_REQUEST = bytes((Option.VENDOR_CLASS, Option.VENDOR_SPECIFIC))
MAX_DHCP_MESSAGE = 1500
MAX_BSDP_MESSAGE = 8192


def _inform(
    xid: int, mac: bytes, ciaddr: str, arch: str, model: str, bsdp: BsdpMessage
) -> DhcpPacket:
    return DhcpPacket(
        op=BOOTREQUEST,
        xid=xid,
        chaddr=mac,
        ciaddr=ciaddr,
        options=(
            (Option.MESSAGE_TYPE, bytes((DhcpType.INFORM,))),
            (Option.PARAMETER_REQUEST_LIST, PARAMETER_REQUEST),
            (Option.MAX_MESSAGE_SIZE, MAX_DHCP_MESSAGE.to_bytes(2, "big")),
            (Option.VENDOR_CLASS, client_class_bytes(arch, model)),
            (Option.VENDOR_SPECIFIC, encode(bsdp)),
        ),
    )


def inform_list(
    xid: int,
    mac: bytes,
    ciaddr: str,
    arch: str,
    model: str,
    reply_port: int | None = None,
    attribute_filter: tuple[int, ...] | None = None,
) -> DhcpPacket:
    bsdp = BsdpMessage(
        message_type=MessageType.LIST,
        version=VERSION_1_1,
        reply_port=reply_port,
        max_message_size=MAX_BSDP_MESSAGE,
        attribute_filter=attribute_filter,
    )
    return _inform(xid, mac, ciaddr, arch, model, bsdp)


def inform_select(
    xid: int,
    mac: bytes,
    ciaddr: str,
    arch: str,
    model: str,
    server_identifier: str,
    image_id: int,
    reply_port: int | None = None,
) -> DhcpPacket:
    bsdp = BsdpMessage(
        message_type=MessageType.SELECT,
        version=VERSION_1_1,
        reply_port=reply_port,
        server_identifier=server_identifier,
        selected_image_id=image_id,
    )
    return _inform(xid, mac, ciaddr, arch, model, bsdp)


@dataclass(frozen=True, slots=True)
class Answer:
    """One server's ACK, as far as BSDP is concerned."""

    server_id: str
    message: BsdpMessage
    siaddr: str
    file: str
    root_path: str | None


def read_answer(packet: DhcpPacket, xid: int) -> Answer | None:
    """The BSDP content of an ACK for our transaction; None for anything else."""
    if packet.op != BOOTREPLY or packet.xid != xid:
        return None
    if packet.message_type != DhcpType.ACK or packet.option(Option.VENDOR_CLASS) != PREFIX:
        return None
    server = packet.option(Option.SERVER_IDENTIFIER)
    if server is None or len(server) != 4:
        raise MalformedPacket("ACK without a 4-byte server identifier")
    message = decode_instances(packet.all_of(Option.VENDOR_SPECIFIC))
    root = packet.option(Option.ROOT_PATH)
    return Answer(
        server_id=str(ipaddress.IPv4Address(server)),
        message=message,
        siaddr=packet.siaddr,
        file=packet.file.decode(errors="replace"),
        root_path=root.decode(errors="replace") if root is not None else None,
    )


@dataclass
class ServerListing:
    """What one server's latest ACK[LIST] said, and how many it sent."""

    server_id: str
    priority: int | None = None
    default_image_id: int | None = None
    selected_image_id: int | None = None
    images: list[BootImage] = field(default_factory=list)
    replies: int = 0

    def add(self, message: BsdpMessage) -> None:
        """Take a further ACK[LIST] from this server: it replaces the earlier one."""
        self.replies += 1
        self.priority = message.server_priority
        self.default_image_id = message.default_image_id
        self.selected_image_id = message.selected_image_id
        self.images = list(message.images or ())

    def as_json(self) -> dict[str, Any]:
        return {
            "server_id": self.server_id,
            "priority": self.priority,
            "default_image_id": self.default_image_id,
            "selected_image_id": self.selected_image_id,
            "replies": self.replies,
            "images": [describe_image(image) for image in self.images],
        }


def describe_image(image: BootImage) -> dict[str, Any]:
    try:
        parts = BootImageId.from_int(image.image_id)
    except ValueError:
        return {
            "id": image.image_id,
            "index": None,
            "kind": None,
            "is_install": None,
            "name": image.name,
        }
    return {
        "id": image.image_id,
        "index": parts.index,
        "kind": parts.kind,
        "is_install": parts.is_install,
        "name": image.name,
    }


def preferred(listings: Iterable[ServerListing]) -> ServerListing | None:
    """The server a Mac boots from (docs/protocols/bsdp.md §7, step 3).

    A server that says this Mac selected one of its images (sub-option 8) wins,
    so a Mac stays with its server; otherwise the highest priority, which is
    the least busy server, since each server's priority drops by one per
    client bound to it; the first heard on a tie.
    """
    best: ServerListing | None = None
    for listing in listings:
        if best is None or _preference(listing) > _preference(best):
            best = listing
    return best


def _preference(listing: ServerListing) -> tuple[bool, int]:
    """What `preferred` compares: bound here first, then the priority."""
    return bool(listing.selected_image_id), listing.priority or 0
