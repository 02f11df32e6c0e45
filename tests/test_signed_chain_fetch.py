"""`netboot fetch-signed-chain`: Debian's signed shim and GRUB, fetched with apt, unpacked,
never installed, and found by the daemon where it put them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from netboot.config import PxeConfig
from netboot.debian import FOREIGN_APT_CACHE, ForeignApt, versioned_package
from netboot.pe import Signing, check_file

KERNEL = "linux-image-cloud-arm64"


def fetch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netboot", "fetch-signed-chain", *args],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip


def test_the_packages_are_unpacked_under_into_and_nothing_else_is_left(tmp_path: Path) -> None:
    if subprocess.run(["apt-cache", "show", "shim-signed"], capture_output=True).returncode:
        pytest.skip("shim-signed is not in the apt lists (apt-get update)")
    into = tmp_path / "signed"
    done = fetch("--into", str(into))
    assert done.returncode == 0, done.stderr
    defaults = PxeConfig()
    expected = [
        into / Path(path).relative_to("/")
        for family, path in (*defaults.shim_files, *defaults.grub_files)
        if family == "efi-x64"  # what it fetches when no --family is given
    ]
    assert done.stdout.split() == [str(path) for path in expected]
    for path in expected:
        assert check_file(path).signing is Signing.SIGNED, path  # Microsoft's, Debian's
    assert not list(into.glob(".unpack-*"))  # the scratch directory went with the .debs
    assert not list(into.rglob("*.deb"))
    assert "the daemon looks in /var/cache/netboot/signed-chain" in done.stderr


def test_without_apt_it_says_so_and_exits_2(tmp_path: Path) -> None:
    done = fetch("--into", str(tmp_path / "x"), env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 2
    assert "apt-get" in done.stderr and "not found" in done.stderr
    assert not (tmp_path / "x").exists()  # nothing written where nothing could be fetched


def test_arm64s_chain_is_fetched_for_arm64_without_touching_the_hosts_architectures(
    tmp_path: Path,
) -> None:
    """`--family efi-arm64` on an amd64 host: arm64's shim-signed and grub-efi-arm64-signed
    through a private apt state; dpkg's foreign architectures and apt's lists stay as they were."""
    if os.geteuid() != 0:
        pytest.skip("the private apt state lives under /var/cache/netboot (root)")
    foreign = ["dpkg", "--print-foreign-architectures"]
    before = subprocess.run(foreign, capture_output=True, text=True, check=True).stdout
    lists = sorted(Path("/var/lib/apt/lists").iterdir())
    into = tmp_path / "signed"
    done = fetch("--into", str(into), "--family", "efi-arm64")
    assert done.returncode == 0, done.stderr
    defaults = PxeConfig()
    expected = [
        into / Path(path).relative_to("/")
        for family, path in (*defaults.shim_files, *defaults.grub_files)
        if family == "efi-arm64"
    ]
    assert done.stdout.split() == [str(path) for path in expected]
    for path in expected:
        assert check_file(path).signing is Signing.SIGNED, path
        data = path.read_bytes()
        pe = int.from_bytes(data[0x3C:0x40], "little")
        assert data[pe : pe + 6] == b"PE\x00\x00\x64\xaa", path  # machine 0xAA64
    apt = ForeignApt("arm64", FOREIGN_APT_CACHE / "apt-arm64")  # the state the fetch updated
    assert re.fullmatch(r"linux-image-[0-9.]+-\d+-cloud-arm64", versioned_package(KERNEL, apt))
    assert subprocess.run(foreign, capture_output=True, text=True, check=True).stdout == before
    assert sorted(Path("/var/lib/apt/lists").iterdir()) == lists
