"""The scapy BSDP layer read and written as the production codec's values: the oracle.

`netboot.bsdp.scapy_layer` dissects option 43 the way a packet tool shows it;
`netboot.bsdp.options` is the daemon's fast codec. These two functions put
the layer behind the codec's interface (a `BsdpMessage` in or out, every
fault a `MalformedPacket` or a `ValueError`) so tests/test_bsdp_scapy.py can
run both on the same bytes, as tests/scapy_codec.py does for DHCP.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from netboot.bsdp.options import (
    ENCODING_ORDER,
    MAX_NAME_BYTES,
    BootImage,
    BsdpMessage,
    SubOption,
)
from netboot.bsdp.scapy_layer import (
    BSDP,
    BSDPAttributesFilter,
    BSDPBootImageListPath,
    BSDPDefaultImage,
    BSDPEnd,
    BSDPImage,
    BSDPImageList,
    BSDPMachineName,
    BSDPMaxMessageSize,
    BSDPMessageType,
    BSDPNetBoot10Firmware,
    BSDPOption,
    BSDPPad,
    BSDPRawOption,
    BSDPReplyPort,
    BSDPSelectedImage,
    BSDPServerIdentifier,
    BSDPServerPriority,
    BSDPShadowFilePath,
    BSDPShadowMountPath,
    BSDPVersion,
    image_id_parts,
)
from netboot.errors import MalformedPacket

KNOWN = {int(code) for code in SubOption}


def _text(raw: bytes, code: int) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MalformedPacket(f"sub-option {code} is not UTF-8 text") from None


def _image(record: Any) -> BootImage:
    if not isinstance(record, BSDPImage):
        raise MalformedPacket("image record cut short")
    if len(record.image_name) != record.name_len:
        raise MalformedPacket("image name cut short")
    return BootImage(record.image_id(), _text(record.image_name, SubOption.BOOT_IMAGE_LIST))


def scapy_decode(raw: bytes) -> BsdpMessage:
    """Dissect joined option-43 bodies with the layer; the codec's refusals, as MalformedPacket."""
    message = BSDP(raw)
    values: dict[str, Any] = {}
    unknown: list[tuple[int, bytes]] = []
    for option in message.options:
        if isinstance(option, BSDPPad):
            continue
        if isinstance(option, BSDPEnd):
            break
        if not isinstance(option, BSDPOption):  # scapy's Raw: a header or value cut short
            raise MalformedPacket(f"sub-option cut short: {bytes(option).hex()}")
        if len(bytes(option)) - 2 != option.len:
            raise MalformedPacket(f"sub-option {option.code} runs past the end")
        if isinstance(option, BSDPRawOption):
            if option.code in KNOWN:
                raise MalformedPacket(f"sub-option {option.code} of {option.len} bytes")
            unknown.append((option.code, bytes(option.data)))
        elif isinstance(option, BSDPMessageType):
            values["message_type"] = option.msg_type
        elif isinstance(option, BSDPVersion):
            values["version"] = option.version
        elif isinstance(option, BSDPServerIdentifier):
            values["server_identifier"] = option.server_id
        elif isinstance(option, BSDPServerPriority):
            values["server_priority"] = option.priority
        elif isinstance(option, BSDPReplyPort):
            values["reply_port"] = option.reply_port
        elif isinstance(option, BSDPBootImageListPath):
            values["boot_image_list_path"] = bytes(option.path)
        elif isinstance(option, BSDPDefaultImage):
            values["default_image_id"] = option.image_id()
        elif isinstance(option, BSDPSelectedImage):
            values["selected_image_id"] = option.image_id()
        elif isinstance(option, BSDPNetBoot10Firmware):
            values["netboot_1_0_firmware"] = True
        elif isinstance(option, BSDPAttributesFilter):
            values["attribute_filter"] = tuple(option.filters)
        elif isinstance(option, BSDPMaxMessageSize):
            values["max_message_size"] = option.max_size
        elif isinstance(option, BSDPShadowMountPath):
            values["shadow_mount_path"] = _text(option.path, option.code)
        elif isinstance(option, BSDPShadowFilePath):
            values["shadow_file_path"] = _text(option.path, option.code)
        elif isinstance(option, BSDPMachineName):
            values["machine_name"] = _text(option.machine_name, option.code)
    records = message.images()
    if records is not None:
        values["images"] = tuple(_image(record) for record in records)
    return BsdpMessage(**values, unknown=tuple(unknown))


def _layers(message: BsdpMessage) -> dict[int, BSDPOption]:
    out: dict[int, BSDPOption] = {}
    if message.message_type is not None:
        out[SubOption.MESSAGE_TYPE] = BSDPMessageType(msg_type=message.message_type)
    if message.version is not None:
        out[SubOption.VERSION] = BSDPVersion(version=message.version)
    if message.server_identifier is not None:
        address = str(ipaddress.IPv4Address(message.server_identifier))
        out[SubOption.SERVER_IDENTIFIER] = BSDPServerIdentifier(server_id=address)
    if message.server_priority is not None:
        out[SubOption.SERVER_PRIORITY] = BSDPServerPriority(priority=message.server_priority)
    if message.reply_port is not None:
        out[SubOption.REPLY_PORT] = BSDPReplyPort(reply_port=message.reply_port)
    if message.boot_image_list_path is not None:
        out[SubOption.BOOT_IMAGE_LIST_PATH] = BSDPBootImageListPath(
            path=message.boot_image_list_path
        )
    if message.default_image_id is not None:
        out[SubOption.DEFAULT_BOOT_IMAGE_ID] = BSDPDefaultImage(
            **image_id_parts(message.default_image_id)
        )
    if message.selected_image_id is not None:
        out[SubOption.SELECTED_BOOT_IMAGE_ID] = BSDPSelectedImage(
            **image_id_parts(message.selected_image_id)
        )
    if message.images is not None:
        records = []
        for image in message.images:
            name = image.name.encode()
            if len(name) > MAX_NAME_BYTES:
                raise ValueError(f"image name of {len(name)} bytes is over {MAX_NAME_BYTES}")
            records.append(BSDPImage(**image_id_parts(image.image_id), image_name=name))
        out[SubOption.BOOT_IMAGE_LIST] = BSDPImageList(images=records)
    if message.netboot_1_0_firmware:
        out[SubOption.NETBOOT_1_0_FIRMWARE] = BSDPNetBoot10Firmware()
    if message.attribute_filter is not None:
        if not message.attribute_filter:
            raise ValueError("an attribute filter lists at least one value")
        out[SubOption.ATTRIBUTES_FILTER_LIST] = BSDPAttributesFilter(
            filters=list(message.attribute_filter)
        )
    if message.max_message_size is not None:
        out[SubOption.MAX_MESSAGE_SIZE] = BSDPMaxMessageSize(max_size=message.max_message_size)
    if message.shadow_mount_path is not None:
        out[SubOption.SHADOW_MOUNT_PATH] = BSDPShadowMountPath(
            path=message.shadow_mount_path.encode()
        )
    if message.shadow_file_path is not None:
        out[SubOption.SHADOW_FILE_PATH] = BSDPShadowFilePath(path=message.shadow_file_path.encode())
    if message.machine_name is not None:
        out[SubOption.MACHINE_NAME] = BSDPMachineName(machine_name=message.machine_name.encode())
    return out


def scapy_encode(message: BsdpMessage) -> bytes:
    """Build one option-43 body with the layer, in Apple's order; refuses what does not fit."""
    layers = _layers(message)
    options = [layers[code] for code in ENCODING_ORDER if code in layers]
    options += [BSDPRawOption(code=code, data=data) for code, data in message.unknown]
    built = []
    for option in options:
        try:
            raw = bytes(option)
        except Exception as error:  # noqa: BLE001 - struct.error and friends from scapy
            raise ValueError(f"{option.name} does not fit: {error}") from None
        built.append(raw)  # a value over 255 bytes fails its length byte above
    return b"".join(built)
