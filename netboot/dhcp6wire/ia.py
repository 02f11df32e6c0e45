"""Identity associations for addresses: IA_NA, its IAADDR and STATUS_CODE options.

RFC 8415 §21.4 (IA_NA), §21.6 (IAADDR), §21.13 (STATUS_CODE). An IA_NA's
sub-options keep their wire order; those the boot reads come out typed
(`IaAddress`, `StatusCode`) and any other stays `(code, bytes)`, so a parsed
IA builds back to the same bytes (docs/protocols/dhcpv6.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address

from netboot.dhcp6wire.fields import pack_uint
from netboot.dhcp6wire.options import Option, Status
from netboot.dhcp6wire.packet import RawOption, build_options, parse_options
from netboot.errors import MalformedPacket

INFINITY = 0xFFFFFFFF
"""A lifetime or T1/T2 that never runs out (RFC 8415 §7.7)."""
IA_NA_FIXED = 12
IAADDR_FIXED = 24


@dataclass(frozen=True, slots=True)
class StatusCode:
    """Option 13: a status and a UTF-8 message for a human (RFC 8415 §21.13)."""

    code: int
    message: str = ""

    @property
    def status(self) -> Status | None:
        try:
            return Status(self.code)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class IaAddress:
    """Option 5 inside an IA_NA: one address and its lifetimes in seconds."""

    address: IPv6Address
    preferred_lifetime: int
    valid_lifetime: int
    options: tuple[StatusCode | RawOption, ...] = field(default_factory=tuple)


IaOption = IaAddress | StatusCode | RawOption


@dataclass(frozen=True, slots=True)
class IaNa:
    """Option 3: an interface's non-temporary addresses and when to renew them."""

    iaid: int
    t1: int
    t2: int
    options: tuple[IaOption, ...] = field(default_factory=tuple)

    @property
    def addresses(self) -> tuple[IaAddress, ...]:
        return tuple(item for item in self.options if isinstance(item, IaAddress))

    @property
    def status(self) -> StatusCode | None:
        return next((item for item in self.options if isinstance(item, StatusCode)), None)


def parse_status_code(raw: bytes, where: str = "option 13 (STATUS_CODE)") -> StatusCode:
    if len(raw) < 2:
        raise MalformedPacket(f"{where}: {len(raw)} bytes, a status code needs 2")
    try:
        message = raw[2:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedPacket(f"{where}: message not UTF-8 at byte {2 + error.start}") from None
    return StatusCode(int.from_bytes(raw[:2], "big"), message)


def build_status_code(status: StatusCode) -> bytes:
    return pack_uint(status.code, 2, "status code") + status.message.encode("utf-8")


def parse_ia_address(raw: bytes, where: str = "option 5 (IAADDR)") -> IaAddress:
    if len(raw) < IAADDR_FIXED:
        raise MalformedPacket(f"{where}: {len(raw)} bytes, an IAADDR needs {IAADDR_FIXED}")
    options: list[StatusCode | RawOption] = []
    for at, (code, value) in _located(raw, IAADDR_FIXED, where):
        if code == Option.STATUS_CODE:
            options.append(parse_status_code(value, f"{where}: STATUS_CODE at byte {at}"))
        else:
            options.append((code, value))
    return IaAddress(
        address=IPv6Address(raw[:16]),
        preferred_lifetime=int.from_bytes(raw[16:20], "big"),
        valid_lifetime=int.from_bytes(raw[20:24], "big"),
        options=tuple(options),
    )


def build_ia_address(address: IaAddress) -> bytes:
    return (
        address.address.packed
        + pack_uint(address.preferred_lifetime, 4, "preferred lifetime")
        + pack_uint(address.valid_lifetime, 4, "valid lifetime")
        + build_options([_raw(item) for item in address.options])
    )


def parse_ia_na(raw: bytes, where: str = "option 3 (IA_NA)") -> IaNa:
    if len(raw) < IA_NA_FIXED:
        raise MalformedPacket(f"{where}: {len(raw)} bytes, an IA_NA needs {IA_NA_FIXED}")
    options: list[IaOption] = []
    for at, (code, value) in _located(raw, IA_NA_FIXED, where):
        if code == Option.IAADDR:
            options.append(parse_ia_address(value, f"{where}: IAADDR at byte {at}"))
        elif code == Option.STATUS_CODE:
            options.append(parse_status_code(value, f"{where}: STATUS_CODE at byte {at}"))
        else:
            options.append((code, value))
    return IaNa(
        iaid=int.from_bytes(raw[:4], "big"),
        t1=int.from_bytes(raw[4:8], "big"),
        t2=int.from_bytes(raw[8:12], "big"),
        options=tuple(options),
    )


def build_ia_na(ia: IaNa) -> bytes:
    return (
        pack_uint(ia.iaid, 4, "IAID")
        + pack_uint(ia.t1, 4, "T1")
        + pack_uint(ia.t2, 4, "T2")
        + build_options([_raw(item) for item in ia.options])
    )


def _located(raw: bytes, start: int, where: str) -> list[tuple[int, RawOption]]:
    """The sub-options after `start`, each with the byte offset of its header."""
    located: list[tuple[int, RawOption]] = []
    at = start
    for code, value in parse_options(raw, start, where):
        located.append((at, (code, value)))
        at += 4 + len(value)
    return located


def _raw(item: IaOption | StatusCode) -> RawOption:
    if isinstance(item, IaAddress):
        return (Option.IAADDR, build_ia_address(item))
    if isinstance(item, StatusCode):
        return (Option.STATUS_CODE, build_status_code(item))
    return item
