"""Option negotiation for a read request (RFC 2347, 2348, 2349, 7440).

The server acknowledges only options it understands and accepts, possibly with
a smaller value (blksize above the path MTU, windowsize above our cap); it
ignores the rest, as RFC 2347 asks. No acknowledged option means no OACK: the
transfer starts with DATA block 1, as in plain RFC 1350.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from netboot.tftp.wire import MAX_BLOCK_PAYLOAD

DEFAULT_BLKSIZE = 512
MIN_BLKSIZE = 8
IP_UDP_TFTP_OVERHEAD = 20 + 8 + 4
"""IPv4 header, UDP header, TFTP DATA header: what a block adds on the wire."""
IPV6_EXTRA_HEADER = 40 - 20
"""What the IPv6 header (40 bytes, no options) adds to the IPv4 one (20)."""


def blksize_for_mtu(mtu: int, ipv6: bool = False) -> int:
    """The largest block that fits one unfragmented datagram: 1468 at MTU 1500 over
    IPv4, 1448 over IPv6 (IPv6 routers never fragment: a larger block is lost)."""
    overhead = IP_UDP_TFTP_OVERHEAD + (IPV6_EXTRA_HEADER if ipv6 else 0)
    return max(MIN_BLKSIZE, min(MAX_BLOCK_PAYLOAD, mtu - overhead))


@dataclass(frozen=True, slots=True)
class TransferLimits:
    """What the server is willing to grant, from configuration."""

    max_blksize: int = blksize_for_mtu(1500)
    """Over IPv4; `for_ipv6` makes room for the larger IPv6 header."""
    max_windowsize: int = 64

    def for_ipv6(self) -> TransferLimits:
        """The same limits for a transfer over IPv6: blocks 20 bytes smaller, so that
        `blksize_for_mtu(mtu)` becomes `blksize_for_mtu(mtu, ipv6=True)` (below the
        65464 cap, where both families' blocks fit anyway)."""
        return replace(self, max_blksize=max(MIN_BLKSIZE, self.max_blksize - IPV6_EXTRA_HEADER))


@dataclass(frozen=True, slots=True)
class Negotiated:
    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float | None = None
    """The retransmission timeout the client asked for (RFC 2349), in seconds."""
    acknowledged: Mapping[str, str] = field(default_factory=dict)
    """What goes into the OACK; empty means send no OACK."""


def _int(value: str) -> int | None:
    """A decimal option value; absurdly long ones count as huge, not as errors."""
    if not (value.isascii() and value.isdigit()):
        return None
    return int(value) if len(value) <= 18 else 10**18


def negotiate(
    requested: Mapping[str, str], file_size: int | None, limits: TransferLimits
) -> Negotiated:
    """Decide the transfer's parameters from the RRQ's options.

    `file_size` is None when the size is not known in advance (netascii
    conversion), in which case `tsize` is not acknowledged.
    """
    acknowledged: dict[str, str] = {}
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, None

    asked = _int(requested.get("blksize", ""))
    if asked is not None and asked >= MIN_BLKSIZE:
        blksize = min(asked, limits.max_blksize, MAX_BLOCK_PAYLOAD)
        acknowledged["blksize"] = str(blksize)

    asked = _int(requested.get("timeout", ""))
    if asked is not None and 1 <= asked <= 255:
        timeout = float(asked)
        acknowledged["timeout"] = str(asked)

    if "tsize" in requested and file_size is not None and _int(requested["tsize"]) is not None:
        acknowledged["tsize"] = str(file_size)

    asked = _int(requested.get("windowsize", ""))
    if asked is not None and 1 <= asked <= 65535:
        windowsize = min(asked, limits.max_windowsize)
        acknowledged["windowsize"] = str(windowsize)

    return Negotiated(blksize, windowsize, timeout, acknowledged)
