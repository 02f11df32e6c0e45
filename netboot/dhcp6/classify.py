"""Who is asking on port 547: its DUID, its MAC when one can be known, its IAs and boot class.

The boot class is decided by `netboot.dhcp.pxe.classify_fields`, the same table
as for DHCPv4 (docs/protocols/pxe.md §8): option 16's enterprise-343 string
plays option 60's part, option 15's `iPXE` item option 77's, option 61 option
93's. So a machine is the same `BootClient`, and gets the same boot decision,
whichever family it asks in.

A MAC is what assignments and the catalog's MAC lists key on, and a DUID only
carries one in its LL and LLT types. For the others (EN, UUID: EDK2 sends a
DUID-UUID by default) the MAC comes, in this order, from option 79 (RFC 6939)
of the relay nearest the client, else from the client's link-local address
when it is an EUI-64 one (RFC 4291 appendix A): the source of a direct client,
the innermost relay's peer-address for a relayed one; else there is none
(docs/protocols/dhcpv6.md §11).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv6Address, IPv6Network

from netboot.dhcp.pxe import IPXE_USER_CLASS, BootClient, classify_fields
from netboot.dhcp6wire.duid import Duid, parse_duid
from netboot.dhcp6wire.ia import IaNa, parse_ia_na
from netboot.dhcp6wire.options import HARDWARE_TYPE_ETHERNET, PXE_ENTERPRISE_NUMBER, Option
from netboot.dhcp6wire.packet import Dhcp6Message, RelayMessage
from netboot.dhcp6wire.values import (
    parse_client_link_layer_address,
    parse_oro,
    parse_user_class,
    parse_vendor_class,
)
from netboot.macaddr import MacAddress, mac_from_bytes

LINK_LOCAL = IPv6Network("fe80::/64")
"""RFC 4291 §2.5.6: link-local unicast addresses, whose low 64 bits are the interface ID."""


class MacSource(StrEnum):
    """Where a client's MAC was read: for the log, since the last two are inferences."""

    DUID = "duid"
    RELAY_OPTION = "relay_option_79"
    LINK_LOCAL = "link_local_eui64"


@dataclass(frozen=True, slots=True)
class Client6:
    """What one client message says about its sender."""

    duid: Duid | None
    """Option 1; only an Information-request may leave it out (RFC 8415 §16.12)."""
    duid_bytes: bytes | None
    """Option 1 as sent: leases key on the whole DUID (RFC 8415 §11)."""
    mac: MacAddress | None
    mac_source: MacSource | None
    server_duid: bytes | None
    """Option 2 as sent: the server the client addresses, if any."""
    ia_nas: tuple[IaNa, ...]
    boot: BootClient
    oro: tuple[int, ...]
    rapid_commit: bool


def classify(message: Dhcp6Message, relays: Sequence[RelayMessage], source: IPv6Address) -> Client6:
    """Read a client message; `relays` outermost first, `source` the datagram's source.

    Raises MalformedPacket (from the codec) when an option the decision reads
    does not decode.
    """
    raw_duid = message.option(Option.CLIENTID)
    duid = None if raw_duid is None else parse_duid(raw_duid, "option 1 (CLIENTID)")
    mac, mac_source = _mac(duid, relays, source)
    oro_raw = message.option(Option.ORO)
    return Client6(
        duid=duid,
        duid_bytes=raw_duid,
        mac=mac,
        mac_source=mac_source,
        server_duid=message.option(Option.SERVERID),
        ia_nas=tuple(parse_ia_na(value) for value in message.all_of(Option.IA_NA)),
        boot=boot_client(message),
        oro=() if oro_raw is None else parse_oro(oro_raw),
        rapid_commit=message.option(Option.RAPID_COMMIT) is not None,
    )


def boot_client(message: Dhcp6Message) -> BootClient:
    """The IPv4 decision table over the DHCPv6 options that carry the same facts."""
    vendor_class = b""
    for value in message.all_of(Option.VENDOR_CLASS):
        parsed = parse_vendor_class(value)
        if parsed.enterprise_number == PXE_ENTERPRISE_NUMBER and parsed.data:
            vendor_class = parsed.data[0]
            break
    user_classes = [
        item for value in message.all_of(Option.USER_CLASS) for item in parse_user_class(value)
    ]
    user_class = IPXE_USER_CLASS if IPXE_USER_CLASS in user_classes else b"".join(user_classes[:1])
    return classify_fields(
        vendor_class=vendor_class,
        user_class=user_class,
        ipxe_options=None,
        architectures=message.option(Option.CLIENT_ARCH_TYPE),
        architectures_name="option 61",
        vendor_class_name="option 16",
    )


def _mac(
    duid: Duid | None, relays: Sequence[RelayMessage], source: IPv6Address
) -> tuple[MacAddress | None, MacSource | None]:
    if duid is not None and duid.mac is not None:
        return duid.mac, MacSource.DUID
    if relays:
        nearest = relays[-1]
        raw = nearest.option(Option.CLIENT_LINKLAYER_ADDR)
        if raw is not None:
            value = parse_client_link_layer_address(raw)
            if value.link_type == HARDWARE_TYPE_ETHERNET and len(value.address) == 6:
                return mac_from_bytes(value.address), MacSource.RELAY_OPTION
        source = nearest.peer_address
    mac = eui64_mac(source)
    return (mac, MacSource.LINK_LOCAL) if mac is not None else (None, None)


def eui64_mac(address: IPv6Address) -> MacAddress | None:
    """The MAC inside a link-local address formed by modified EUI-64 (RFC 4291 appendix A).

    The interface ID is the MAC with `ff:fe` in its middle and the
    universal/local bit inverted; any other link-local address (privacy,
    stable-privacy per RFC 7217) carries no MAC.
    """
    if address not in LINK_LOCAL:
        return None
    interface_id = address.packed[8:]
    if interface_id[3:5] != b"\xff\xfe":
        return None
    return mac_from_bytes(bytes((interface_id[0] ^ 0x02,)) + interface_id[1:3] + interface_id[5:])
