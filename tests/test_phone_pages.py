"""The worker's pages in real headless Chromium on a 360 px phone, against the centre served by
uvicorn, on SQLite and PostgreSQL: scan the poster's URL, register with the code the local SMS
gateway received, open with one button and see the door's answer, the pass, my data (deleting face
data with one confirmation), stations near me with map links. Screenshots go to tests/artifacts/.

The door's answer here comes from a responder that stores an `up/result` the way ingest does and
announces it on the live bus; tests/test_phone_e2e.py drives a real station over MQTT instead.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from central_fixtures import CentralDb
from phone_support import (
    PHONE,
    WECHAT_UA,
    Env,
    RecordingFleet,
    allow_location,
    answer,
    phone_browser,
    phone_env,
    serve,
    severe_console_errors,
)
from PIL import Image
from sqlalchemy.orm import Session

from central.config import CentralConfig
from central.store import signing_keys
from central.store.tables import Erasure
from common.db_types import utc_now
from recognizer.qr_token import public_key_map, verify_token

ARTIFACTS = Path(__file__).parent / "artifacts"


class ErasingFleet(RecordingFleet):
    """Records like RecordingFleet; withdrawing face consent writes the erasure row the real
    erasure path writes (two stations still to confirm), so the page has progress to show."""

    def withdraw_consent(
        self, db: Session, member_id: str, actor: str, *, face: bool, cross_station: bool
    ) -> None:
        super().withdraw_consent(db, member_id, actor, face=face, cross_station=cross_station)
        db.add(
            Erasure(
                member_id=member_id,
                requested_by=actor,
                reason="consent_withdrawn",
                stations_pending=["hd-1", "hd-3"],
                templates_deleted=1,
            )
        )


def answer_opens(env: Env, stop: threading.Event) -> None:
    """Answer every open command like a healthy station: `ok` within ~0.2 s, through ingest's path."""
    answered = 0
    while not stop.is_set():
        while answered < len(env.fleet.opens):
            command = env.fleet.opens[answered]
            time.sleep(0.2)
            answer(env, command["command_id"], ok=True)
            answered += 1
        stop.wait(0.05)


@pytest.fixture
def site(central_db: CentralDb, central_config: CentralConfig) -> Iterator[tuple[Env, str]]:
    now = dt.datetime.now(dt.UTC)  # the browser's clock is real: so is the centre's here
    from phone_support import Clock

    with phone_env(central_db, central_config, fleet=ErasingFleet(), clock=Clock(now)) as env:
        env.clock.now = now
        env.ctx.now = lambda: dt.datetime.now(dt.UTC)
        stop = threading.Event()
        responder = threading.Thread(target=answer_opens, args=(env, stop), daemon=True)
        responder.start()
        with serve(env.app) as url:
            yield env, url
        stop.set()
        responder.join(5)


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / name))


def test_a_worker_registers_opens_and_manages_their_data(
    site: tuple[Env, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    env, url = site
    with phone_browser(tmp_path_factory.mktemp("chromium")) as driver:

        def wait(condition: Any, timeout: float = 15.0) -> Any:
            return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda _: condition())

        def el(selector: str) -> Any:
            return driver.find_element(By.CSS_SELECTOR, selector)

        def fits_the_screen() -> None:
            width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1] == 360, width  # no sideways scrolling on a 360 px phone

        # The poster's QR code: the station page, in Chinese, asking a new phone to register.
        driver.get(f"{url}/m/s/hd-1")
        wait(lambda: el("#st-register").is_displayed())
        assert driver.execute_script("return document.documentElement.lang") == "zh-CN"
        assert el("#st-name").text == "海淀一号" and el("#st-hours").text == "开放中"
        fits_the_screen()
        shot(driver, "phone-register.png")
        el("#reg-name").send_keys("王师傅")
        el("#reg-phone").send_keys("138 0013 8000")
        Select(el("#reg-kind")).select_by_value("rider")
        el("#reg-employer").send_keys("美团")
        el("#reg-cross").click()  # sharing implies face consent: both boxes tick
        assert el("#reg-face").is_selected()
        el("#reg-submit").click()
        wait(lambda: el("#reg-error").text != "")
        assert "勾选" in el("#reg-error").text  # the data-use statement must be acknowledged
        el("#reg-agree").click()
        el("#reg-submit").click()
        wait(lambda: el("#st-code").is_displayed())
        assert "138****8000" in el("#code-sent").text
        el("#code-input").send_keys(env.sms.code_for(PHONE))
        shot(driver, "phone-code.png")
        el("#code-submit").click()

        # Registered (haidian approves automatically): one big button.
        wait(lambda: el("#st-open").is_displayed() and el("#open-button").is_enabled())
        assert "王师傅" in el("#st-hello").text
        button = el("#open-button").rect
        assert button["width"] >= 280 and button["height"] >= 200  # a thumb cannot miss it
        fits_the_screen()
        shot(driver, "phone-open.png")
        el("#open-button").click()
        wait(lambda: el("#open-result").text == "门已开", 10)
        assert env.fleet.opens[0]["station_id"] == "hd-1"
        shot(driver, "phone-opened.png")

        # The pass: a QR code the door camera reads; it is this member's, signed by the centre.
        driver.get(f"{url}/m/pass")
        wait(lambda: driver.execute_script("return document.getElementById('pass-img').naturalWidth") > 0)
        wait(lambda: "有效期还剩" in el("#pass-timer").text)
        fits_the_screen()
        shot(driver, "phone-pass.png")
        screen = Image.open(io.BytesIO(driver.get_screenshot_as_png()))
        codes = [b.text for b in zxingcpp.read_barcodes(screen)]
        member_id = env.fleet.opens[0]["member_id"]
        with env.db.sessions() as session:
            keys = public_key_map(
                k.public_key for k in signing_keys.trusted_keys(session, purpose="qr", now=utc_now())
            )
        assert len(codes) == 1
        claims = verify_token(codes[0], keys, now=int(time.time()), max_clock_skew_s=5)
        assert claims.member_id == member_id and claims.expires_at - claims.issued_at == 180
        qr_width = el("#pass-img").rect["width"]
        assert qr_width == 360  # the whole width of the screen: module size is reach (docs/PHONE.md)

        # My data: facts, consents, visits; deleting face data takes one confirmation.
        driver.get(f"{url}/m/me")
        wait(lambda: "王师傅" in el("#me-facts").text)
        assert "外卖骑手" in el("#me-facts").text and "美团" in el("#me-facts").text
        assert el("#me-face").is_selected() and el("#me-cross").is_selected()
        el("#face-delete").click()
        wait(lambda: el("#face-confirm").is_displayed())
        assert env.fleet.withdrawn == []  # nothing happens before the confirmation
        el("#face-confirm-yes").click()
        wait(lambda: el("#face-status").get_attribute("data-state") == "pending")
        assert "2 个驿站" in el("#face-status").text
        wait(lambda: not el("#me-face").is_selected() and not el("#me-cross").is_selected())
        shot(driver, "phone-me-deleting.png")
        with env.db.sessions.begin() as session:  # the stations confirm; the page notices by itself
            erasure = session.query(Erasure).one()
            erasure.stations_pending, erasure.completed_at = [], utc_now()
        wait(lambda: el("#face-status").get_attribute("data-state") == "done", 10)
        assert "已在所有驿站删除" in el("#face-status").text
        fits_the_screen()
        shot(driver, "phone-me-deleted.png")

        # Stations near me: the browser asks for the location; nearest first; map links.
        allow_location(driver, url, 39.9001, 116.4001)
        driver.get(f"{url}/m/nearby")
        wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#stations li")) == 4)
        el("#locate").click()
        wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#stations li .distance"))
        order = [
            li.get_attribute("data-station") for li in driver.find_elements(By.CSS_SELECTOR, "#stations li")
        ]
        assert order[:2] == ["hd-3", "hd-1"]
        first = driver.find_elements(By.CSS_SELECTOR, "#stations li")[0]
        assert first.find_element(By.CSS_SELECTOR, ".distance").text.endswith("米")
        links = {
            a.get_attribute("data-app"): a.get_attribute("href")
            for a in first.find_elements(By.CSS_SELECTOR, ".nav a")
        }
        assert links["amap"].startswith("amapuri://") and links["baidu"].startswith("baidumap://")
        assert links["tencent"].startswith("qqmap://")
        fits_the_screen()
        shot(driver, "phone-nearby.png")
        assert not severe_console_errors(driver, allowed=("favicon",)), severe_console_errors(driver)


def test_in_wechat_the_map_links_are_web_pages(
    site: tuple[Env, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """WeChat's browser does not follow app schemes: the links go to the vendors' https pages."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, url = site
    with phone_browser(tmp_path_factory.mktemp("wechat"), user_agent=WECHAT_UA) as driver:
        driver.get(f"{url}/m/nearby")
        WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#stations li .nav a"))
        hrefs = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, ".nav a")]
        assert hrefs and all(h.startswith("https://") for h in hrefs)
        assert any(h.startswith("https://uri.amap.com/navigation?") for h in hrefs)
        # a scan without a login shows the registration form here as well
        driver.get(f"{url}/m/s/hd-3")
        WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "st-register").is_displayed())


def test_without_a_gateway_staff_approve_on_the_dashboard_and_print_the_poster(
    central_db: CentralDb, central_config: CentralConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No SMS gateway: the registration waits; district staff approve it on the dashboard's
    registrations page; the phone then gets its open button. The station page offers the poster."""
    from browser_support import chromium
    from phone_support import PASSWORD, Clock
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    now = dt.datetime.now(dt.UTC)
    with phone_env(central_db, central_config, {"no_sms": True}, clock=Clock(now)) as env:
        env.ctx.now = lambda: dt.datetime.now(dt.UTC)
        with (
            serve(env.app) as url,
            phone_browser(tmp_path_factory.mktemp("phone")) as driver,
        ):
            desk = chromium(tmp_path_factory.mktemp("desk"), phone=False)
            try:

                def el(d: Any, selector: str) -> Any:
                    return d.find_element(By.CSS_SELECTOR, selector)

                def wait(d: Any, condition: Any, timeout: float = 15.0) -> Any:
                    return WebDriverWait(d, timeout, poll_frequency=0.1).until(lambda _: condition())

                driver.get(f"{url}/m/s/hd-1")
                wait(driver, lambda: el(driver, "#st-register").is_displayed())
                el(driver, "#reg-name").send_keys("李师傅")
                el(driver, "#reg-phone").send_keys(PHONE)
                Select(el(driver, "#reg-kind")).select_by_value("sanitation")
                el(driver, "#reg-agree").click()
                el(driver, "#reg-submit").click()
                wait(driver, lambda: el(driver, "#st-pending").is_displayed())
                assert env.sms.messages == [] and env.fleet.changed == []

                desk.get(url + "/")
                wait(desk, lambda: el(desk, "#view-login").is_displayed())
                el(desk, "#login-user").send_keys("hd.staff")
                el(desk, "#login-pass").send_keys(PASSWORD)
                el(desk, "#login-submit").click()
                wait(desk, lambda: el(desk, "#view").is_displayed())
                el(desk, "[data-route=registrations]").click()
                wait(desk, lambda: desk.find_elements(By.CSS_SELECTOR, "#registration-table [data-approve]"))
                row = el(desk, "#registration-table tbody tr")
                assert "李师傅" in row.text and "环卫工人" in row.text and "未验证" in row.text
                desk.save_screenshot(str(ARTIFACTS / "dashboard-registrations.png"))
                el(desk, "#registration-table [data-approve]").click()
                wait(desk, lambda: el(desk, "#dialog-ok").is_displayed())
                el(desk, "#dialog-ok").click()
                wait(desk, lambda: el(desk, "#registration-count").text == "没有待审核的注册")
                assert len(env.fleet.changed) == 1  # the roster was told: the member reaches the stations

                driver.get(f"{url}/m/s/hd-1")
                wait(
                    driver,
                    lambda: el(driver, "#st-open").is_displayed() and el(driver, "#open-button").is_enabled(),
                )

                # The station page offers the door poster to download.
                desk.get(url + "/#/stations/hd-1")
                wait(desk, lambda: desk.find_elements(By.CSS_SELECTOR, "#poster-pdf"))
                href = el(desk, "#poster-png").get_attribute("href")
                assert href.endswith("/api/v1/stations/hd-1/poster.png")
                png = desk.execute_async_script(
                    "const done = arguments[1]; fetch(arguments[0]).then(r => r.arrayBuffer())"
                    ".then(b => done(Array.from(new Uint8Array(b).slice(0, 8))));",
                    href,
                )
                assert bytes(png) == b"\x89PNG\r\n\x1a\n"
            finally:
                desk.get("about:blank")
                desk.quit()
