"""`netboot dmg ls` and `netboot dmg cp` on volumes xorriso wrote, checked against 7-Zip's `x`."""

from __future__ import annotations

import json
import subprocess
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from netboot.cli.dmg import dmg
from tests.hfs_images import LINKS, VOLUME_NAME, cut_volume, make_iso, make_tree, require_tool


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hfscli")
    tree = base / "tree"
    tree.mkdir()
    make_tree(tree)
    return cut_volume(make_iso(tree, base / "v.iso"), base / "v.hfs")


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every symlink's target under `root`, by NFC relative path."""
    found: dict[str, bytes | str] = {}
    for path in root.rglob("*"):
        name = unicodedata.normalize("NFC", str(path.relative_to(root)))
        if path.is_symlink():
            found[name] = str(path.readlink())
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name + "/"] = "directory"
    return found


def test_cp_of_the_root_agrees_with_7zip_x(volume: Path, tmp_path: Path) -> None:
    seven = tmp_path / "seven"
    subprocess.run(
        [require_tool("7zz"), "x", "-y", "-thfs", f"-o{seven}", str(volume)],
        check=True, capture_output=True,
    )  # fmt: skip
    ours = tmp_path / "ours"
    ours.mkdir()
    result = CliRunner().invoke(dmg, ["cp", "-q", str(volume), "/", str(ours)])
    assert result.exit_code == 0, result.output
    assert _snapshot(ours / VOLUME_NAME) == _snapshot(seven / VOLUME_NAME)
    assert str((ours / VOLUME_NAME / "link").readlink()) == LINKS["link"]


def test_cp_refuses_to_overwrite_without_force(volume: Path, tmp_path: Path) -> None:
    target = tmp_path / "hello"
    target.write_bytes(b"mine")
    result = CliRunner().invoke(dmg, ["cp", str(volume), "/hello.txt", str(target)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert target.read_bytes() == b"mine"
    result = CliRunner().invoke(
        dmg, ["cp", "-q", "--force", str(volume), "/hello.txt", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"hello, volume\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hello"]  # no temporary file left behind


def test_cp_of_a_missing_path_exits_1(volume: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(dmg, ["cp", str(volume), "/nope", str(tmp_path)])
    assert result.exit_code == 1 and "/nope: no such file or directory" in result.output
    assert list(tmp_path.iterdir()) == []


def test_cp_refuses_names_that_would_leave_dest(volume: Path, tmp_path: Path) -> None:
    """A catalog name '..' (hand-patched over 'empty.bin') must not be written outside DEST."""
    data = bytearray(volume.read_bytes())
    at = data.index(b"\0\0\0\x02\0\x09" + "empty.bin".encode("utf-16-be"))  # key (2, name)
    # nameLength 2, name "..": the key keeps its length, so the record still parses.
    data[at + 4 : at + 10] = b"\0\x02" + "..".encode("utf-16-be")
    patched = tmp_path / "patched.hfs"
    patched.write_bytes(bytes(data))
    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    result = CliRunner().invoke(dmg, ["cp", "-q", str(patched), "/", str(dest)])
    assert result.exit_code == 1
    assert "not a safe file name" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "patched.hfs"]
    assert (dest / VOLUME_NAME / "hello.txt").read_bytes() == b"hello, volume\n"


def test_ls_json(volume: Path) -> None:
    result = CliRunner().invoke(dmg, ["ls", "--json", str(volume), "/a/b"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert listing["volume"]["name"] == VOLUME_NAME and listing["path"] == "/a/b"
    (entry,) = listing["entries"]
    assert entry["name"] == "c" and entry["kind"] == "directory" and entry["path"] == "/a/b/c"
    result = CliRunner().invoke(dmg, ["ls", "--json", str(volume), "/link"])
    (link,) = json.loads(result.output)["entries"]
    assert link["kind"] == "symlink" and link["link_target"] == "hello.txt"


def test_ls_text(volume: Path) -> None:
    result = CliRunner().invoke(dmg, ["ls", str(volume)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("drwxr-xr-x") and line.endswith("  a/") for line in lines)
    assert any(line.endswith("  link -> hello.txt") for line in lines)
