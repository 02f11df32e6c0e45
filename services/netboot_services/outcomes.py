"""What each port-67 outcome counts, and which step of a client's journey it marks.

The handlers' counters (`netboot_<handler>_<counter>_total` on /metrics) and
the client tracker's stages (the status page) are looked up here by the
outcome's kind; nothing reads them from a log text. Every table is total
over `OutcomeKind`: a kind that counts nothing or marks no step says so with
None, so a new kind cannot be forgotten silently (tests/test_port67_outcomes.py).

`requests` is not in the tables: it counts every outcome a handler claimed
for a client's request, which is every kind except the overheard ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from netboot.admin.machines import Kind
from netboot.dhcp.pxe import ClientKind
from netboot.dhcpwire.outcome_kind import OutcomeKind as K
from netboot.port67.outcome import Outcome
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters

NOT_REQUESTS = frozenset({K.OVERHEARD, K.RIVAL_OFFER})
"""Claimed packets that were no client's request: replies and broadcasts overheard."""

BSDP_COUNTERS: Mapping[K, str | None] = {
    K.BSDP_LIST: "list_replies",
    K.BSDP_SELECT: "select_replies",
    K.BSDP_FAILED: "failed_replies",
    K.BSDP_OFFER: "offer_replies",
    K.BSDP_IGNORED: "ignored",
    K.MALFORMED: "ignored",
    K.OVERHEARD: None,
    K.PROXY_OFFER: None,
    K.BOOT_SERVER_ACK: None,
    K.OFFER: None,
    K.ACK: None,
    K.NAK: None,
    K.INFORM_ACK: None,
    K.RELEASED: None,
    K.DECLINED: None,
    K.POOL_EXHAUSTED: None,
    K.IGNORED: None,
    K.RIVAL_OFFER: None,
}
"""The BSDP handler's counter per kind (PXE's kinds never come from it)."""

PXE_COUNTERS: Mapping[K, str | None] = {
    K.PROXY_OFFER: "proxy_offers",
    K.BOOT_SERVER_ACK: "boot_server_acks",
    K.OFFER: "offers",
    K.ACK: "acks",
    K.NAK: "naks",
    K.INFORM_ACK: "informs",
    K.RELEASED: "releases",
    K.DECLINED: "declines",
    K.POOL_EXHAUSTED: "exhausted",
    K.IGNORED: "ignored",
    K.RIVAL_OFFER: "rival_offers",
    K.MALFORMED: None,  # the dispatcher counts malformed packets, for every handler
    K.OVERHEARD: None,
    K.BSDP_LIST: None,
    K.BSDP_SELECT: None,
    K.BSDP_FAILED: None,
    K.BSDP_OFFER: None,
    K.BSDP_IGNORED: None,
}
"""The PXE handler's counter per kind (BSDP's kinds never come from it)."""

JOURNEY_STAGES: Mapping[K, str | None] = {
    K.BSDP_LIST: "bsdp list",
    K.BSDP_SELECT: "bsdp select",
    K.BSDP_OFFER: "bsdp offer",
    K.PROXY_OFFER: "proxy offer",
    K.BOOT_SERVER_ACK: "4011 ack",
    K.OFFER: "dhcp offer",
    K.ACK: "dhcp ack",
    K.NAK: "nak",
    K.INFORM_ACK: "inform ack",
    K.RELEASED: "dhcp release",
    K.DECLINED: "dhcp decline",
    K.BSDP_FAILED: None,
    K.BSDP_IGNORED: None,
    K.POOL_EXHAUSTED: None,
    K.IGNORED: None,
    K.MALFORMED: None,
    K.OVERHEARD: None,
    K.RIVAL_OFFER: None,
}
"""The client tracker's step per kind (`clients.STAGES` and `clients.SIDE_STEPS`)."""


def tally(counters: Counters, table: Mapping[K, str | None], kind: K) -> None:
    """Count one outcome: `requests` unless overheard, and the kind's own counter."""
    names = [] if kind in NOT_REQUESTS else ["requests"]
    counter = table[kind]
    if counter is not None:
        names.append(counter)
    for name in names:
        setattr(counters, name, getattr(counters, name) + 1)


def note_journey(clients: ClientTracker, outcome: Outcome, now: float, detail: str) -> None:
    """The step this outcome marks in its client's journey; a SELECT also counts a boot.

    What the request said about the machine goes with it: a Mac's model and
    architecture from its BSDP client class; a PC's firmware family from the
    PXE classifier (`ipxe` once iPXE asks, the family of its ROM before).
    """
    stage = JOURNEY_STAGES[outcome.kind]
    if stage is None or outcome.address is None:
        return
    mac = str(outcome.mac) if outcome.mac is not None else None
    image = str(outcome.image_id) if outcome.image_id is not None else None
    kind: Kind | None = None
    model = architecture = firmware = None
    if outcome.client_class is not None:
        kind, model, architecture = "mac", outcome.client_class.model, outcome.client_class.arch
    client = outcome.client
    if client is not None:
        if client.kind is ClientKind.BSDP:
            kind = "mac"
        elif client.wants_boot:
            kind = "pc"
            architecture = client.arch.family if client.arch is not None else None
            firmware = "ipxe" if client.kind is ClientKind.IPXE else architecture
    clients.note(
        outcome.address,
        stage,
        now,
        detail,
        mac,
        image,
        kind=kind,
        model=model or None,
        architecture=architecture,
        firmware=firmware,
    )
    if image is not None:
        clients.booted(image)
