"""The catalog B-tree's keys and records: folders, files and threads (TN1150 "Catalog File").

A directory's children are the records keyed (parentID, name); the directory's
own thread record is keyed (its CNID, "") and so comes first. Listing a
directory is therefore "search for (P, ''), walk leaves while parentID is P",
which needs no Unicode ordering at all and works alike for HFS+ and HFSX.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from netboot.hfs.btree import BTree, KeyCompare, Record
from netboot.hfs.errors import HfsCorruptError
from netboot.hfs.fork import FORK_DATA_SIZE, ForkData

ROOT_PARENT_ID = 1
ROOT_FOLDER_ID = 2
MAX_NAME = 255
HFS_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
UF_COMPRESSED = 0x20
FILE_RECORD_SIZE = 248
FOLDER_RECORD_SIZE = 88
HAS_LINK_CHAIN = 0x20
_BSD = struct.Struct(">IIBBHI")


class RecordType(IntEnum):
    FOLDER = 1
    FILE = 2
    FOLDER_THREAD = 3
    FILE_THREAD = 4


@dataclass(frozen=True)
class CatalogKey:
    parent_id: int
    name: str
    """As stored: UTF-16 decoded, decomposed, '/' for a POSIX ':'."""


@dataclass(frozen=True)
class BsdInfo:
    owner: int
    group: int
    admin_flags: int
    owner_flags: int
    mode: int
    special: int
    """iNodeNum in a hard link, link count in an inode file, rdev for a device."""


@dataclass(frozen=True)
class CatalogRecord:
    """A folder or file record; the fields the reader presents or follows."""

    key: CatalogKey
    type: RecordType
    flags: int
    cnid: int
    modified: datetime
    created_raw: int
    bsd: BsdInfo
    valence: int
    finder_type: bytes
    finder_creator: bytes
    data: ForkData | None
    resource: ForkData | None
    at: int
    """Volume offset of the record, for errors about it."""

    @property
    def is_folder(self) -> bool:
        return self.type is RecordType.FOLDER

    @property
    def compressed(self) -> bool:
        return bool(self.bsd.owner_flags & UF_COMPRESSED)


@dataclass(frozen=True)
class Thread:
    """A thread record: the parent and name of the CNID it is keyed by."""

    parent_id: int
    name: str


def hfs_time(seconds: int) -> datetime:
    """An HFS+ date (seconds since 1904-01-01 UTC) as an aware datetime."""
    return HFS_EPOCH + timedelta(seconds=seconds)


def parse_key(record: Record, image: str) -> CatalogKey:
    key = record.key
    if len(key) < 6:
        raise HfsCorruptError(image, record.at, f"catalog key of {len(key)} bytes")
    parent_id, length = struct.unpack_from(">IH", key)
    if length > MAX_NAME or 6 + 2 * length > len(key):
        raise HfsCorruptError(image, record.at, f"catalog key name length {length}")
    return CatalogKey(parent_id, _utf16(key[6 : 6 + 2 * length]))


def _utf16(raw: bytes) -> str:
    # surrogatepass: a lone surrogate is a name HFS+ allows; keep it, do not fail.
    return raw.decode("utf-16-be", "surrogatepass")


def children_compare(parent_id: int) -> KeyCompare:
    """Orders keys against (parent_id, ""): the thread and then all children of parent_id."""

    def compare(key: bytes) -> int:
        if len(key) < 6:
            return -1
        found, length = struct.unpack_from(">IH", key)
        if found != parent_id:
            return -1 if found < parent_id else 1
        return 0 if length == 0 else 1

    return compare


def parse_record(record: Record, image: str) -> CatalogRecord | Thread | None:
    """A folder, file or thread record; None for record types the reader skips."""
    data = record.data
    if len(data) < 2:
        raise HfsCorruptError(image, record.at, "catalog record has no type")
    kind = struct.unpack_from(">H", data)[0]
    if kind in (RecordType.FOLDER_THREAD, RecordType.FILE_THREAD):
        if len(data) < 10:
            raise HfsCorruptError(image, record.at, "thread record cut short")
        parent_id, length = struct.unpack_from(">IH", data, 4)
        if length > MAX_NAME or 10 + 2 * length > len(data):
            raise HfsCorruptError(image, record.at, f"thread record name length {length}")
        return Thread(parent_id, _utf16(data[10 : 10 + 2 * length]))
    if kind == RecordType.FOLDER:
        if len(data) < FOLDER_RECORD_SIZE:
            raise HfsCorruptError(image, record.at, f"folder record of {len(data)} bytes")
        flags, valence, cnid, created, modified = struct.unpack_from(">HIIII", data, 2)
        return CatalogRecord(
            parse_key(record, image),
            RecordType.FOLDER,
            flags,
            cnid,
            hfs_time(modified),
            created,
            BsdInfo(*_BSD.unpack_from(data, 32)),
            valence,
            b"",
            b"",
            None,
            None,
            record.at,
        )
    if kind == RecordType.FILE:
        if len(data) < FILE_RECORD_SIZE:
            raise HfsCorruptError(image, record.at, f"file record of {len(data)} bytes")
        flags = struct.unpack_from(">H", data, 2)[0]
        cnid, created, modified = struct.unpack_from(">III", data, 8)
        return CatalogRecord(
            parse_key(record, image),
            RecordType.FILE,
            flags,
            cnid,
            hfs_time(modified),
            created,
            BsdInfo(*_BSD.unpack_from(data, 32)),
            0,
            bytes(data[48:52]),
            bytes(data[52:56]),
            ForkData.parse(data, 88),
            ForkData.parse(data, 88 + FORK_DATA_SIZE),
            record.at,
        )
    return None


def children(catalog: BTree, parent_id: int, image: str) -> Iterator[CatalogRecord]:
    """The folder and file records whose parent is `parent_id`, in catalog order."""
    compare = children_compare(parent_id)
    for record in catalog.records_from(compare):
        if compare(record.key) > 0 and struct.unpack_from(">I", record.key)[0] != parent_id:
            return
        parsed = parse_record(record, image)
        if isinstance(parsed, CatalogRecord):
            yield parsed


def thread(catalog: BTree, cnid: int, image: str) -> Thread | None:
    """The thread record of `cnid` (its parent and name), or None."""
    compare = children_compare(cnid)
    for record in catalog.records_from(compare):
        if compare(record.key) != 0:
            return None
        parsed = parse_record(record, image)
        return parsed if isinstance(parsed, Thread) else None
    return None


def child(catalog: BTree, parent_id: int, name: str, image: str) -> CatalogRecord | None:
    """The record named exactly `name` (as stored) in `parent_id`, found by listing."""
    for record in children(catalog, parent_id, image):
        if record.key.name == name:
            return record
    return None
