"""The console in a real browser against the real daemon of the QEMU lab.

Headless Chromium (Debian's, driven by Selenium) runs inside the lab's
namespace, where the daemon's admin listener is. It logs in with the token,
watches a simulated Mac's boot and a QEMU guest's boot appear without a
reload, assigns an image to the Mac by clicking, and the protocols are then
asked: the next BSDP LIST for that MAC (our probe, from a namespace holding
that MAC) has the image as its default, and the next iPXE script for it boots
it. A screenshot of every step is written for people to look at
(test-artifacts/screenshots/console-lab/, or $NETBOOT_SCREENSHOTS).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from netboot.admin.token import read_token
from netboot_lab.factories import pc_set
from netboot_lab.lab import BootLab, BootResult
from netboot_lab.mac import simulate_mac
from netboot_lab.netns import add_namespace, add_port, delete_namespace, entered, run_in
from tests.browser import browser
from tests.test_lab import BOOT_TIMEOUT, require_lab

BETA = 0x01000002


@pytest.fixture(scope="module")
def lab() -> Iterator[BootLab]:
    require_lab("bios")
    running = BootLab.up(f"c{uuid.uuid4().hex[:6]}", subnet="10.252.0")
    try:
        yield running
    finally:
        running.down()


def machine_macs(page: object) -> set[str]:
    rows = page.driver.find_elements("css selector", "tr.machine")  # type: ignore[attr-defined]
    return {row.get_attribute("data-mac") for row in rows}


def cell(page: object, mac: str, css: str) -> str:
    row = page.machine_row(mac)  # type: ignore[attr-defined]
    return str(row.find_element("css selector", css).text)


def test_boots_appear_live_and_a_click_assigns_the_next_boot(lab: BootLab) -> None:
    from selenium.webdriver.support.select import Select

    pc_set(Path(lab.state.root), "Beta", 2)  # a second image to assign
    token = read_token(lab.state.admin_token_file)
    results: dict[str, BootResult] = {}
    with entered(lab.state.namespace), browser(lab.state.admin_url, "console-lab") as page:
        page.open("/login")
        page.login(token)
        page.wait_for_element("#live[data-state=live]")
        page.wait_for_element(f'tr.image[data-image-id="{BETA}"]')
        loaded_at = page.script("return window.__loadedAt;")
        page.screenshot("logged in")

        mac_boot = threading.Thread(
            target=lambda: results.__setitem__("mac", simulate_mac(lab, None, 60.0))
        )
        mac_boot.start()
        page.wait_for(lambda _: len(machine_macs(page)) == 1, timeout=60.0)  # while it boots
        mac_boot.join()
        assert results["mac"].result == "ok", results["mac"].as_json()
        (mac,) = machine_macs(page)
        page.machine_row(mac)
        page.screenshot("a simulated Mac booted")

        guest = threading.Thread(
            target=lambda: results.__setitem__(
                "pc", lab.boot("bios", accel="tcg", timeout=BOOT_TIMEOUT)
            )
        )
        guest.start()
        page.wait_for(lambda _: len(machine_macs(page)) == 2, timeout=BOOT_TIMEOUT)
        (pc,) = machine_macs(page) - {mac}
        page.screenshot("a QEMU guest is booting")
        guest.join()
        assert results["pc"].result == "ok", results["pc"].as_json()
        page.wait_for(lambda _: "http" in cell(page, pc, "td.progress"))
        page.screenshot("the QEMU guest booted")
        assert page.script("return window.__loadedAt;") == loaded_at  # never reloaded

        row = page.machine_row(mac)
        Select(row.find_element("css selector", "select.assign")).select_by_value(str(BETA))
        row.find_element("css selector", "button.assign-apply").click()
        page.wait_for(lambda _: "Beta" in cell(page, mac, "td.assignment"))
        page.screenshot("Beta assigned to the Mac")
        assert page.script("return window.__loadedAt;") == loaded_at

    probe = f"{lab.state.namespace}-probe"
    add_namespace(probe)
    try:
        add_port(lab.state.namespace, lab.state.bridge, "nbprobe0", probe, "eth0",
                 f"{lab.state.subnet}.90/24", mac)  # fmt: skip
        done = run_in(probe, sys.executable, "-m", "netboot", "bsdp", "probe",
                      "--interface", "eth0", "--timeout", "2", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["default_image_id"] == BETA
        script = run_in(probe, "curl", "-sS", f"http://{lab.state.server}/boot.ipxe?mac={mac}")
        assert "Beta.nbi" in script.stdout, script.stdout
    finally:
        delete_namespace(probe)
    audit = (lab.state.admin_token_file.parent / "audit.log").read_text().splitlines()
    record = json.loads(audit[-1])
    assert record["action"] == "assign" and record["who"].startswith("session ")
    assert (record["target"], record["after"]) == (mac, BETA)
