"""A real browser for the console tests: Debian's Chromium, driven by Selenium and chromedriver.

`browser(base_url, artifacts_name)` (a context manager) starts headless Chromium with a fresh
profile and yields a `Browser`: the Selenium driver plus the helpers the console tests share
(`login`, `wait_for`, `screenshot`, the page-overflow check). It skips the test when Chromium,
chromedriver or Selenium is missing; tests/conftest.py turns that skip into a failure under
NETBOOT_REQUIRE_ALL=1, as CI runs. Nothing here knows whether the server is the daemon or the
test double (tests/console_fixture.py): give it a base URL and a token.

Screenshots go to $NETBOOT_SCREENSHOTS, else test-artifacts/screenshots/, one PNG per step,
for people to look at (CI keeps the directory).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = (1280, 900)
PHONE = (390, 844)
"""Window sizes: a laptop, and a phone (an iPhone 12-14's CSS pixels)."""

WAIT_SECONDS = 10.0

T = TypeVar("T")


def screenshot_directory() -> Path:
    configured = os.environ.get("NETBOOT_SCREENSHOTS")
    return Path(configured) if configured else Path("test-artifacts") / "screenshots"


@dataclass
class Browser:
    """One headless Chromium on one server; `driver` is Selenium's WebDriver for everything else."""

    driver: WebDriver
    base_url: str
    artifacts_name: str
    _shots: int = 0

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def login(self, token: str) -> None:
        """Log in through the login page's form, as a person would; lands on the console."""
        self.open("/login")
        field = self.driver.find_element("name", "token")
        field.send_keys(token)
        field.submit()

    def wait_for(self, what: Callable[[WebDriver], T], timeout: float = WAIT_SECONDS) -> T:
        """Selenium's WebDriverWait: `what` returning something truthy ends the wait."""
        from selenium.webdriver.support.wait import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(what)

    def wait_for_element(self, css: str, timeout: float = WAIT_SECONDS) -> WebElement:
        def present(driver: WebDriver) -> WebElement | bool:
            found = driver.find_elements("css selector", css)
            return found[0] if found else False

        found = self.wait_for(present, timeout)
        assert not isinstance(found, bool)
        return found

    def machine_row(self, mac: str) -> WebElement:
        """The row of one machine (`tr.machine[data-mac]`), once console.js gave it controls."""
        row = f'tr.machine[data-mac="{mac}"]'
        self.wait_for_element(f"{row} select.assign")
        return self.driver.find_element("css selector", row)

    def script(self, source: str) -> object:
        return self.driver.execute_script(source)

    def page_overflows_horizontally(self) -> bool:
        """True when the page itself scrolls sideways (wider than the window)."""
        width = self.script(
            "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - document.documentElement.clientWidth;"
        )
        assert isinstance(width, int)
        return width > 0

    def resize(self, size: tuple[int, int]) -> None:
        self.driver.set_window_size(*size)

    def screenshot(self, step_name: str) -> Path:
        """A PNG of what the browser shows now, named after the test and the step."""
        self._shots += 1
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", step_name).strip("-")
        target = screenshot_directory() / self.artifacts_name / f"{self._shots:02d}-{slug}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(target)), f"no screenshot written to {target}"
        return target


def _require_browser() -> None:
    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            pytest.skip(f"needs {program} (Debian's chromium and chromium-driver)")
    try:
        import selenium  # noqa: F401 - only whether it is installed
    except ImportError:
        pytest.skip("needs Selenium (pip install -e '.[test]')")


@contextmanager
def browser(
    base_url: str,
    artifacts_name: str,
    size: tuple[int, int] = DESKTOP,
    javascript: bool = True,
) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile, quit (and the profile removed) on exit.

    `javascript=False` shows what the server rendered, as a browser without scripts sees it.
    """
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="netboot-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={size[0]},{size[1]}")
        if not javascript:
            blocked = {"profile.managed_default_content_settings.javascript": 2}
            options.add_experimental_option("prefs", blocked)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            driver.set_window_size(*size)
            yield Browser(driver, base_url.rstrip("/"), artifacts_name)
        finally:
            driver.quit()
