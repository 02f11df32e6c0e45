"""An HFS+/HFSX volume: paths, directory listings, file contents, links and attributes.

The public face of the reader (the API agreed for issue #18). A volume is
opened from `read(offset, size)` over its bytes, so it works alike on a raw
volume, a partition of a disk and a UDIF image decoded chunk by chunk
(`open_image` does the finding). Paths are POSIX paths from the volume root;
names are shown as stored (decomposed) with ':' for the '/' HFS+ keeps, and
matched after NFC normalisation (and case folding, unless the volume is a
case-sensitive HFSX), as a Mac matches them.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from netboot.errors import HfsError
from netboot.hfs import catalog
from netboot.hfs.attributes import AttributeValue, attributes
from netboot.hfs.btree import BTree
from netboot.hfs.catalog import CatalogRecord, RecordType
from netboot.hfs.errors import HfsCorruptError, HfsNotFound, HfsUnsupportedError
from netboot.hfs.extents import ForkType, all_extents
from netboot.hfs.fork import Extent, ForkData, ForkReader, Geometry, Read
from netboot.hfs.header import HEADER_AT, VolumeHeader, embedded_volume, parse_header
from netboot.hfs.names import from_key, match_key

__all__ = [
    "Entry",
    "EntryKind",
    "FileReader",
    "HfsVolume",
    "Read",
    "VolumeInfo",
    "open_image",
]

CATALOG_ID = 4
EXTENTS_ID = 3
ATTRIBUTES_ID = 8
BINARY_COMPARE = 0xBC
MAX_SYMLINK = 4096
MAX_SYMLINK_HOPS = 40
FILE_LINK = (b"hlnk", b"hfs+")
FOLDER_LINK = (b"fdrp", b"MACS")
SYMLINK_TYPE = (b"slnk", b"rhap")
FILE_PRIVATE_DIR = "\0\0\0\0HFS+ Private Data"
FOLDER_PRIVATE_DIR = ".HFS+ Private Directory Data\r"
HIDDEN_AT_ROOT = frozenset(
    {FILE_PRIVATE_DIR, FOLDER_PRIVATE_DIR, ".journal", ".journal_info_block"}
)


class EntryKind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    CHAR_DEVICE = "char_device"
    BLOCK_DEVICE = "block_device"
    FIFO = "fifo"
    SOCKET = "socket"


_KIND_BY_FORMAT = {
    stat.S_IFREG: EntryKind.FILE,
    stat.S_IFDIR: EntryKind.DIRECTORY,
    stat.S_IFLNK: EntryKind.SYMLINK,
    stat.S_IFCHR: EntryKind.CHAR_DEVICE,
    stat.S_IFBLK: EntryKind.BLOCK_DEVICE,
    stat.S_IFIFO: EntryKind.FIFO,
    stat.S_IFSOCK: EntryKind.SOCKET,
}


@dataclass(frozen=True)
class VolumeInfo:
    signature: str
    """'H+' (HFS+) or 'HX' (HFSX)."""
    block_size: int
    total_blocks: int
    free_blocks: int
    volume_name: str
    wrapper_offset: int | None
    """Where the embedded volume starts inside an HFS wrapper; None when not wrapped."""
    case_sensitive: bool
    journaled: bool
    file_count: int
    folder_count: int


@dataclass(frozen=True)
class Entry:
    """A file, directory, symlink or special file; hard links appear as what they link to."""

    name: str
    path: str
    cnid: int
    kind: EntryKind
    size: int
    """Logical size of the data, decompressed for a compressed file."""
    mode: int
    uid: int
    gid: int
    modified: datetime
    compressed: bool
    link_count: int
    resource_fork_size: int
    record: CatalogRecord = field(repr=False, compare=False)
    """The catalog record the data comes from (the inode's, for a hard link)."""


class FileReader(Protocol):
    """A file's contents by offset (data fork, or decompressed decmpfs data)."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, size: int) -> bytes: ...

    def iter_blocks(self, block_size: int = 1 << 20) -> Iterator[bytes]: ...


class HfsVolume:
    """One open HFS+/HFSX volume. Not thread-safe (it caches B-tree nodes)."""

    def __init__(
        self,
        name: str,
        header: VolumeHeader,
        geometry: Geometry,
        wrapper_offset: int | None,
    ) -> None:
        self.name = name
        self.header = header
        self.geometry = geometry
        self.wrapper_offset = wrapper_offset
        self.extents_tree: BTree | None = None
        # Errors about the special files' extents point at their fork in the volume header.
        extents_fork = self._fork(
            header.extents_file, EXTENTS_ID, ForkType.DATA, HEADER_AT + 192, "extents file"
        )
        self.extents_tree = BTree(extents_fork, "extents")
        catalog_fork = self._fork(
            header.catalog_file, CATALOG_ID, ForkType.DATA, HEADER_AT + 272, "catalog file"
        )
        self.catalog = BTree(catalog_fork, "catalog")
        self.attributes_tree: BTree | None = None
        if header.attributes_file.logical_size:
            attributes_fork = self._fork(
                header.attributes_file,
                ATTRIBUTES_ID,
                ForkType.DATA,
                HEADER_AT + 352,
                "attributes file",
            )
            self.attributes_tree = BTree(attributes_fork, "attributes")
        self.case_sensitive = (
            header.signature == "HX" and self.catalog.header.compare_type == BINARY_COMPARE
        )
        root_thread = catalog.thread(self.catalog, catalog.ROOT_FOLDER_ID, name)
        if root_thread is None:
            raise HfsCorruptError(name, None, "the catalog has no thread for the root folder")
        self.volume_name = from_key(root_thread.name)
        root = self._find(catalog.ROOT_PARENT_ID, root_thread.name)
        if root is None or not root.is_folder:
            raise HfsCorruptError(name, None, "the catalog has no root folder record")
        self.root = self._entry(root, "", "/")
        self._private: dict[str, int | None] = {}

    @classmethod
    def open(cls, read: Read, size: int, name: str) -> HfsVolume:
        """The volume in bytes [0, size) of `read`; an HFS wrapper is looked through."""
        wrapper_offset = None
        embedded = embedded_volume(read, size, name)
        if embedded is not None:
            wrapper_offset, size = embedded
            read = _rebased(read, wrapper_offset, size)
        header = parse_header(_rebased(read, 0, size), size, name)
        geometry = Geometry(_rebased(read, 0, size), header.block_size, header.total_blocks, name)
        return cls(name, header, geometry, wrapper_offset)

    @property
    def info(self) -> VolumeInfo:
        header = self.header
        return VolumeInfo(
            header.signature,
            header.block_size,
            header.total_blocks,
            header.free_blocks,
            self.volume_name,
            self.wrapper_offset,
            self.case_sensitive,
            header.journaled,
            header.file_count,
            header.folder_count,
        )

    # ---- forks ------------------------------------------------------------------------

    def _fork(
        self,
        fork: ForkData,
        file_id: int,
        fork_type: ForkType,
        described_at: int | None,
        what: str,
    ) -> ForkReader:
        extents: tuple[Extent, ...] = all_extents(
            fork, file_id, fork_type, self.extents_tree, self.name, described_at
        )
        return ForkReader(self.geometry, fork.logical_size, extents, what, described_at)

    def data_fork(self, entry: Entry) -> ForkReader:
        """The entry's data fork as stored (compressed files: empty)."""
        record = entry.record
        if record.data is None:
            raise HfsError(self.name, record.at, f"{entry.path}: a directory has no data fork")
        return self._fork(record.data, record.cnid, ForkType.DATA, record.at, entry.path)

    def resource_fork(self, entry: Entry) -> ForkReader:
        record = entry.record
        if record.resource is None:
            raise HfsError(self.name, record.at, f"{entry.path}: a directory has no resource fork")
        what = f"{entry.path} (resource fork)"
        return self._fork(record.resource, record.cnid, ForkType.RESOURCE, record.at, what)

    # ---- catalog ----------------------------------------------------------------------

    def _find(self, parent_id: int, stored_name: str) -> CatalogRecord | None:
        return catalog.child(self.catalog, parent_id, stored_name, self.name)

    def _private_dir(self, stored_name: str) -> int | None:
        if stored_name not in self._private:
            found = self._find(catalog.ROOT_FOLDER_ID, stored_name)
            self._private[stored_name] = found.cnid if found and found.is_folder else None
        return self._private[stored_name]

    def _resolve_link(self, record: CatalogRecord) -> CatalogRecord | None:
        """The inode a hard-link record stands for; None when `record` is no hard link.

        File links are found by *name* (`iNode<ref>` in the private folder):
        Mac OS X 10.5+ uses the inode's CNID as ref, older systems and Linux a
        random number, so the CNID cannot be trusted (Apple hfs_catalog.c
        cat_resolvelink; darling-dmg HFSCatalogBTree.cpp).
        """
        if record.type is not RecordType.FILE:
            return None
        pair = (record.finder_type, record.finder_creator)
        if pair == FILE_LINK:
            directory, target, want_folder = FILE_PRIVATE_DIR, f"iNode{record.bsd.special}", False
        elif pair == FOLDER_LINK and record.flags & catalog.HAS_LINK_CHAIN:
            directory, target, want_folder = FOLDER_PRIVATE_DIR, f"dir_{record.bsd.special}", True
        else:
            return None
        private = self._private_dir(directory)
        inode = None if private is None else self._find(private, target)
        if inode is None or inode.is_folder != want_folder:
            raise HfsCorruptError(
                self.name,
                record.at,
                f"hard link {from_key(record.key.name)!r} names {target!r}, "
                f"which is not in {from_key(directory)!r}",
            )
        return inode

    def _entry(self, record: CatalogRecord, parent_path: str, path: str | None = None) -> Entry:
        name = from_key(record.key.name)
        if path is None:
            path = f"{parent_path.rstrip('/')}/{name}"
        inode = self._resolve_link(record)
        source = inode or record
        mode = source.bsd.mode
        kind = _KIND_BY_FORMAT.get(stat.S_IFMT(mode))
        if kind is None:
            kind = _default_kind(source)
            mode = _default_mode(kind) | stat.S_IMODE(mode)
        if source.is_folder:
            kind = EntryKind.DIRECTORY
        size = 0
        resource = 0
        if source.data is not None and source.resource is not None:
            size = source.data.logical_size
            resource = source.resource.logical_size
        if source.compressed and kind is EntryKind.FILE:
            size = self._compressed_size(source, path)
        link_count = source.bsd.special if inode is not None and not inode.is_folder else 1
        return Entry(
            name=name,
            path=path,
            cnid=source.cnid,
            kind=kind,
            size=size,
            mode=mode,
            uid=source.bsd.owner,
            gid=source.bsd.group,
            modified=source.modified,
            compressed=source.compressed,
            link_count=max(link_count, 1),
            resource_fork_size=resource,
            record=source,
        )

    # ---- paths ------------------------------------------------------------------------

    def lookup(self, path: str, follow_symlinks: bool = True) -> Entry:
        """The entry at POSIX `path` from the volume root; raises HfsNotFound.

        Symlinks are followed only as intermediate components, only when
        `follow_symlinks`, and only to targets inside the volume (a relative
        target that does not climb above the root): an absolute target names
        the Mac's file system, not this volume.
        """
        pending = [part for part in path.split("/") if part not in ("", ".")]
        stack = [self.root]
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            current = stack[-1]
            if current.kind is not EntryKind.DIRECTORY:
                raise HfsNotFound(self.name, path, f"{current.path} is not a directory")
            found = self._child(current, part)
            if found is None:
                raise HfsNotFound(self.name, path)
            if found.kind is EntryKind.SYMLINK and pending and follow_symlinks:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise HfsNotFound(self.name, path, "too many levels of symbolic links")
                target = self.read_link(found)
                if target.startswith("/"):
                    raise HfsNotFound(
                        self.name, path, f"{found.path} points out of the volume ({target})"
                    )
                climbs = _climbs_above(target, len(stack) - 1)
                if climbs:
                    raise HfsNotFound(
                        self.name, path, f"{found.path} points above the volume root ({target})"
                    )
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            stack.append(found)
        return stack[-1]

    def _child(self, directory: Entry, name: str) -> Entry | None:
        wanted = match_key(name, self.case_sensitive)
        folded: CatalogRecord | None = None
        for record in catalog.children(self.catalog, directory.cnid, self.name):
            shown = from_key(record.key.name)
            if shown == name:
                return self._entry(record, directory.path)
            if folded is None and match_key(shown, self.case_sensitive) == wanted:
                folded = record
        return None if folded is None else self._entry(folded, directory.path)

    def listdir(self, directory: str | Entry) -> Iterator[Entry]:
        """The entries of a directory in catalog order, hiding HFS+'s private files at the root."""
        entry = self.lookup(directory) if isinstance(directory, str) else directory
        if entry.kind is not EntryKind.DIRECTORY:
            raise HfsNotFound(self.name, entry.path, "not a directory")
        at_root = entry.cnid == catalog.ROOT_FOLDER_ID
        for record in catalog.children(self.catalog, entry.cnid, self.name):
            if at_root and record.key.name in HIDDEN_AT_ROOT:
                continue
            yield self._entry(record, entry.path)

    def walk(self, top: str | Entry) -> Iterator[Entry]:
        """`top` and everything under it, depth first, parents before children."""
        entry = self.lookup(top) if isinstance(top, str) else top
        yield entry
        if entry.kind is EntryKind.DIRECTORY:
            for child in self.listdir(entry):
                yield from self.walk(child)

    # ---- contents ---------------------------------------------------------------------

    def open_file(self, entry: Entry) -> FileReader:
        """The file's contents: its data fork, or decompressed for an HFS+-compressed file."""
        if entry.kind is EntryKind.DIRECTORY:
            raise HfsError(self.name, entry.record.at, f"{entry.path} is a directory")
        if entry.compressed:
            from netboot.hfs.compressed import compressed_file

            return compressed_file(self, entry)
        return self.data_fork(entry)

    def read_file(self, path: str, limit: int) -> bytes:
        """A whole file's contents; refuses one over `limit` bytes."""
        entry = self.lookup(path)
        if entry.size > limit:
            raise HfsError(
                self.name, entry.record.at, f"{path} is {entry.size} bytes, over the {limit} asked"
            )
        reader = self.open_file(entry)
        return reader.read(0, reader.size)

    def read_link(self, entry: Entry) -> str:
        """A symlink's target (its data, UTF-8)."""
        if entry.kind is not EntryKind.SYMLINK:
            raise HfsError(self.name, entry.record.at, f"{entry.path} is not a symbolic link")
        reader = self.open_file(entry)
        if reader.size > MAX_SYMLINK:
            raise HfsCorruptError(
                self.name, entry.record.at, f"{entry.path}: symlink of {reader.size} bytes"
            )
        return reader.read(0, reader.size).decode("utf-8", "surrogateescape")

    def attributes(self, cnid: int) -> Iterator[tuple[str, AttributeValue]]:
        """The extended attributes of `cnid` (name, value), in key order."""
        if self.attributes_tree is None:
            return iter(())
        return attributes(self.attributes_tree, self.geometry, cnid)

    def attribute(self, cnid: int, name: str) -> AttributeValue | None:
        for found, value in self.attributes(cnid):
            if found == name:
                return value
        return None

    def _compressed_size(self, record: CatalogRecord, path: str) -> int:
        from netboot.hfs.compressed import decmpfs_header

        return decmpfs_header(self, record, path).uncompressed_size


def _default_kind(record: CatalogRecord) -> EntryKind:
    if record.is_folder:
        return EntryKind.DIRECTORY
    if (record.finder_type, record.finder_creator) == SYMLINK_TYPE:
        return EntryKind.SYMLINK
    return EntryKind.FILE


def _default_mode(kind: EntryKind) -> int:
    """What macOS shows for a record whose mode was never set (Linux-made hard links)."""
    if kind is EntryKind.DIRECTORY:
        return stat.S_IFDIR | 0o755
    if kind is EntryKind.SYMLINK:
        return stat.S_IFLNK | 0o755
    return stat.S_IFREG | 0o644


def _climbs_above(target: str, depth: int) -> bool:
    """Does relative `target`, followed from a directory `depth` levels down, leave the root?"""
    level = depth
    for part in target.split("/"):
        if part == "..":
            level -= 1
            if level < 0:
                return True
        elif part not in ("", "."):
            level += 1
    return False


def _rebased(read: Read, start: int, size: int) -> Read:
    def rebased(offset: int, length: int) -> bytes:
        if offset >= size:
            return b""
        return read(start + offset, min(length, size - offset))

    return rebased


@contextmanager
def open_image(path: str | Path, partition: int | None = None) -> Iterator[HfsVolume]:
    """The HFS+ volume in a raw volume, an APM/GPT disk or a UDIF image at `path`.

    Without `partition` the first Apple_HFS/Apple_HFSX partition is taken (a
    bare volume counts as one); with it, the partition of that map index.
    UDIF images are read chunk by chunk, never inflated whole.
    """
    from netboot.udif.partitions import read_partitions
    from netboot.udif.sector import SECTOR
    from netboot.udif.source import open_source

    name = str(path)
    with open_source(path) as source:
        _scheme, partitions = read_partitions(source.read, source.size, name)
        if partition is not None:
            chosen = [p for p in partitions if p.index == partition]
            if not chosen:
                raise HfsError(name, None, f"no partition {partition} in the image")
        else:
            chosen = [p for p in partitions if p.type in ("Apple_HFS", "Apple_HFSX")]
            if not chosen:
                found = ", ".join(f"{p.index} {p.type}" for p in partitions) or "none"
                raise HfsUnsupportedError(
                    name, None, f"no HFS+ partition in the image (partitions: {found})"
                )
        start = chosen[0].first_sector * SECTOR
        length = chosen[0].sector_count * SECTOR
        yield HfsVolume.open(_rebased(source.read, start, length), length, name)
