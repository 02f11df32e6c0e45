"""What a port-67 handler decided about one packet, as a value.

Counters, the client journey and the log are all keyed by `kind`; the
`summary` is the text of the log line and nothing else reads it. The fields
a kind needs downstream are typed here (the image a SELECT bound, the
shadow directory to create, the rival server overheard), so no adapter ever
recovers them from a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from netboot.bsdp.packing import ListCut
from netboot.bsdp.policy import IgnoreReason
from netboot.bsdp.vendor_class import ClientClass
from netboot.dhcp.proxy import SilenceReason
from netboot.dhcp.pxe import BootClient
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import DhcpPacket
from netboot.macaddr import MacAddress
from netboot.nbi.image_id import BootImageId
from netboot.port67.arrival import Address

NO_LOCAL_ADDRESS = "arrived without IP_PKTINFO; cannot tell our address"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    summary: str
    """The log's words for what was answered, or why not (MALFORMED: what was wrong)."""
    mac: MacAddress | None = None
    address: str | None = None
    """The client as the journey tracker files it: its (leased) address, else its MAC."""
    replies: tuple[tuple[DhcpPacket, Address], ...] = ()
    reason: IgnoreReason | SilenceReason | None = None
    """Why there is no reply, as a code (the summary says it in words)."""
    loud: bool = False
    """A silence an operator should hear about (logged as a warning, rate-limited)."""
    client: BootClient | None = None
    """Who asked, as the PXE classifier saw it."""
    image_id: BootImageId | None = None
    """The image a BSDP SELECT bound the client to."""
    shadow_directory: PurePosixPath | None = None
    """A diskless Mac's shadow area, to exist before the reply leaves."""
    list_cut: ListCut | None = None
    """An ACK[LIST] cut to fit the client's reply size (logged once per client)."""
    rival: str | None = None
    """RIVAL_OFFER: the other server's identifier (option 54, else its source address)."""
    client_class: ClientClass | None = None
    """A Mac's model and architecture, from its BSDP client class (option 60)."""

    @property
    def destination(self) -> Address | None:
        """Where the replies go (all replies to one request share it)."""
        return self.replies[0][1] if self.replies else None
