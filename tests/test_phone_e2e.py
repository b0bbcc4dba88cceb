"""The worker's phone against the whole system: real mosquitto, the centre's composition root over
HTTP (web, ingest, roster fan-out), a station daemon on gpiozero mock pins pinned to the centre's
key (bench.phone_open.door_rig), a phone-sized Chromium and the staff dashboard in a second one.

The worker scans the poster, registers with the SMS code the local gateway stub received, reaches
the station through the roster (no installer), taps "open": the centre sends a signed command, the
station's relay pulses, the page says "门已开" from the door's own answer, and the entry with the
member's id appears live on the dashboard. The pass the phone then shows is accepted by the
station from what the roster gave it over MQTT (the centre's QR key, the member), offline. A face
enrolled on site with cross-station consent reaches the centre; "delete my face data" on the phone
then reaches the station through the roster's erasure path and the page says when it is done.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from browser_support import chromium
from mqtt_broker import mosquitto_path
from mqtt_broker import wait as until
from phone_support import FAST, PASSWORD, PHONE, phone_browser, severe_console_errors
from PIL import Image
from sqlalchemy import select

from bench.phone_open import door_rig
from central.store import staff as staff_store
from central.store.tables import FaceTemplate, Member

ARTIFACTS = Path(__file__).parent / "artifacts"
FIXTURES = Path(__file__).parent / "fixtures"
PASS_DRAWN = "return document.getElementById('pass-img').naturalWidth > 0"


def test_a_phone_registers_opens_a_real_station_and_the_dashboard_sees_it(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, face_model: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    mosquitto_path()
    ARTIFACTS.mkdir(exist_ok=True)
    with door_rig(tmp_path / "rig", face_model=face_model) as rig:
        assert rig.centre.db is not None
        with rig.centre.db.begin() as db:
            staff_store.create_staff(db, FAST, username="ops", role="district", district_id="haidian",
                                     password=PASSWORD)  # fmt: skip
        station = rig.daemon.station
        desk = chromium(tmp_path_factory.mktemp("desk"), phone=False)
        try:
            # Union staff watch the live entries.
            desk.get(rig.url + "/")

            def desk_el(selector: str) -> Any:
                return desk.find_element(By.CSS_SELECTOR, selector)

            WebDriverWait(desk, 20).until(lambda _: desk_el("#view-login").is_displayed())
            desk_el("#login-user").send_keys("ops")
            desk_el("#login-pass").send_keys(PASSWORD)
            desk_el("#login-submit").click()
            WebDriverWait(desk, 20).until(
                lambda d: (
                    d.execute_script("return document.getElementById('live-state').dataset.state") == "up"
                )
            )

            with phone_browser(tmp_path_factory.mktemp("phone")) as phone:

                def wait(condition: Any, timeout: float = 20.0) -> Any:
                    return WebDriverWait(phone, timeout, poll_frequency=0.1).until(lambda _: condition())

                def el(selector: str) -> Any:
                    return phone.find_element(By.CSS_SELECTOR, selector)

                # The poster's QR code: register, with the code the SMS gateway was asked to send.
                phone.get(f"{rig.url}/m/s/{rig.station_id}")
                wait(lambda: el("#st-register").is_displayed())
                el("#reg-name").send_keys("王师傅")
                el("#reg-phone").send_keys(PHONE)
                Select(el("#reg-kind")).select_by_value("rider")
                el("#reg-cross").click()  # face at this station and at the others (ticks both)
                el("#reg-agree").click()
                el("#reg-submit").click()
                wait(lambda: el("#st-code").is_displayed())
                el("#code-input").send_keys(rig.sms.code_for(PHONE))
                el("#code-submit").click()
                wait(lambda: el("#st-open").is_displayed() and el("#open-button").is_enabled())
                with rig.centre.db() as db:
                    member_id = db.scalars(select(Member.member_id).where(Member.name == "王师傅")).one()
                # The roster carried the new member to the station: no installer involved.
                assert until(lambda: station.get_member(member_id), 20), (
                    "the member never reached the station"
                )

                # Open: the relay of the station pulses, the page shows the door's own answer.
                until(lambda: not rig.relay.state, 5)
                rig.relay.clear_states()
                cleared = time.monotonic()
                el("#open-button").click()
                wait(lambda: el("#open-result").text == "门已开")
                assert until(lambda: rig.relay_rose_at(cleared), 5), "the relay did not pulse"
                assert until(lambda: not rig.relay.state, 5), "the relay stayed energised"
                phone.save_screenshot(str(ARTIFACTS / "phone-e2e-opened.png"))
                with station.sessions() as session:
                    from models import events as event_store

                    remote = [
                        e for e in event_store.list_events(session, kind="entry") if e.method == "remote"
                    ]
                assert [e.member_id for e in remote] == [member_id]
                assert remote[0].details["by"] == f"centre:phone:{member_id}"

                # The entry reaches the dashboard live, with the member's name and the station's.
                card = f"#live-entries [data-event='{remote[0].id}']"
                WebDriverWait(desk, 30, poll_frequency=0.2).until(
                    lambda d: d.find_elements(By.CSS_SELECTOR, card)
                )
                text = desk.find_element(By.CSS_SELECTOR, card).text
                assert "王师傅" in text and "海淀一号" in text
                desk.save_screenshot(str(ARTIFACTS / "phone-e2e-dashboard.png"))

                # The pass: the station accepts it from what the roster gave it over MQTT, offline.
                phone.get(f"{rig.url}/m/pass")
                wait(
                    lambda: (
                        phone.execute_script("return document.getElementById('pass-img').naturalWidth") > 0
                    )
                )
                screen = Image.open(io.BytesIO(phone.get_screenshot_as_png()))
                [code] = [b.text for b in zxingcpp.read_barcodes(screen)]
                checked = until(lambda: station.check_qr_text(code, spend=False).member_id == member_id, 20)
                assert checked, station.check_qr_text(code, spend=False)

                # An installer enrols the worker's face at the station; with cross-station consent
                # it goes to the centre. "Delete my face data" on the phone then reaches the
                # station through the roster's erasure path, and the page says when it is done.
                photo = FIXTURES / "eileen_collins.png"
                outcome = station.enroll(member_id=member_id, name="王师傅", photos=[photo],
                                         consent_face=True, consent_cross_station=True)  # fmt: skip
                assert outcome.template_ids
                assert until(lambda: centre_templates(rig, member_id), 30), (
                    "the enrolment never reached the centre"
                )
                phone.get(f"{rig.url}/m/me")
                wait(lambda: el("#me-face").is_selected())
                el("#face-delete").click()
                wait(lambda: el("#face-confirm").is_displayed())
                el("#face-confirm-yes").click()
                wait(lambda: el("#face-status").get_attribute("data-state") == "done", 40)
                assert "已在所有驿站删除" in el("#face-status").text
                assert centre_templates(rig, member_id) == 0
                assert until(lambda: station_templates(station, member_id) == 0, 10)
                phone.save_screenshot(str(ARTIFACTS / "phone-e2e-face-deleted.png"))
                assert not severe_console_errors(phone, allowed=("favicon",)), severe_console_errors(phone)
        finally:
            desk.get("about:blank")  # close the live stream before the server stops
            desk.quit()


def centre_templates(rig: Any, member_id: str) -> int:
    with rig.centre.db() as db:
        rows = db.scalars(select(FaceTemplate).where(FaceTemplate.member_id == member_id)).all()
        return sum(1 for row in rows if row.ciphertext)


def station_templates(station: Any, member_id: str) -> int:
    from models.tables import FaceTemplate as StationTemplate

    with station.sessions() as session:
        return len(
            session.scalars(select(StationTemplate).where(StationTemplate.member_id == member_id)).all()
        )
