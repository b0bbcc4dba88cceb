"""The installer page in real headless Chromium on a phone-sized screen, against `yizhan run`.

A fixture video is the camera. The first test logs in, waits for the live hint to say the face is
good, captures, enrols the person with their details and consent, finds them in the member list,
tests the door, watches the door admit them, then tries to enrol the same face under another name
and sees the refusal name the member with her picture. Others: a QR-only member and a printable
pass, member id rules before submitting, the page width on a phone and a desktop, a 49-megapixel
photo, translated reasons, simulated pins and lockouts on the door tab, the account tab.
Screenshots go to tests/artifacts/. Chromium missing: skipped with the reason locally, a failure
under CI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_support import PHONE, chromium
from test_api_support import RELAY_PIN, USERNAME, face_video, make_config, running_daemon, wait_for

from edge.api.auth import InstallerStore
from edge.app import StationDaemon
from edge.station import Station
from models import events as event_store
from models import members as member_store

ARTIFACTS = Path(__file__).parent / "artifacts"


@dataclass
class Site:
    url: str
    password: str
    daemon: StationDaemon
    station: Station
    factory: Any


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), phone=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("api-browser")
    # Every refusal counts at once (no repeat suppression), so the lockout test can lock a pass by
    # refusing it a few times in a row, as a station would over a minute.
    config = make_config(data, access={"refusal_repeat_s": 0})
    station = Station(config, env={})
    station.face_model = face_model  # the door's model; the API loads its own (see edge/api/faces.py)
    station.init_keys()  # passes are signed by the station's own key
    secret = InstallerStore.for_data_dir(data).add(USERNAME)
    video = face_video(station, fixtures, data / "door.avi", seconds=10.0)
    try:
        with running_daemon(config, station, video, with_api=True) as (daemon, factory):
            yield Site(f"http://127.0.0.1:{config.api.port}", secret, daemon, station, factory)
    finally:
        station.close()


def shot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert browser.save_screenshot(str(path)), path
    return path


class Page:
    """The page as a person uses it (waits return as soon as the condition holds)."""

    def __init__(self, browser: Any, site: Site) -> None:
        from selenium.webdriver.common.by import By

        self.browser = browser
        self.site = site
        self.by = By

    def wait(self, condition: Any, timeout: float = 60.0) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        # The floor only matters on a busy machine: a slow moment must not fail a test.
        return WebDriverWait(self.browser, max(timeout, 60.0), poll_frequency=0.1).until(
            lambda _: condition()
        )

    def el(self, selector: str) -> Any:
        return self.browser.find_element(self.by.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        return list(self.browser.find_elements(self.by.CSS_SELECTOR, selector))

    def text(self, selector: str) -> str:
        return str(self.el(selector).text)

    def js(self, script: str, *args: Any) -> Any:
        return self.browser.execute_script(script, *args)

    def tab(self, name: str) -> None:
        """Tap a tab as a person would: keyboard closed, tab bar in view."""
        self.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
        self.el(f"[data-tab={name}]").click()
        self.wait(lambda: self.el(f"[data-tab={name}]").get_attribute("aria-selected") == "true")

    def logged_in(self) -> Page:
        """Open the page (Chinese), logging in unless the session cookie still holds."""
        self.browser.get(self.site.url + "/")
        self.wait(lambda: self.el("#view-login").is_displayed() or self.el("#view-app").is_displayed())
        if self.js("return localStorage.getItem('yizhan.lang')") == "en":
            self.js("localStorage.setItem('yizhan.lang', 'zh-CN')")
            self.browser.get(self.site.url + "/")
            self.wait(lambda: self.el("#view-login").is_displayed() or self.el("#view-app").is_displayed())
        if self.el("#view-login").is_displayed():
            self.el("#login-user").clear()
            self.el("#login-user").send_keys(USERNAME)
            self.el("#login-pass").send_keys(self.site.password)
            self.el("#login-submit").click()
        self.wait(lambda: self.el("#view-app").is_displayed())
        self.browser.get_log("browser")  # what earlier tests left in the console is theirs
        return self

    def scroll_width(self) -> tuple[int, int]:
        return tuple(self.js("return [document.scrollingElement.scrollWidth, window.innerWidth]"))  # type: ignore[return-value]

    def severe_logs(self) -> list[str]:
        """Console errors, minus the refusals a test provokes on purpose (the browser logs every
        4xx answer as a failed resource load)."""
        expected = (
            " 401 ",
            "(Unauthorized)",
            "/photo - ",  # a member without a kept picture: 404, shown as "no photo"
            "/api/v1/enrolments - Failed to load resource: the server responded with a status of 422",
            "/api/v1/captures/upload - Failed to load resource: the server responded with a status of 422",
        )
        return [
            entry["message"]
            for entry in self.browser.get_log("browser")
            if entry["level"] == "SEVERE" and not any(words in entry["message"] for words in expected)
        ]


def test_enrol_a_person_from_the_live_camera_on_a_phone(browser: Any, site: Site) -> None:
    from selenium.webdriver.support.ui import Select

    page = Page(browser, site)
    wait, el, text, tab = page.wait, page.el, page.text, page.tab

    # Log in (the page is Chinese by default).
    browser.get(site.url + "/")
    wait(lambda: el("#view-login").is_displayed())
    assert browser.execute_script("return document.documentElement.lang") == "zh-CN"
    assert text("#login-submit") == "登录"
    shot(browser, "installer-login.png")
    el("#login-user").send_keys(USERNAME)
    el("#login-pass").send_keys("wrong password")
    el("#login-submit").click()
    wait(lambda: text("#login-error") == "用户名或密码错误")
    el("#login-pass").clear()
    time.sleep(1.1)  # the account's back-off after a failure
    el("#login-pass").send_keys(site.password)
    el("#login-submit").click()
    wait(lambda: el("#view-app").is_displayed())

    # Live preview with a face box; wait for the person to stand well, then capture.
    wait(lambda: browser.execute_script("return document.getElementById('preview').naturalWidth") > 0)
    wait(lambda: el("#hint").get_attribute("data-hint") == "ok", 40)
    assert text("#hint") == "很好，可以拍照"
    shot(browser, "installer-enrol-live.png")
    capture_good_photo(page)
    # The capture's button discards this photo: it cannot be read as deleting a member.
    assert text(".capture[data-ok=true] button") == "删除这张照片"
    browser.execute_script(
        "document.querySelector('.capture[data-ok=true]').scrollIntoView({block: 'center'})"
    )
    shot(browser, "installer-review.png")

    # Details, validity and consent; enrol.
    el("#f-name").send_keys("李娜")
    el("#f-phone").send_keys("139 1234 5678")
    Select(el("#f-kind")).select_by_value("sanitation")
    browser.execute_script("document.getElementById('f-until').value = '2030-06-30'")
    el("#enrol-submit").click()
    wait(lambda: "必须取得本人同意" in text("#enrol-result"))  # consent is not optional
    el("#f-consent").click()
    el("#enrol-submit").click()
    wait(lambda: page.all("#enrol-done"), 30)
    assert "已登记：李娜" in text("#enrol-done")
    assert "为 李娜 发放通行码" in text("#enrol-pass")  # the face is never the only way in
    shot(browser, "installer-enrolled.png")
    member = next(m for m in site.station.list_members() if m["name"] == "李娜")
    assert member["templates"] == 1 and member["kind"] == "sanitation" and member["valid_until"]

    # Find them in the member list.
    tab("members")
    el("#member-search").send_keys("李")
    row = f"[data-member='{member['member_id']}']"

    def shown(selector: str) -> str:
        """The element's text, read again if the search redrew the list meanwhile."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        try:
            return text(selector)
        except (StaleElementReferenceException, NoSuchElementException):
            return ""

    wait(lambda: "环卫工人" in shown(row) and "人脸 1" in shown(row) and "2030" in shown(row))
    assert text("#member-count") == "共 1 人"
    shot(browser, "installer-members.png")
    # Their face photos, one by one: when, how (the door camera), by whom.
    member_row = row

    def templates_shown() -> bool:
        # The search may still redraw the list once: open the templates again if it did.
        from selenium.common.exceptions import StaleElementReferenceException

        try:
            if browser.execute_script(f'return document.querySelector("{member_row} ul.templates").hidden'):
                el(f"{member_row} [data-templates]").click()
            rows = browser.find_elements(page.by.CSS_SELECTOR, f"{member_row} ul.templates li[data-template]")
            return bool(rows)
        except StaleElementReferenceException:
            return False

    wait(templates_shown)
    words = ("门口摄像头", "installer:", "删除")  # the door camera, by whom, remove
    wait(lambda: all(word in shown(f"{member_row} ul.templates") for word in words))

    # Door test from the page: recorded as a door test (not an entry), relay pulsed.
    relay = site.factory.pin(RELAY_PIN)
    relay.clear_states()
    tab("door")
    el("#door-open").click()
    wait(lambda: text("#door-result"))
    assert "门已打开" in text("#door-result"), text("#door-result")
    assert any(state.state for state in relay.states)
    wait(lambda: "正常" in text("#status"))
    assert el("#pins-simulated").is_displayed() and "模拟门锁" in text("#pins-simulated")
    assert "已锁（模拟）" in text("#status") or "已开（模拟）" in text("#status")
    shot(browser, "installer-door.png")
    with site.station.sessions() as session:
        tests = event_store.list_events(session, kind="door_test")
    assert tests and tests[-1].details["by"] == f"installer:{USERNAME}"

    # The door now admits the person standing at the camera; the event shows with its snapshot.
    def entry() -> Any:
        with site.station.sessions() as session:
            return [
                e
                for e in event_store.list_events(session, kind="entry", member_id=member["member_id"])
                if e.snapshot
            ]

    try:
        wait_for(entry, 60)
    except AssertionError:
        with site.station.sessions() as session:
            seen = [(e.kind, e.method, e.member_id, e.reason) for e in event_store.list_events(session)]
        raise AssertionError(f"no face entry for {member['member_id']}; events: {seen}") from None
    tab("events")
    Select(el("#event-kind")).select_by_value("entry")
    face_entry = "#event-list li .thumb"
    wait(lambda: page.all(face_entry))
    wait(lambda: browser.execute_script(f"return document.querySelector('{face_entry}').naturalWidth") > 0)
    row = browser.execute_script(f"return document.querySelector('{face_entry}').closest('li').innerText")
    assert "进门" in row and "李娜" in row and member["member_id"] in row
    shot(browser, "installer-events.png")

    # The same face again under another name: refused (one person, one id: no confirmation offered),
    # naming 李娜 with her picture beside the numbers.
    tab("enrol")
    wait(lambda: el("#hint").get_attribute("data-hint") == "ok", 40)
    capture_good_photo(page)
    el("#f-name").send_keys("王芳")
    el("#f-consent").click()
    # A toast may cover the button at the bottom of a phone's screen: press it as a finger would reach it.
    page.js("document.getElementById('enrol-submit').scrollIntoView({block: 'center'})")
    page.js("document.getElementById('enrol-submit').click()")
    compare = f"#enrol-result .compare[data-compare='{member['member_id']}']"
    wait(lambda: "未能登记" in text("#enrol-result") or "✓" in text("#enrol-result"), 30)
    assert page.all(compare), text("#enrol-result")  # refused, naming her
    assert "李娜" in text(compare) and "未能登记" in text("#enrol-result")
    wait(
        lambda: (
            page.js("return document.querySelector(arguments[0])?.naturalWidth || 0", f"{compare} img") > 0
        )
    )
    assert not el("#force-row").is_displayed()
    page.js("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", compare)
    shot(browser, "installer-duplicate-refused.png")
    assert not [m for m in site.station.list_members() if m["name"] == "王芳"]

    # A member who must show the pass is marked in the list.
    site.station.update_member(member["member_id"], requires_pass=True)
    tab("members")
    el("#member-search").clear()
    el("#member-search").send_keys("李")
    wait(lambda: "需出示通行码" in shown(member_row))

    # A confirmed lookalike is named in the list; a wrong face photo is removed from the page alone.
    with site.station.write_sessions() as session, session.begin():
        member_store.add_lookalike(
            session, member["member_id"], other="m-twin", distance=0.36, confirmed_by="installer:test"
        )
    el("#member-search").clear()
    el("#member-search").send_keys("李")
    wait(lambda: "m-twin" in shown(f"{member_row} [data-lookalikes]"))
    browser.execute_script("window.confirm = () => true;")
    wait(templates_shown)
    el(f"{member_row} ul.templates li[data-template] button").click()
    wait(lambda: "仅二维码" in shown(member_row))
    assert site.station.list_templates(member["member_id"]) == []
    with site.station.sessions() as session:
        removed = event_store.list_events(session, kind="template_removed", member_id=member["member_id"])
    assert removed and removed[0].details["templates_left"] == 0

    # English on request.
    el("#lang").click()
    wait(lambda: text("[data-tab=members]") == "Members")
    assert browser.execute_script("return document.documentElement.lang") == "en"
    el("#lang").click()
    wait(lambda: text("[data-tab=members]") == "成员")
    assert not page.severe_logs()


def capture_good_photo(page: Page) -> None:
    for _ in range(5):
        before = len(page.all(".capture"))
        page.el("#capture").click()
        page.wait(lambda count=before: len(page.all(".capture")) > count)
        captures = page.all(".capture")
        if captures[-1].get_attribute("data-ok") == "true":
            return
        captures[-1].find_element(page.by.TAG_NAME, "button").click()  # discard, take another
    raise AssertionError("no good capture in five tries")


def test_a_qr_only_member_gets_a_pass_printed_from_the_page(browser: Any, site: Site) -> None:
    """Add a member without a face, check the id rule live before submitting, issue a pass and
    print it: the printed page holds only the card, whose code the door accepts."""
    import base64
    import io

    import numpy as np
    from PIL import Image
    from selenium.webdriver.support.ui import Select

    from recognizer.qr_decode import decode_qr_payloads

    page = Page(browser, site).logged_in()
    page.tab("members")
    page.el("#qr-member > summary").click()
    page.el("#q-name").send_keys("赵六")
    rule = page.text("#q-id-rule")
    assert "字母、数字" in rule and "64" in rule  # shown before anything is typed
    page.el("#q-id").send_keys("赵 6")  # Chinese and a space: not an id
    page.wait(lambda: page.el("#q-id").get_attribute("aria-invalid") == "true")
    assert "只能包含" in page.text("#q-id-rule")
    shot(browser, "installer-member-id-rule.png")
    page.el("#q-submit").click()
    page.wait(lambda: "只能包含" in page.text("#q-result"))
    assert not [m for m in site.station.list_members() if m["name"] == "赵六"]  # nothing sent
    page.el("#q-id").clear()
    page.el("#q-id").send_keys("W-0006")
    page.wait(lambda: page.el("#q-id").get_attribute("aria-invalid") == "false")
    page.el("#q-submit").click()
    page.wait(lambda: page.el("#pass-dialog").is_displayed())
    assert "赵六" in page.text("#pass-title")
    Select(page.el("#pass-days")).select_by_value("30")
    page.el("#pass-single").click()
    page.el("#pass-issue").click()
    page.wait(lambda: page.js("return document.getElementById('pass-image').naturalWidth") > 0)
    assert "有效期至" in page.text("#pass-caption") and "仅可使用一次" in page.text("#pass-caption")
    shot(browser, "installer-pass.png")
    member = site.station.get_member("W-0006")
    assert member is not None and member["name"] == "赵六" and member["templates"] == 0

    # The card the page shows is the pass: its code verifies for this member at this station.
    src = page.el("#pass-image").get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    card = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")
    (token,) = decode_qr_payloads(np.asarray(card))
    assert site.station.check_qr_text(token).member_id == "W-0006"
    assert page.el("#pass-download").get_attribute("download") == "pass-W-0006.png"

    # Print: only the card is on paper.
    page.js("window.print = () => { window.__printed = (window.__printed || 0) + 1; }")
    page.el("#pass-print").click()
    assert page.js("return window.__printed") == 1
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        shown = page.js(
            "return [getComputedStyle(document.getElementById('print-area')).display,"
            " getComputedStyle(document.querySelector('main')).display,"
            " getComputedStyle(document.getElementById('pass-dialog')).display,"
            " document.querySelector('#print-area img').src === arguments[0]]",
            src,
        )
        assert shown == ["block", "none", "none", True], shown
        shot(browser, "installer-pass-print.png")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    page.el("#pass-close").click()
    page.wait(lambda: not page.el("#pass-dialog").is_displayed())
    with site.station.sessions() as session:
        assert event_store.list_events(session, kind="qr_issued", member_id="W-0006")
    assert not page.severe_logs()


@pytest.mark.parametrize("size", [(390, 844, True), (1280, 900, False)], ids=["phone", "desktop"])
def test_no_tab_scrolls_sideways(browser: Any, site: Site, size: tuple[int, int, bool]) -> None:
    """The hidden file input (and everything else) stays inside the page width on every tab."""
    width, height, mobile = size
    page = Page(browser, site).logged_in()
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile},
    )
    try:
        for name in ("enrol", "members", "events", "door", "account"):
            page.tab(name)
            if name == "members":
                page.el("#qr-member > summary").click()
            scroll, inner = page.scroll_width()
            assert inner == width and scroll <= inner, (name, scroll, inner)
        page.tab("enrol")
        shot(browser, f"installer-width-{'phone' if mobile else 'desktop'}.png")
    finally:
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": PHONE["width"], "height": PHONE["height"], "deviceScaleFactor": 2, "mobile": True},
        )


def test_a_49_megapixel_photo_gets_its_real_reason(browser: Any, site: Site, tmp_path: Path) -> None:
    from PIL import Image

    photo = tmp_path / "IMG_4900.jpg"
    Image.new("RGB", (8100, 6050), (120, 130, 140)).save(photo, format="JPEG", quality=60)
    page = Page(browser, site).logged_in()
    page.tab("enrol")
    page.el("#upload-input").send_keys(str(photo))
    page.wait(lambda: page.text("#capture-error"))
    message = page.text("#capture-error")
    assert "像素太多" in message and "49" in message and "25" in message, message
    assert "不是可用的图片" not in message


def test_reasons_are_shown_in_chinese(browser: Any, site: Site) -> None:
    """Refusals the door records show in words, whatever produced them (a pass for another
    station, another group, a colleague's face with a two-factor code)."""
    from selenium.webdriver.support.ui import Select

    recorder = site.daemon.recorder
    assert recorder is not None
    for method, reason in (("qr", "wrong_station"), ("qr", "wrong_group"), ("qr_face", "face_mismatch")):
        recorder.record(kind="refused", method=method, reason=reason, details={"test": True})
    page = Page(browser, site).logged_in()
    page.tab("events")
    Select(page.el("#event-kind")).select_by_value("refused")
    page.wait(lambda: len(page.all("#event-list li[data-event]")) >= 3)
    listed = page.text("#event-list")
    for words in ("通行码不适用于本站", "通行码不适用于该成员的分组", "人脸与通行码不符", "二维码 + 人脸"):
        assert words in listed, (words, listed)
    for raw in ("wrong_station", "wrong_group", "face_mismatch", "qr_face"):
        assert raw not in listed


def test_password_change_is_under_the_account_tab(browser: Any, site: Site) -> None:
    page = Page(browser, site).logged_in()
    assert page.js("return document.getElementById('password-form').closest('.tab').id") == "tab-account"
    page.tab("account")
    assert page.el("#password-form").is_displayed() and USERNAME in page.text("#account-user")
    page.tab("door")
    assert not page.el("#password-form").is_displayed()


def test_the_door_tab_lists_and_clears_lockouts(browser: Any, site: Site) -> None:
    """The lockout panel against GET /api/v1/lockouts and DELETE /api/v1/lockouts[/{id}]: what is
    locked, why, until when, in words; a clear button per lockout and one for all."""
    page = Page(browser, site).logged_in()
    for pass_id in ("ab12ab12ab12ab12", "cd34cd34cd34cd34"):
        _lock_a_pass(site, pass_id)
    page.tab("door")
    page.wait(lambda: len(page.all("#lockouts li[data-lockout]")) == 2)
    listed = page.text("#lockouts")
    assert "通行码" in listed and "通行码无效" in listed and "bad_signature" not in listed, listed
    assert page.el("#lockouts-clear-all").is_displayed() and not page.el("#lockouts-none").is_displayed()
    page.js("document.getElementById('lockouts-card').scrollIntoView({block: 'center'})")
    shot(browser, "installer-lockouts.png")
    page.el("[data-lockout='pass:ab12ab12ab12ab12'] button").click()
    page.wait(lambda: len(page.all("#lockouts li[data-lockout]")) == 1)
    assert not page.el("#lockouts-clear-all").is_displayed()
    page.el("[data-lockout='pass:cd34cd34cd34cd34'] button").click()
    page.wait(lambda: page.el("#lockouts-none").is_displayed())
    with site.station.sessions() as session:
        assert len(event_store.list_events(session, kind="lockout_cleared")) == 2
    assert not page.severe_logs()


def _lock_a_pass(site: Site, pass_id: str) -> None:
    """Refuse the same (forged) pass until its lockout starts, as the decide loop would."""
    import datetime as dt

    from edge.access import Credential

    decider = site.daemon.decider
    assert decider is not None
    for _ in range(50):
        credential = Credential("qr", None, ok=False, reason="bad_signature", details={"pass": pass_id})
        decision = decider.decide(credential, {}, now_wall=dt.datetime.now(dt.UTC), now_mono=time.monotonic())
        if decision.alarm == "lockout_started":
            return
    raise AssertionError("the pass never locked")
