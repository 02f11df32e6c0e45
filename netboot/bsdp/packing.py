"""Fitting a boot image list into the option-43 instances of one ACK[LIST].

A Mac reads one ACK[LIST] per server: Apple's client library merges the
option-43 instances of a packet but hands each packet to its caller on its
own, and `bsdpc` keeps only a server's latest reply (docs/protocols/bsdp.md
§4.2). So the list goes out in one reply, as Apple's bootpd sends it
(bootpd.tproj/bsdpd.c, `S_insert_image_list`), and is cut when it does not
fit. The rule (deterministic, tested with 1, 40, 400 and 1,000 images):

1. An option-43 instance holds at most 255 bytes. The first instance carries
   the header sub-options (message type, priority, default and selected
   image) and then a sub-option 9 with as many image records as fit; each
   further instance carries one sub-option 9 of up to 253 bytes. Every
   instance holds whole sub-options (a Mac parses each on its own).
2. Records are never split: a record that does not fit the current instance
   starts the next one, while the reply's option space allows (the caller's
   `option_space`: the client's size minus headers and the other options).
3. Records go in this order: the default image, the client's bound image
   (sub-option 8), then every other image in the order given (the policy's:
   defaults first, then catalog order). At the first record that fits
   neither the current instance nor a new one, the list is cut (Apple logs
   "image list truncated to first N images"). What is listed is therefore
   always a prefix of that order: the default and the bound image go last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from netboot.bsdp.options import BootImage, BsdpMessage, SubOption, encode

INSTANCE_LIMIT = 255
OPTION_HEADER = 2
"""Code and length of one option-43 instance."""
SUB_OPTION_HEADER = 2


@dataclass(frozen=True, slots=True)
class PackedList:
    """The option-43 bodies of one ACK[LIST] and the images they list."""

    instances: tuple[bytes, ...]
    images: tuple[BootImage, ...]
    """What the reply lists, in wire order (a prefix of `list_order`)."""
    offered: int
    """How many images the client was eligible for."""

    @property
    def truncated(self) -> bool:
        return len(self.images) < self.offered


@dataclass(frozen=True, slots=True)
class ListCut:
    """A list cut to fit one reply: what the log tells the operator, once per client."""

    listed: int
    offered: int
    reply_size: int
    """The client's reply size the list was cut to (IP datagram bytes)."""


def list_order(header: BsdpMessage, images: Sequence[BootImage]) -> list[BootImage]:
    """The default image, then the bound one, then the rest in the order given."""
    pinned: list[int] = []
    for wanted in (header.default_image_id, header.selected_image_id):
        if wanted is None or any(images[at].image_id == wanted for at in pinned):
            continue
        found = next((at for at, image in enumerate(images) if image.image_id == wanted), None)
        if found is not None:
            pinned.append(found)
    rest = [image for at, image in enumerate(images) if at not in pinned]
    return [images[at] for at in pinned] + rest


def pack_list(header: BsdpMessage, images: Sequence[BootImage], option_space: int) -> PackedList:
    """As many images as one reply holds, in `list_order`.

    `option_space` is what the reply has left for option-43 instances (each
    costs its 2-byte header plus its body). Raises ValueError when not even
    the header fits, which callers avoid by flooring the reply size.
    """
    head = encode(replace(header, images=None))
    used = OPTION_HEADER + len(head)
    if used > option_space:
        raise ValueError("not even the BSDP header fits in the reply")
    # Each instance: its leading bytes (the header, first one only) and its records.
    instances: list[tuple[bytes, list[bytes]]] = [(head, [])]
    body = len(head)
    listed: list[BootImage] = []
    for image in list_order(header, images):
        record = image.encode()
        _, records = instances[-1]
        extra = len(record) + (0 if records else SUB_OPTION_HEADER)
        if body + extra <= INSTANCE_LIMIT and used + extra <= option_space:
            records.append(record)
            body += extra
            used += extra
        else:
            fresh = SUB_OPTION_HEADER + len(record)
            if used + OPTION_HEADER + fresh > option_space:
                break
            instances.append((b"", [record]))
            body = fresh
            used += OPTION_HEADER + fresh
        listed.append(image)
    encoded = []
    for leading, records in instances:
        joined = b"".join(records)
        sub_option = bytes((SubOption.BOOT_IMAGE_LIST, len(joined))) + joined if records else b""
        encoded.append(leading + sub_option)
    return PackedList(tuple(encoded), tuple(listed), len(images))
