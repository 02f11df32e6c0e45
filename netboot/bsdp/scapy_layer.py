"""BSDP for scapy: option 43's sub-options as scapy packets, and DHCP dissection that shows them.

scapy knows BOOTP and DHCP but not BSDP: it shows a Mac's option 43 as opaque
bytes. This module gives it the layer the packet tools lack, for people
reading captures (`rdpcap`), for `netboot bsdp probe --show-packets`, the
fuzzer and the lab's capture reading. The daemon keeps its own fast codec
(`netboot.bsdp.options`); tests/test_bsdp_scapy.py checks the two agree on
the same bytes: the same values, the same refusals, the same bytes built.

* `BSDP` is the joined body of every option-43 instance of one packet (a
  receiver concatenates them before walking the sub-options, and a
  sub-option may straddle two instances: docs/protocols/bsdp.md §7 step 2):
  a list of sub-option packets, one class per code (`BSDPMessageType`,
  `BSDPImageList`, `BSDPSelectedImage`, ...). A defined code whose length is
  not its size (or a filter of odd length, or flag 10 with data) dissects
  as `BSDPRawOption`, so nothing is misread and `bytes()` gives back what
  came in.
* Image IDs are dissected into their bits (`install`, `kind`, `reserved`,
  `index`: netboot/nbi/image_id.py), in the image list and in sub-options 7
  and 8 alike.
* scapy has no hook to dissect one DHCP option's value as a packet, and its
  option field dissects each option-43 instance alone. So `bsdp_of(packet)`
  is the accessor (it joins the instances of a packet whose option 60 starts
  with `AAPLBSDPC`), and importing this module registers a field for option
  43 in scapy's `DHCPOptions` table (the table scapy's option field reads,
  the place scapy's own extensions add to) that keeps the value as the same
  bytes, so dissection and building are unchanged, but *shows* a BSDP
  packet's option 43 as its BSDP message; the DHCP layer's summary names
  the BSDP message too ("DHCP Inform BSDP LIST"). `register()` does this
  again and is harmless to repeat.
* To build, make a `BSDP(...)` and put `vendor_specific_options(message)`
  (the body cut into 255-byte option-43 instances) in the DHCP options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    FieldLenField,
    FieldListField,
    IPField,
    PacketListField,
    ShortField,
    StrField,
    StrLenField,
    XShortField,
)
from scapy.layers.dhcp import BOOTP, DHCP, DHCPOptions, DHCPRevOptions
from scapy.packet import Packet

from netboot.bsdp.options import MessageType, SubOption
from netboot.dhcpwire.options import MAX_OPTION_LENGTH, Option
from netboot.dhcpwire.vendor_class import is_bsdp
from netboot.nbi.image_id import INDEX_MAX, INSTALL_BIT, KIND_MAX, KIND_SHIFT

MESSAGE_TYPES = {int(kind): kind.name for kind in MessageType}
SUB_OPTION_NAMES = {int(code): code.name.lower() for code in SubOption} | {0: "pad", 255: "end"}
IMAGE_KINDS = {0: "Mac OS 9", 1: "Mac OS X", 2: "Mac OS X Server", 3: "diagnostics"}
"""Bits 24-30 of an image ID (Apple's bsdp.h, docs/protocols/bsdp.md §4.1)."""


def image_id_fields() -> list[Any]:
    """The 32 bits of a boot image ID, split as netboot/nbi/image_id.py describes them."""
    return [
        BitField("install", 0, 1),
        BitEnumField("kind", 1, 7, IMAGE_KINDS),
        BitField("reserved", 0, 8),
        BitField("index", 1, 16),
    ]


def image_id_parts(value: int) -> dict[str, Any]:
    """A 32-bit image ID as the keyword arguments of `image_id_fields()`."""
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"boot image id {value:#x} does not fit in 32 bits")
    return {
        "install": value >> 31,
        "kind": (value >> KIND_SHIFT) & KIND_MAX,
        "reserved": (value >> 16) & 0xFF,
        "index": value & INDEX_MAX,
    }


class _HasImageId(Packet):
    """A packet whose first four bytes are an image ID."""

    def image_id(self) -> int:
        install = INSTALL_BIT if self.install else 0
        fields = (self.kind << KIND_SHIFT) | (self.reserved << 16) | (self.index & INDEX_MAX)
        return install | int(fields)


class BSDPImage(_HasImageId):
    """One record of the boot image list: `id(4) name_length(1) name`."""

    name = "BSDP boot image"
    fields_desc: ClassVar[list[Any]] = [
        *image_id_fields(),
        FieldLenField("name_len", None, length_of="image_name", fmt="B"),
        StrLenField("image_name", b"", length_from=lambda p: p.name_len),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def mysummary(self) -> str:
        return f"{self.image_id():#010x} {self.image_name.decode(errors='replace')!r}"


class BSDPOption(Packet):
    """A sub-option: `code(1) length(1) data`; the base dispatches on the code."""

    name = "BSDP sub-option"
    option_code: ClassVar[int] = -1
    size: ClassVar[int | None] = None
    """The data length the code must have; None: any."""

    fields_desc: ClassVar[list[Any]] = [
        ByteEnumField("code", 0, SUB_OPTION_NAMES),
        FieldLenField("len", None, length_of="data", fmt="B"),
        StrLenField("data", b"", length_from=lambda p: p.len),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    @classmethod
    def allows(cls, length: int) -> bool:
        """Whether the code may have data of this length; if not, it dissects as raw."""
        return cls.size is None or length == cls.size

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if not _pkt:
            return cls
        code = _pkt[0]
        if code == 0:
            return BSDPPad
        if code == 255:
            return BSDPEnd
        option = _BY_CODE.get(code)
        if option is None or len(_pkt) < 2 or not option.allows(_pkt[1]):
            return BSDPRawOption
        return option


class BSDPRawOption(BSDPOption):
    """A code nobody defined, or a defined code with a length it does not allow: raw data."""

    name = "BSDP sub-option (raw)"


def _option(code: SubOption, value_fields: list[Any], size: int | None) -> list[Any]:
    """Code, length and the value fields: a fixed length, or one counted over the value."""
    length = (
        ByteField("len", size)
        if size is not None
        else FieldLenField("len", None, length_of=value_fields[0].name, fmt="B")
    )
    return [ByteEnumField("code", int(code), SUB_OPTION_NAMES), length, *value_fields]


class _SubOption(BSDPOption):
    """A defined sub-option."""


class BSDPMessageType(_SubOption):
    name = "BSDP message type"
    option_code = SubOption.MESSAGE_TYPE
    size = 1
    fields_desc: ClassVar[list[Any]] = _option(
        option_code, [ByteEnumField("msg_type", 1, MESSAGE_TYPES)], size
    )


class BSDPVersion(_SubOption):
    name = "BSDP version"
    option_code = SubOption.VERSION
    size = 2
    fields_desc: ClassVar[list[Any]] = _option(option_code, [XShortField("version", 0x0101)], size)


class BSDPServerIdentifier(_SubOption):
    name = "BSDP server identifier"
    option_code = SubOption.SERVER_IDENTIFIER
    size = 4
    fields_desc: ClassVar[list[Any]] = _option(
        option_code,
        [IPField("server_id", "0.0.0.0")],  # noqa: S104 - a field's default, not a bind
        size,
    )


class BSDPServerPriority(_SubOption):
    name = "BSDP server priority"
    option_code = SubOption.SERVER_PRIORITY
    size = 2
    fields_desc: ClassVar[list[Any]] = _option(option_code, [ShortField("priority", 32768)], size)


class BSDPReplyPort(_SubOption):
    name = "BSDP reply port"
    option_code = SubOption.REPLY_PORT
    size = 2
    fields_desc: ClassVar[list[Any]] = _option(option_code, [ShortField("reply_port", 68)], size)


class BSDPBootImageListPath(_SubOption):
    name = "BSDP boot image list path"
    option_code = SubOption.BOOT_IMAGE_LIST_PATH
    fields_desc: ClassVar[list[Any]] = _option(
        option_code, [StrLenField("path", b"", length_from=lambda p: p.len)], None
    )


class BSDPDefaultImage(_SubOption, _HasImageId):
    name = "BSDP default boot image"
    option_code = SubOption.DEFAULT_BOOT_IMAGE_ID
    size = 4
    fields_desc: ClassVar[list[Any]] = _option(option_code, image_id_fields(), size)


class BSDPSelectedImage(_SubOption, _HasImageId):
    name = "BSDP selected boot image"
    option_code = SubOption.SELECTED_BOOT_IMAGE_ID
    size = 4
    fields_desc: ClassVar[list[Any]] = _option(option_code, image_id_fields(), size)


class BSDPImageList(_SubOption):
    """One instance of the image list; a long list comes as several (see `BSDP.images`)."""

    name = "BSDP boot image list"
    option_code = SubOption.BOOT_IMAGE_LIST
    fields_desc: ClassVar[list[Any]] = _option(
        option_code, [PacketListField("images", [], BSDPImage, length_from=lambda p: p.len)], None
    )


class BSDPNetBoot10Firmware(_SubOption):
    name = "BSDP NetBoot 1.0 firmware"
    option_code = SubOption.NETBOOT_1_0_FIRMWARE
    size = 0
    fields_desc: ClassVar[list[Any]] = _option(option_code, [], size)


class BSDPAttributesFilter(_SubOption):
    """16-bit image attributes (install bit and kind, the top half of an image ID)."""

    name = "BSDP image attributes filter list"
    option_code = SubOption.ATTRIBUTES_FILTER_LIST

    @classmethod
    def allows(cls, length: int) -> bool:
        return length > 0 and length % 2 == 0

    fields_desc: ClassVar[list[Any]] = _option(
        option_code,
        [FieldListField("filters", [], XShortField("", 0), length_from=lambda p: p.len)],
        None,
    )


class BSDPMaxMessageSize(_SubOption):
    name = "BSDP max message size"
    option_code = SubOption.MAX_MESSAGE_SIZE
    size = 2
    fields_desc: ClassVar[list[Any]] = _option(option_code, [ShortField("max_size", 1500)], size)


class BSDPShadowMountPath(_SubOption):
    name = "BSDP shadow mount path"
    option_code = SubOption.SHADOW_MOUNT_PATH
    fields_desc: ClassVar[list[Any]] = _option(
        option_code, [StrLenField("path", b"", length_from=lambda p: p.len)], None
    )


class BSDPShadowFilePath(_SubOption):
    name = "BSDP shadow file path"
    option_code = SubOption.SHADOW_FILE_PATH
    fields_desc: ClassVar[list[Any]] = _option(
        option_code, [StrLenField("path", b"", length_from=lambda p: p.len)], None
    )


class BSDPMachineName(_SubOption):
    name = "BSDP machine name"
    option_code = SubOption.MACHINE_NAME
    fields_desc: ClassVar[list[Any]] = _option(
        option_code, [StrLenField("machine_name", b"", length_from=lambda p: p.len)], None
    )


class BSDPPad(BSDPOption):
    name = "BSDP pad"
    fields_desc: ClassVar[list[Any]] = [ByteEnumField("code", 0, SUB_OPTION_NAMES)]


class BSDPEnd(BSDPOption):
    """End: a receiver reads nothing after it; whatever follows is kept as `trailing`."""

    name = "BSDP end"
    fields_desc: ClassVar[list[Any]] = [
        ByteEnumField("code", 255, SUB_OPTION_NAMES),
        StrField("trailing", b""),
    ]


_BY_CODE: dict[int, type[BSDPOption]] = {
    int(option.option_code): option
    for option in (
        BSDPMessageType,
        BSDPVersion,
        BSDPServerIdentifier,
        BSDPServerPriority,
        BSDPReplyPort,
        BSDPBootImageListPath,
        BSDPDefaultImage,
        BSDPSelectedImage,
        BSDPImageList,
        BSDPNetBoot10Firmware,
        BSDPAttributesFilter,
        BSDPMaxMessageSize,
        BSDPShadowMountPath,
        BSDPShadowFilePath,
        BSDPMachineName,
    )
}


class _ImageRecords(Packet):
    """The joined bodies of every sub-option 9: records may straddle two instances."""

    fields_desc: ClassVar[list[Any]] = [PacketListField("images", [], BSDPImage)]


class BSDP(Packet):
    """Every sub-option of one packet's option 43, all instances joined, in wire order."""

    name = "BSDP"
    fields_desc: ClassVar[list[Any]] = [PacketListField("options", [], BSDPOption)]

    def sub_options(self, kind: type[BSDPOption]) -> list[Any]:
        return [option for option in self.options if isinstance(option, kind)]

    def last(self, kind: type[BSDPOption]) -> Any | None:
        """The last instance of a sub-option, as a receiver keeps it."""
        found = self.sub_options(kind)
        return found[-1] if found else None

    def message_type(self) -> int | None:
        option = self.last(BSDPMessageType)
        return None if option is None else int(option.msg_type)

    def images(self) -> list[BSDPImage] | None:
        """The boot image list, its instances joined; None when the message has none.

        A record cut short (at the end of the list) is left as a trailing raw
        layer of the last record, or as `Raw` in the list: see `is_truncated`.
        """
        lists = self.sub_options(BSDPImageList)
        if not lists:
            return None
        body = b"".join(bytes(option)[2:] for option in lists)
        return list(_ImageRecords(body).images)

    def mysummary(self) -> str:
        kind = self.message_type()
        words = ["BSDP", MESSAGE_TYPES.get(kind, f"type {kind}") if kind is not None else "?"]
        selected = self.last(BSDPSelectedImage)
        if selected is not None:
            words.append(f"image {selected.image_id():#010x}")
        images = self.images()
        if images is not None:
            words.append(f"{len(images)} images")
        default = self.last(BSDPDefaultImage)
        if default is not None:
            words.append(f"default {default.image_id():#010x}")
        return " ".join(words)


def vendor_specific_options(message: BSDP) -> list[tuple[str, bytes]]:
    """The message as scapy DHCP options: its bytes cut into 255-byte option-43 instances."""
    raw = bytes(message)
    step = MAX_OPTION_LENGTH
    return [("vendor_specific", raw[at : at + step]) for at in range(0, len(raw), step)] or [
        ("vendor_specific", b"")
    ]


def _dhcp_options(packet: Packet) -> list[Any] | None:
    dhcp = packet if isinstance(packet, DHCP) else packet.getlayer(DHCP)
    if dhcp is None or not isinstance(dhcp.options, list):
        return None
    return list(dhcp.options)


def _option_values(options: list[Any], name: str) -> list[bytes]:
    return [
        b"".join(item[1:])
        for item in options
        if isinstance(item, tuple) and len(item) >= 2 and item[0] == name
    ]


def bsdp_of(packet: Packet) -> BSDP | None:
    """The BSDP message of a scapy packet holding DHCP (any layer above it will do).

    None when option 60 does not start with `AAPLBSDPC` or there is no option
    43. Every option-43 instance is joined before dissecting.
    """
    options = _dhcp_options(packet)
    if options is None:
        return None
    vendor = _option_values(options, "vendor_class_id")
    if not vendor or not is_bsdp(vendor[0]):
        return None
    bodies = _option_values(options, "vendor_specific")
    if not bodies:
        return None
    return BSDP(b"".join(bodies))


class BsdpVendorSpecificField(StrField):
    """Option 43 for scapy's DHCP options field: bytes as before, shown as BSDP when it is.

    The value stays the instance's raw bytes (dissection and building are
    unchanged); only its representation differs: the first instance of a
    BSDP packet's option 43 shows the whole joined message, later ones say
    they continue it.
    """

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        if not isinstance(pkt, Packet) or (message := bsdp_of(pkt)) is None:
            return repr(x)
        options = _dhcp_options(pkt) or []
        first = next(
            (item[1] for item in options if isinstance(item, tuple) and item[0] == self.name), None
        )
        if x is not first:
            return f"<{len(x)} bytes, BSDP continued>"
        return repr(message)


_plain_dhcp_summary: Callable[[DHCP], object] = DHCP.mysummary


def _dhcp_summary(self: DHCP) -> str:
    summary = str(_plain_dhcp_summary(self))
    message = bsdp_of(self)
    return summary if message is None else f"{summary} {message.mysummary()}"


def register() -> None:
    """Show BSDP in scapy's DHCP dissections (option 43's repr and the DHCP summary)."""
    field = BsdpVendorSpecificField("vendor_specific", b"")
    DHCPOptions[Option.VENDOR_SPECIFIC] = field
    DHCPRevOptions["vendor_specific"] = (int(Option.VENDOR_SPECIFIC), field)
    DHCP.mysummary = _dhcp_summary  # type: ignore[method-assign]


register()


def describe(datagram: bytes) -> str:
    """A BOOTP datagram as scapy shows it: its summary line, then its BSDP message in full."""
    packet = BOOTP(datagram)
    message = bsdp_of(packet)
    shown = "" if message is None else str(message.show(dump=True))
    return f"{packet.summary()}\n{shown}".rstrip("\n")
