"""`netboot fetch-signed-chain`: Debian's signed shim and GRUB, fetched with apt, unpacked,
never installed, and found by the daemon where it put them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netboot.config import PxeConfig
from netboot.pe import Signing, check_file


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
        for _, path in (*defaults.shim_files, *defaults.grub_files)
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
