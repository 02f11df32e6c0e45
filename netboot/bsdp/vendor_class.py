"""Option 60 of a BSDP client: `AAPLBSDPC/<arch>/<model>`.

Apple's parser (bootplib/bsdp.c): the prefix `AAPLBSDPC`; nothing after it
means a server's packet; otherwise `/`, the architecture up to the next `/`,
then the model to the end. A NUL or newline anywhere makes the packet "not
BSDP" at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from netboot.dhcpwire.vendor_class import BSDP_PREFIX
from netboot.dhcpwire.vendor_class import is_bsdp as is_bsdp

PREFIX = BSDP_PREFIX


@dataclass(frozen=True, slots=True)
class ClientClass:
    arch: str
    model: str


def parse_client_class(vendor_class: bytes) -> ClientClass | None:
    """The client's architecture and model, or None when it is not a BSDP client's."""
    if not vendor_class.startswith(PREFIX + b"/") or b"\x00" in vendor_class:
        return None
    if b"\n" in vendor_class:
        return None
    try:
        text = vendor_class[len(PREFIX) + 1 :].decode("ascii")
    except UnicodeDecodeError:
        return None
    arch, slash, model = text.partition("/")
    if not arch or not slash:
        return None
    return ClientClass(arch, model)


def client_class_bytes(arch: str, model: str) -> bytes:
    return PREFIX + f"/{arch}/{model}".encode("ascii")
