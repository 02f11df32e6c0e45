"""What became of one datagram on port 547: the typed result the DHCPv6 service carries out.

Like `netboot.dhcpwire.outcome_kind` for port 67, the kind is what everything
downstream keys on (counters, journeys, the `outcome` field of the JSON log the
lab reads); `reason` is for people only. The service sends `replies` as they
are and logs the rest (docs/protocols/dhcpv6.md §9).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv6Address, IPv6Interface

from netboot.dhcp.pxe import ClientKind
from netboot.macaddr import MacAddress


class Dhcp6OutcomeKind(StrEnum):
    """The JSON log's `outcome` field for a DHCPv6 datagram: a public contract."""

    ADVERTISE = "advertise"
    """Full mode: addresses (and boot options) offered in answer to a Solicit."""
    BOUND = "bound"
    """A Reply that binds or extends addresses: Request, rapid-commit Solicit, Renew, Rebind."""
    RELEASED = "released"
    """A Release answered; the addresses go back to the pool."""
    DECLINED = "declined"
    """A Decline answered; the addresses are quarantined."""
    CONFIRMED = "confirmed"
    """A Confirm answered Success: the client's addresses still suit its link."""
    NOT_ON_LINK = "not_on_link"
    """A Confirm (or Request) whose addresses do not belong on the client's link."""
    INFO_REPLY = "info_reply"
    """An Information-request answered with DNS, domain search and boot options."""
    BOOT_INFO = "boot_info"
    """Proxy mode: boot options without an address (an Advertise or a Reply)."""
    NO_ADDRS = "no_addrs"
    """Full mode: the pool has no address for the client (NoAddrsAvail)."""
    NO_BINDING = "no_binding"
    """A Renew, Rebind, Release or Decline for an IA we hold no lease for."""
    IGNORED = "ignored"
    """Left unanswered on purpose: another server's ID, a plain client in proxy mode, ..."""
    MALFORMED = "malformed"
    """The peer sent something that does not parse or breaks RFC 8415 §16's rules."""


@dataclass(frozen=True, slots=True)
class Arrival6:
    """Where a datagram came from and on which interface; the service reads it from recvmsg."""

    source: IPv6Address
    source_port: int
    interface: str
    interface_index: int
    destination: IPv6Address
    """The packet's destination: ff02::1:2 (multicast) or one of our addresses (unicast)."""
    server_addresses: tuple[IPv6Interface, ...]
    """The arrival interface's addresses, link-local included; URLs use the first
    non-link-local one, else the link-local one."""


@dataclass(frozen=True, slots=True)
class Outgoing6:
    """One datagram to send: to the client directly, or to the outermost relay."""

    payload: bytes
    destination: IPv6Address
    port: int
    interface_index: int


@dataclass(frozen=True, slots=True)
class Outcome6:
    kind: Dhcp6OutcomeKind
    client_duid: bytes | None
    mac: MacAddress | None
    addresses: tuple[IPv6Address, ...]
    """Leased, extended or confirmed by this answer."""
    replies: tuple[Outgoing6, ...]
    reason: str
    """For people only (the log line); nothing reads meaning out of it."""
    boot_url: str | None = None
    """Option 59 as sent, when the answer carried one."""
    client_kind: ClientKind | None = None
    """The `BootClient` kind of the asking client, when its message was read."""
