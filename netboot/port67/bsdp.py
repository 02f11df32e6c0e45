"""The BSDP handler's decision: Macs' INFORM[LIST] and [SELECT], and DISCOVER, on port 67.

It claims every packet whose option 60 starts with `AAPLBSDPC` and is a
request; a server's BSDP reply overheard on the wire is claimed quietly. A
Mac's DISCOVER gets the fast path's BSDP OFFER if it is bound here
(docs/protocols/bsdp.md §1.2), unless we lease it an address: then it is
full mode's PXE handler's, whose lease OFFER carries the same boot fields
(`netboot.port67.pxe`). A REQUEST is left to the address server (ours in
full mode, or the site's). What to answer is `netboot.bsdp.policy`'s; this
turns its decision into an `Outcome` with the client's address for the
journey and the shadow directory to create.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from netboot.bsdp.policy import BsdpPolicy, Ignore
from netboot.bsdp.vendor_class import parse_client_class
from netboot.dhcpwire.options import BOOTREQUEST, Option
from netboot.dhcpwire.options import MessageType as DhcpType
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import ZERO, DhcpPacket
from netboot.dhcpwire.vendor_class import is_bsdp
from netboot.nbi.catalog import Catalog
from netboot.port67.arrival import Arrival
from netboot.port67.outcome import NO_LOCAL_ADDRESS, Outcome


def claims(packet: DhcpPacket) -> bool:
    """Whether the packet is BSDP's at all (option 60 `AAPLBSDPC…`): the handler asks
    this first, so a DHCP client's packet costs it no clock, catalog or lease lookup."""
    return is_bsdp(packet.option(Option.VENDOR_CLASS))


def bsdp_outcome(
    policy: BsdpPolicy,
    packet: DhcpPacket,
    arrival: Arrival,
    catalog: Catalog,
    now: float,
    nfs_available: bool,
    leased_here: bool = False,
) -> Outcome | None:
    """None: not a BSDP request, for the next handler.

    `leased_here`: our full-mode server leases this client an address, so its
    DISCOVER is the PXE handler's (whose OFFER carries the fast path's fields).
    """
    if not claims(packet):
        return None
    if packet.op != BOOTREQUEST:
        return Outcome(OutcomeKind.OVERHEARD, "a BSDP server's reply", packet.mac)
    discover = packet.message_type == DhcpType.DISCOVER
    if discover and (leased_here or arrival.watch_only):
        return None
    if packet.message_type != DhcpType.INFORM and not discover:
        # A Mac's REQUEST is for an address: full DHCP's business (the PXE
        # handler leases to it), or the site's server's in proxy mode.
        return None
    if discover:
        address = str(packet.mac)  # no address yet: the journey files it by MAC
    else:
        address = packet.ciaddr if packet.ciaddr != ZERO else arrival.source[0]
    if arrival.local_address == ZERO:
        return Outcome(OutcomeKind.MALFORMED, NO_LOCAL_ADDRESS, packet.mac, address)
    client_class = parse_client_class(packet.option(Option.VENDOR_CLASS) or b"")
    decide = policy.offer if discover else policy.decide
    decision = decide(packet, catalog, arrival.local_address, now, nfs_available)
    if isinstance(decision, Ignore):
        kind = OutcomeKind.MALFORMED if decision.malformed else OutcomeKind.BSDP_IGNORED
        return Outcome(
            kind,
            decision.reason,
            packet.mac,
            address,
            reason=decision.code,
            client_class=client_class,
        )
    shadow_root = policy.settings.shadow_root
    shadow = None
    if decision.shadow_directory is not None and shadow_root:
        shadow = PurePosixPath(shadow_root) / decision.shadow_directory
    return Outcome(
        decision.kind,
        decision.summary,
        packet.mac,
        address,
        replies=tuple((reply, decision.destination) for reply in decision.packets),
        image_id=decision.image_id,
        shadow_directory=shadow,
        list_cut=decision.list_cut,
        client_class=client_class,
    )
