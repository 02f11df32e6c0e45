"""The HFS+ reader against volumes xorriso wrote, checked against 7-Zip's HFS reader."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.hfs.errors import HfsNotFound
from netboot.hfs.volume import EntryKind, HfsVolume, open_image
from tests.hfs_images import (
    BIG_SIZE,
    LINKS,
    VOLUME_NAME,
    cut_volume,
    make_iso,
    make_tree,
    require_tool,
)


@dataclass(frozen=True)
class Images:
    files: dict[str, bytes]
    iso: Path
    volume: Path
    dmg: Path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    base = tmp_path_factory.mktemp("hfs")
    tree = base / "tree"
    tree.mkdir()
    files = make_tree(tree)
    iso = make_iso(tree, base / "xorriso.iso")
    volume = cut_volume(iso, base / "volume.hfs")
    dmg = base / "volume.dmg"
    subprocess.run(
        [sys.executable, "-m", "netboot", "dmg", "convert", "-q", "--format", "UDZO",
         str(volume), str(dmg)],
        check=True,
    )  # fmt: skip
    return Images(files, iso, volume, dmg)


def _nfc(path: str) -> str:
    return unicodedata.normalize("NFC", path)


def _listing(volume: HfsVolume) -> dict[str, tuple[EntryKind, int]]:
    return {_nfc(e.path): (e.kind, e.size) for e in volume.walk("/") if e.path != "/"}


def _seven_zip_listing(image: Path) -> dict[str, tuple[bool, int, str]]:
    """7-Zip's `l -slt`: path (without the volume name) -> (is folder, size, mode string)."""
    out = subprocess.run(
        [require_tool("7zz"), "l", "-slt", "-thfs", str(image)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    listing: dict[str, tuple[bool, int, str]] = {}
    for block in out.split("\n\n"):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        path = fields.get("Path", "")
        if not path.startswith(VOLUME_NAME + "/"):
            continue
        size = int(fields["Size"]) if fields.get("Size") else 0
        listing[_nfc(path[len(VOLUME_NAME) :])] = (fields["Folder"] == "+", size, fields["Mode"])
    return listing


def test_listing_agrees_with_7zip(images: Images) -> None:
    seven = _seven_zip_listing(images.volume)
    with open_image(images.volume) as volume:
        ours = {e.path: e for e in volume.walk("/") if e.path != "/"}
        assert volume.info.volume_name == VOLUME_NAME
        assert volume.info.signature == "H+" and not volume.info.case_sensitive
    assert {_nfc(p) for p in ours} == set(seven)
    for path, entry in ours.items():
        folder, size, mode = seven[_nfc(path)]
        assert folder == (entry.kind is EntryKind.DIRECTORY), path
        assert mode[0] == {"directory": "d", "symlink": "l", "file": "-"}[entry.kind], path
        if not folder:
            assert size == entry.size, path


def test_names_are_stored_decomposed_and_found_precomposed(images: Images) -> None:
    with open_image(images.volume) as volume:
        names = [e.name for e in volume.listdir("/")]
        stored = next(n for n in names if n.startswith("R"))
        assert stored == unicodedata.normalize("NFD", "Résumé naïve.txt")
        found = volume.lookup("/Résumé naïve.txt")  # typed precomposed (NFC)
        assert found.name == stored
        assert volume.lookup("/HELLO.TXT").name == "hello.txt"  # HFS+ is case-insensitive


def test_every_file_reads_back(images: Images) -> None:
    with open_image(images.volume) as volume:
        for name, data in images.files.items():
            entry = volume.lookup("/" + name)
            assert entry.kind is EntryKind.FILE and entry.size == len(data), name
            reader = volume.open_file(entry)
            assert b"".join(reader.iter_blocks(65536)) == data, name
        big = volume.open_file(volume.lookup("/big.bin"))
        assert big.size == BIG_SIZE
        assert big.read(BIG_SIZE - 5, 100) == images.files["big.bin"][-5:]
        assert big.read(1_000_000, 10) == images.files["big.bin"][1_000_000:1_000_010]


def test_symlinks(images: Images) -> None:
    with open_image(images.volume) as volume:
        for name, target in LINKS.items():
            entry = volume.lookup("/" + name)
            assert entry.kind is EntryKind.SYMLINK
            assert volume.read_link(entry) == target
        # Followed as an intermediate component, within the volume.
        assert volume.read_file("/deeplink/d/e/f/g/deep.txt", 100) == b"seven levels down\n"
        with pytest.raises(HfsNotFound):
            volume.lookup("/deeplink/d/e/f/g/deep.txt", follow_symlinks=False)


def test_not_found_names_the_image_and_path(images: Images) -> None:
    with open_image(images.volume) as volume, pytest.raises(HfsNotFound) as caught:
        volume.lookup("/a/nope/x")
    assert str(images.volume) in str(caught.value) and "/a/nope/x" in str(caught.value)


@pytest.mark.parametrize("container", ["iso", "dmg"])
def test_apm_disk_and_udzo_dmg_read_like_the_bare_volume(images: Images, container: str) -> None:
    path = images.iso if container == "iso" else images.dmg
    with open_image(images.volume) as volume:
        expected = _listing(volume)
    with open_image(path) as volume:
        assert _listing(volume) == expected
        data = b"".join(volume.open_file(volume.lookup("/big.bin")).iter_blocks())
    assert hashlib.sha256(data).digest() == hashlib.sha256(images.files["big.bin"]).digest()


def test_hfs_wrapper_is_looked_through(images: Images, tmp_path: Path) -> None:
    """A classic HFS MDB whose embedded extent holds the volume (TN1150 "HFS Wrapper")."""
    inner = images.volume.read_bytes()
    inner += bytes(-len(inner) % 4096)  # whole wrapper allocation blocks
    mdb = bytearray(162)
    struct.pack_into(">2s", mdb, 0, b"BD")
    struct.pack_into(">H", mdb, 10, 0x8200)
    struct.pack_into(">I", mdb, 20, 4096)  # drAlBlkSiz
    struct.pack_into(">H", mdb, 28, 8)  # drAlBlSt: allocation blocks start at sector 8
    struct.pack_into(">2sHH", mdb, 124, b"H+", 0, len(inner) // 4096)
    wrapped = bytearray(4096) + inner
    wrapped[1024 : 1024 + 162] = mdb
    path = tmp_path / "wrapped.hfs"
    path.write_bytes(bytes(wrapped))
    with open_image(images.volume) as volume:
        expected = _listing(volume)
    with open_image(path) as volume:
        assert volume.info.wrapper_offset == 4096
        assert _listing(volume) == expected
