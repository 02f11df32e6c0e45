"""The HFS+ reader on a volume Linux's hfsplus driver wrote, checked against 7-Zip and the guest.

The volume (tests/hfs_linux.py) has what xorriso cannot make: Linux-style hard
links (random iNode numbers in the private directory), a file of 20+ extents
with extents-overflow records, xattrs, and decmpfs files of types 3, 4, 7 and 8.
Three readers must agree: the guest's kernel (sha256 of every file, printed on
its console), 7-Zip (`7zz l -slt`, `7zz x`; it shows hard links as empty files,
so those are checked against the guest only) and ours.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass

import pytest

from netboot.hfs.volume import EntryKind, open_image
from tests.hfs_images import require_tool
from tests.hfs_linux import (
    HARD_LINKS,
    SYMLINKS,
    VOLUME_NAME,
    LinuxVolume,
    Unavailable,
    linux_volume,
)

PRIVATE_DIRECTORY = "/[HFS+ Private Data]"  # how 7-Zip shows "\0\0\0\0HFS+ Private Data"
METHODS = {
    "/comp/zlib3": "ZLIB-attr",
    "/comp/lzvn7": "LZVN-attr",
    "/comp/zlib4": "ZLIB-rsrc",
    "/comp/lzvn8": "LZVN-rsrc",
}


@dataclass(frozen=True)
class SevenZipEntry:
    folder: bool
    size: int
    mode: str
    method: str


@pytest.fixture(scope="module")
def linux() -> LinuxVolume:
    try:
        return linux_volume()
    except Unavailable as reason:
        pytest.skip(f"cannot build the Linux-written HFS+ volume: {reason}")


@pytest.fixture(scope="module")
def seven_zip(linux: LinuxVolume) -> dict[str, SevenZipEntry]:
    """7-Zip's listing, by path from the volume root ("/hello.txt")."""
    out = subprocess.run(
        [require_tool("7zz"), "l", "-slt", "-thfs", str(linux.image)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    listing = {}
    for block in out.split("\n\n"):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        path = fields.get("Path", "")
        if path.startswith(VOLUME_NAME + "/"):
            listing[path.removeprefix(VOLUME_NAME)] = SevenZipEntry(
                fields["Folder"] == "+",
                int(fields["Size"] or 0),
                fields["Mode"],
                fields.get("Method", ""),
            )
    return listing


def seven_zip_content(linux: LinuxVolume, path: str) -> bytes:
    """One file's bytes as 7-Zip extracts them (a symlink's are its target)."""
    return subprocess.run(
        [require_tool("7zz"), "e", "-so", "-thfs", str(linux.image), VOLUME_NAME + path],
        check=True, capture_output=True,
    ).stdout  # fmt: skip


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_guest_wrote_every_feature(linux: LinuxVolume) -> None:
    assert set(HARD_LINKS) <= set(linux.guest_sha256)
    assert len({linux.guest_sha256[path] for path in HARD_LINKS}) == 1
    assert set(linux.compressed) <= set(linux.guest_sha256)
    assert "/big.bin" in linux.guest_sha256


def test_7zip_reads_what_the_guest_wrote(
    linux: LinuxVolume, seven_zip: dict[str, SevenZipEntry]
) -> None:
    for path, digest in linux.guest_sha256.items():
        if path in HARD_LINKS:
            assert seven_zip[path].size == 0, path  # 7-Zip does not resolve Linux's hard links
        elif path in linux.compressed:
            assert seven_zip[path].method == METHODS[path]
            assert seven_zip_content(linux, path) == linux.compressed[path].plain, path
        else:
            assert sha256(seven_zip_content(linux, path)) == digest, path
    for path, target in SYMLINKS.items():
        assert seven_zip[path].mode.startswith("l"), path
        assert seven_zip_content(linux, path) == target.encode(), path


def test_listing_agrees_with_7zip(linux: LinuxVolume, seven_zip: dict[str, SevenZipEntry]) -> None:
    with open_image(linux.image) as volume:
        ours = {entry.path: entry for entry in volume.walk("/") if entry.path != "/"}
    private = {
        path
        for path in seven_zip
        if path == PRIVATE_DIRECTORY or path.startswith(PRIVATE_DIRECTORY + "/")
    }
    assert private, "7-Zip shows the private directory holding the hard links' inode"
    assert set(ours) == set(seven_zip) - private
    for path, entry in ours.items():
        seen = seven_zip[path]
        assert seen.folder == (entry.kind is EntryKind.DIRECTORY), path
        if path in HARD_LINKS:
            # Linux leaves a link record's mode 0; 7-Zip shows that, we show the inode's file.
            assert seen.mode.startswith("0") and entry.kind is EntryKind.FILE, path
            continue
        kinds = {"d": EntryKind.DIRECTORY, "l": EntryKind.SYMLINK, "-": EntryKind.FILE}
        assert entry.kind is kinds[seen.mode[0]], path
        if not seen.folder:
            assert entry.size == seen.size, path
        assert entry.compressed == (path in linux.compressed), path


def test_every_file_reads_as_the_guest_read_it(linux: LinuxVolume) -> None:
    with open_image(linux.image) as volume:
        for path, digest in linux.guest_sha256.items():
            if path in linux.compressed:
                continue  # empty data forks to the guest; decompressed below
            entry = volume.lookup(path)
            reader = volume.open_file(entry)
            assert reader.size == entry.size, path
            assert sha256(b"".join(reader.iter_blocks(65536))) == digest, path


def test_hard_links_resolve_to_their_inode(linux: LinuxVolume) -> None:
    with open_image(linux.image) as volume:
        entries = [volume.lookup(path) for path in HARD_LINKS]
        contents = {volume.read_file(path, 1 << 20) for path in HARD_LINKS}
    assert all(entry.kind is EntryKind.FILE for entry in entries)
    assert all(entry.link_count == len(HARD_LINKS) for entry in entries)
    assert contents == {b"hello from linux\n"}


def test_fragmented_file_reads_whole_and_at_any_offset(linux: LinuxVolume) -> None:
    # The builder checked its catalog record: more extents than the eight inline ones.
    with open_image(linux.image) as volume:
        entry = volume.lookup("/big.bin")
        reader = volume.open_file(entry)
        whole = reader.read(0, reader.size)
        assert sha256(whole) == linux.guest_sha256["/big.bin"]
        for offset in (0, 2047, 2048, 16383, 16384 + 5, len(whole) - 3):
            assert reader.read(offset, 5000) == whole[offset : offset + 5000]


def test_compressed_files_of_every_type_decompress(linux: LinuxVolume) -> None:
    with open_image(linux.image) as volume:
        for path, file in linux.compressed.items():
            entry = volume.lookup(path)
            assert entry.compressed and entry.size == len(file.plain), path
            reader = volume.open_file(entry)
            assert b"".join(reader.iter_blocks(65536)) == file.plain, path
            assert reader.read(70_000, 100) == file.plain[70_000:70_100], path
            assert seven_zip_content(linux, path) == file.plain, path


def test_symlinks_and_xattrs(linux: LinuxVolume) -> None:
    with open_image(linux.image) as volume:
        for path, target in SYMLINKS.items():
            entry = volume.lookup(path, follow_symlinks=False)
            assert entry.kind is EntryKind.SYMLINK
            assert volume.read_link(entry) == target
        hello = volume.lookup("/hello.txt")
        names = dict(volume.attributes(hello.cnid))
    assert names["user.test"].read_all(100, str(linux.image)) == b"hello"
