"""Whether one ACK[LIST] holds every enabled set: the warning of `netboot images validate`.

A Mac sees one ACK[LIST] per server, so a list that does not fit the largest
reply any client asks for (8192 bytes, what Macs advertise) is cut
(packing.py), and the sets past the cut cannot be chosen from a Mac's
Startup Disk. Validation does not know which models and MACs will ask, so it
checks the worst case for each architecture: a client that every model and
MAC rule admits, with no attribute filter (FilterOnly sets hidden) and a
binding here (sub-option 8 takes its 6 bytes). The warning names the first
set past the cut, in the order the server lists sets.
"""

from __future__ import annotations

from netboot.bsdp.options import BootImage, BsdpMessage, MessageType
from netboot.bsdp.packing import pack_list
from netboot.bsdp.policy import MAX_REPLY_SIZE, in_list_order, list_option_space, wire_name
from netboot.nbi.catalog import Catalog
from netboot.nbi.model import PLIST_NAME
from netboot.nbi.problems import NO_KEY, Problem, Severity


def list_overflow(catalog: Catalog) -> list[Problem]:
    """One warning per architecture whose enabled sets one 8 KiB ACK[LIST] cannot list."""
    found = []
    architectures = sorted({a for s in catalog.servable if s.info for a in s.info.architectures})
    for arch in architectures:
        sets = in_list_order(
            [
                s
                for s in catalog.servable
                if s.info and arch in s.info.architectures and not s.info.filter_only
            ]
        )
        images = [BootImage(int(s.info.image_id), wire_name(s.info.name)) for s in sets if s.info]
        if not images:
            continue
        first = images[0].image_id
        header = BsdpMessage(
            MessageType.LIST, server_priority=0, default_image_id=first, selected_image_id=first
        )
        packed = pack_list(header, images, list_option_space(MAX_REPLY_SIZE))
        if not packed.truncated:
            continue
        listed = len(packed.images)
        found.append(
            Problem(
                sets[listed].path / PLIST_NAME,
                NO_KEY,
                f"{len(sets)} enabled {arch} sets are more than one {MAX_REPLY_SIZE}-byte "
                f"ACK[LIST] holds: a Mac that may boot them all is listed the first "
                f"{listed}, not this set nor the {len(sets) - listed - 1} after it",
                Severity.WARNING,
            )
        )
    return found
