"""DHCPv6 message types, option codes, status codes and well-known numbers.

RFC 8415 unless noted; the boot options are RFC 5970's, DNS ones RFC 3646's.
"""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv6Address


class MessageType(IntEnum):
    """RFC 8415 §7.3; 12 and 13 carry another message (the relay format, §9)."""

    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    RECONFIGURE = 10
    INFORMATION_REQUEST = 11
    RELAY_FORW = 12
    RELAY_REPL = 13


RELAY_MESSAGE_TYPES = frozenset({MessageType.RELAY_FORW, MessageType.RELAY_REPL})


class Option(IntEnum):
    """Option codes the boot reads or writes (RFC 8415 §21, RFC 3646, RFC 5970, RFC 6939)."""

    CLIENTID = 1
    SERVERID = 2
    IA_NA = 3
    IA_TA = 4
    IAADDR = 5
    ORO = 6
    PREFERENCE = 7
    ELAPSED_TIME = 8
    RELAY_MSG = 9
    STATUS_CODE = 13
    RAPID_COMMIT = 14
    USER_CLASS = 15
    VENDOR_CLASS = 16
    VENDOR_OPTS = 17
    INTERFACE_ID = 18
    DNS_SERVERS = 23  # RFC 3646
    DOMAIN_LIST = 24  # RFC 3646
    BOOTFILE_URL = 59  # RFC 5970
    BOOTFILE_PARAM = 60  # RFC 5970
    CLIENT_ARCH_TYPE = 61  # RFC 5970
    NII = 62  # RFC 5970
    CLIENT_LINKLAYER_ADDR = 79  # RFC 6939


class Status(IntEnum):
    """Status codes of option 13 (RFC 8415 §21.13 and the IANA registry)."""

    SUCCESS = 0
    UNSPEC_FAIL = 1
    NO_ADDRS_AVAIL = 2
    NO_BINDING = 3
    NOT_ON_LINK = 4
    USE_MULTICAST = 5
    NO_PREFIX_AVAIL = 6


class DuidType(IntEnum):
    """RFC 8415 §11.1; type 4 is RFC 6355's."""

    LLT = 1
    EN = 2
    LL = 3
    UUID = 4


CLIENT_PORT = 546
SERVER_PORT = 547
ALL_DHCP_RELAY_AGENTS_AND_SERVERS = IPv6Address("ff02::1:2")
"""Where clients send every message (RFC 8415 §7.1), link-scoped."""

HOP_COUNT_LIMIT = 8
"""RFC 8415 §7.6: a relay drops a Relay-forward whose hop-count has reached this."""
MAX_RELAY_DEPTH = HOP_COUNT_LIMIT + 1
"""Relay layers one datagram can honestly carry: relays write hop-counts 0 to 8
(each forwards only below 8, adding one), so nine wrappers at most."""

HARDWARE_TYPE_ETHERNET = 1
"""IANA ARP hardware type of Ethernet, the one DUID-LL/LLT whose address is a MAC."""
PXE_ENTERPRISE_NUMBER = 343
"""Intel's IANA enterprise number, under which PXE and HTTP boot ROMs send option 16."""

HEADER_SIZE = 4
"""msg-type and a 24-bit transaction-id (RFC 8415 §8)."""
RELAY_HEADER_SIZE = 34
"""msg-type, hop-count, link-address and peer-address (RFC 8415 §9)."""
OPTION_HEADER_SIZE = 4
MAX_OPTION_LENGTH = 0xFFFF


def message_name(kind: int) -> str:
    """A message type for the log: `SOLICIT`, ..., or `type 42` if unknown."""
    try:
        return MessageType(kind).name
    except ValueError:
        return f"type {kind}"


def option_name(code: int) -> str:
    """An option code for an error: `3 (IA_NA)`, or just `300` if unknown."""
    try:
        return f"{code} ({Option(code).name})"
    except ValueError:
        return str(code)
