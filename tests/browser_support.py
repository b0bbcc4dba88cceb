"""Headless Chromium for the page tests (the station's installer page, the centre's dashboard).

Debian's chromium and chromedriver (/usr/bin/...); missing: the test is skipped with the reason
locally and fails under CI. `phone` emulates a 390x844 Android phone; otherwise the window is
`window` pixels. Browser console messages are kept (`goog:loggingPrefs`) so a test can assert that
the page logged no errors.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

PHONE = {"width": 390, "height": 844, "pixelRatio": 2.0}
MOBILE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Mobile Safari/537.36"
)


def _binary(name: str, default: str) -> str | None:
    return default if Path(default).exists() else shutil.which(name)


def chromium(
    profile: Path,
    *,
    phone: bool,
    window: tuple[int, int] = (1440, 960),
    downloads: Path | None = None,
    extra_arguments: tuple[str, ...] = (),
    screen: dict[str, Any] | None = None,
    user_agent: str | None = None,
) -> Any:
    """A started selenium Chrome driver (the caller quits it). With `phone`, `screen` and
    `user_agent` choose the device (default: the 390x844 Android phone above)."""
    binary = _binary("chromium", "/usr/bin/chromium")
    driver_path = _binary("chromedriver", "/usr/bin/chromedriver")
    if binary is None or driver_path is None:
        message = "headless browser test needs Debian's chromium and chromedriver (/usr/bin/...)"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run it")
        pytest.skip(message)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--lang=zh-CN",
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
        *extra_arguments,
    ):
        options.add_argument(argument)
    if phone:
        device = {"deviceMetrics": screen or PHONE, "userAgent": user_agent or MOBILE_UA}
        options.add_experimental_option("mobileEmulation", device)
    if downloads is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    if downloads is not None:
        driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
    return driver
