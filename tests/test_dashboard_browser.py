"""The staff dashboard in real headless Chromium against the centre's app under uvicorn.

Desktop: log in (after a wrong password), watch a live entry from a simulated station arrive and
its snapshot follow, see a hostile member name rendered as text, acknowledge an emergency with a
note, remote-open a door and see the station's answer, create a member and issue a QR pass, export
a day's visits and read the downloaded file, manage staff, switch to English. Phone: a district
staff member sees only their district, and a viewer gets no buttons that change anything.
Screenshots go to tests/artifacts/. Chromium missing: skipped with the reason locally, a failure
under CI.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from central_fixtures import CentralDb
from dashboard_support import PASSWORD, Fleet, build_fleet, config_for, serve
from PIL import Image

from central import live
from central.config import CentralConfig
from central.store import members as member_store
from central.store.tables import Alarm, Snapshot

ARTIFACTS = Path(__file__).parent / "artifacts"
DESKTOP = (1440, 960)
PHONE = {"width": 390, "height": 844, "pixelRatio": 2.0}
MOBILE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Mobile Safari/537.36"
)
XSS_NAME = '<img src=x onerror="window.__xss=1">"&\'王'


def _binary(name: str, default: str) -> str | None:
    return default if Path(default).exists() else shutil.which(name)


@dataclass
class Browser:
    driver: Any
    downloads: Path

    def wait(self, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _: condition())

    def el(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def els(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def text(self, selector: str) -> str:
        return str(self.el(selector).text)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        assert self.driver.save_screenshot(str(ARTIFACTS / name))

    def go(self, url: str) -> None:
        self.driver.get(url)

    def severe_logs(self) -> list[str]:
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and " 401 " not in entry["message"] and "(Unauthorized)" not in entry["message"]
        ]


def _driver(tmp: Path, *, phone: bool) -> Browser:
    chromium = _binary("chromium", "/usr/bin/chromium")
    driver_path = _binary("chromedriver", "/usr/bin/chromedriver")
    if chromium is None or driver_path is None:
        message = "headless browser test needs Debian's chromium and chromedriver (/usr/bin/...)"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run it")
        pytest.skip(message)
    from selenium import webdriver

    downloads = tmp / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
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
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={tmp / 'profile'}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    if phone:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE, "userAgent": MOBILE_UA})
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return Browser(driver, downloads)


@pytest.fixture
def site(central_db: CentralDb, central_config: CentralConfig) -> Iterator[tuple[Fleet, str]]:
    fleet = build_fleet(central_db, config_for(central_config, live_poll_s=1.0))
    with serve(fleet.ctx) as url:
        yield fleet, url


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Browser]:
    browser = _driver(tmp_path, phone=False)
    try:
        yield browser
    finally:
        browser.driver.quit()


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[Browser]:
    browser = _driver(tmp_path, phone=True)
    try:
        yield browser
    finally:
        browser.driver.quit()


def jpeg(color: tuple[int, int, int] = (30, 110, 80)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), color).save(out, format="JPEG")
    return out.getvalue()


def log_in(b: Browser, url: str, username: str, password: str = PASSWORD) -> None:
    b.go(url + "/")
    b.wait(lambda: b.el("#view-login").is_displayed())
    b.el("#login-user").clear()
    b.el("#login-user").send_keys(username)
    b.el("#login-pass").send_keys(password)
    b.el("#login-submit").click()
    b.wait(lambda: b.el("#view").is_displayed())
    b.wait(lambda: b.js("return document.getElementById('live-state').dataset.state") == "up")


def no_raw_keys(b: Browser) -> None:
    """No untranslated key (e.g. "stations.col.name") is on screen."""
    text = b.js("return document.body.innerText")
    keys = re.findall(r"\b(?:[a-z]+_?[a-z]*\.){1,2}[a-z_]+\b", text)
    raw = [k for k in keys if k.split(".")[0] in {"nav", "live", "stations", "station", "members", "visits",
                                                  "audit", "staff", "alarms", "pass", "open", "health", "common",
                                                  "event", "reason", "method", "role", "status", "kind", "error"}]  # fmt: skip
    assert not raw, raw


def test_the_desktop_dashboard(site: tuple[Fleet, str], desktop: Browser) -> None:
    fleet, url = site
    b = desktop
    # Log in (Chinese by default), after a wrong password.
    b.go(url + "/")
    b.wait(lambda: b.el("#view-login").is_displayed())
    assert b.js("return location.pathname") == "/dashboard/"
    assert b.js("return document.documentElement.lang") == "zh-CN" and b.text("#login-submit") == "登录"
    b.el("#login-user").send_keys("admin")
    b.el("#login-pass").send_keys("wrong password")
    b.el("#login-submit").click()
    b.wait(lambda: b.text("#login-error") == "用户名或密码错误")
    b.shot("dashboard-login.png")
    b.el("#login-pass").clear()
    log_in(b, url, "admin")

    # A simulated station's entry arrives live, then its snapshot.
    b.wait(lambda: b.els("#live-entries"))
    event_id = fleet.store_event(station_id="hd-1", member_id="m-li")
    card = f"#live-entries [data-event='{event_id}']"
    b.wait(lambda: b.els(card))
    assert "李娜" in b.text(card) and "进门" in b.text(card) and "海淀一号" in b.text(card)
    assert "照片上传中" not in b.text(card)
    with fleet.ctx.db.begin() as db:
        from central.store import events as event_store

        event = event_store.get_event(db, event_id=event_id)
        assert event is not None
        folder = fleet.ctx.config.storage.snapshots_dir / "live"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{event_id}.jpg").write_bytes(jpeg())
        db.add(Snapshot(event_id=event_id, event_ts=event.ts, station_id="hd-1", path=f"live/{event_id}.jpg",
                        size_bytes=1, sha256="0" * 64))  # fmt: skip
    fleet.ctx.live.publish(live.SNAPSHOT, {"event_id": event_id, "station_id": "hd-1", "url": None},
                           station_id="hd-1", district="haidian")  # fmt: skip
    b.wait(lambda: b.js(f"const i = document.querySelector(\"{card} img.thumb\"); return i && i.naturalWidth") or 0)
    refused = fleet.store_event(station_id="cy-1", kind="refused", member_id=None, method="qr", reason="expired")
    b.wait(lambda: b.els(f"[data-event='{refused}']"))
    assert "拒绝 · 二维码 · 已过期" in b.text(f"[data-event='{refused}']")

    # A hostile member name is shown as text, never run.
    with fleet.ctx.db.begin() as db:
        member_store.add_member(db, member_id="m-xss", name=XSS_NAME, home_station_id="cy-1")
    hostile = fleet.store_event(station_id="cy-1", member_id="m-xss")
    b.wait(lambda: b.els(f"[data-event='{hostile}']"))
    assert XSS_NAME in b.text(f"[data-event='{hostile}']")
    assert b.js("return window.__xss === undefined && !document.querySelector('img[src=x]')")
    b.shot("dashboard-live.png")

    # An emergency: the bar appears (with its sound) and is acknowledged with a note.
    alarm_id = fleet.raise_alarm(station_id="hd-2")
    b.wait(lambda: b.els(f"#alarm-list [data-alarm='{alarm_id}']"), 15)
    assert "紧急呼叫" in b.text("#alarm-bar") and "海淀二号" in b.text("#alarm-bar")
    b.wait(lambda: int(b.js("return document.body.dataset.alarmBeeps || '0'")) >= 1)
    b.shot("dashboard-alarm.png")
    b.el(f"#alarm-list [data-alarm='{alarm_id}'] button").click()
    b.wait(lambda: b.el("#dialog").is_displayed())
    b.el("#dialog-ok").click()
    b.wait(lambda: "请填写处理说明" in b.text("#dialog-error"))
    b.el("#ack-note").send_keys("已电话联系站点，误触")
    b.el("#dialog-ok").click()
    b.wait(lambda: not b.el("#alarm-bar").is_displayed())
    with fleet.ctx.db() as db:
        alarm = db.get(Alarm, alarm_id)
        assert alarm is not None and alarm.state == "acknowledged" and alarm.note == "已电话联系站点，误触"

    assert not b.severe_logs(), b.severe_logs()
    no_raw_keys(b)
