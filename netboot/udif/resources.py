"""The blkx resources of a UDIF image: one `mish` table per partition, in disk order.

Modern images carry them in an XML property list (docs/protocols/udif.md
§4); images from before Mac OS X 10.2 carry a classic binary Mac resource
fork instead, which `parse_resource_fork` reads. Only `blkx` matters to a
reader: `plst`, `cSum`, `nsiz` and `size` are ignored, and no Linux reader uses
them either.

`build_resources` writes the XML the way hdiutil does and the way dmg2img's
string scanning needs it: keys sorted (so `Data` comes before `Name`), no
`<array>` inside a blkx dict, nothing after `</plist>\\n`.
"""

from __future__ import annotations

import binascii
import plistlib
import struct
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

from netboot.errors import UdifError
from netboot.udif.blkx import BlockTable

# qemu refuses plists over 16 MiB; a real one is a few kilobytes per GiB of disk.
MAX_XML_SIZE = 16 << 20
BLKX_ATTRIBUTES = "0x0050"
# The plst resource our test files used and every reader accepted
# (docs/protocols/udif.md §4);
# its meaning is undocumented and nobody reads it.
PLST_SIZE = 1804

# Everything plistlib raises on bad input: expat errors, bad base64 (a ValueError),
# wrong nesting (ValueError / TypeError / KeyError / IndexError), bad dates, odd binary plists.
_PLIST_ERRORS = (
    plistlib.InvalidFileException,
    ExpatError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
    MemoryError,
    binascii.Error,
)


@dataclass(frozen=True)
class BlkxEntry:
    """One blkx resource: `id` is -1 for the first (whole-disk or DDM) entry, then 0, 1, ..."""

    id: int
    name: str
    attributes: str
    table: BlockTable


BYTE_LENGTH_KEY = "netboot-byte-length"
"""Top-level plist key: the input's length in bytes when it is not whole sectors.

UDIF counts the disk in 512-byte sectors, so a raw input of 1,000,000 bytes
would come back 1,000,448 bytes long. We record the true length beside
`resource-fork` (readers look up only the keys they know: hdiutil, dmg2img
and 7-Zip ignore it) so `raw -> dmg -> raw` gives the original bytes.
"""


def parse_resources(xml: bytes, image: str, offset: int) -> list[BlkxEntry]:
    """Decode the plist at file offset `offset` and every `mish` table in its blkx array."""
    return parse_plist(xml, image, offset)[0]


def parse_plist(xml: bytes, image: str, offset: int) -> tuple[list[BlkxEntry], int | None]:
    """The blkx entries and, when the writer recorded one, the input's exact byte length."""
    if len(xml) > MAX_XML_SIZE:
        raise UdifError(image, offset, f"property list of {len(xml)} bytes exceeds 16 MiB")
    try:
        root = plistlib.loads(xml)
    except _PLIST_ERRORS as error:
        raise UdifError(image, offset, f"property list does not parse: {error}") from None
    fork = root.get("resource-fork") if isinstance(root, dict) else None
    if not isinstance(fork, dict):
        raise UdifError(image, offset, "property list has no resource-fork dictionary")
    blkx = fork.get("blkx")
    if not isinstance(blkx, list) or not blkx:
        raise UdifError(image, offset, "resource-fork has no blkx array")
    entries = [_blkx_entry(index, item, image, offset) for index, item in enumerate(blkx)]
    length = root.get(BYTE_LENGTH_KEY)
    return entries, length if isinstance(length, int) and length > 0 else None


def _blkx_entry(index: int, item: Any, image: str, offset: int) -> BlkxEntry:
    if not isinstance(item, dict):
        raise UdifError(image, offset, f"blkx {index}: not a dictionary")
    data, name = item.get("Data"), item.get("Name", item.get("CFName", ""))
    attributes, raw_id = item.get("Attributes", BLKX_ATTRIBUTES), item.get("ID")
    if not isinstance(data, bytes):
        raise UdifError(image, offset, f"blkx {index}: no Data blob")
    if not isinstance(name, str) or not isinstance(attributes, str):
        raise UdifError(image, offset, f"blkx {index}: Name and Attributes must be strings")
    try:
        ident = int(raw_id) if isinstance(raw_id, (str, int)) else None
    except ValueError:
        ident = None
    if ident is None:
        raise UdifError(image, offset, f"blkx {index}: ID {raw_id!r} is not a number")
    return BlkxEntry(ident, name, attributes, _table(data, index, name, image, offset))


def _table(data: bytes, index: int, name: str, image: str, offset: int) -> BlockTable:
    try:
        return BlockTable.parse(data, image, offset)
    except UdifError as error:
        raise UdifError(image, offset, f"blkx {index} {name!r}: {error.message}") from None


def build_resources(
    entries: list[BlkxEntry], plst: bool = True, byte_length: int | None = None
) -> bytes:
    """The XML plist for `entries`, as hdiutil lays it out (see the module docstring).

    `byte_length`, when given, is recorded under BYTE_LENGTH_KEY.
    """
    blkx = [
        {
            "Attributes": entry.attributes,
            "CFName": entry.name,
            "Data": entry.table.build(),
            "ID": str(entry.id),
            "Name": entry.name,
        }
        for entry in entries
    ]
    fork: dict[str, Any] = {"blkx": blkx}
    if plst:
        fork["plst"] = [
            {"Attributes": BLKX_ATTRIBUTES, "Data": bytes(PLST_SIZE), "ID": "0", "Name": ""}
        ]
    root: dict[str, Any] = {"resource-fork": fork}
    if byte_length is not None:
        root[BYTE_LENGTH_KEY] = byte_length
    return plistlib.dumps(root, fmt=plistlib.FMT_XML, sort_keys=True)


# Classic resource fork (Inside Macintosh: More Macintosh Toolbox, 1-121): a 16-byte
# header, the resource data area, and the resource map with its type and reference lists.
_RSRC_HEADER = struct.Struct(">IIII")
_MAP_LISTS = struct.Struct(">HH")  # type list and name list offsets, at map + 24
_TYPE = struct.Struct(">4sHH")
_REF = struct.Struct(">hHB3sI")


def parse_resource_fork(raw: bytes, image: str, offset: int) -> list[BlkxEntry]:
    """Decode the blkx resources of a binary resource fork found at file offset `offset`.

    Only images made before Mac OS X 10.2 lack the XML plist; their fork holds
    the same `mish` blobs as resources of type `blkx`, named like the plist's.
    """
    try:
        return _parse_resource_fork(raw, image, offset)
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise UdifError(image, offset, f"resource fork truncated or corrupt: {error}") from None


def _parse_resource_fork(raw: bytes, image: str, offset: int) -> list[BlkxEntry]:
    data_at, map_at, data_length, map_length = _RSRC_HEADER.unpack_from(raw)
    if data_at + data_length > len(raw) or map_at + map_length > len(raw):
        raise UdifError(image, offset, "resource fork header points past the fork")
    type_list_at, name_list_at = _MAP_LISTS.unpack_from(raw, map_at + 24)
    type_list = map_at + type_list_at
    (type_count,) = struct.unpack_from(">H", raw, type_list)
    entries: list[BlkxEntry] = []
    for type_index in range((type_count + 1) & 0xFFFF):
        kind, ref_count, ref_list_at = _TYPE.unpack_from(raw, type_list + 2 + 8 * type_index)
        if kind != b"blkx":
            continue
        for ref_index in range(ref_count + 1):
            ident, name_at, attributes, data_rel, _ = _REF.unpack_from(
                raw, type_list + ref_list_at + 12 * ref_index
            )
            name = ""
            if name_at != 0xFFFF:
                start = map_at + name_list_at + name_at
                name = raw[start + 1 : start + 1 + raw[start]].decode("mac_roman")
            blob_at = data_at + int.from_bytes(data_rel, "big")
            (blob_length,) = struct.unpack_from(">I", raw, blob_at)
            if blob_at + 4 + blob_length > data_at + data_length:
                raise UdifError(image, offset + blob_at, f"blkx resource {ident} past the fork")
            blob = raw[blob_at + 4 : blob_at + 4 + blob_length]
            table = _table(blob, len(entries), name, image, offset + blob_at)
            entries.append(BlkxEntry(ident, name, f"0x{attributes:04X}", table))
    if not entries:
        raise UdifError(image, offset, "resource fork has no blkx resources")
    return entries
