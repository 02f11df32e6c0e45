"""The BSDP decision: which images a Mac may see, and what its SELECT gets.

`BsdpPolicy.decide(request, catalog, server_address, now)` returns a `Reply`
(its kind, one or more ACK packets and where to send them, the image a SELECT
bound) or an `Ignore` with the reason code and its text for the log. It
follows Apple's bootpd (bsdpd.c) as docs/protocols/bsdp.md §5 and §6
describe it:

* Pre-checks, any failure is silence: htype 1/hlen 6, DHCP INFORM, option 60
  a client class, option 43 decodes with a supported version and a message
  type, a reply port (if any) below 1024.
* LIST: the eligible images (architecture, model and MAC lists, enabled, the
  attribute filter or else not FilterOnly) with priority, default image and,
  when this client is bound here to a still-eligible image, the selected one.
  No eligible image, no reply. Version 1.0 clients get no image list.
  The list goes out in one ACK[LIST], cut when it does not fit (packing.py).
* SELECT: needs sub-option 3; another server's id drops our binding and is
  silence. The chosen image (sub-option 8, else the default) must still be
  eligible, or the answer is ACK[FAILED]. ACK[SELECT] carries the booter's
  TFTP path in `file`, our address in siaddr (an image's LoadBalanceServer
  instead), the root path in option 17 and the machine name; the client is
  then bound to the image.
* DISCOVER (the fast path, `offer`): a Mac bound here within the binding's
  lifetime gets a BSDP OFFER of its image, as bootpd's DISCOVER path sends
  it (docs/protocols/bsdp.md §1.2): no address, the boot fields of
  ACK[SELECT], option 43 with the selected image and machine name but no
  message type. Unbound, or the image no longer bootable for it: silence,
  so the Mac falls back to LIST and SELECT.

Every request gets at most one packet back. Replies go unicast to ciaddr,
to the reply port or 68, also when giaddr is set: an INFORMing client
already has an address that routes. A request
without ciaddr (Apple's server drops those; insomniacslk's BSDP client sends
its SELECT so) is answered as RFC 2131 answers clients without an address: to
the relay at giaddr port 67 when relayed, else by broadcast on the interface
it came in on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.options import (
    MAX_NAME_BYTES,
    SUPPORTED_VERSIONS,
    VERSION_1_0,
    BootImage,
    BsdpMessage,
    MessageType,
    decode,
    encode,
)
from netboot.bsdp.packing import ListCut, pack_list
from netboot.bsdp.rootpath import RootPathSettings, root_path
from netboot.bsdp.vendor_class import PREFIX, ClientClass, parse_client_class
from netboot.dhcpwire.options import BROADCAST, CLIENT_PORT, SERVER_PORT, Option
from netboot.dhcpwire.options import MessageType as DhcpType
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import ZERO, DhcpPacket, encode_options, option_space, reply_to
from netboot.errors import MalformedPacket
from netboot.macaddr import MacAddress
from netboot.nbi.access import mac_allowed
from netboot.nbi.catalog import Catalog, NbiSet
from netboot.nbi.image_id import BootImageId
from netboot.nbi.model import ImageType, NBImageInfo
from netboot.nbi.validate import RootPathForm, root_path_form

MIN_REPLY_SIZE = 576
MAX_REPLY_SIZE = 8192
"""Apple's send buffer; replies to INFORM may be IP-fragmented up to this."""
RESERVED_PORT_LIMIT = 1024
NETBOOT_1_0_MODEL = "/NetBoot1"
"""The model Apple's bsdpd matches NetBoot 1.0 clients by (version 0 or sub-option 10)."""


@dataclass(frozen=True, slots=True)
class BsdpSettings:
    priority: int = 32768
    server_name: str = ""
    """sname of ACK[SELECT]: the server's host name."""
    root_paths: RootPathSettings = field(default_factory=RootPathSettings)
    shadow_root: str | None = None
    """The exported directory holding diskless clients' shadow areas, if served."""


@dataclass(frozen=True, slots=True)
class Reply:
    kind: OutcomeKind
    """BSDP_LIST, BSDP_SELECT, BSDP_FAILED (an ACK) or BSDP_OFFER (the fast path)."""
    packets: tuple[DhcpPacket, ...]
    destination: tuple[str, int]
    summary: str
    """One line for the log: what was answered (for people; nothing parses it)."""
    image_id: BootImageId | None = None
    """The image an ACK[SELECT] bound the client to."""
    shadow_directory: str | None = None
    """A diskless client's directory under the shadow root, to exist before replying."""
    list_cut: ListCut | None = None
    """An ACK[LIST] that could not hold every eligible image (logged once per client)."""


class IgnoreReason(StrEnum):
    """Why a BSDP request gets no answer: the code behind `Ignore.reason`'s text."""

    NOT_ETHERNET = "not_ethernet"
    NOT_INFORM = "not_inform"
    NOT_A_CLIENT_CLASS = "not_a_client_class"
    MALFORMED = "malformed"
    """The peer sent garbage (counted, rate-limited in logs)."""
    UNKNOWN_MESSAGE = "unknown_message"
    NO_IMAGE = "no_image"
    OTHER_SERVER = "other_server"
    """A SELECT for another server: its binding here, if any, is dropped."""
    NOT_BOUND = "not_bound"
    """A DISCOVER from a Mac with no binding here (or one past its lifetime)."""
    IMAGE_GONE = "image_gone"
    """A DISCOVER from a Mac bound to an image it may no longer boot."""


@dataclass(frozen=True, slots=True)
class Ignore:
    code: IgnoreReason
    reason: str
    """For the log (for people; nothing parses it)."""

    @property
    def malformed(self) -> bool:
        return self.code is IgnoreReason.MALFORMED


Decision = Reply | Ignore


@dataclass(frozen=True, slots=True)
class _Request:
    packet: DhcpPacket
    client: ClientClass
    bsdp: BsdpMessage
    mac: MacAddress
    destination: tuple[str, int]
    nfs_available: bool = True


@dataclass(frozen=True, slots=True)
class _Boot:
    """What a Mac is told to boot: the same in ACK[SELECT] and in the BSDP OFFER."""

    siaddr: str
    sname: bytes
    file: bytes
    root_path: str | None
    booter: str
    shadow_directory: str | None = None
    shadow_mount: str | None = None
    shadow_file: str | None = None


@dataclass(frozen=True, slots=True)
class _Unbootable:
    reason: str
    """For the log (ACK[FAILED]'s summary, or why a DISCOVER gets silence)."""


def eligible(info: NBImageInfo, client: ClientClass, mac: MacAddress) -> bool:
    """Architecture, model and MAC rules of one image for one client (no filter)."""
    return ineligibility(info, client.arch, client.model, mac) is None


def ineligibility(
    info: NBImageInfo, arch: str | None, model: str | None, mac: MacAddress
) -> str | None:
    """Why a Mac may not boot this image, or None when it may: the rules of `eligible`,
    worded for the admin. An architecture or model not known (None) is not held
    against the Mac: the admin API asks about Macs it may not have seen yet."""
    if arch is not None and arch not in info.architectures:
        return f"is built for {', '.join(info.architectures)}, this Mac is {arch}"
    listed = info.enabled_system_identifiers
    if model is not None and listed and model not in listed:
        return f"does not list {model} in EnabledSystemIdentifiers"
    if model is not None and model in info.disabled_system_identifiers:
        return f"lists {model} in DisabledSystemIdentifiers"
    if not mac_allowed(info, mac):
        return f"does not admit {mac} (its MAC address lists)"
    return None


def passes_filter(info: NBImageInfo, attribute_filter: Sequence[int] | None) -> bool:
    if attribute_filter is None:
        return not info.filter_only
    return (int(info.image_id) >> 16) in attribute_filter


def in_list_order(sets: Sequence[NbiSet]) -> list[NbiSet]:
    """Apple's order: defaults first, unrestricted defaults first, then catalog order."""

    def rank(nbi_set: NbiSet) -> int:
        info = nbi_set.info
        if info is None or not info.is_default:
            return 2
        return 1 if info.enabled_system_identifiers else 0

    return sorted(sets, key=rank)  # stable: catalog order within each rank


def wire_name(name: str) -> str:
    """The name cut to what one list record carries, at a character boundary."""
    raw = name.encode()[:MAX_NAME_BYTES]
    return raw.decode(errors="ignore")


class BsdpPolicy:
    def __init__(self, settings: BsdpSettings, bindings: BindingTable) -> None:
        self.settings = settings
        self.bindings = bindings
        self.assigned: Mapping[MacAddress, int | None] = MappingProxyType({})
        """Admin assignments (MAC to image ID; None: no image chosen), swapped whole on
        every change: an assigned image a Mac may boot is its default in LIST and what
        a SELECT without sub-option 8 gets."""

    @staticmethod
    def _offerable(nbi_set: NbiSet, request: _Request) -> bool:
        """False for an image whose NFS export is ours and not running."""
        info = nbi_set.info
        if info is None or info.image_type is not ImageType.NFS or request.nfs_available:
            return True
        return info.root_path is not None and root_path_form(info.root_path) is not (
            RootPathForm.LOCAL
        )

    def priority(self, now: float) -> int:
        """Configured priority minus the clients bound here: busy servers rank lower."""
        return max(0, self.settings.priority - self.bindings.active(now))

    def decide(
        self,
        packet: DhcpPacket,
        catalog: Catalog,
        server_address: str,
        now: float,
        nfs_available: bool = True,
    ) -> Decision:
        """`nfs_available` False hides the images we would have to serve over NFS."""
        checked = self._check(packet)
        if isinstance(checked, Ignore):
            return checked
        checked = replace(checked, nfs_available=nfs_available)
        if checked.bsdp.message_type == MessageType.LIST:
            return self._list(checked, catalog, server_address, now)
        if checked.bsdp.message_type == MessageType.SELECT:
            return self._select(checked, catalog, server_address, now)
        return Ignore(
            IgnoreReason.UNKNOWN_MESSAGE,
            f"BSDP message type {checked.bsdp.message_type} from a client",
        )

    # -- pre-checks ---------------------------------------------------------------

    def _check(self, packet: DhcpPacket) -> _Request | Ignore:
        if packet.htype != 1 or packet.hlen != 6:
            return Ignore(
                IgnoreReason.NOT_ETHERNET,
                f"hardware type {packet.htype}/{packet.hlen} is not Ethernet",
            )
        if packet.message_type != DhcpType.INFORM:
            return Ignore(
                IgnoreReason.NOT_INFORM, f"DHCP message type {packet.message_type} is not INFORM"
            )
        client = _client_class(packet)
        if isinstance(client, Ignore):
            return client
        pieces = packet.all_of(Option.VENDOR_SPECIFIC)
        if not pieces:
            return Ignore(IgnoreReason.MALFORMED, "no option 43")
        try:
            bsdp = decode(b"".join(pieces))
        except MalformedPacket as error:
            return Ignore(IgnoreReason.MALFORMED, f"option 43: {error}")
        if bsdp.version not in SUPPORTED_VERSIONS:
            return Ignore(IgnoreReason.MALFORMED, f"BSDP version {bsdp.version} is not supported")
        if bsdp.message_type is None:
            return Ignore(IgnoreReason.MALFORMED, "no BSDP message type")
        port = CLIENT_PORT if bsdp.reply_port is None else bsdp.reply_port
        if port >= RESERVED_PORT_LIMIT:
            return Ignore(IgnoreReason.MALFORMED, f"reply port {port} is not below 1024")
        if packet.ciaddr != ZERO:
            destination = (packet.ciaddr, port)
        elif packet.giaddr != ZERO:
            destination = (packet.giaddr, SERVER_PORT)
        else:
            destination = (BROADCAST, port)
        if bsdp.version == 0 or bsdp.netboot_1_0_firmware:
            # Apple matches NetBoot 1.0 clients (old ROMs) under this model name.
            client = ClientClass(client.arch, NETBOOT_1_0_MODEL)
        return _Request(packet, client, bsdp, packet.mac, destination)

    # -- LIST -----------------------------------------------------------------------

    def visible_sets(self, request: _Request, catalog: Catalog) -> list[NbiSet]:
        """Eligible sets in Apple's order: defaults first, unrestricted defaults first."""
        sets = [
            s
            for s in catalog.servable
            if s.info is not None
            and eligible(s.info, request.client, request.mac)
            and passes_filter(s.info, request.bsdp.attribute_filter)
            and self._offerable(s, request)
        ]
        return self._assigned_first(request.mac, in_list_order(sets))

    def _assigned_first(self, mac: MacAddress, sets: list[NbiSet]) -> list[NbiSet]:
        """`sets` with the image assigned to `mac` moved to the front, when it is among them:
        the front is the default of LIST and what a SELECT without an image ID gets."""
        wanted = self.assigned.get(mac)
        if wanted is None:
            return sets
        for position, nbi_set in enumerate(sets):
            if nbi_set.info is not None and int(nbi_set.info.image_id) == wanted:
                return [nbi_set, *sets[:position], *sets[position + 1 :]]
        return sets

    def _list(self, request: _Request, catalog: Catalog, server: str, now: float) -> Decision:
        visible = self.visible_sets(request, catalog)
        if not visible:
            return Ignore(IgnoreReason.NO_IMAGE, "no image this client may boot")
        default = visible[0].info
        assert default is not None
        header = BsdpMessage(
            message_type=MessageType.LIST,
            server_priority=self.priority(now),
            default_image_id=int(default.image_id),
            selected_image_id=self._bound_image(request, visible),
        )
        images = [
            BootImage(int(s.info.image_id), wire_name(s.info.name))
            for s in visible
            if s.info is not None
        ]
        size = self._max_size(request)
        cut = None
        if request.bsdp.version == VERSION_1_0:
            instances: tuple[bytes, ...] = (encode(header),)
        else:
            packed = pack_list(header, images, list_option_space(size))
            instances = packed.instances
            if packed.truncated:
                cut = ListCut(len(packed.images), packed.offered, size)
        options = self._reply_options(server, [])
        options.extend((Option.VENDOR_SPECIFIC, instance) for instance in instances)
        listed = f"{cut.listed} of {cut.offered}" if cut else f"{len(images)}"
        summary = (
            f"ACK[LIST] of {listed} image(s), "
            f"default {int(default.image_id):#010x}, priority {header.server_priority}"
        )
        return Reply(
            OutcomeKind.BSDP_LIST,
            (self._ack(request, server, options),),
            request.destination,
            summary,
            list_cut=cut,
        )

    def _bound_image(self, request: _Request, visible: list[NbiSet]) -> int | None:
        binding = self.bindings.get(request.mac)
        if binding is None:
            return None
        ids = {int(s.info.image_id) for s in visible if s.info is not None}
        return binding.image_id if binding.image_id in ids else None

    @staticmethod
    def _max_size(request: _Request) -> int:
        size = request.bsdp.max_message_size
        if size is None:
            raw = request.packet.option(Option.MAX_MESSAGE_SIZE)
            size = int.from_bytes(raw, "big") if raw is not None and len(raw) == 2 else 0
        return min(max(size, MIN_REPLY_SIZE), MAX_REPLY_SIZE)

    # -- SELECT ---------------------------------------------------------------------

    def _select(self, request: _Request, catalog: Catalog, server: str, now: float) -> Decision:
        chosen_server = request.bsdp.server_identifier
        if chosen_server is None:
            return Ignore(IgnoreReason.MALFORMED, "SELECT without a server identifier")
        if chosen_server != server:
            dropped = self.bindings.drop(request.mac)
            return Ignore(
                IgnoreReason.OTHER_SERVER,
                f"SELECT is for server {chosen_server}" + ("; binding dropped" if dropped else ""),
            )
        sets = [
            s
            for s in catalog.servable
            if s.info is not None
            and eligible(s.info, request.client, request.mac)
            and self._offerable(s, request)
        ]
        wanted = request.bsdp.selected_image_id
        if wanted is None:
            ranked = self.visible_sets(request, catalog)
            chosen = ranked[0] if ranked else None
        else:
            chosen = next((s for s in sets if s.info and int(s.info.image_id) == wanted), None)
        if chosen is None or chosen.info is None:
            what = f"{wanted:#010x}" if wanted is not None else "a default image"
            return self._failed(request, server, f"no eligible image {what}")
        boot = self._boot(chosen, request, catalog, server)
        if isinstance(boot, _Unbootable):
            return self._failed(request, server, boot.reason)
        info = chosen.info
        binding = self.bindings.bind(request.mac, int(info.image_id), request.packet.ciaddr, now)
        bsdp = BsdpMessage(
            message_type=MessageType.SELECT,
            selected_image_id=int(info.image_id),
            machine_name=binding.machine_name,
            shadow_mount_path=boot.shadow_mount,
            shadow_file_path=boot.shadow_file,
        )
        packet = self._boot_reply(self._ack(request, server, []), server, DhcpType.ACK, boot, bsdp)
        summary = (
            f"ACK[SELECT] of {int(info.image_id):#010x} {info.name!r}: "
            f"file {boot.booter}, root path {boot.root_path}, machine {binding.machine_name}"
        )
        return Reply(
            OutcomeKind.BSDP_SELECT,
            (packet,),
            request.destination,
            summary,
            info.image_id,
            boot.shadow_directory,
        )

    def _boot(
        self, chosen: NbiSet, request: _Request, catalog: Catalog, server: str
    ) -> _Boot | _Unbootable:
        """The booter, root path and boot server of an image for this client, if it has them."""
        info = chosen.info
        assert info is not None
        booter = chosen.booters.get(request.client.arch)
        if booter is None or len(str(booter).encode()) > 127:
            return _Unbootable(f"no booter for {request.client.arch}")
        load_balancer = _ip_literal(info.load_balance_server)
        path = root_path(chosen, self.settings.root_paths, server, catalog.root, load_balancer)
        if path is not None and len(path.encode()) > 255:
            return _Unbootable("root path longer than 255 bytes")
        boot = _Boot(
            siaddr=load_balancer or server,
            sname=b"" if load_balancer else self.settings.server_name.encode()[:63],
            file=str(booter).encode(),
            root_path=path,
            booter=str(booter),
        )
        if info.supports_diskless and self.settings.shadow_root and request.nfs_available:
            # One directory per client, named by its MAC; the client creates the file.
            directory = str(request.mac).replace(":", "")
            host = self.settings.root_paths.public_host or server
            boot = replace(
                boot,
                shadow_directory=directory,
                shadow_mount=f"nfs:{host}:{self.settings.shadow_root}",
                shadow_file=f"{directory}/Shadow",
            )
        return boot

    @staticmethod
    def _boot_reply(
        reply: DhcpPacket, server: str, kind: int, boot: _Boot, bsdp: BsdpMessage
    ) -> DhcpPacket:
        """`reply` as DHCP type `kind` from us (53, 54, 60), with a bound Mac's boot fields."""
        options = _own(server, kind)
        if boot.root_path is not None:
            options.append((Option.ROOT_PATH, boot.root_path.encode()))
        options.append((Option.VENDOR_SPECIFIC, encode(bsdp)))
        return replace(
            reply, siaddr=boot.siaddr, sname=boot.sname, file=boot.file, options=tuple(options)
        )

    # -- DISCOVER: the fast path -----------------------------------------------------

    def offer(
        self,
        packet: DhcpPacket,
        catalog: Catalog,
        server_address: str,
        now: float,
        nfs_available: bool = True,
    ) -> Decision:
        """A bound Mac's DISCOVER: a BSDP OFFER of its image, or silence.

        docs/protocols/bsdp.md §1.2. The binding is not renewed here: no disk
        write per DISCOVER, however many a Mac (or a flood) sends.
        """
        checked = self._check_discover(packet)
        if isinstance(checked, Ignore):
            return checked
        request = replace(checked, nfs_available=nfs_available)
        binding = self.bindings.bound(request.mac, now)
        if binding is None:
            return Ignore(IgnoreReason.NOT_BOUND, "DISCOVER from a Mac not bound here")
        wanted = binding.image_id
        chosen = next(
            (
                s
                for s in catalog.servable
                if s.info is not None
                and int(s.info.image_id) == wanted
                and eligible(s.info, request.client, request.mac)
                and (
                    request.bsdp.attribute_filter is None
                    or passes_filter(s.info, request.bsdp.attribute_filter)
                )
                and self._offerable(s, request)
            ),
            None,
        )
        if chosen is None or chosen.info is None:
            return Ignore(
                IgnoreReason.IMAGE_GONE,
                f"bound to {wanted:#010x}, which this Mac may no longer boot",
            )
        boot = self._boot(chosen, request, catalog, server_address)
        if isinstance(boot, _Unbootable):
            return Ignore(IgnoreReason.IMAGE_GONE, f"bound to {wanted:#010x}: {boot.reason}")
        bsdp = BsdpMessage(
            selected_image_id=wanted,
            machine_name=binding.machine_name,
            shadow_mount_path=boot.shadow_mount,
            shadow_file_path=boot.shadow_file,
        )
        # No address, and ciaddr 0 as bootpd sends it (docs/protocols/bsdp.md §1.2).
        reply = replace(reply_to(packet, ()), ciaddr=ZERO)
        offer = self._boot_reply(reply, server_address, DhcpType.OFFER, boot, bsdp)
        summary = (
            f"BSDP OFFER of {wanted:#010x} {chosen.info.name!r}: file {boot.booter}, "
            f"root path {boot.root_path}, machine {binding.machine_name}"
        )
        return Reply(
            OutcomeKind.BSDP_OFFER,
            (offer,),
            request.destination,
            summary,
            chosen.info.image_id,
            boot.shadow_directory,
        )

    def _check_discover(self, packet: DhcpPacket) -> _Request | Ignore:
        """bootpd's pre-checks, except that option 43 may be absent (see §1.2)."""
        if packet.htype != 1 or packet.hlen != 6:
            return Ignore(
                IgnoreReason.NOT_ETHERNET,
                f"hardware type {packet.htype}/{packet.hlen} is not Ethernet",
            )
        client = _client_class(packet)
        if isinstance(client, Ignore):
            return client
        bsdp = BsdpMessage()
        pieces = packet.all_of(Option.VENDOR_SPECIFIC)
        if pieces:
            try:
                bsdp = decode(b"".join(pieces))
            except MalformedPacket as error:
                return Ignore(IgnoreReason.MALFORMED, f"option 43: {error}")
            if bsdp.version is not None and bsdp.version not in SUPPORTED_VERSIONS:
                return Ignore(
                    IgnoreReason.MALFORMED, f"BSDP version {bsdp.version} is not supported"
                )
            if bsdp.version == 0 or bsdp.netboot_1_0_firmware:
                client = ClientClass(client.arch, NETBOOT_1_0_MODEL)
        if packet.giaddr != ZERO:
            destination = (packet.giaddr, SERVER_PORT)
        else:
            destination = (BROADCAST, CLIENT_PORT)
        return _Request(packet, client, bsdp, packet.mac, destination)

    def _failed(self, request: _Request, server: str, why: str) -> Reply:
        options = self._reply_options(server, [])
        options.append(
            (Option.VENDOR_SPECIFIC, encode(BsdpMessage(message_type=MessageType.FAILED)))
        )
        packet = replace(
            self._ack(request, server, options), sname=self.settings.server_name.encode()[:63]
        )
        return Reply(OutcomeKind.BSDP_FAILED, (packet,), request.destination, f"ACK[FAILED]: {why}")

    # -- building -------------------------------------------------------------------

    @staticmethod
    def _reply_options(server: str, extra: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        return [*_own(server, DhcpType.ACK), *extra]

    @staticmethod
    def _ack(request: _Request, server: str, options: list[tuple[int, bytes]]) -> DhcpPacket:
        return reply_to(request.packet, options, siaddr=server)


def list_option_space(max_size: int) -> int:
    """What an ACK[LIST] of `max_size` bytes leaves for its option-43 instances.

    The BOOTP header, the cookie, options 53, 54 and 60 and END take the rest.
    """
    fixed = BsdpPolicy._reply_options(ZERO, [])
    return option_space(max_size) - encode_options(fixed) - 1


BOOT_OPTIONS = (Option.VENDOR_CLASS, Option.ROOT_PATH, Option.VENDOR_SPECIFIC)
"""The options of a BSDP OFFER that tell a Mac what to boot (60 says they are BSDP's)."""


def with_boot_fields(reply: DhcpPacket, bsdp_offer: DhcpPacket) -> DhcpPacket:
    """`reply` (full mode's lease OFFER) carrying what `bsdp_offer` tells the Mac to boot.

    siaddr, sname, file and options 60, 17 and 43 are taken from the BSDP OFFER,
    replacing the reply's own; the address and network options stay the reply's.
    """
    kept = [o for o in reply.options if o[0] not in BOOT_OPTIONS]
    carried = [o for o in bsdp_offer.options if o[0] in BOOT_OPTIONS]
    return replace(
        reply,
        siaddr=bsdp_offer.siaddr,
        sname=bsdp_offer.sname,
        file=bsdp_offer.file,
        options=(*kept, *carried),
    )


def _own(server: str, kind: int) -> list[tuple[int, bytes]]:
    """53, 54 and 60 of a reply from us, in bootpd's order."""
    return [
        (Option.MESSAGE_TYPE, bytes((kind,))),
        (Option.SERVER_IDENTIFIER, ipaddress.IPv4Address(server).packed),
        (Option.VENDOR_CLASS, PREFIX),
    ]


def _client_class(packet: DhcpPacket) -> ClientClass | Ignore:
    """Option 60 as a BSDP client class (architecture and model), or why not."""
    vendor_class = packet.option(Option.VENDOR_CLASS) or b""
    client = parse_client_class(vendor_class)
    if client is None:
        return Ignore(
            IgnoreReason.NOT_A_CLIENT_CLASS,
            f"option 60 {vendor_class[:40]!r} is not a BSDP client class",
        )
    return client


def _ip_literal(host: str | None) -> str | None:
    if host is None:
        return None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None
