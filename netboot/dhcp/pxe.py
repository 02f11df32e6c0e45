"""Who is asking: BSDP Mac, PXE ROM, iPXE, UEFI HTTP boot, or a plain DHCP client.

The rules are the decision table of docs/protocols/pxe.md §8, in its order:
BSDP first (option 60 `AAPLBSDPC`), then the iPXE markers (option 77 `iPXE`
or option 175), then `HTTPClient`, then `PXEClient` with its architecture,
then everything else. iPXE also says `PXEClient`, so testing for it first is
what keeps a chainloaded iPXE from being handed the iPXE binary again.

The architecture comes from option 93 (the first code we know, RFC 4578 and
the IANA registry), falling back to the digits of option 60's `Arch:` field
only when 93 is missing. Code 9 (EBC by the registry, x64 by the RFC's
original text) is treated as x64: no machine runs EBC as its CPU.

This module also encodes the server side of options 43 (PXE sub-options) and
175 (iPXE settings), which only PXE replies carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from netboot.dhcpwire.options import Option
from netboot.dhcpwire.packet import DhcpPacket
from netboot.dhcpwire.vendor_class import HTTP_BOOT_PREFIX, PXE_PREFIX, is_bsdp
from netboot.errors import MalformedPacket


class Transport(StrEnum):
    TFTP = "tftp"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Arch:
    code: int
    name: str
    """The IANA name, for logs."""
    family: str | None
    """The boot-file family configuration keys use (`bios`, `efi-x64`, ...); None: not bootable."""
    transport: Transport


def _arch(code: int, name: str, family: str | None, transport: Transport = Transport.TFTP) -> Arch:
    return Arch(code, name, family, transport)


_HTTP = Transport.HTTP
ARCHITECTURES: dict[int, Arch] = {
    a.code: a
    for a in (
        _arch(0, "x86 BIOS", "bios"),
        _arch(1, "NEC/PC98", None),
        _arch(2, "Itanium", None),
        _arch(3, "DEC Alpha", None),
        _arch(4, "Arc x86", None),
        _arch(5, "Intel Lean Client", None),
        _arch(6, "x86 UEFI", "efi-ia32"),
        _arch(7, "x64 UEFI", "efi-x64"),
        _arch(8, "EFI Xscale", None),
        _arch(9, "EBC (x64 UEFI)", "efi-x64"),
        _arch(10, "ARM 32-bit UEFI", "efi-arm32"),
        _arch(11, "ARM 64-bit UEFI", "efi-arm64"),
        _arch(12, "PowerPC Open Firmware", None),
        _arch(13, "PowerPC ePAPR", None),
        _arch(14, "POWER OPAL v3", None),
        _arch(15, "x86 UEFI HTTP", "efi-ia32", _HTTP),
        _arch(16, "x64 UEFI HTTP", "efi-x64", _HTTP),
        _arch(17, "EBC HTTP", "efi-x64", _HTTP),
        _arch(18, "ARM 32-bit UEFI HTTP", "efi-arm32", _HTTP),
        _arch(19, "ARM 64-bit UEFI HTTP", "efi-arm64", _HTTP),
        _arch(20, "x86 BIOS HTTP", "bios", _HTTP),
        _arch(21, "ARM 32-bit U-Boot", None),
        _arch(22, "ARM 64-bit U-Boot", None),
        _arch(23, "ARM 32-bit U-Boot HTTP", None, _HTTP),
        _arch(24, "ARM 64-bit U-Boot HTTP", None, _HTTP),
        _arch(25, "RISC-V 32-bit UEFI", "efi-riscv32"),
        _arch(26, "RISC-V 32-bit UEFI HTTP", "efi-riscv32", _HTTP),
        _arch(27, "RISC-V 64-bit UEFI", "efi-riscv64"),
        _arch(28, "RISC-V 64-bit UEFI HTTP", "efi-riscv64", _HTTP),
        _arch(29, "RISC-V 128-bit UEFI", None),
        _arch(30, "RISC-V 128-bit UEFI HTTP", None, _HTTP),
        _arch(31, "s390 Basic", None),
        _arch(32, "s390 Extended", None),
        _arch(33, "MIPS 32-bit UEFI", None),
        _arch(34, "MIPS 64-bit UEFI", None),
        _arch(35, "Sunway 32-bit UEFI", None),
        _arch(36, "Sunway 64-bit UEFI", None),
        _arch(37, "LoongArch 32-bit UEFI", None),
        _arch(38, "LoongArch 32-bit UEFI HTTP", None, _HTTP),
        _arch(39, "LoongArch 64-bit UEFI", "efi-loong64"),
        _arch(40, "LoongArch 64-bit UEFI HTTP", "efi-loong64", _HTTP),
        _arch(41, "ARM rpiboot", None),
    )
}


class ClientKind(StrEnum):
    BSDP = "bsdp"
    IPXE = "ipxe"
    HTTP_BOOT = "http-boot"
    PXE = "pxe"
    PLAIN = "plain"


BOOTING = frozenset({ClientKind.IPXE, ClientKind.HTTP_BOOT, ClientKind.PXE})
"""The kinds that ask for a boot file. A set, not a tuple literal: each `ClientKind.X`
in a tuple is a lookup on the enum class, three per ask, and every request asks
several times (a tenth of a microsecond against half a microsecond)."""


@dataclass(frozen=True, slots=True)
class BootClient:
    """What a request says about the machine that sent it."""

    kind: ClientKind
    arch: Arch | None
    """None: a plain client, or a PXE/HTTP class whose architecture is missing or unknown."""
    arch_problem: str | None = None
    """Why `arch` is None for a PXE/HTTP/iPXE client (logged once, never answered in proxy mode)."""
    ipxe_http: bool = False
    """An iPXE that announced HTTP (175.19): it can fetch the script over HTTP."""
    has_ipxe_options: bool = False
    user_class: bytes = b""
    uuid: bytes | None = None
    """Option 97 as sent (17 bytes when well formed), echoed in replies."""
    boot_item: bytes | None = None
    """43.71 from a port-4011 REQUEST (type + layer), echoed in the ACK."""

    @property
    def wants_boot(self) -> bool:
        return self.kind in BOOTING

    def describe(self) -> str:
        arch = f"arch {self.arch.code} {self.arch.name}" if self.arch else "arch unknown"
        return f"{self.kind} ({arch})"


IPXE_USER_CLASS = b"iPXE"
IPXE_OPTIONS = 175
IPXE_FEATURE_HTTP = 0x13
_ARCH_DIGITS = re.compile(rb"^(?:PXEClient|HTTPClient):Arch:(\d{5})")


def classify(packet: DhcpPacket) -> BootClient:
    """Who sent this DHCPv4 packet (docs/protocols/pxe.md §8)."""
    # Each option's first instance, as `packet.option` gives it, in one pass over
    # the options rather than one per option read: every request is classified.
    first: dict[int, bytes] = {}
    for code, value in packet.options:
        if code not in first:
            first[code] = value
    return classify_fields(
        vendor_class=first.get(Option.VENDOR_CLASS) or b"",
        user_class=first.get(Option.USER_CLASS) or b"",
        ipxe_options=first.get(IPXE_OPTIONS),
        architectures=first.get(Option.CLIENT_ARCHITECTURE),
        uuid=first.get(Option.CLIENT_UUID),
        boot_item=_boot_item(packet) if Option.VENDOR_SPECIFIC in first else None,
    )


def classify_fields(
    *,
    vendor_class: bytes,
    user_class: bytes,
    ipxe_options: bytes | None,
    architectures: bytes | None,
    uuid: bytes | None = None,
    boot_item: bytes | None = None,
    architectures_name: str = "option 93",
    vendor_class_name: str = "option 60",
) -> BootClient:
    """The decision table of docs/protocols/pxe.md §8 over the fields it reads.

    DHCPv4 and DHCPv6 carry the same facts in different options (60/16 the
    vendor class string, 77/15 the user class, 93/61 the architecture list
    with one layout), so both families classify through this one function
    and a client is the same `BootClient` whichever family it asks in.
    `architectures_name` and `vendor_class_name` name the options in problems.
    """
    if is_bsdp(vendor_class):
        return BootClient(ClientKind.BSDP, None)
    if user_class == IPXE_USER_CLASS or ipxe_options is not None:
        kind = ClientKind.IPXE
    elif vendor_class.startswith(HTTP_BOOT_PREFIX):
        kind = ClientKind.HTTP_BOOT
    elif vendor_class.startswith(PXE_PREFIX):
        kind = ClientKind.PXE
    else:
        return BootClient(ClientKind.PLAIN, None, user_class=user_class, uuid=uuid)
    arch, problem = _architecture(
        architectures, vendor_class, architectures_name, vendor_class_name
    )
    if kind is ClientKind.HTTP_BOOT and arch is not None and arch.transport is not Transport.HTTP:
        problem = f"HTTPClient with the PXE architecture {arch.code}"
        arch = None
    return BootClient(
        kind,
        arch,
        problem,
        ipxe_http=ipxe_options is not None and _has_feature(ipxe_options, IPXE_FEATURE_HTTP),
        has_ipxe_options=ipxe_options is not None,
        user_class=user_class,
        uuid=uuid,
        boot_item=boot_item,
    )


def _architecture(
    listed: bytes | None, vendor_class: bytes, listed_name: str, vendor_class_name: str
) -> tuple[Arch | None, str | None]:
    if listed is not None:
        if not listed or len(listed) % 2:
            return None, f"{listed_name} of {len(listed)} bytes is not a list of 16-bit codes"
        codes = [int.from_bytes(listed[i : i + 2], "big") for i in range(0, len(listed), 2)]
        for code in codes:
            arch = ARCHITECTURES.get(code)
            if arch is not None and arch.family is not None:
                return arch, None
        return None, f"no bootable architecture among {listed_name} codes {codes}"
    digits = _ARCH_DIGITS.match(vendor_class)
    if digits is None:
        return None, f"no {listed_name} and no Arch: field in {vendor_class_name}"
    arch = ARCHITECTURES.get(int(digits.group(1)))
    if arch is None or arch.family is None:
        return None, f"architecture {int(digits.group(1))} of {vendor_class_name} is not bootable"
    return arch, None


def _has_feature(ipxe_options: bytes, feature: int) -> bool:
    try:
        return any(code == feature for code, _ in decode_tlvs(ipxe_options))
    except MalformedPacket:
        return False


def _boot_item(packet: DhcpPacket) -> bytes | None:
    pieces = packet.all_of(Option.VENDOR_SPECIFIC)
    if not pieces:
        return None
    try:
        items = [value for code, value in decode_tlvs(b"".join(pieces)) if code == PXE_BOOT_ITEM]
    except MalformedPacket:
        return None
    return items[0] if items and len(items[0]) == 4 else None


def decode_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """Encapsulated sub-options (code, length, value) up to an END; pads skipped."""
    items: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        code = data[at]
        if code == 255:
            break
        if code == 0:
            at += 1
            continue
        if at + 2 > len(data) or at + 2 + data[at + 1] > len(data):
            raise MalformedPacket(f"sub-option {code} runs past the end of its option")
        length = data[at + 1]
        items.append((code, data[at + 2 : at + 2 + length]))
        at += 2 + length
    return items


def encode_tlvs(items: list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for code, value in items:
        if len(value) > 255:
            raise ValueError(f"sub-option {code} is {len(value)} bytes, over 255")
        out += bytes((code, len(value))) + value
    out.append(255)
    return bytes(out)


# -- option 43 (PXE 2.1 sub-options), server side ------------------------------------

PXE_DISCOVERY_CONTROL = 6
PXE_BOOT_SERVERS = 8
PXE_BOOT_MENU = 9
PXE_MENU_PROMPT = 10
PXE_BOOT_ITEM = 71
DISCOVERY_NO_BROADCAST = 0x01
DISCOVERY_NO_MULTICAST = 0x02
DISCOVERY_SERVER_LIST_ONLY = 0x04
DISCOVERY_BOOT_FILE_NOW = 0x08
"""Bit 3: a file name in this offer is downloaded at once: no prompt, menu or discovery."""


def pxe_boot_now() -> bytes:
    """Option 43 telling a PXE ROM to take the offer's file at once (docs/protocols/pxe.md §2.4).

    43.6 = 0x08 plus the zero-timeout prompt 43.10, byte for byte what PyPXE
    and the EDK2 fix in tianocore/edk2#8149 send; never the MTFTP
    sub-options 1-5, which make EDK2 discard the whole offer.
    """
    return encode_tlvs(
        [
            (PXE_DISCOVERY_CONTROL, bytes((DISCOVERY_BOOT_FILE_NOW,))),
            (PXE_MENU_PROMPT, b"\x00PXE"),
        ]
    )


def pxe_menu(
    control: int,
    servers: list[tuple[int, list[str]]],
    items: list[tuple[int, str]],
    prompt: tuple[int, str] | None,
) -> bytes:
    """A boot menu (43.6, 43.8, 43.9, 43.10): for sites that want PXE menus."""
    tlvs: list[tuple[int, bytes]] = [(PXE_DISCOVERY_CONTROL, bytes((control,)))]
    if servers:
        raw = b"".join(
            kind.to_bytes(2, "big")
            + bytes((len(addresses),))
            + b"".join(bytes(int(p) for p in a.split(".")) for a in addresses)
            for kind, addresses in servers
        )
        tlvs.append((PXE_BOOT_SERVERS, raw))
    if items:
        raw = b"".join(
            kind.to_bytes(2, "big") + bytes((len(text),)) + text.encode("ascii")
            for kind, text in items
        )
        tlvs.append((PXE_BOOT_MENU, raw))
    if prompt is not None:
        tlvs.append((PXE_MENU_PROMPT, bytes((prompt[0],)) + prompt[1].encode("ascii")))
    return encode_tlvs(tlvs)


def pxe_boot_item_echo(item: bytes) -> bytes:
    """43.71 for the 4011 ACK: iPXE drops an ACK whose item type differs from its request."""
    return encode_tlvs([(PXE_BOOT_ITEM, item)])


# -- option 175 (iPXE), server side ---------------------------------------------------

IPXE_PRIORITY = 1
IPXE_NO_PXEDHCP = 0xB0


def ipxe_settings(priority: int, no_proxydhcp: bool) -> bytes:
    """175.1 priority (signed) and 175.176: make iPXE take our offer without waiting.

    An iPXE holding an address offer waits up to 2-3 s for ProxyDHCP offers
    unless the offer says no-pxedhcp (docs/protocols/pxe.md §6.3); in full mode we are the only
    server, so the wait is pure loss.
    """
    items = [(IPXE_PRIORITY, priority.to_bytes(1, "big", signed=True))]
    if no_proxydhcp:
        items.append((IPXE_NO_PXEDHCP, b"\x01"))
    return encode_tlvs(items)[:-1]  # iPXE's own encapsulation carries no END
