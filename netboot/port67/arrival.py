"""Where a datagram came in: what a handler needs to answer as the right server."""

from __future__ import annotations

from dataclasses import dataclass

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Arrival:
    """Where a request came in: what a handler needs to answer as the right server."""

    source: Address
    local_address: str
    """Our address on the receiving interface (IP_PKTINFO's spec_dst)."""
    ifindex: int
    boot_server: bool = False
    """Arrived on the PXE boot-server port (4011), not on 67."""
    watch_only: bool = False
    """Overheard on port 68: other servers' replies, never answered."""
