"""The HTML console in a real browser (headless Chromium), against the API's test double.

tests/console_fixture.py answers the design's routes from memory, so these tests check the
page itself: logging in, rows arriving live from /api/events without a reload, the assign
control's request (with the CSRF header) and its error display, and the phone-size layout.
Every step leaves a screenshot (tests/browser.py says where).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser import PHONE, Browser, browser
from tests.console_fixture import ConsoleFixture, image, machine

MAC_A = "52:54:00:12:34:56"
MAC_B = "52:54:00:ab:cd:ef"


@pytest.fixture
def fixture() -> Iterator[ConsoleFixture]:
    with ConsoleFixture(
        images=[
            image(1, "Lab image", is_default=True),
            image(2, "Installer", warnings=["NBImageInfo.plist: no Description"]),
            image(
                3,
                "Debian",
                architectures=[],
                pc_architectures=["bios", "efi-x64"],
                kind=None,
                index=None,
            ),
        ]
    ) as running:
        yield running


def logged_in(page: Browser, fixture: ConsoleFixture) -> None:
    page.login(fixture.token)
    page.wait_for(lambda driver: driver.execute_script("return window.__loadedAt") is not None)
    page.wait_for(lambda _: fixture.subscribers() > 0)
    page.wait_for_element('#live[data-state="live"]')


def test_login_with_the_token_opens_the_console(fixture: ConsoleFixture) -> None:
    with browser(fixture.url, "console-login") as page:
        page.open("/login")
        page.screenshot("login page")
        logged_in(page, fixture)
        assert page.driver.current_url == fixture.url + "/"
        assert page.driver.get_cookie("netboot_session") is not None
        assert "{{" not in page.driver.page_source  # every placeholder was filled
        rows = page.driver.find_elements("css selector", "tr.image[data-image-id]")
        assert [row.get_attribute("data-image-id") for row in rows] == ["1", "2", "3"]
        page.screenshot("console after login")


def test_a_wrong_token_stays_on_the_login_page(fixture: ConsoleFixture) -> None:
    with browser(fixture.url, "console-wrong-token") as page:
        page.login("not-the-token")
        page.wait_for_element("input[name=token]")
        assert page.driver.get_cookie("netboot_session") is None
        page.screenshot("refused")
        page.open("/")
        page.wait_for_element("input[name=token]")  # / sends it back to the login page
        assert not page.driver.find_elements("css selector", "#machines")


def test_a_token_in_the_fragment_logs_in_and_leaves_the_address_bar(
    fixture: ConsoleFixture,
) -> None:
    with browser(fixture.url, "console-fragment-login") as page:
        page.open(f"/login#token={fixture.token}")
        page.wait_for_element("#machines")
        assert "token" not in page.driver.current_url
        posted = fixture.requests_to("POST", "/login")
        assert len(posted) == 1 and posted[0].body.decode() == f"token={fixture.token}"


def test_machines_appear_and_progress_live_without_a_reload(fixture: ConsoleFixture) -> None:
    with browser(fixture.url, "console-live") as page:
        logged_in(page, fixture)
        assert page.driver.find_element("id", "machines-empty").is_displayed()
        loaded_at = page.script("return window.__loadedAt")
        page.screenshot("no machines yet")

        now = time.time()
        fixture.push_machine(machine(MAC_A, now))
        row = page.machine_row(MAC_A)
        assert "Mac" in row.find_element("css selector", "td.kind").text
        assert row.find_element("css selector", "td.progress").text == "bsdp list"
        page.screenshot("a Mac appeared")

        journey = {
            "started": now,
            "ended": None,
            "steps": [
                {"stage": "bsdp list", "at": now, "detail": "", "bytes": None},
                {"stage": "bsdp select", "at": now + 1, "detail": "image 1", "bytes": None},
                {"stage": "tftp", "at": now + 2, "detail": "booter", "bytes": 1_000_000},
            ],
            "transfers": [
                {
                    "protocol": "tftp",
                    "name": "booter",
                    "bytes": 250_000,
                    "size": 1_000_000,
                    "done": False,
                    "started": now + 2,
                    "updated": now + 3,
                }
            ],
        }
        fixture.push_machine(
            machine(MAC_A, now, last_seen=now + 3, progress="tftp", journeys=[journey])
        )
        page.wait_for(lambda _: row.find_element("css selector", "td.progress").text == "tftp")
        row.find_element("css selector", "button.journey-toggle").click()
        timeline = page.wait_for_element(f'tr.timeline[data-timeline-for="{MAC_A}"]')
        stages = [
            step.get_attribute("data-stage")
            for step in timeline.find_elements("css selector", "li.step")
        ]
        assert stages == ["bsdp list", "bsdp select", "tftp"]
        bar = timeline.find_element("css selector", "li.transfer progress")
        assert float(bar.get_attribute("value") or 0) == 250_000
        assert float(bar.get_attribute("max") or 0) == 1_000_000
        page.screenshot("journey timeline")

        fixture.push_machine(
            machine(
                MAC_B,
                now + 4,
                kind="pc",
                model=None,
                architecture="efi-x64",
                firmware="efi-x64",
                progress="dhcp offer",
            )
        )
        page.machine_row(MAC_B)
        macs = [
            row.get_attribute("data-mac")
            for row in page.driver.find_elements("css selector", "tr.machine")
        ]
        assert macs == [MAC_B, MAC_A]  # the newest first
        assert page.script("return window.__loadedAt") == loaded_at
        assert [r for r in fixture.requests if r.path == "/"] == fixture.requests_to("GET", "/")
        assert len(fixture.requests_to("GET", "/")) == 1  # the page was never loaded again
        page.screenshot("a PC appeared")


def test_a_lost_stream_reconnects_and_reads_what_it_missed(fixture: ConsoleFixture) -> None:
    with browser(fixture.url, "console-reconnect") as page:
        logged_in(page, fixture)
        loaded_at = page.script("return window.__loadedAt")
        reads_before = len(fixture.requests_to("GET", "/api/machines"))
        fixture.drop_streams()
        # Seen while no stream was open: no event carries it, the next `hello` brings a re-read.
        fixture.machines[MAC_A] = machine(MAC_A, time.time())
        page.machine_row(MAC_A)
        assert len(fixture.requests_to("GET", "/api/machines")) == reads_before + 1
        assert page.script("return window.__loadedAt") == loaded_at
        page.wait_for_element('#live[data-state="live"]')
        page.screenshot("reconnected")


def test_the_server_rendered_page_shows_machines_without_javascript(
    fixture: ConsoleFixture,
) -> None:
    fixture.machines[MAC_A] = machine(MAC_A, time.time())
    with browser(fixture.url, "console-no-javascript", javascript=False) as page:
        page.login(fixture.token)  # a form post: no script needed
        row = page.wait_for_element(f'tr.machine[data-mac="{MAC_A}"]')
        assert row.find_element("css selector", "td.mac").text == MAC_A
        assert row.find_element("css selector", "td.progress").text == "bsdp list"
        assert not row.find_elements("css selector", "select.assign")  # no script ran
        assert page.driver.find_elements("css selector", 'tr.image[data-image-id="1"]')
        page.screenshot("without javascript")


def test_assign_by_clicking_sends_the_csrf_header(fixture: ConsoleFixture) -> None:
    fixture.machines[MAC_A] = machine(MAC_A, time.time())
    with browser(fixture.url, "console-assign") as page:
        logged_in(page, fixture)
        row = page.machine_row(MAC_A)
        offered = [
            option.get_attribute("value")
            for option in row.find_elements("css selector", "select.assign option")
        ]
        # The Mac's i386 sets, then none/menu and clear; not the PC-only Debian set (3).
        assert offered == ["", "1", "2", "none", "clear"]
        _assign(row, "2")
        page.wait_for(lambda _: "Installer" in _assignment_text(page, MAC_A))

        (put,) = fixture.requests_to("PUT", f"/api/assignments/{MAC_A}")
        assert put.json() == {"image_id": 2}
        csrf = page.driver.find_element("css selector", 'meta[name="csrf-token"]')
        assert put.headers["X-CSRF-Token"] == csrf.get_attribute("content")
        assert fixture.assignments[MAC_A]["image_id"] == 2
        source = page.driver.find_element(
            "css selector", f'tr.machine[data-mac="{MAC_A}"] .assignment [data-source]'
        )
        assert source.get_attribute("data-source") == "api"
        page.screenshot("assigned")

        row = page.machine_row(MAC_A)
        _assign(row, "clear")
        page.wait_for(lambda _: "none (catalog default)" in _assignment_text(page, MAC_A))
        assert len(fixture.requests_to("DELETE", f"/api/assignments/{MAC_A}")) == 1
        page.screenshot("cleared")


def test_a_refused_assignment_shows_the_servers_reason(fixture: ConsoleFixture) -> None:
    fixture.machines[MAC_A] = machine(MAC_A, time.time())
    with browser(fixture.url, "console-assign-refused") as page:
        logged_in(page, fixture)
        row = page.machine_row(MAC_A)
        # The set changed on the server after the page listed it: now it refuses this model.
        fixture.images[1]["disabled_system_identifiers"] = ["iMac13,2"]
        _assign(row, "2")
        error = page.wait_for_element(f'tr.machine[data-mac="{MAC_A}"] .assign-error:not(:empty)')
        assert error.text == "image 2 (Installer) refuses model iMac13,2"
        assert MAC_A not in fixture.assignments
        page.screenshot("refused with 422")


def test_image_edits_patch_the_set_and_show_refusals(fixture: ConsoleFixture) -> None:
    with browser(fixture.url, "console-images") as page:
        logged_in(page, fixture)
        row = page.wait_for_element('tr.image[data-image-id="2"] input.enabled-input')
        row.click()
        page.wait_for(lambda _: fixture.images[1]["is_enabled"] is False)
        (patch,) = fixture.requests_to("PATCH", "/api/images/2")
        assert patch.json() == {"is_enabled": False}
        problems = page.driver.find_element(
            "css selector", 'tr.image[data-image-id="2"] td.image-problems'
        )
        assert "warning: NBImageInfo.plist: no Description" in problems.text

        name = page.driver.find_element("css selector", 'tr.image[data-image-id="2"] .name-input')
        name.clear()
        page.driver.find_element(
            "css selector", 'tr.image[data-image-id="2"] button.image-save'
        ).click()
        error = page.wait_for_element('tr.image[data-image-id="2"] .image-error:not(:empty)')
        assert error.text == "name: must not be empty"
        page.screenshot("image edit refused")


def test_phone_layout_shows_machines_as_cards_without_sideways_scrolling(
    fixture: ConsoleFixture,
) -> None:
    now = time.time()
    fixture.machines[MAC_A] = machine(MAC_A, now, progress="tftp done")
    with browser(fixture.url, "console-phone", size=PHONE) as page:
        logged_in(page, fixture)
        row = page.machine_row(MAC_A)
        assert row.is_displayed()
        assert row.find_element("css selector", "td.mac").text == MAC_A
        select = row.find_element("css selector", "select.assign")
        assert select.is_displayed()
        assert select.rect["x"] + select.rect["width"] <= PHONE[0]
        assert not page.page_overflows_horizontally()
        page.screenshot("phone")


def _assign(row: object, value: str) -> None:
    """Choose `value` in a machine row's select and click Apply, as an admin would."""
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.select import Select

    assert isinstance(row, WebElement)
    Select(row.find_element("css selector", "select.assign")).select_by_value(value)
    row.find_element("css selector", "button.assign-apply").click()


def _assignment_text(page: Browser, mac: str) -> str:
    cell = page.driver.find_element("css selector", f'tr.machine[data-mac="{mac}"] td.assignment')
    return cell.text
