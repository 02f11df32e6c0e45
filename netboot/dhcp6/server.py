"""The DHCPv6 server's decision: one datagram on port 547 (or 4011) in, a typed `Outcome6` out.

RFC 8415 §18.3 per message type, in two modes (docs/protocols/dhcpv6.md §9):

* full: addresses from the pool (`Lease6Store`), DNS and domain search, and the
  boot options for PXE, HTTP-boot and iPXE clients;
* proxy (boot information only, beside a site's DHCPv6 server): only boot
  clients are answered, with boot options and never an address, in the shape
  EDK2 takes as a proxy offer (docs/protocols/dhcpv6.md §12).

The boot file itself is `netboot.dhcp.boot.boot_offer`'s, the IPv4 decision,
written as option 59: `tftp://[addr]/name` for a PXE ROM, the HTTP URL for HTTP
boot (with option 16 `HTTPClient`, which EDK2 requires) and the script URL for
iPXE. A relayed message is answered through every relay it came through, each
Relay-reply echoing its Interface-Id, to the outermost relay on port 547.

Nothing here reads a clock or touches a socket: `now` is the caller's, and the
service sends `Outcome6.replies` as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv6Address
from urllib.parse import quote

from netboot.dhcp.boot import BootOffer, BootSettings, NoBoot, boot_offer
from netboot.dhcp6.classify import Client6, classify
from netboot.dhcp6.leases import Address6Pool, IaKey, Lease6, Lease6Store
from netboot.dhcp6.outcome import Arrival6, Dhcp6OutcomeKind, Outcome6, Outgoing6
from netboot.dhcp6wire.duid import Duid, build_duid
from netboot.dhcp6wire.ia import IaAddress, IaNa, StatusCode, build_ia_na, build_status_code
from netboot.dhcp6wire.options import (
    HARDWARE_TYPE_ETHERNET,
    PXE_ENTERPRISE_NUMBER,
    SERVER_PORT,
    DuidType,
    MessageType,
    Option,
    Status,
)
from netboot.dhcp6wire.packet import (
    Dhcp6Message,
    RawOption,
    RelayMessage,
    build_message,
    parse_message,
    relay_reply_to,
)
from netboot.dhcp6wire.values import (
    VendorClass,
    build_bootfile_url,
    build_dns_servers,
    build_domain_list,
    build_vendor_class,
)
from netboot.errors import MalformedPacket
from netboot.macaddr import MacAddress

T1_FRACTION = 0.5
T2_FRACTION = 0.8
"""RFC 8415 §21.4's recommended T1 and T2, as fractions of the preferred lifetime."""

_ADDRESSED = frozenset(
    {MessageType.REQUEST, MessageType.RENEW, MessageType.RELEASE, MessageType.DECLINE}
)
"""Messages that must name the server (RFC 8415 §16.4, §16.6, §16.8, §16.9)."""
_MULTICAST_ONLY = frozenset(
    {
        MessageType.SOLICIT,
        MessageType.CONFIRM,
        MessageType.REBIND,
        MessageType.INFORMATION_REQUEST,
    }
)
"""Messages a server discards when they arrive by unicast (RFC 8415 §16)."""
_ANONYMOUS = frozenset({MessageType.SOLICIT, MessageType.CONFIRM, MessageType.REBIND})
"""Messages that must not name a server (RFC 8415 §16.2, §16.5, §16.7)."""


class Dhcp6Mode(StrEnum):
    """`[dhcp6] mode`."""

    OFF = "off"
    PROXY = "proxy"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Dhcp6Settings:
    """Everything `answer` decides with, built once from the configuration."""

    mode: Dhcp6Mode
    server_duid: bytes
    """Option 2 as we send it: `server_duid_ll(mac)` of the served interface."""
    pool: Address6Pool | None = None
    """Full mode's addresses; None in proxy mode."""
    lease_time: int = 3600
    """Valid lifetime in seconds; preferred = valid, T1 and T2 fractions of it."""
    dns_servers: tuple[IPv6Address, ...] = ()
    domain_search: tuple[str, ...] = ()
    rapid_commit: bool = True
    """Honour a Solicit carrying Rapid Commit with a binding Reply (full mode)."""
    preference: int = 255
    """Option 7 in every Advertise: 255 makes a client take it at once."""
    boot: BootSettings = field(default_factory=BootSettings)
    """The IPv4 boot decision's settings: boot files, HTTP port, iPXE script."""

    def __post_init__(self) -> None:
        if self.mode is Dhcp6Mode.FULL and self.pool is None:
            raise ValueError("full DHCPv6 mode needs an address pool")
        if not 0 <= self.preference <= 255:
            raise ValueError(f"preference {self.preference} is not 0..255")
        if not self.lease_time > 0:
            raise ValueError(f"lease_time must be positive, got {self.lease_time}")

    @property
    def t1(self) -> int:
        return int(self.lease_time * T1_FRACTION)

    @property
    def t2(self) -> int:
        return int(self.lease_time * T2_FRACTION)


def server_duid_ll(mac: MacAddress) -> bytes:
    """Our DUID: a DUID-LL of the interface's MAC (RFC 8415 §11.4), stable without state."""
    raw = bytes.fromhex(mac.replace(":", ""))
    return build_duid(Duid(DuidType.LL, raw, hardware_type=HARDWARE_TYPE_ETHERNET))


# --- the entry point -----------------------------------------------------------------


def answer(
    message: bytes | Dhcp6Message | RelayMessage,
    arrival: Arrival6,
    settings: Dhcp6Settings,
    store: Lease6Store | None,
    now: float,
) -> Outcome6:
    """Decide what one datagram gets; `store` is needed in full mode only."""
    try:
        parsed = parse_message(message) if isinstance(message, bytes) else message
        relays, inner = _unwrap(parsed)
    except MalformedPacket as error:
        return _silent(Dhcp6OutcomeKind.MALFORMED, str(error))
    kind = inner.kind
    if kind is None or kind in (
        MessageType.ADVERTISE,
        MessageType.REPLY,
        MessageType.RECONFIGURE,
    ):
        return _silent(Dhcp6OutcomeKind.IGNORED, f"not a client message: type {inner.msg_type}")
    if relays and relays[0].msg_type != MessageType.RELAY_FORW:
        return _silent(Dhcp6OutcomeKind.IGNORED, "a Relay-reply is not for a server")
    try:
        client = classify(inner, relays, arrival.source)
    except MalformedPacket as error:
        return _silent(Dhcp6OutcomeKind.MALFORMED, str(error), inner)
    exchange = _Exchange(inner, kind, client, relays, arrival, settings, store, now)
    if settings.mode is Dhcp6Mode.OFF:
        return exchange.silent(Dhcp6OutcomeKind.IGNORED, "DHCPv6 is off")
    refusal = exchange.validate()
    if refusal is not None:
        return refusal
    if settings.mode is Dhcp6Mode.PROXY:
        return exchange.proxy()
    return exchange.full()


def _unwrap(message: Dhcp6Message | RelayMessage) -> tuple[list[RelayMessage], Dhcp6Message]:
    """The relay layers, outermost first, and the client's own message inside them."""
    relays: list[RelayMessage] = []
    while isinstance(message, RelayMessage):
        relays.append(message)
        if message.msg_type != MessageType.RELAY_FORW:
            break
        message = message.relayed
    if isinstance(message, RelayMessage):
        raise MalformedPacket("a Relay-reply inside a Relay-forward")
    return relays, message


def _silent(kind: Dhcp6OutcomeKind, reason: str, message: Dhcp6Message | None = None) -> Outcome6:
    duid = None if message is None else message.option(Option.CLIENTID)
    return Outcome6(kind, duid, None, (), (), reason)


def _status(code: Status, message: str) -> RawOption:
    return (Option.STATUS_CODE, build_status_code(StatusCode(code, message)))


@dataclass(frozen=True, slots=True)
class _Boot:
    """The boot options one client gets, or why none."""

    url: str | None
    options: tuple[RawOption, ...]
    reason: str


@dataclass(slots=True)
class _Exchange:
    """One client message being answered: its facts, and the reply being built."""

    message: Dhcp6Message
    kind: MessageType
    client: Client6
    relays: Sequence[RelayMessage]
    arrival: Arrival6
    settings: Dhcp6Settings
    store: Lease6Store | None
    now: float

    # --- RFC 8415 §16: which messages are answered at all --------------------------

    def validate(self) -> Outcome6 | None:
        """The message's checks; an outcome when it is not answered normally."""
        name = self.kind.name
        ours = self.settings.server_duid
        named = self.client.server_duid
        if self.client.duid is None and self.kind is not MessageType.INFORMATION_REQUEST:
            return self.silent(Dhcp6OutcomeKind.MALFORMED, f"{name} without a Client Identifier")
        if named is not None and named != ours:
            return self.silent(Dhcp6OutcomeKind.IGNORED, f"{name} for another server")
        if self.kind in _ANONYMOUS and named is not None:
            return self.silent(Dhcp6OutcomeKind.MALFORMED, f"{name} with a Server Identifier")
        if self.kind in _ADDRESSED and named is None:
            return self.silent(Dhcp6OutcomeKind.IGNORED, f"{name} without our Server Identifier")
        if self.kind is MessageType.INFORMATION_REQUEST and self.client.ia_nas:
            return self.silent(Dhcp6OutcomeKind.MALFORMED, "Information-request with an IA_NA")
        if self.relays or self.arrival.destination.is_multicast:
            return None
        if self.kind in _MULTICAST_ONLY:
            return self.silent(Dhcp6OutcomeKind.IGNORED, f"{name} sent by unicast")
        if self._boot_service_request():
            return None
        if self.settings.mode is Dhcp6Mode.PROXY:
            return self.silent(Dhcp6OutcomeKind.IGNORED, f"{name} by unicast in proxy mode")
        # RFC 8415 §18.4: we never send Server Unicast (option 12), so a client
        # that unicasts is told to multicast; it retries on ff02::1:2.
        reply = self.reply(MessageType.REPLY, [_status(Status.USE_MULTICAST, "use ff02::1:2")])
        return self.outcome(Dhcp6OutcomeKind.IGNORED, f"{name} by unicast: UseMulticast", reply)

    def _boot_service_request(self) -> bool:
        """EDK2's boot-service Request after a proxy offer (PxeBcRequestBootService).

        A Request with our Server Identifier and no IA, from a boot client, sent
        by unicast to the host of our option 59 on port 4011: it asks for the
        boot file, never for an address (docs/protocols/dhcpv6.md §12).
        """
        return (
            self.kind is MessageType.REQUEST
            and not self.client.ia_nas
            and self.client.boot.wants_boot
        )

    # --- the two modes ----------------------------------------------------------------

    def proxy(self) -> Outcome6:
        """Boot information only: boot clients get boot options, nobody gets an address."""
        if not self.client.boot.wants_boot:
            return self.silent(
                Dhcp6OutcomeKind.IGNORED, f"{self.client.boot.kind} client in proxy mode"
            )
        if self.kind is MessageType.SOLICIT:
            reply_type = MessageType.ADVERTISE
        elif self.kind is MessageType.INFORMATION_REQUEST or self._boot_service_request():
            reply_type = MessageType.REPLY
        else:
            return self.silent(
                Dhcp6OutcomeKind.IGNORED, f"{self.kind.name}: addresses are the site server's"
            )
        boot = self.boot()
        if boot.url is None:
            return self.silent(Dhcp6OutcomeKind.IGNORED, boot.reason)
        options = [*boot.options, *self.configuration()]
        reply = self.reply(reply_type, options)
        return self.outcome(Dhcp6OutcomeKind.BOOT_INFO, boot.reason, reply, (), boot)

    def full(self) -> Outcome6:
        match self.kind:
            case MessageType.SOLICIT:
                return self.solicit()
            case MessageType.REQUEST:
                return self.request()
            case MessageType.RENEW | MessageType.REBIND:
                return self.renew()
            case MessageType.RELEASE | MessageType.DECLINE:
                return self.give_back()
            case MessageType.CONFIRM:
                return self.confirm()
            case MessageType.INFORMATION_REQUEST:
                return self.information()
        return self.silent(Dhcp6OutcomeKind.IGNORED, f"{self.kind.name} is not answered")

    # --- full mode, per message type (RFC 8415 §18.3) ---------------------------------

    def solicit(self) -> Outcome6:
        commit = self.client.rapid_commit and self.settings.rapid_commit
        boot = self.boot()
        ias, leased = self.assign(commit=commit)
        if self.client.ia_nas and not leased:
            # RFC 8415 §18.3.1: no address for any IA: only the status, so the
            # client goes on to another server.
            options = [_status(Status.NO_ADDRS_AVAIL, "no address left in the pool")]
            reply = self.reply(MessageType.ADVERTISE, [*options, *self.preference()])
            return self.outcome(Dhcp6OutcomeKind.NO_ADDRS, "pool exhausted", reply)
        options = [*ias, *boot.options, *self.configuration()]
        if commit:
            options.append((Option.RAPID_COMMIT, b""))
            kind, reply_type = Dhcp6OutcomeKind.BOUND, MessageType.REPLY
        else:
            options.extend(self.preference())
            kind, reply_type = Dhcp6OutcomeKind.ADVERTISE, MessageType.ADVERTISE
        return self.outcome(kind, boot.reason, self.reply(reply_type, options), leased, boot)

    def request(self) -> Outcome6:
        boot = self.boot()
        if not self.client.ia_nas:
            reply = self.reply(MessageType.REPLY, [*boot.options, *self.configuration()])
            kind = Dhcp6OutcomeKind.INFO_REPLY if boot.url is None else Dhcp6OutcomeKind.BOOT_INFO
            return self.outcome(kind, boot.reason, reply, (), boot)
        pool = self._pool()
        off_link = [
            ia
            for ia in self.client.ia_nas
            if any(not pool.on_link(a.address) for a in ia.addresses)
        ]
        if len(off_link) == len(self.client.ia_nas):
            ias = [
                self._ia(ia.iaid, status=(Status.NOT_ON_LINK, "not on this link"))
                for ia in off_link
            ]
            reply = self.reply(MessageType.REPLY, ias)
            return self.outcome(Dhcp6OutcomeKind.NOT_ON_LINK, "addresses off this link", reply)
        ias, leased = self.assign(commit=True, skip=off_link)
        if not leased:
            reply = self.reply(MessageType.REPLY, ias)
            return self.outcome(Dhcp6OutcomeKind.NO_ADDRS, "pool exhausted", reply)
        options = [*ias, *boot.options, *self.configuration()]
        return self.outcome(
            Dhcp6OutcomeKind.BOUND,
            boot.reason,
            self.reply(MessageType.REPLY, options),
            leased,
            boot,
        )

    def renew(self) -> Outcome6:
        """Renew and Rebind (RFC 8415 §18.3.4, §18.3.5): extend what the IA holds.

        An address off the pool's link comes back with lifetimes 0, so the client
        stops using it; an IA with nothing we can extend gets NoBinding. An
        on-link address we do not hold is left out rather than zeroed, since a
        Rebind reaches every server and another may hold it.
        """
        store, pool = self._store(), self._pool()
        ias: list[RawOption] = []
        extended: list[IPv6Address] = []
        for ia_na in self.client.ia_nas:
            key = IaKey(self._duid(), ia_na.iaid)
            wanted = [a.address for a in ia_na.addresses]
            held = store.lease_for(key)
            if not wanted and held is not None and held.active(self.now):
                wanted = [held.address]
            items: list[IaAddress] = []
            for address in wanted:
                lease = None
                if pool.on_link(address):
                    lease = store.extend(key, address, self.settings.lease_time, self.now)
                if lease is not None:
                    items.append(self._address(lease))
                    extended.append(lease.address)
                elif not pool.on_link(address):
                    items.append(IaAddress(address, 0, 0))
            if any(item.valid_lifetime for item in items):
                ias.append(self._ia(ia_na.iaid, items))
            else:
                ias.append(self._ia(ia_na.iaid, items, (Status.NO_BINDING, "no binding")))
        if not extended:
            reply = self.reply(MessageType.REPLY, ias)
            return self.outcome(Dhcp6OutcomeKind.NO_BINDING, f"{self.kind.name}: no binding", reply)
        boot = self.boot()
        options = [*ias, *boot.options, *self.configuration()]
        reply = self.reply(MessageType.REPLY, options)
        return self.outcome(
            Dhcp6OutcomeKind.BOUND, self.kind.name.lower(), reply, tuple(extended), boot
        )

    def give_back(self) -> Outcome6:
        """Release and Decline (RFC 8415 §18.3.7, §18.3.8): Success, NoBinding per unknown IA."""
        store = self._store()
        declining = self.kind is MessageType.DECLINE
        ias: list[RawOption] = []
        done: list[IPv6Address] = []
        for ia_na in self.client.ia_nas:
            key = IaKey(self._duid(), ia_na.iaid)
            mine = [
                a.address
                for a in ia_na.addresses
                if (store.decline if declining else store.release)(key, a.address, self.now)
            ]
            done.extend(mine)
            if not mine:
                ias.append(self._ia(ia_na.iaid, status=(Status.NO_BINDING, "no binding")))
        verb = "declined" if declining else "released"
        options = [_status(Status.SUCCESS, verb), *ias]
        reply = self.reply(MessageType.REPLY, options)
        if not done:
            return self.outcome(Dhcp6OutcomeKind.NO_BINDING, f"nothing to be {verb}", reply)
        kind = Dhcp6OutcomeKind.DECLINED if declining else Dhcp6OutcomeKind.RELEASED
        return self.outcome(kind, verb, reply, tuple(done))

    def confirm(self) -> Outcome6:
        """RFC 8415 §18.3.3: do the client's addresses still belong on its link?"""
        addresses = [a.address for ia in self.client.ia_nas for a in ia.addresses]
        if not addresses:
            return self.silent(Dhcp6OutcomeKind.IGNORED, "Confirm without addresses")
        pool = self._pool()
        if all(pool.on_link(address) for address in addresses):
            reply = self.reply(MessageType.REPLY, [_status(Status.SUCCESS, "on link")])
            return self.outcome(Dhcp6OutcomeKind.CONFIRMED, "on link", reply, tuple(addresses))
        reply = self.reply(MessageType.REPLY, [_status(Status.NOT_ON_LINK, "not on this link")])
        return self.outcome(Dhcp6OutcomeKind.NOT_ON_LINK, "addresses off this link", reply)

    def information(self) -> Outcome6:
        boot = self.boot()
        reply = self.reply(MessageType.REPLY, [*boot.options, *self.configuration()])
        return self.outcome(Dhcp6OutcomeKind.INFO_REPLY, boot.reason, reply, (), boot)

    # --- addresses ----------------------------------------------------------------------

    def assign(
        self, *, commit: bool, skip: Sequence[IaNa] = ()
    ) -> tuple[list[RawOption], tuple[IPv6Address, ...]]:
        """One address per IA_NA (offered, or bound when `commit`), NoAddrsAvail when none."""
        store = self._store()
        ias: list[RawOption] = []
        leased: list[IPv6Address] = []
        for ia_na in self.client.ia_nas:
            if ia_na in skip:
                ias.append(self._ia(ia_na.iaid, status=(Status.NOT_ON_LINK, "not on this link")))
                continue
            key = IaKey(self._duid(), ia_na.iaid)
            hint = ia_na.addresses[0].address if ia_na.addresses else None
            lease = (
                store.bind(key, self.client.mac, hint, self.settings.lease_time, self.now)
                if commit
                else store.offer(key, self.client.mac, hint, self.now)
            )
            if lease is None:
                ias.append(self._ia(ia_na.iaid, status=(Status.NO_ADDRS_AVAIL, "pool exhausted")))
            else:
                ias.append(self._ia(ia_na.iaid, [self._address(lease)]))
                leased.append(lease.address)
        return ias, tuple(leased)

    def _address(self, lease: Lease6) -> IaAddress:
        """The IAADDR of a lease: the whole lease time, preferred = valid (an offer too)."""
        lifetime = self.settings.lease_time
        return IaAddress(lease.address, lifetime, lifetime)

    def _ia(
        self,
        iaid: int,
        addresses: Sequence[IaAddress] = (),
        status: tuple[Status, str] | None = None,
    ) -> RawOption:
        options: list[IaAddress | StatusCode] = list(addresses)
        t1 = t2 = 0
        if any(a.valid_lifetime for a in addresses):
            t1, t2 = self.settings.t1, self.settings.t2
        if status is not None:
            options.append(StatusCode(status[0], status[1]))
        return (Option.IA_NA, build_ia_na(IaNa(iaid, t1, t2, tuple(options))))

    def _store(self) -> Lease6Store:
        if self.store is None:
            raise ValueError("full DHCPv6 mode needs a lease store")
        return self.store

    def _pool(self) -> Address6Pool:
        if self.settings.pool is None:
            raise ValueError("full DHCPv6 mode needs an address pool")
        return self.settings.pool

    def _duid(self) -> bytes:
        if self.client.duid_bytes is None:
            raise ValueError("validate() lets no message without a DUID through here")
        return self.client.duid_bytes

    # --- options ------------------------------------------------------------------------

    def boot(self) -> _Boot:
        """Options 59 (and 16 where EDK2 needs it) for a boot client; none for others."""
        client = self.client
        if not client.boot.wants_boot:
            return _Boot(None, (), f"{client.boot.kind} client")
        if client.mac is None:
            return _Boot(None, (), "boot client without a known MAC: no boot decision")
        server = self.url_address()
        if server is None:
            return _Boot(None, (), f"no IPv6 address on {self.arrival.interface} for a boot URL")
        full = self.settings.mode is Dhcp6Mode.FULL
        offer = boot_offer(client.boot, client.mac, str(server), self.settings.boot, full_mode=full)
        if isinstance(offer, NoBoot):
            return _Boot(None, (), offer.reason)
        url = boot_url(offer, server)
        options: list[RawOption] = [(Option.BOOTFILE_URL, build_bootfile_url(url))]
        if offer.vendor_class == b"HTTPClient" or not full:
            # EDK2's HttpBootDxe takes only an offer with HTTPClient for HTTP boot;
            # its PXE driver takes a PXEClient offer without an address as a proxy
            # offer, but with an address as a BINL offer that sends it to port 4011
            # first, so a full-mode PXE answer carries no vendor class (§12).
            vendor = VendorClass(PXE_ENTERPRISE_NUMBER, (offer.vendor_class,))
            options.append((Option.VENDOR_CLASS, build_vendor_class(vendor)))
        return _Boot(url, tuple(options), offer.description)

    def url_address(self) -> IPv6Address | None:
        """Ours on the arrival interface: the first global one, else the link-local one."""
        addresses = [i.ip for i in self.arrival.server_addresses]
        chosen = next((a for a in addresses if not a.is_link_local), None)
        if chosen is None and not self.relays:
            chosen = next(iter(addresses), None)
        return chosen

    def configuration(self) -> list[RawOption]:
        options: list[RawOption] = []
        if self.settings.dns_servers:
            options.append((Option.DNS_SERVERS, build_dns_servers(self.settings.dns_servers)))
        if self.settings.domain_search:
            options.append((Option.DOMAIN_LIST, build_domain_list(self.settings.domain_search)))
        return options

    def preference(self) -> list[RawOption]:
        return [(Option.PREFERENCE, bytes((self.settings.preference,)))]

    # --- the reply and its way back ---------------------------------------------------

    def reply(self, reply_type: MessageType, options: Sequence[RawOption]) -> Dhcp6Message:
        head: list[RawOption] = [(Option.SERVERID, self.settings.server_duid)]
        if self.client.duid_bytes is not None:
            head.append((Option.CLIENTID, self.client.duid_bytes))
        return Dhcp6Message(
            reply_type,
            self.message.transaction_id,
            tuple((int(c), v) for c, v in [*head, *options]),
        )

    def outgoing(self, reply: Dhcp6Message) -> Outgoing6:
        """Directly back to the client, or wrapped once per relay to the outermost relay."""
        if not self.relays:
            return Outgoing6(
                build_message(reply),
                self.arrival.source,
                self.arrival.source_port,
                self.arrival.interface_index,
            )
        wrapped: Dhcp6Message | RelayMessage = reply
        for relay in reversed(self.relays):
            wrapped = relay_reply_to(relay, wrapped)
        return Outgoing6(
            build_message(wrapped), self.arrival.source, SERVER_PORT, self.arrival.interface_index
        )

    def outcome(
        self,
        kind: Dhcp6OutcomeKind,
        reason: str,
        reply: Dhcp6Message,
        addresses: tuple[IPv6Address, ...] = (),
        boot: _Boot | None = None,
    ) -> Outcome6:
        return Outcome6(
            kind,
            self.client.duid_bytes,
            self.client.mac,
            addresses,
            (self.outgoing(reply),),
            reason,
            boot_url=None if boot is None else boot.url,
            client_kind=self.client.boot.kind,
        )

    def silent(self, kind: Dhcp6OutcomeKind, reason: str) -> Outcome6:
        return Outcome6(
            kind,
            self.client.duid_bytes,
            self.client.mac,
            (),
            (),
            reason,
            client_kind=self.client.boot.kind,
        )


def boot_url(offer: BootOffer, server: IPv6Address) -> str:
    """Option 59 for a boot decision: its URL, or its TFTP name as `tftp://[server]/name`.

    EDK2 (PxeBcExtractBootFileUrl) wants exactly `tftp://[` address `]/` name,
    and percent-decodes the name, so the name is quoted.
    """
    if offer.file_is_url:
        return offer.file.decode()
    return f"tftp://[{server}]/{quote(offer.file.decode())}"
