"""The systemd units: installed by `netboot install-units`, checked by systemd-analyze."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXPOSURE_BOUND = 4.0
"""docs/operations.md promises an exposure of at most this ("OK" or better)."""


def require_systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("needs systemd-analyze (Debian: systemd)")
    return tool


def install(prefix: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "install-units", "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return prefix / "etc" / "systemd" / "system" / "netboot.service"


def test_install_units_writes_every_file_and_keeps_an_existing_config(tmp_path: Path) -> None:
    unit = install(tmp_path)
    config = tmp_path / "etc" / "netboot" / "netboot.toml"
    assert unit.is_file() and config.is_file()
    assert (tmp_path / "etc" / "sysusers.d" / "netboot.conf").read_text().startswith("#")
    dropin = tmp_path / "etc/systemd/system/nfs-ganesha.service.d/netboot.conf"
    assert "/etc/ganesha/netboot.conf" in dropin.read_text()
    ganesha = (tmp_path / "etc" / "ganesha" / "netboot.conf").read_text()
    assert 'Path = "/srv/netboot/nbimages";' in ganesha
    text = unit.read_text()
    netboot = Path(sys.executable).parent / "netboot"
    assert f"ExecStart={netboot} serve --config /etc/netboot/netboot.toml" in text
    config.write_text('[server]\nroot = "/srv/lab/images"\n')
    unit = install(tmp_path)
    assert config.read_text() == '[server]\nroot = "/srv/lab/images"\n'  # never overwritten
    assert "ReadOnlyPaths=/srv/lab/images" in unit.read_text()


def test_the_unit_verifies(tmp_path: Path) -> None:
    tool = require_systemd_analyze()
    unit = install(tmp_path)
    done = subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "netboot" in line]
    assert ours == [], ours


def test_the_unit_scores_ok_in_systemd_analyze_security(tmp_path: Path) -> None:
    tool = require_systemd_analyze()
    unit = install(tmp_path)
    done = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for netboot\.service: ([\d.]+) (\w+)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    exposure, verdict = float(match.group(1)), match.group(2)
    assert exposure <= EXPOSURE_BOUND, done.stdout
    assert verdict in ("OK", "SAFE"), done.stdout


def test_nfs_config_prints_the_export_of_the_image_root(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "nfs-config", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f'Path = "{tmp_path.resolve()}";' in done.stdout
    assert "Access_Type = RO;" in done.stdout
