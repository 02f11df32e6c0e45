"""`netboot build-http-grub`: a network GRUB with `http`, made by Debian's grub-mkimage from
Debian's own GRUB modules (arm64's through the private apt state), never installed.

The lab boots it (tests/test_lab_arm64.py); here: what is built, where, and the exit codes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netboot.config import HTTP_GRUB_CACHE, PxeConfig
from netboot.grub.build import MODULES, PREFIX, default_output, mkimage_command
from netboot.pe import PeMachine, file_machine

ARM64_MACHINE = 0xAA64
X64_MACHINE = 0x8664


def build(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netboot", "build-http-grub", *args],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip


def test_the_image_embeds_the_prefix_and_the_network_modules(tmp_path: Path) -> None:
    command = mkimage_command("efi-arm64", tmp_path / "arm64-efi", tmp_path / "grubaa64.efi")
    assert command[0] == "grub-mkimage"
    assert command[command.index("--format") + 1] == "arm64-efi"
    assert command[command.index("--prefix") + 1] == PREFIX == "/grub"
    assert command[command.index("--directory") + 1] == str(tmp_path / "arm64-efi")
    assert {"efinet", "http", "tftp", "linux", "normal", "configfile"} <= set(MODULES)
    assert set(MODULES) <= set(command)
    x64 = mkimage_command("efi-x64", tmp_path, tmp_path / "grubx64.efi")
    assert x64[x64.index("--format") + 1] == "x86_64-efi"


def test_the_defaults_are_where_the_daemon_looks() -> None:
    assert dict(PxeConfig().http_grub_files) == {
        "efi-x64": str(HTTP_GRUB_CACHE / "grubx64.efi"),
        "efi-arm64": str(HTTP_GRUB_CACHE / "grubaa64.efi"),
    }


@pytest.mark.parametrize(
    ("family", "machine"), [("efi-arm64", ARM64_MACHINE), ("efi-x64", X64_MACHINE)]
)
def test_a_build_is_a_pe_image_for_its_cpu_and_nothing_else_is_left(
    tmp_path: Path, family: str, machine: int
) -> None:
    if shutil.which("grub-mkimage") is None:
        pytest.skip("grub-mkimage (Debian's grub-common) is not installed")
    into = tmp_path / "built"
    done = build("--family", family, "--into", str(into))
    assert done.returncode == 0, done.stderr
    name = default_output(family).name
    assert done.stdout.split() == [str(into / name)]
    assert "http_grub_files" in done.stderr  # --into: the daemon must be told
    assert sorted(path.name for path in into.iterdir()) == [name]  # no scratch left behind
    assert file_machine(into / name) == PeMachine(machine)
    image = (into / name).read_bytes()
    assert b"HTTPClient" in image  # Debian's efinet, which reads HTTP boot's device path
    before = (into / name).stat().st_mtime_ns
    again = build("--family", family, "--into", str(into), "--if-missing")
    assert again.returncode == 0 and again.stdout == "", again.stderr
    assert (into / name).stat().st_mtime_ns == before


def test_without_grub_mkimage_it_says_so_and_exits_2(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bare)}
    done = build("--into", str(tmp_path / "built"), env=env)
    assert done.returncode == 2
    assert "grub-mkimage" in done.stderr and "grub-common" in done.stderr
    assert not (tmp_path / "built" / "grubaa64.efi").exists()


def test_an_unknown_family_is_a_usage_error() -> None:
    done = build("--family", "efi-riscv64")
    assert done.returncode == 2
    assert "efi-riscv64" in done.stderr
