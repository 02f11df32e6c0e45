"""What became of one packet on port 67: the vocabulary every port-67 decision speaks.

The BSDP policy, the proxyDHCP answer and the lease server each tag their
result with one of these kinds, and everything downstream (the counters of
/metrics, the client journey of the status page, the `outcome` field of the
JSON log that the lab reads) is keyed by it. The human summary of a decision
is for people only: nothing reads meaning out of it.

The enum sits on the DHCP floor, below `netboot.bsdp` and the PXE decisions,
because both produce kinds. The values are the JSON log's `outcome` field,
so they are a public contract like the log texts.
"""

from __future__ import annotations

from enum import StrEnum


class OutcomeKind(StrEnum):
    BSDP_LIST = "bsdp_list"
    """ACK[LIST]: the images this Mac may boot."""
    BSDP_SELECT = "bsdp_select"
    """ACK[SELECT]: the Mac is bound to an image and told its booter."""
    BSDP_FAILED = "bsdp_failed"
    """ACK[FAILED]: the SELECT named nothing this Mac may boot."""
    BSDP_OFFER = "bsdp_offer"
    """The fast path: a bound Mac's DISCOVER answered with its image, without an address."""
    BSDP_IGNORED = "bsdp_ignored"
    """A BSDP request left unanswered on purpose (no image, another server chosen, ...)."""
    PROXY_OFFER = "proxy_offer"
    """proxyDHCP OFFER: boot information without an address."""
    BOOT_SERVER_ACK = "boot_server_ack"
    """The port-4011 ACK to a UEFI ROM told to ask there."""
    OFFER = "offer"
    """Full mode: an address (and boot file) offered."""
    ACK = "ack"
    """Full mode: a lease bound."""
    NAK = "nak"
    """Full mode: a REQUEST refused."""
    INFORM_ACK = "inform_ack"
    """Full mode: the network settings for a client that has its address."""
    RELEASED = "released"
    """Full mode: a client gave its lease back (no reply)."""
    DECLINED = "declined"
    """Full mode: a client found its address in use; the address is quarantined."""
    POOL_EXHAUSTED = "pool_exhausted"
    """Full mode: no address left to offer."""
    IGNORED = "ignored"
    """A PXE or DHCP request claimed but not answered (wrong port, another server, ...)."""
    MALFORMED = "malformed"
    """Claimed but unusable: the peer sent garbage, or we cannot tell our own address."""
    OVERHEARD = "overheard"
    """A packet not meant for us (another server's reply, a broadcast on 68): claimed quietly."""
    RIVAL_OFFER = "rival_offer"
    """Full mode: another DHCP server handing out addresses on our segment."""
