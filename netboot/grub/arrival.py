"""Did GRUB, once we handed it out, come back to us for its configuration?

shim loads GRUB from the server the firmware took it from (ours, also from a
proxy offer), but Debian's signed GRUB asks its configuration from the DHCP
ACK's next-server, siaddr (docs/protocols/pxe.md §8.3). In proxy mode that
is the site's DHCP server's choice; when it is not us, all we see is GRUB
leaving and then silence, while the PC retries another host for minutes.
This watch turns that silence into an answer that names the cause: GRUB
asks `/grub/x86_64-efi/command.lst` within seconds of starting, so a client
that got GRUB and asked nothing under `/grub/` within `patience` seconds
reads its configuration from somewhere else.

Pure: the TFTP service reports what it handed and what it was asked, with
its clock's `now`, looks again at `next_due()`, and logs the silences
`silent()` returns, once each.
Bounded: beyond `limit` clients the oldest is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from netboot.firmware import EFI_ARCH_NAMES, grub_name

GRUB_PREFIX_PATHS = ("/grub/", "grub/")
"""Where every request of Debian's network GRUB goes: its embedded prefix `/grub`
(module lists, `grub.cfg`, then the client's own file we render)."""
GRUB_PATIENCE = 30.0
"""Seconds a client that got GRUB has to ask for anything under `/grub/` (under TCG it
asks within about 2 s)."""
GRUB_SILENT = "grub_silent"
"""The `outcome` field of the daemon's log line about such a client (read by the lab)."""
GRUB_NAMES = frozenset(grub_name(family) for family in EFI_ARCH_NAMES)
"""The TFTP names GRUB is handed by (`sb/x64/grubx64.efi`, ...)."""


@dataclass(frozen=True, slots=True)
class SilentGrub:
    """A client that took GRUB from us and asked us for nothing after it."""

    client: str
    """Its address, as the TFTP request came from."""
    handed: float
    """When GRUB's transfer to it began."""


class GrubArrivals:
    """Clients handed GRUB that have not come back for a configuration yet."""

    def __init__(self, patience: float = GRUB_PATIENCE, limit: int = 1024) -> None:
        self.patience = patience
        self.limit = limit
        self._waiting: OrderedDict[str, SilentGrub] = OrderedDict()

    def requested(self, client: str, name: str, now: float) -> None:
        """A TFTP read request of `name` from `client` (whatever became of it)."""
        if name.startswith(GRUB_PREFIX_PATHS):
            self._waiting.pop(client, None)
        elif name.lstrip("/") in GRUB_NAMES:
            self._waiting.pop(client, None)  # the newest hand-out counts
            self._waiting[client] = SilentGrub(client, now)
            while len(self._waiting) > self.limit:
                self._waiting.popitem(last=False)

    def next_due(self) -> float | None:
        """When the patience of the longest-waiting client runs out; None: nobody waits."""
        if not self._waiting:
            return None
        return min(waiting.handed for waiting in self._waiting.values()) + self.patience

    def silent(self, now: float) -> tuple[SilentGrub, ...]:
        """The clients whose patience ran out since the last call; each is reported once."""
        overdue = tuple(
            waiting for waiting in self._waiting.values() if now - waiting.handed >= self.patience
        )
        for waiting in overdue:
            del self._waiting[waiting.client]
        return overdue
