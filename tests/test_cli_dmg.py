"""`netboot dmg info|verify|convert`: exit codes, the JSON contract, OUT all or nothing."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netboot.cli import cli
from netboot.udif.blkx import ChunkType
from netboot.udif.reader import UdifImage
from netboot.udif.writer import write_image
from tests.test_udif_interop import require_tool
from tests.udif_disks import content, hfs_volume, several_partitions_apm

MIB = 1 << 20
SECTOR = 512

# The contract of `dmg info --json`: these keys with these types.
INFO_KEYS: dict[str, tuple[type, ...]] = {
    "path": (str,),
    "format": (str,),
    "size": (int,),
    "sectors": (int,),
    "partition_scheme": (str, type(None)),
    "partitions": (list,),
    "chunks": (dict,),
    "checksums": (dict,),
    "problems": (list,),
}
PARTITION_KEYS = {"index", "name", "type", "first_sector", "sector_count"}


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def info_json(path: Path) -> dict[str, Any]:
    result = run("dmg", "info", "--json", path)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    for key, types in INFO_KEYS.items():
        assert isinstance(summary[key], types), (key, summary[key])
    for partition in summary["partitions"]:
        assert set(partition) == PARTITION_KEYS
    assert set(summary["checksums"]) == {"data_fork", "master", "tables"}
    return summary


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    path = tmp_path / "volume.raw"
    path.write_bytes(hfs_volume(random.Random(1), 3 * MIB))
    return path


@pytest.fixture
def udzo(tmp_path: Path, volume: Path) -> Path:
    out = tmp_path / "NetBoot.dmg"
    write_image(volume, out, "UDZO", layout="apm")
    return out


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# -- info ---------------------------------------------------------------------------------


def test_info_json_describes_a_udzo_image(udzo: Path) -> None:
    summary = info_json(udzo)
    assert summary["path"] == str(udzo)
    assert summary["format"] == "UDZO"
    assert summary["size"] == summary["sectors"] * SECTOR == (72 + 6144 + 10) * SECTOR
    assert summary["partition_scheme"] == "apm"
    assert [(p["type"], p["first_sector"]) for p in summary["partitions"]] == [
        ("Apple_partition_map", 1),
        ("Apple_Driver_ATAPI", 64),
        ("Apple_HFS", 72),
        ("Apple_Free", 6216),
    ]
    assert summary["chunks"]["zlib"] > 0 and summary["chunks"]["terminator"] == 5
    assert summary["checksums"]["data_fork"] == summary["checksums"]["master"] == "valid"
    assert [t["status"] for t in summary["checksums"]["tables"]] == ["valid"] * 5
    assert summary["checksums"]["tables"][3]["name"] == "disk image (Apple_HFS : 3)"
    assert summary["problems"] == []


@pytest.mark.parametrize(("fmt", "name"), [("UDRO", "UDRO"), ("ULFO", "ULFO"), ("UDBZ", "UDBZ")])
def test_info_names_the_format_from_the_chunk_types(
    tmp_path: Path, volume: Path, fmt: str, name: str
) -> None:
    out = tmp_path / f"{fmt}.dmg"
    write_image(volume, out, fmt)
    assert info_json(out)["format"] == name


def test_info_of_a_raw_disk_has_partitions_and_no_checksums(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(several_partitions_apm(random.Random(2)))
    summary = info_json(disk)
    assert (summary["format"], summary["partition_scheme"]) == ("raw", "apm")
    assert len(summary["partitions"]) == 5
    assert summary["chunks"] == {}
    assert summary["checksums"] == {"data_fork": "absent", "master": "absent", "tables": []}


def test_info_reports_bad_checksums_but_exits_0(udzo: Path) -> None:
    image = bytearray(udzo.read_bytes())
    image[-512 + 0x58] ^= 0xFF  # data-fork CRC32 in the trailer
    udzo.write_bytes(image)
    summary = info_json(udzo)
    assert summary["checksums"]["data_fork"] == "invalid"
    assert any("data fork CRC32" in problem for problem in summary["problems"])


def test_info_text_output(udzo: Path) -> None:
    result = run("dmg", "info", udzo)
    assert result.exit_code == 0, result.output
    assert "format      UDZO" in result.stdout
    assert "data fork valid, master valid, tables 5 of 5 valid" in result.stdout


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "directory"])
def test_info_of_bad_input_exits_1_with_the_error(tmp_path: Path, udzo: Path, damage: str) -> None:
    target = tmp_path / "bad.dmg"
    if damage == "empty":
        target.write_bytes(b"")
    elif damage == "truncated":  # the trailer survives, the data fork it points at does not
        image = udzo.read_bytes()
        target.write_bytes(image[:4096] + image[-512:])
    elif damage == "directory":
        target.mkdir()
    result = run("dmg", "info", target)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {target}"), result.stderr
    assert result.stdout == ""


# -- verify -------------------------------------------------------------------------------


def test_verify_of_a_good_image_exits_0_and_prints_no_problem(udzo: Path) -> None:
    result = run("dmg", "verify", udzo)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "all checksums valid" in result.stderr


def test_verify_quiet_prints_nothing_for_a_good_image(udzo: Path) -> None:
    result = run("dmg", "verify", "--quiet", udzo)
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", "")


def test_verify_prints_one_line_per_problem_and_exits_1(udzo: Path) -> None:
    image = bytearray(udzo.read_bytes())
    image[-512 + 0x58] ^= 0xFF  # data-fork CRC32
    image[-512 + 0x168] ^= 0xFF  # master CRC32
    udzo.write_bytes(image)
    result = run("dmg", "verify", udzo)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "data fork CRC32" in lines[0] and "master CRC32" in lines[1]


def test_verify_of_a_raw_image_exits_1(volume: Path) -> None:
    result = run("dmg", "verify", volume)
    assert result.exit_code == 1
    assert "not a UDIF image" in result.stderr


# -- convert ------------------------------------------------------------------------------


def test_convert_writes_the_image_and_says_so(tmp_path: Path, volume: Path) -> None:
    out = tmp_path / "out.dmg"
    result = run("dmg", "convert", volume, out, "--format", "udzo", "--layout", "apm")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}: UDZO, apm layout (5 entries)")
    with UdifImage.open(out) as image:
        assert image.read(72 * SECTOR, 3 * MIB) == volume.read_bytes()


def test_convert_to_raw_and_back_is_the_identity(tmp_path: Path, udzo: Path) -> None:
    raw, again = tmp_path / "disk.raw", tmp_path / "again.dmg"
    assert run("dmg", "convert", "-q", "--format", "raw", udzo, raw).exit_code == 0
    assert run("dmg", "convert", "-q", "--format", "ULFO", raw, again).exit_code == 0
    with UdifImage.open(udzo) as first, UdifImage.open(again) as second:
        assert first.read(0, first.size) == raw.read_bytes() == second.read(0, second.size)
        assert [e.name for e in first.entries] == [e.name for e in second.entries]


@pytest.mark.parametrize("size", [4 * 1024 * 1024, 1_000_003])
def test_convert_and_back_with_defaults_gives_the_original_bytes(tmp_path: Path, size: int) -> None:
    """Issue #18's done-when: random bytes (no file system, any length) survive a round trip,
    and 7-Zip reads the same bytes out of our image."""
    data = random.Random(size).randbytes(size)
    raw, dmg, back = tmp_path / "raw.img", tmp_path / "x.dmg", tmp_path / "back.img"
    raw.write_bytes(data)
    assert run("dmg", "convert", "-q", raw, dmg).exit_code == 0
    assert run("dmg", "convert", "-q", "--format", "raw", dmg, back).exit_code == 0
    assert back.read_bytes() == data
    seven_zip = require_tool("7zz", "7z")
    done = subprocess.run(
        [seven_zip, "x", "-y", f"-o{tmp_path / 'x'}", str(dmg)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (extracted,) = (tmp_path / "x").iterdir()
    assert extracted.name == "0.unknown partition"
    assert extracted.read_bytes()[:size] == data


def test_convert_quiet_prints_nothing(tmp_path: Path, volume: Path) -> None:
    result = run("dmg", "convert", "--quiet", volume, tmp_path / "out.dmg")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", "")


def test_convert_refuses_to_overwrite_without_force(tmp_path: Path, volume: Path) -> None:
    out = tmp_path / "out.dmg"
    out.write_bytes(b"keep me")
    result = run("dmg", "convert", volume, out)
    assert result.exit_code == 1
    assert "already exists (use --force" in result.stderr
    assert out.read_bytes() == b"keep me"
    assert run("dmg", "convert", "--force", "-q", volume, out).exit_code == 0
    assert out.read_bytes()[-512:][:4] == b"koly"


def test_convert_of_a_corrupt_chunk_exits_1_and_leaves_no_out(tmp_path: Path) -> None:
    source = tmp_path / "in.raw"
    source.write_bytes(content(random.Random(3), 8 * MIB))
    dmg = tmp_path / "in.dmg"
    write_image(source, dmg, "UDZO", layout="bare")
    with UdifImage.open(dmg) as image:
        zlib_chunks = [c for c in image.entries[0].table.chunks if c.type == ChunkType.ZLIB]
    middle = zlib_chunks[len(zlib_chunks) // 2]
    damaged = bytearray(dmg.read_bytes())
    at = middle.data_offset + middle.data_length // 2
    damaged[at : at + 16] = bytes(16)
    dmg.write_bytes(damaged)
    for fmt in ("UDZO", "raw"):
        out = tmp_path / f"out.{fmt}"
        result = run("dmg", "convert", "--format", fmt, dmg, out)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {dmg}: at byte "), result.stderr
        assert not out.exists()
        assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "UDXX"],
        ["--layout", "gpt"],
        ["--format", "UDRO", "--level", "5"],
        ["--level", "10"],
        ["--workers", "0"],
    ],
)
def test_convert_usage_errors_exit_2(tmp_path: Path, volume: Path, args: list[str]) -> None:
    out = tmp_path / "out.dmg"
    result = run("dmg", "convert", *args, volume, out)
    assert result.exit_code == 2, result.output
    assert not out.exists()


def test_convert_without_out_is_a_usage_error(volume: Path) -> None:
    assert run("dmg", "convert", volume).exit_code == 2


def test_convert_into_a_missing_directory_names_out(tmp_path: Path, volume: Path) -> None:
    out = tmp_path / "no" / "such" / "out.dmg"
    result = run("dmg", "convert", volume, out)
    assert result.exit_code == 1
    assert result.stderr == f"error: {out}: No such file or directory\n"


def test_convert_of_a_missing_input_exits_1(tmp_path: Path) -> None:
    result = run("dmg", "convert", tmp_path / "none.raw", tmp_path / "out.dmg")
    assert result.exit_code == 1
    assert "No such file or directory" in result.stderr


def test_the_installed_command_shows_no_progress_bar_without_a_terminal(
    tmp_path: Path, volume: Path
) -> None:
    netboot = shutil.which("netboot", path=str(Path(sys.executable).parent))
    assert netboot is not None, "the netboot console script is not installed next to python"
    out = tmp_path / "out.dmg"
    done = subprocess.run(
        [netboot, "dmg", "convert", str(volume), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"wrote {out}")
