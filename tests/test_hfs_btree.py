"""B-tree level checks: a hand-built extents-overflow vector, hard links, and corrupt volumes.

The corruption matrix patches one structure of a volume xorriso wrote and
checks that the reader raises a typed error naming the image and the volume
byte offset of the structure at fault (never struct.error, IndexError, or a
hang).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from netboot.errors import HfsError
from netboot.hfs.btree import BTree
from netboot.hfs.errors import HfsCorruptError, HfsUnsupportedError
from netboot.hfs.extents import ForkType, all_extents, extent_key
from netboot.hfs.fork import Extent, ForkData, ForkReader, Geometry
from netboot.hfs.volume import EntryKind, HfsVolume
from tests.hfs_images import cut_volume, make_iso

BLOCK = 512


def _node(kind: int, height: int, records: list[bytes], size: int = 512) -> bytes:
    """A B-tree node (TN1150 BTNodeDescriptor, records, offsets at the end)."""
    body = bytearray(struct.pack(">IIbBHH", 0, 0, kind, height, len(records), 0))
    offsets = []
    for record in records:
        offsets.append(len(body))
        body += record
    offsets.append(len(body))
    table = b"".join(struct.pack(">H", o) for o in reversed(offsets))
    return bytes(body) + bytes(size - len(body) - len(table)) + table


def _header_node(root: int, total: int, max_key: int) -> bytes:
    header = struct.pack(">HIIIIHHII", 1, root, 1, root, root, 512, max_key, total, 0)
    header += bytes(2 + 4 + 1) + bytes([0]) + struct.pack(">I", 0x2) + bytes(64)
    node = bytearray(struct.pack(">IIbBHH", 0, 0, 1, 0, 3, 0)) + header
    return bytes(node) + bytes(512 - len(node))


def test_fork_beyond_eight_extents_reads_through_the_overflow_record() -> None:
    """File 16: eight one-block extents inline, two more blocks in one overflow record."""
    disk = bytearray(64 * BLOCK)
    # The extents B-tree: header node, then one leaf with the key (file 16, data, block 8).
    record = struct.pack(">H", 10) + extent_key(16, ForkType.DATA, 8)
    record += struct.pack(">II", 40, 2) + bytes(56)
    disk[2 * BLOCK : 3 * BLOCK] = _header_node(root=1, total=2, max_key=10)
    disk[3 * BLOCK : 4 * BLOCK] = _node(-1, 1, [record])
    inline = [Extent(20 + 2 * n, 1) for n in range(8)]  # every other block: fragmented
    expected = bytearray()
    for block in [e.start_block for e in inline] + [40, 41]:
        content = bytes([block]) * BLOCK
        disk[block * BLOCK : (block + 1) * BLOCK] = content
        expected += content
    size = 10 * BLOCK - 100

    def read(offset: int, length: int) -> bytes:
        return bytes(disk[offset : offset + length])

    geometry = Geometry(read, BLOCK, 64, "vector")
    tree = BTree(ForkReader(geometry, 2 * BLOCK, (Extent(2, 2),), "extents", None), "extents")
    fork = ForkData(size, 10, tuple(inline))
    extents = all_extents(fork, 16, ForkType.DATA, tree, "vector", None)
    assert extents == (*inline, Extent(40, 2))
    reader = ForkReader(geometry, size, extents, "file 16", None)
    assert reader.read(0, size) == bytes(expected[:size])
    assert reader.read(8 * BLOCK - 3, 6) == bytes([34]) * 3 + bytes([40]) * 3
    # The resource fork of the same file has no overflow record: a typed error, not a guess.
    with pytest.raises(HfsCorruptError, match="no extents-overflow record for block 8"):
        all_extents(fork, 16, ForkType.RESOURCE, tree, "vector", 4096)


# ---- volumes from xorriso, patched ---------------------------------------------------------

PRIVATE_STANDIN = "XXXXHFS+ Private Data"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    base = tmp_path_factory.mktemp("hfsb")
    tree = base / "tree"
    (tree / PRIVATE_STANDIN).mkdir(parents=True)
    (tree / PRIVATE_STANDIN / "iNode777").write_bytes(b"the inode's data\n" * 100)
    (tree / "hardlink.txt").write_bytes(b"stand-in")
    (tree / "dir").mkdir()
    for number in range(40):
        (tree / "dir" / f"file{number:03}.txt").write_bytes(b"x" * number)
    return cut_volume(make_iso(tree, base / "v.iso"), base / "v.hfs").read_bytes()


def _open(data: bytes, name: str = "patched.hfs") -> HfsVolume:
    return HfsVolume.open(lambda offset, size: data[offset : offset + size], len(data), name)


def _utf16(name: str) -> bytes:
    return name.encode("utf-16-be")


def _file_record(data: bytes, parent: int, name: str) -> int:
    """Volume offset of the catalog data of (parent, name): after the key."""
    key = struct.pack(">IH", parent, len(name)) + _utf16(name)
    at = data.index(key) - 2
    key_length: int = struct.unpack_from(">H", data, at)[0]
    return at + 2 + key_length


def test_file_hard_link_resolves_by_inode_name(pristine: bytes) -> None:
    data = bytearray(pristine.replace(_utf16(PRIVATE_STANDIN), _utf16("\0\0\0\0HFS+ Private Data")))
    record = _file_record(bytes(data), 2, "hardlink.txt")
    struct.pack_into(">HI4s4s", data, record + 42, 0, 777, b"hlnk", b"hfs+")  # mode 0, as Linux
    volume = _open(bytes(data))
    entry = volume.lookup("/hardlink.txt")
    assert entry.kind is EntryKind.FILE and entry.mode == 0o100644
    assert entry.name == "hardlink.txt" and entry.path == "/hardlink.txt"
    assert volume.read_file("/hardlink.txt", 1 << 20) == b"the inode's data\n" * 100
    assert entry.cnid == volume.lookup("/\u2400\u2400\u2400\u2400HFS+ Private Data/iNode777").cnid
    assert "\u2400\u2400\u2400\u2400HFS+ Private Data" not in {e.name for e in volume.listdir("/")}


def _catalog(data: bytes | bytearray) -> tuple[int, int, int]:
    """(volume offset of the catalog file, its node size, its root node) from the headers."""
    block_size = struct.unpack_from(">I", data, 1024 + 40)[0]
    start = struct.unpack_from(">I", data, 1024 + 272 + 16)[0] * block_size
    (root,) = struct.unpack_from(">I", data, start + 14 + 2)
    (node_size,) = struct.unpack_from(">H", data, start + 14 + 18)
    return start, node_size, root


def _first_leaf(data: bytes | bytearray) -> int:
    start, node_size, _root = _catalog(data)
    first: int = struct.unpack_from(">I", data, start + 14 + 10)[0]
    return start + first * node_size


def _patch(data: bytearray, at: int, fmt: str, *values: int | bytes) -> int:
    struct.pack_into(fmt, data, at, *values)
    return at


Patch = Callable[[bytearray], int]
"""Patches the volume; returns the offset the error must name."""

CORRUPTIONS: dict[str, tuple[Patch, str]] = {
    "signature": (lambda d: _patch(d, 1024, ">2s", b"XY"), "signature"),
    "blocks past the volume": (lambda d: _patch(d, 1024 + 44, ">I", 1 << 30), "do not fit"),
    "catalog extent past the volume": (
        lambda d: _patch(d, 1024 + 272 + 16, ">I", 1 << 28) - 16,
        "runs past the volume",
    ),
    "catalog node size": (
        lambda d: _patch(d, _catalog(d)[0] + 14 + 18, ">H", 1000),
        "node size 1000",
    ),
    "root node past the file": (
        lambda d: _patch(d, _catalog(d)[0] + 14 + 2, ">I", 99999),
        "past the tree's",
    ),
    "leaf chain loops": (
        lambda d: _patch(
            d, _first_leaf(d), ">I", (_first_leaf(d) - _catalog(d)[0]) // _catalog(d)[1]
        ),
        "loops",
    ),
    "node kind": (lambda d: _patch(d, _first_leaf(d) + 8, ">b", 2), "kind 2"),
    "record offsets": (
        lambda d: _patch(d, _first_leaf(d) + _catalog(d)[1] - 4, ">H", 2),
        "offsets",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corruption_raises_a_typed_error_naming_image_and_offset(
    pristine: bytes, case: str
) -> None:
    patch, message = CORRUPTIONS[case]
    data = bytearray(pristine)
    at = patch(data)
    with pytest.raises(HfsCorruptError, match=message) as caught:
        volume = _open(bytes(data))
        for entry in volume.walk("/"):
            if entry.kind is EntryKind.FILE:
                volume.open_file(entry).read(0, 16)
    error = caught.value
    assert error.image == "patched.hfs" and str(error).startswith("patched.hfs: at volume byte")
    assert error.offset == at, f"{case}: names {error.offset}, the patch is at {at}"


def test_hard_link_to_a_missing_inode_names_the_link_record(pristine: bytes) -> None:
    data = bytearray(pristine)
    record = _file_record(bytes(data), 2, "hardlink.txt")
    struct.pack_into(">I4s4s", data, record + 44, 12345, b"hlnk", b"hfs+")
    with pytest.raises(HfsCorruptError, match="iNode12345") as caught:
        _open(bytes(data)).lookup("/hardlink.txt")
    assert caught.value.offset is not None


def test_plain_classic_hfs_is_unsupported(tmp_path: Path) -> None:
    data = bytearray(64 * 1024)
    data[1024:1026] = b"BD"
    with pytest.raises(HfsUnsupportedError, match="classic HFS"):
        _open(bytes(data))
    assert issubclass(HfsUnsupportedError, HfsError)


def test_compressed_flag_without_its_attribute_names_the_record(pristine: bytes) -> None:
    data = bytearray(pristine)
    record = _file_record(bytes(data), 2, "hardlink.txt")
    data[record + 41] |= 0x20  # ownerFlags: UF_COMPRESSED
    with pytest.raises(HfsCorruptError, match=r"no com\.apple\.decmpfs attribute") as caught:
        _open(bytes(data)).lookup("/hardlink.txt")
    assert caught.value.offset is not None


def test_compressed_file_rebuffers_decmpfs_blocks() -> None:
    """Type 3 (zlib in the attribute), 200 000 bytes, read back in 70 000-byte pieces."""
    import zlib

    from netboot.hfs.compressed import CompressedFile
    from netboot.hfs.decmpfs import DecmpfsHeader

    original = bytes(range(256)) * 781 + b"tail"
    value = struct.pack("<4sIQ", b"fpmc", 3, len(original)) + zlib.compress(original)
    file = CompressedFile(DecmpfsHeader.parse(value, "vector"), None, "vector")
    pieces = list(file.iter_blocks(70_000))
    assert [len(p) for p in pieces] == [70_000, 70_000, len(original) - 140_000]
    assert b"".join(pieces) == original
    assert file.read(199_000, 10_000) == original[199_000:]
