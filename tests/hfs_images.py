"""HFS+ volumes written by another implementation (xorriso's -hfsplus) for the reader's tests.

xorriso makes an APM hybrid ISO whose Apple_HFS partition is a real HFS+
volume (2 KiB blocks, case-insensitive catalog, symlinks as slnk/rhap files).
The tree holds what the reader must get right: deep paths, long and
non-ASCII names (HFS+ stores them decomposed), a multi-megabyte file, and
symlinks to a file and to a directory.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

TREE_FILES: dict[str, bytes] = {
    "hello.txt": b"hello, volume\n",
    "Résumé naïve.txt": "caf\u00e9 \u00fcber\n".encode(),
    "a/b/c/d/e/f/g/deep.txt": b"seven levels down\n",
    "Docs/" + "long name " * 20 + ".txt": b"a 205-character name\n",
    "Docs/Ünïcödé/日本語のファイル.txt": "日本語\n".encode(),
    "empty.bin": b"",
}
LINKS: dict[str, str] = {"link": "hello.txt", "deeplink": "a/b/c"}
BIG_SIZE = 3_000_000 + 17
VOLUME_NAME = "NETBOOTTEST"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH (Debian: apt-get install xorriso 7zip)")
    return path


def make_tree(root: Path) -> dict[str, bytes]:
    """Write the test tree under `root`; returns every regular file's path and contents."""
    files = dict(TREE_FILES)
    files["big.bin"] = random.Random(18).randbytes(BIG_SIZE)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for name, target in LINKS.items():
        (root / name).symlink_to(target)
    return files


def make_iso(tree: Path, out: Path) -> Path:
    """An APM hybrid ISO with an HFS+ partition holding `tree`."""
    subprocess.run(
        [require_tool("xorriso"), "-as", "mkisofs", "-quiet", "-hfsplus", "-V", VOLUME_NAME,
         "-o", str(out), str(tree)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def hfs_partition(iso: Path) -> tuple[int, int]:
    """(byte offset, length) of the Apple_HFS entry of xorriso's APM (Inside Macintosh layout)."""
    data = iso.read_bytes()
    count = struct.unpack_from(">I", data, 512 + 4)[0]
    for number in range(1, count + 1):
        entry = data[512 * number : 512 * (number + 1)]
        start, blocks = struct.unpack_from(">II", entry, 8)
        if entry[48:80].rstrip(b"\0") == b"Apple_HFS":
            return start * 512, blocks * 512
    raise AssertionError("xorriso wrote no Apple_HFS partition")


def cut_volume(iso: Path, out: Path) -> Path:
    """The HFS+ partition of `iso` as a bare volume file."""
    start, length = hfs_partition(iso)
    with iso.open("rb") as stream:
        stream.seek(start)
        out.write_bytes(stream.read(length))
    return out
