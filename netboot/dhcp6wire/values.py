"""The values of the options a network boot reads and writes, besides DUIDs and IAs.

Each `parse_*` takes an option's value (header left out) and raises
MalformedPacket naming the option and the byte offset in that value; each
`build_*` is its inverse and raises ValueError for what does not fit.
Layouts: RFC 8415 §21.7 (ORO), §21.9 (elapsed time), §21.15 (user class),
§21.16 (vendor class); RFC 6939 §4 (client link-layer address); RFC 3646 §3
and §4 (DNS); RFC 5970 §3.1 to §3.4 (boot);
summed up in docs/protocols/dhcpv6.md §5 and docs/protocols/dhcpv6.md §6.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address

from netboot.dhcp6wire.fields import pack_uint
from netboot.errors import MalformedPacket

MAX_NAME_LENGTH = 255
"""RFC 1035 §2.3.4: a name's wire form, length octets and root label included."""
MAX_LABEL_LENGTH = 63


@dataclass(frozen=True, slots=True)
class VendorClass:
    """Option 16: whose hardware the client is, and opaque strings its vendor defines.

    PXE and HTTP boot ROMs send enterprise 343 (Intel) with one string,
    `PXEClient:Arch:00007:UNDI:003016` or `HTTPClient:Arch:00016:UNDI:003016`.
    """

    enterprise_number: int
    data: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ClientLinkLayerAddress:
    """Option 79 (RFC 6939), added by a relay: the link-layer address it heard the client from.

    The one way a server learns a relayed client's MAC when its DUID carries
    none; `link_type` is an IANA hardware type (1 Ethernet).
    """

    link_type: int
    address: bytes


@dataclass(frozen=True, slots=True)
class NetworkInterfaceId:
    """Option 62 (RFC 5970 §3.4): the UNDI type and revision the ROM implements."""

    interface_type: int
    major: int
    minor: int


def parse_uint16_list(raw: bytes, where: str) -> tuple[int, ...]:
    """A list of 16-bit numbers: ORO codes, client architecture types."""
    if len(raw) % 2:
        raise MalformedPacket(f"{where}: {len(raw)} bytes is not a list of 16-bit values")
    return tuple(int.from_bytes(raw[at : at + 2], "big") for at in range(0, len(raw), 2))


def build_uint16_list(values: Sequence[int], what: str) -> bytes:
    return b"".join(pack_uint(value, 2, what) for value in values)


def parse_oro(raw: bytes) -> tuple[int, ...]:
    """Option 6: the option codes the client asks for."""
    return parse_uint16_list(raw, "option 6 (ORO)")


def build_oro(codes: Sequence[int]) -> bytes:
    return build_uint16_list(codes, "ORO option code")


def parse_client_arch_types(raw: bytes) -> tuple[int, ...]:
    """Option 61: the client's architecture types, most preferred first (RFC 5970 §3.3)."""
    if not raw:
        raise MalformedPacket("option 61 (CLIENT_ARCH_TYPE): empty, one type at least")
    return parse_uint16_list(raw, "option 61 (CLIENT_ARCH_TYPE)")


def build_client_arch_types(types: Sequence[int]) -> bytes:
    if not types:
        raise ValueError("option 61 needs one architecture type at least")
    return build_uint16_list(types, "architecture type")


def parse_elapsed_time(raw: bytes) -> int:
    """Option 8: hundredths of a second since the client began this exchange."""
    if len(raw) != 2:
        raise MalformedPacket(f"option 8 (ELAPSED_TIME): {len(raw)} bytes, not 2")
    return int.from_bytes(raw, "big")


def build_elapsed_time(hundredths: int) -> bytes:
    return pack_uint(hundredths, 2, "elapsed time")


def parse_length_prefixed(raw: bytes, start: int, where: str) -> tuple[bytes, ...]:
    """Items each led by a 16-bit length, from `start` to the end of `raw`."""
    items: list[bytes] = []
    at = start
    while at < len(raw):
        if at + 2 > len(raw):
            raise MalformedPacket(f"{where}: a stray byte at byte {at} where a length starts")
        length = int.from_bytes(raw[at : at + 2], "big")
        if at + 2 + length > len(raw):
            raise MalformedPacket(
                f"{where}: item at byte {at} claims {length} bytes, only {len(raw) - at - 2} follow"
            )
        items.append(raw[at + 2 : at + 2 + length])
        at += 2 + length
    return tuple(items)


def build_length_prefixed(items: Sequence[bytes], what: str) -> bytes:
    return b"".join(pack_uint(len(item), 2, f"{what} length") + item for item in items)


def parse_user_class(raw: bytes) -> tuple[bytes, ...]:
    """Option 15: the classes the user (or iPXE: `iPXE`) says the client belongs to."""
    return parse_length_prefixed(raw, 0, "option 15 (USER_CLASS)")


def build_user_class(classes: Sequence[bytes]) -> bytes:
    return build_length_prefixed(classes, "user class")


def parse_vendor_class(raw: bytes) -> VendorClass:
    if len(raw) < 4:
        raise MalformedPacket(f"option 16 (VENDOR_CLASS): {len(raw)} bytes, needs 4 at least")
    return VendorClass(
        enterprise_number=int.from_bytes(raw[:4], "big"),
        data=parse_length_prefixed(raw, 4, "option 16 (VENDOR_CLASS)"),
    )


def build_vendor_class(vendor_class: VendorClass) -> bytes:
    return pack_uint(vendor_class.enterprise_number, 4, "enterprise number") + (
        build_length_prefixed(vendor_class.data, "vendor class data")
    )


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedPacket(f"{where}: not UTF-8 at byte {error.start}") from None


def parse_bootfile_url(raw: bytes) -> str:
    """Option 59: the URL of the boot file (RFC 5970 §3.1), `tftp://[addr]/…` or `http://`."""
    return _text(raw, "option 59 (BOOTFILE_URL)")


def build_bootfile_url(url: str) -> bytes:
    return url.encode("utf-8")


def parse_bootfile_params(raw: bytes) -> tuple[str, ...]:
    """Option 60: the boot file's parameters, in order (RFC 5970 §3.2)."""
    where = "option 60 (BOOTFILE_PARAM)"
    params = parse_length_prefixed(raw, 0, where)
    return tuple(_text(param, f"{where}: parameter {index}") for index, param in enumerate(params))


def build_bootfile_params(params: Sequence[str]) -> bytes:
    return build_length_prefixed([param.encode("utf-8") for param in params], "boot parameter")


def parse_network_interface_id(raw: bytes) -> NetworkInterfaceId:
    if len(raw) != 3:
        raise MalformedPacket(f"option 62 (NII): {len(raw)} bytes, not 3")
    return NetworkInterfaceId(raw[0], raw[1], raw[2])


def build_network_interface_id(nii: NetworkInterfaceId) -> bytes:
    return b"".join(
        pack_uint(value, 1, "NII field") for value in (nii.interface_type, nii.major, nii.minor)
    )


def parse_client_link_layer_address(raw: bytes) -> ClientLinkLayerAddress:
    """Option 79: a 2-byte hardware type, then the address (RFC 6939 §4)."""
    if len(raw) < 3:
        raise MalformedPacket(
            f"option 79 (CLIENT_LINKLAYER_ADDR): {len(raw)} bytes, needs a type and an address"
        )
    return ClientLinkLayerAddress(int.from_bytes(raw[:2], "big"), raw[2:])


def build_client_link_layer_address(value: ClientLinkLayerAddress) -> bytes:
    if not value.address:
        raise ValueError("option 79 needs a link-layer address")
    return pack_uint(value.link_type, 2, "link-layer type") + value.address


def parse_dns_servers(raw: bytes) -> tuple[IPv6Address, ...]:
    """Option 23: recursive name servers (RFC 3646 §3)."""
    if len(raw) % 16:
        raise MalformedPacket(f"option 23 (DNS_SERVERS): {len(raw)} bytes is not 16 per address")
    return tuple(IPv6Address(raw[at : at + 16]) for at in range(0, len(raw), 16))


def build_dns_servers(servers: Sequence[IPv6Address]) -> bytes:
    return b"".join(server.packed for server in servers)


def parse_domain_list(raw: bytes) -> tuple[str, ...]:
    """Option 24: the domain search list (RFC 3646 §4), names in RFC 1035 §3.1 wire form.

    RFC 8415 §10 forbids compression here, so a pointer is refused. Labels are
    ASCII without dots, so every name round-trips through its text form; the
    root name is `""`.
    """
    where = "option 24 (DOMAIN_LIST)"
    names: list[str] = []
    at = 0
    while at < len(raw):
        start, labels = at, []
        while True:
            if at >= len(raw):
                raise MalformedPacket(f"{where}: name at byte {start} has no root label")
            length = raw[at]
            if length == 0:
                at += 1
                break
            if length > MAX_LABEL_LENGTH:
                raise MalformedPacket(
                    f"{where}: label length {length:#04x} at byte {at} (compression or reserved)"
                )
            if at + 1 + length > len(raw):
                raise MalformedPacket(f"{where}: label at byte {at} runs past the option")
            label = raw[at + 1 : at + 1 + length]
            if not label.isascii() or b"." in label:
                raise MalformedPacket(f"{where}: label at byte {at} is not a dot-free ASCII label")
            labels.append(label.decode("ascii"))
            at += 1 + length
        if at - start > MAX_NAME_LENGTH:
            raise MalformedPacket(f"{where}: name at byte {start} is {at - start} bytes, over 255")
        names.append(".".join(labels))
    return tuple(names)


def build_domain_list(names: Sequence[str]) -> bytes:
    """Encode names (a trailing dot is allowed); refuses empty or oversized labels."""
    encoded = bytearray()
    for name in names:
        text = name.removesuffix(".")
        labels = text.split(".") if text else []
        wire = bytearray()
        for label in labels:
            octets = label.encode("ascii")
            if not 1 <= len(octets) <= MAX_LABEL_LENGTH:
                raise ValueError(f"domain {name!r}: label {label!r} is not 1 to 63 bytes")
            wire += bytes((len(octets),)) + octets
        wire.append(0)
        if len(wire) > MAX_NAME_LENGTH:
            raise ValueError(f"domain {name!r} is {len(wire)} bytes on the wire, over 255")
        encoded += wire
    return bytes(encoded)
