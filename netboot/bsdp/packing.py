"""Fitting a boot image list into option 43 and into as many replies as it needs.

The rule (deterministic, tested with 1, 40 and 400 images):

1. An option-43 instance holds at most 255 bytes. The first instance of a
   reply carries the header sub-options (message type, priority, default and
   selected image) and then a sub-option 9 with as many image records as fit;
   each further instance carries one sub-option 9 of up to 253 bytes.
2. Records are taken in catalog order and never split: a record that does not
   fit the current instance starts the next one.
3. Instances are added while the reply's option space allows (the client's
   max message size, sub-option 12 if given, else option 57, never below
   576 and never above 8192, minus IP/UDP/BOOTP headers, the magic cookie and
   the other options). When the next instance does not fit, the reply is
   closed and a further reply starts with the same header sub-options; so no
   image is lost and every reply is a complete ACK[LIST] on its own.
   (Apple's bootpd instead truncates the list at the first full packet.)
"""

from __future__ import annotations

from dataclasses import replace

from netboot.bsdp.options import BootImage, BsdpMessage, SubOption, encode

INSTANCE_LIMIT = 255
OPTION_HEADER = 2
"""Code and length of one option-43 instance."""
SUB_OPTION_HEADER = 2


def pack_list_replies(
    header: BsdpMessage, images: list[BootImage], option_space: int
) -> list[list[bytes]]:
    """The option-43 bodies of each reply: a list of replies, each a list of instances.

    `option_space` is what one reply has left for option-43 instances (each
    costs its 2-byte header plus its body). Raises ValueError when not even the
    header and one record fit, which callers avoid by flooring the space.
    """
    head = encode(replace(header, images=None))
    replies: list[list[bytes]] = []
    remaining = list(images)
    while True:
        instances, remaining = _one_reply(head, remaining, option_space)
        replies.append(instances)
        if not remaining:
            return replies


def _one_reply(
    head: bytes, images: list[BootImage], option_space: int
) -> tuple[list[bytes], list[BootImage]]:
    used = OPTION_HEADER + len(head)
    if used > option_space:
        raise ValueError("not even the BSDP header fits in the reply")
    # Each instance: its leading bytes (the header, first one only) and its records.
    instances: list[tuple[bytes, list[bytes]]] = [(head, [])]
    body = len(head)
    taken = 0
    for image in images:
        record = image.encode()
        _, records = instances[-1]
        extra = len(record) + (0 if records else SUB_OPTION_HEADER)
        if body + extra <= INSTANCE_LIMIT and used + extra <= option_space:
            records.append(record)
            body += extra
            used += extra
            taken += 1
            continue
        fresh = SUB_OPTION_HEADER + len(record)
        if used + OPTION_HEADER + fresh > option_space:
            break
        instances.append((b"", [record]))
        body = fresh
        used += OPTION_HEADER + fresh
        taken += 1
    if taken == 0 and images:
        raise ValueError("an image record does not fit an empty reply")
    encoded = []
    for leading, records in instances:
        listed = b"".join(records)
        sub_option = bytes((SubOption.BOOT_IMAGE_LIST, len(listed))) + listed if records else b""
        encoded.append(leading + sub_option)
    return encoded, images[taken:]
