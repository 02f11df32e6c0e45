"""BSDP's sub-options inside DHCP option 43: one value type, decode and encode.

Wire format (Apple's BSDP spec 1.0.8 and bootplib/bsdp.h): each sub-option is
`code(1) length(1) data`, integers big-endian. A long image list arrives as
several sub-option 9 instances, each in its own option-43 instance of one
packet; their bodies are joined. `decode` reads one body (or bodies already
joined, as the server reads requests); `decode_instances` reads each option-43
instance of a packet on its own and merges the sub-options, as Apple's client
library does (bootplib/dhcp_options.c, `dhcpol_parse_vendor`), so a sub-option
cut across two instances is refused as it is by a Mac.
Fixed-size sub-options with another length, a length running past the end,
an image record cut short or a name that is not UTF-8 raise MalformedPacket,
never IndexError. Codes nobody defined are kept, so a message re-encodes to
the bytes it came from.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from netboot.errors import MalformedPacket


class SubOption(IntEnum):
    MESSAGE_TYPE = 1
    VERSION = 2
    SERVER_IDENTIFIER = 3
    SERVER_PRIORITY = 4
    REPLY_PORT = 5
    BOOT_IMAGE_LIST_PATH = 6
    DEFAULT_BOOT_IMAGE_ID = 7
    SELECTED_BOOT_IMAGE_ID = 8
    BOOT_IMAGE_LIST = 9
    NETBOOT_1_0_FIRMWARE = 10
    ATTRIBUTES_FILTER_LIST = 11
    MAX_MESSAGE_SIZE = 12
    SHADOW_MOUNT_PATH = 128  # Apple bsdp.h, "image specific"
    SHADOW_FILE_PATH = 129
    MACHINE_NAME = 130


class MessageType(IntEnum):
    LIST = 1
    SELECT = 2
    FAILED = 3


VERSION_1_1 = 0x0101
VERSION_1_0 = 0x0100
SUPPORTED_VERSIONS = (VERSION_1_1, VERSION_1_0, 0x0000)
MAX_NAME_BYTES = 246
"""255 minus the option-43 header, the sub-option 9 header and the id and length."""


@dataclass(frozen=True, slots=True)
class BootImage:
    """One entry of the boot image list: `id(4) name_length(1) name`."""

    image_id: int
    name: str

    def encode(self) -> bytes:
        raw = self.name.encode()
        if len(raw) > MAX_NAME_BYTES:
            raise ValueError(f"image name of {len(raw)} bytes is over {MAX_NAME_BYTES}")
        return struct.pack("!IB", self.image_id, len(raw)) + raw


@dataclass(frozen=True, slots=True)
class BsdpMessage:
    """Every BSDP sub-option; None (or False, or ()) where the message has none."""

    message_type: int | None = None
    version: int | None = None
    server_identifier: str | None = None
    server_priority: int | None = None
    reply_port: int | None = None
    boot_image_list_path: bytes | None = None
    default_image_id: int | None = None
    selected_image_id: int | None = None
    images: tuple[BootImage, ...] | None = None
    netboot_1_0_firmware: bool = False
    attribute_filter: tuple[int, ...] | None = None
    max_message_size: int | None = None
    shadow_mount_path: str | None = None
    shadow_file_path: str | None = None
    machine_name: str | None = None
    unknown: tuple[tuple[int, bytes], ...] = field(default_factory=tuple)
    """Sub-options with codes nobody defined, kept in order."""


# code -> (attribute, fixed size or None, kind)
_FIXED: dict[int, tuple[str, int, str]] = {
    SubOption.MESSAGE_TYPE: ("message_type", 1, "!B"),
    SubOption.VERSION: ("version", 2, "!H"),
    SubOption.SERVER_PRIORITY: ("server_priority", 2, "!H"),
    SubOption.REPLY_PORT: ("reply_port", 2, "!H"),
    SubOption.DEFAULT_BOOT_IMAGE_ID: ("default_image_id", 4, "!I"),
    SubOption.SELECTED_BOOT_IMAGE_ID: ("selected_image_id", 4, "!I"),
    SubOption.MAX_MESSAGE_SIZE: ("max_message_size", 2, "!H"),
}
_TEXT: dict[int, str] = {
    SubOption.SHADOW_MOUNT_PATH: "shadow_mount_path",
    SubOption.SHADOW_FILE_PATH: "shadow_file_path",
    SubOption.MACHINE_NAME: "machine_name",
}
ENCODING_ORDER = (1, 2, 10, 5, 12, 11, 3, 4, 7, 8, 9, 6, 130, 128, 129)
"""Apple's order for every message kind it sends (docs/protocols/bsdp.md §7 and §8)."""


def decode(raw: bytes) -> BsdpMessage:
    """Decode one option-43 body, or the concatenated bodies of every instance."""
    return _message(_sub_options(raw))


def decode_instances(bodies: Sequence[bytes]) -> BsdpMessage:
    """Decode a packet's option-43 instances as a Mac does: each on its own, then merged.

    Every instance must hold whole sub-options; their sub-options are then
    read in order as if one body, so the sub-option 9 bodies are joined.
    """
    return _message([sub for body in bodies for sub in _sub_options(body)])


def _sub_options(raw: bytes) -> list[tuple[int, bytes]]:
    """(code, data) of each sub-option of one body, pad skipped, up to end."""
    found: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(raw):
        code = raw[offset]
        if code == 0:  # pad
            offset += 1
            continue
        if code == 255:  # end
            break
        if offset + 2 > len(raw):
            raise MalformedPacket(f"sub-option {code} at byte {offset} has no length")
        length = raw[offset + 1]
        data = raw[offset + 2 : offset + 2 + length]
        if len(data) != length:
            raise MalformedPacket(
                f"sub-option {code} at byte {offset} claims {length} bytes, {len(data)} remain"
            )
        offset += 2 + length
        found.append((code, data))
    return found


def _message(sub_options: list[tuple[int, bytes]]) -> BsdpMessage:
    values: dict[str, object] = {}
    list_bodies: list[bytes] = []
    saw_list = False
    unknown: list[tuple[int, bytes]] = []
    for code, data in sub_options:
        length = len(data)
        if code in _FIXED:
            name, size, fmt = _FIXED[code]
            if length != size:
                raise MalformedPacket(f"sub-option {code} is {length} bytes, not {size}")
            values[name] = struct.unpack(fmt, data)[0]
        elif code == SubOption.SERVER_IDENTIFIER:
            if length != 4:
                raise MalformedPacket(f"server identifier is {length} bytes, not 4")
            values["server_identifier"] = str(ipaddress.IPv4Address(data))
        elif code == SubOption.BOOT_IMAGE_LIST:
            saw_list = True
            list_bodies.append(data)  # joined before splitting: a record may straddle two
        elif code == SubOption.NETBOOT_1_0_FIRMWARE:
            if length != 0:
                raise MalformedPacket(f"NetBoot 1.0 firmware flag carries {length} bytes")
            values["netboot_1_0_firmware"] = True
        elif code == SubOption.ATTRIBUTES_FILTER_LIST:
            if length == 0 or length % 2:
                raise MalformedPacket(f"attribute filter of {length} bytes is not 2 x N, N >= 1")
            values["attribute_filter"] = struct.unpack(f"!{length // 2}H", data)
        elif code == SubOption.BOOT_IMAGE_LIST_PATH:
            values["boot_image_list_path"] = data
        elif code in _TEXT:
            values[_TEXT[code]] = _text(data, code)
        else:
            unknown.append((code, data))
    if saw_list:
        values["images"] = tuple(_decode_images(b"".join(list_bodies)))
    return BsdpMessage(**values, unknown=tuple(unknown))  # type: ignore[arg-type]


def _text(data: bytes, code: int) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise MalformedPacket(f"sub-option {code} is not UTF-8 text") from None


def _decode_images(data: bytes) -> list[BootImage]:
    images = []
    offset = 0
    while offset < len(data):
        if offset + 5 > len(data):
            raise MalformedPacket(f"image record at byte {offset} of the list is cut short")
        image_id, name_length = struct.unpack_from("!IB", data, offset)
        name = data[offset + 5 : offset + 5 + name_length]
        if len(name) != name_length:
            raise MalformedPacket(f"image name at byte {offset} of the list is cut short")
        images.append(BootImage(image_id, _text(name, SubOption.BOOT_IMAGE_LIST)))
        offset += 5 + name_length
    return images


def encode_sub_options(message: BsdpMessage) -> list[tuple[int, bytes]]:
    """Each present sub-option as (code, data), in Apple's order; the list unsplit."""
    out: dict[int, bytes] = {}
    for code, (name, _, fmt) in _FIXED.items():
        value = getattr(message, name)
        if value is not None:
            try:
                out[code] = struct.pack(fmt, value)
            except struct.error:
                raise ValueError(f"{name} {value!r} does not fit sub-option {code}") from None
    if message.server_identifier is not None:
        out[SubOption.SERVER_IDENTIFIER] = ipaddress.IPv4Address(message.server_identifier).packed
    if message.images is not None:
        out[SubOption.BOOT_IMAGE_LIST] = b"".join(image.encode() for image in message.images)
    if message.netboot_1_0_firmware:
        out[SubOption.NETBOOT_1_0_FIRMWARE] = b""
    if message.attribute_filter is not None:
        filters = message.attribute_filter
        if not filters:
            raise ValueError("an attribute filter lists at least one value")
        out[SubOption.ATTRIBUTES_FILTER_LIST] = struct.pack(f"!{len(filters)}H", *filters)
    if message.boot_image_list_path is not None:
        out[SubOption.BOOT_IMAGE_LIST_PATH] = message.boot_image_list_path
    for code, name in _TEXT.items():
        value = getattr(message, name)
        if value is not None:
            out[code] = value.encode()
    ordered = [(code, out[code]) for code in ENCODING_ORDER if code in out]
    return ordered + list(message.unknown)


def encode(message: BsdpMessage) -> bytes:
    """The body of one option 43 (lists that need splitting: see `packing.py`)."""
    parts = []
    for code, data in encode_sub_options(message):
        if len(data) > 255:
            raise ValueError(f"sub-option {code} is {len(data)} bytes; split it")
        parts.append(bytes((code, len(data))) + data)
    return b"".join(parts)
