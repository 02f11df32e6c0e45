"""A small DHCPv6 decision of the tests' own, to drive the port-547 adapter with.

The adapter (`netboot_services.dhcp6`) takes its decision as a function, so its
tests do not depend on the pure core's choices. This one really decides, from
the message and the runtime's `Dhcp6Terms`, with the codec of
`netboot.dhcp6wire`: an Information-request gets a Reply with the DNS servers;
a Solicit for an IA_NA gets an Advertise of the pool's first address (a
Reply that binds it when it asks for Rapid Commit and the terms allow it); a
message without a client identifier is malformed; anything else is ignored.
Relayed messages are answered through their relays with `relay_reply_to`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from netboot.dhcp.pxe import ClientKind
from netboot.dhcp6wire.duid import parse_duid
from netboot.dhcp6wire.ia import IaAddress, IaNa, build_ia_na, parse_ia_na
from netboot.dhcp6wire.options import SERVER_PORT, MessageType, Option
from netboot.dhcp6wire.packet import Dhcp6Message, RelayMessage, build_message, relay_reply_to
from netboot.dhcp6wire.values import build_dns_servers
from netboot.macaddr import MacAddress
from netboot.settings import Dhcp6Terms
from netboot_services.dhcp6 import Arrival6

SERVER_DUID = bytes.fromhex("00030001") + bytes.fromhex("020000000001")
"""DUID-LL of the test server."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    payload: bytes
    destination: IPv6Address
    port: int
    interface_index: int


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    client_duid: bytes | None
    mac: MacAddress | None
    addresses: tuple[IPv6Address, ...]
    replies: tuple[Outgoing, ...]
    reason: str
    boot_url: str | None = None
    client_kind: ClientKind | None = None


def answer(
    message: Dhcp6Message | RelayMessage, arrival: Arrival6, terms: Dhcp6Terms, now: float
) -> Outcome:
    inner = message.innermost if isinstance(message, RelayMessage) else message
    duid = inner.option(Option.CLIENTID)
    if duid is None:
        return Outcome("malformed", None, None, (), (), "no client identifier (option 1)")
    mac = parse_duid(duid, "option 1").mac
    options: list[tuple[int, bytes]] = [(Option.SERVERID, SERVER_DUID), (Option.CLIENTID, duid)]
    if inner.kind is MessageType.INFORMATION_REQUEST:
        options.append((Option.DNS_SERVERS, build_dns_servers(terms.dns_servers)))
        return _reply(
            "info_reply", MessageType.REPLY, inner, options, message, arrival, duid, mac, ()
        )
    requested = inner.option(Option.IA_NA)
    if inner.kind is MessageType.SOLICIT and requested is not None and terms.pool is not None:
        leased = terms.pool.first
        ia = IaNa(
            parse_ia_na(requested).iaid,
            terms.renew_time,
            terms.rebind_time,
            (IaAddress(leased, terms.preferred_lifetime, terms.valid_lifetime),),
        )
        options.append((Option.IA_NA, build_ia_na(ia)))
        if terms.rapid_commit and inner.option(Option.RAPID_COMMIT) is not None:
            options.append((Option.RAPID_COMMIT, b""))
            kind, reply_type = "bound", MessageType.REPLY
        else:
            options.append((Option.PREFERENCE, bytes((terms.preference,))))
            kind, reply_type = "advertise", MessageType.ADVERTISE
        return _reply(kind, reply_type, inner, options, message, arrival, duid, mac, (leased,))
    return Outcome("ignored", duid, mac, (), (), f"{inner.kind!s} is not answered here")


def _reply(
    kind: str,
    reply_type: MessageType,
    inner: Dhcp6Message,
    options: list[tuple[int, bytes]],
    message: Dhcp6Message | RelayMessage,
    arrival: Arrival6,
    duid: bytes,
    mac: MacAddress | None,
    addresses: tuple[IPv6Address, ...],
) -> Outcome:
    reply = Dhcp6Message(reply_type, inner.transaction_id, tuple(options))
    if isinstance(message, RelayMessage):
        payload = build_message(_through_relays(message, reply))
        outgoing = Outgoing(payload, arrival.source, SERVER_PORT, arrival.interface_index)
    else:
        outgoing = Outgoing(
            build_message(reply), arrival.source, arrival.source_port, arrival.interface_index
        )
    return Outcome(kind, duid, mac, addresses, (outgoing,), f"test decision: {kind}")


def _through_relays(forward: RelayMessage, reply: Dhcp6Message) -> RelayMessage:
    inner = forward.relayed
    carried = _through_relays(inner, reply) if isinstance(inner, RelayMessage) else reply
    return relay_reply_to(forward, carried)


class TestCore:
    """The test decision as the daemon's `Dhcp6Core`: settings are the runtime's terms."""

    __test__ = False

    def settings(self, runtime: object) -> Dhcp6Terms:
        terms = getattr(runtime, "dhcp6")  # noqa: B009 - typed loosely, like the protocol
        assert isinstance(terms, Dhcp6Terms)
        return terms

    def answer(
        self, message: Dhcp6Message | RelayMessage, arrival: Arrival6, settings: object, now: float
    ) -> Outcome:
        assert isinstance(settings, Dhcp6Terms)
        return answer(message, arrival, settings, now)
