"""DHCP option codes netboot reads or writes (RFC 2132 unless noted)."""

from __future__ import annotations

from enum import IntEnum


class Option(IntEnum):
    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOST_NAME = 12
    BOOT_FILE_SIZE = 13
    ROOT_PATH = 17
    VENDOR_SPECIFIC = 43
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_IDENTIFIER = 54
    PARAMETER_REQUEST_LIST = 55
    MAX_MESSAGE_SIZE = 57
    VENDOR_CLASS = 60
    CLIENT_IDENTIFIER = 61
    TFTP_SERVER_NAME = 66
    BOOTFILE_NAME = 67
    DOMAIN_NAME = 15
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    MESSAGE = 56
    USER_CLASS = 77
    CLIENT_ARCHITECTURE = 93  # RFC 4578
    CLIENT_NDI = 94  # RFC 4578
    CLIENT_UUID = 97  # RFC 4578
    END = 255


class MessageType(IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


SERVER_PORT = 67
CLIENT_PORT = 68
PXE_BOOT_SERVER_PORT = 4011
"""PXE 2.1's boot-server port: UEFI ROMs ask it for the boot file after a bare proxy offer."""
BROADCAST = "255.255.255.255"

BOOTREQUEST = 1
BOOTREPLY = 2
MAX_OPTION_LENGTH = 255
MIN_REPLY_SIZE = 300
"""Apple (and classic BOOTP) pad replies to 300 bytes: 236 header + 64 vendor area."""


_MESSAGE_NAMES = {kind.value: kind.name for kind in MessageType}
"""Looked up, not `MessageType(kind).name`: asked for every OFFER and ACK logged."""


def message_name(kind: int | None) -> str:
    """Option 53 for the log: `DISCOVER`, ..., `BOOTP` without one, `type 42` if unknown."""
    if kind is None:
        return "BOOTP"
    name = _MESSAGE_NAMES.get(kind)
    return name if name is not None else f"type {kind}"
