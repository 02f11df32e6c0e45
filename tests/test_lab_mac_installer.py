"""The simulated Mac boots a NetInstall set made from the synthetic installer.

Needs root, tshark and xorriso like the other lab tests (tests/test_lab_mac.py).
"""

from __future__ import annotations

from pathlib import Path

from netboot.nbi.from_installer import InstallerRequest, create_from_installer
from netboot_lab.installer import build_installer
from netboot_lab.lab import running_lab
from netboot_lab.mac import simulate_mac
from tests.test_lab_mac import TIMEOUT, lab_name, require_lab


def test_a_simulated_mac_boots_a_set_made_from_an_installer(tmp_path: Path) -> None:
    require_lab()
    installer = build_installer(tmp_path / "installer", kernelcache_size=512 * 1024)
    root = tmp_path / "images"
    made = create_from_installer(
        InstallerRequest(source=installer.install_esd, name="Sierra installer", index=18),
        root / "Sierra.nbi",
    )
    # The simulated Mac is a MacBookPro11,1, which the installer supports.
    assert "MacBookPro11,1" in made.scope.enabled  # type: ignore[union-attr]
    with running_lab(lab_name(), root) as lab:
        summary = simulate_mac(lab, "Sierra installer", TIMEOUT).as_json()
        log = Path(summary["serial_log"]).read_text()
    assert summary["result"] == "ok", summary["error"]
    stages = summary["stages"]
    assert list(stages) == ["bsdp_list", "bsdp_select", "booter", "kernel", "root_image"]
    assert summary["bytes"]["tftp"] == len(installer.booter) + len(installer.kernelcache)
    assert summary["bytes"]["http"] > 0
    assert "NetInstall.dmg" in log
    assert "volume header signature H+ (HFS+)" in log
