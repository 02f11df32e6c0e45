"""Other people's readers turn our UDIF images into exactly the bytes we put in.

qemu-img (`-f dmg`), dmg2img and 7-Zip each decode the image we wrote; the
test compares their output byte for byte with the expanded disk, because some
of them exit 0 even when a chunk failed to decode (dmg2img writes what it
could; qemu-img reports I/O errors only on stderr in some versions). 7-Zip
extracts one file per blkx entry (`0.ddm`, `1.Apple_partition_map`, ...,
`3.hfs`, `4.free`) in entry order, so their concatenation is the disk;
`7z t` must also find every checksum right: "Everything is Ok" and no warning,
headers error or CRC error.

Tools missing from PATH skip the test (a failure under NETBOOT_REQUIRE_ALL=1):
`apt-get install qemu-utils dmg2img 7zip`.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from netboot.udif.writer import write_image
from tests.udif_disks import hfs_volume, several_partitions_apm, small_gpt

SECTOR = 512
TIMEOUT = 60


def require_tool(*names: str) -> str:
    """The first of `names` on PATH, or skip saying which package provides it."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip(f"{' or '.join(names)} not on PATH (apt-get install qemu-utils dmg2img 7zip)")


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def bare_volume(tmp_path: Path) -> tuple[Path, bytes]:
    volume = hfs_volume(random.Random(1), 3 * 1024 * 1024 + 4096)
    return _written(tmp_path, volume, "bare"), volume


def apm_volume(tmp_path: Path) -> tuple[Path, bytes]:
    volume = hfs_volume(random.Random(2), 3 * 1024 * 1024)
    expected = _apm_expected(tmp_path, volume)
    return _written(tmp_path, volume, "apm"), expected


def several_partitions(tmp_path: Path) -> tuple[Path, bytes]:
    disk = several_partitions_apm(random.Random(3))
    return _written(tmp_path, disk, "keep"), disk


def gpt(tmp_path: Path) -> tuple[Path, bytes]:
    disk = small_gpt(random.Random(4))
    return _written(tmp_path, disk, "keep"), disk


def _written(tmp_path: Path, disk: bytes, layout: str) -> Path:
    source = tmp_path / "in.raw"
    source.write_bytes(disk)
    out = tmp_path / f"{layout}.dmg"
    write_image(source, out, "UDZO", layout=layout, workers=2)
    return out


def _apm_expected(tmp_path: Path, volume: bytes) -> bytes:
    """The APM disk as our raw writer lays it out; the readers must agree with it."""
    source, raw = tmp_path / "volume.raw", tmp_path / "apm.raw"
    source.write_bytes(volume)
    write_image(source, raw, "raw", layout="apm")
    disk = raw.read_bytes()
    assert disk[72 * SECTOR : 72 * SECTOR + len(volume)] == volume
    return disk


IMAGES: dict[str, Callable[[Path], tuple[Path, bytes]]] = {
    "bare": bare_volume,
    "apm": apm_volume,
    "apm-several-partitions": several_partitions,
    "gpt": gpt,
}


@pytest.fixture(params=sorted(IMAGES))
def image(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bytes]:
    build: Callable[[Path], tuple[Path, bytes]] = IMAGES[request.param]
    return build(tmp_path)


def test_qemu_img_expands_it(image: tuple[Path, bytes], tmp_path: Path) -> None:
    qemu_img = require_tool("qemu-img")
    dmg, expected = image
    out = tmp_path / "qemu.raw"
    done = run(qemu_img, "convert", "-f", "dmg", "-O", "raw", str(dmg), str(out))
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
    assert out.read_bytes() == expected


def test_dmg2img_expands_it(image: tuple[Path, bytes], tmp_path: Path) -> None:
    dmg2img = require_tool("dmg2img")
    dmg, expected = image
    out = tmp_path / "dmg2img.raw"
    done = run(dmg2img, "-s", str(dmg), str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_bytes() == expected


def test_7zip_extracts_one_file_per_entry_that_make_up_the_disk(
    image: tuple[Path, bytes], tmp_path: Path
) -> None:
    seven = require_tool("7zz", "7z")
    dmg, expected = image
    target = tmp_path / "7z"
    done = run(seven, "x", "-tdmg", f"-o{target}", str(dmg))
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(target.iterdir(), key=lambda p: int(p.name.split(".", 1)[0]))
    assert b"".join(p.read_bytes() for p in files) == expected


PROBLEMS = re.compile(r"warning|headers error|crc failed|crc error|error", re.IGNORECASE)
"""What 7-Zip prints about a damaged image; a bad data-fork CRC is only a warning (exit 0)."""


def seven_zip_test(dmg: Path) -> tuple[int, str]:
    done = run(require_tool("7zz", "7z"), "t", "-tdmg", str(dmg))
    return done.returncode, done.stdout + done.stderr


def test_7zip_finds_every_checksum_right(image: tuple[Path, bytes]) -> None:
    status, report = seven_zip_test(image[0])
    assert status == 0, report
    assert "Everything is Ok" in report
    assert not PROBLEMS.search(report), report


def test_7zip_does_report_a_wrong_data_fork_checksum(tmp_path: Path) -> None:
    """The control for the test above: the words it looks for do appear on damage."""
    dmg, _ = bare_volume(tmp_path)
    image = bytearray(dmg.read_bytes())
    image[-512 + 0x58] ^= 0xFF  # first byte of the data-fork CRC32 in the trailer
    dmg.write_bytes(image)
    status, report = seven_zip_test(dmg)
    assert status == 0 and "Everything is Ok" in report  # a warning: docs/protocols/udif.md §3
    assert PROBLEMS.search(report), report


@pytest.mark.parametrize("fmt", ["UDRO", "UDBZ", "ULFO"])
def test_7zip_reads_the_other_formats(tmp_path: Path, fmt: str) -> None:
    seven = require_tool("7zz", "7z")
    disk = several_partitions_apm(random.Random(5))
    source, dmg = tmp_path / "in.raw", tmp_path / f"{fmt}.dmg"
    source.write_bytes(disk)
    write_image(source, dmg, fmt)
    status, report = seven_zip_test(dmg)
    assert status == 0 and "Everything is Ok" in report and not PROBLEMS.search(report), report
    target = tmp_path / "7z"
    assert run(seven, "x", "-tdmg", f"-o{target}", str(dmg)).returncode == 0
    files = sorted(target.iterdir(), key=lambda p: int(p.name.split(".", 1)[0]))
    assert b"".join(p.read_bytes() for p in files) == disk
