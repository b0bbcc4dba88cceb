"""The phone's pass, as Chromium shows it on a 360 px phone, held 30 cm from the door camera in a
generated video (edge/demo_video.py): the real station daemon (mock pins, its own QR decoder and
checker, offline) opens the door for it, and the same screenshot after the pass expired does not.

The station trusts the centre's pass key and knows the member here because the test gives it both
(as `yizhan sync pull` would from the roster); test_phone_e2e.py has the station get both from
the roster over MQTT and accept the pass (not through a camera).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from central_fixtures import CentralDb
from phone_support import Clock, Phone, phone_browser, phone_env, serve
from PIL import Image
from test_api_support import RELAY_PIN, make_config, running_daemon, wait_for

from bench.phone_pass import phone_height_px
from central.config import CentralConfig
from central.store import signing_keys
from edge.demo_video import Scene, write_video
from edge.station import Station
from models import events as event_store
from recognizer.qr_token import public_key_to_pem

ARTIFACTS = Path(__file__).parent / "artifacts"
VALID_FOR_S = 25  # the pass drawn for the video expires this long after it was drawn
DISTANCE_MM = 300


def test_a_phone_pass_in_a_camera_video_opens_the_door_until_it_expires(
    central_db: CentralDb,
    central_config: CentralConfig,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    face_model: Any,
) -> None:
    # The centre's clock runs behind, so the pass it draws (valid 180 s) has VALID_FOR_S left.
    behind = dt.timedelta(seconds=central_config.phone.pass_ttl_s - VALID_FOR_S)
    with phone_env(central_db, central_config, clock=Clock(dt.datetime.now(dt.UTC))) as env:
        phone = Phone(env.app)
        member_id = env.register(phone)["member_id"]
        env.ctx.now = lambda: dt.datetime.now(dt.UTC) - behind
        with env.db.sessions() as session:
            key = signing_keys.active_key(session, purpose="qr")
            assert key is not None
            centre_pem = public_key_to_pem(key.public_key)

        # The pass as the phone shows it (the whole screen, device pixels).
        with serve(env.app) as url, phone_browser(tmp_path_factory.mktemp("chromium")) as driver:
            driver.get(f"{url}/m/")
            driver.add_cookie(
                {"name": "yizhan_phone", "value": phone.client.cookies["yizhan_phone"], "path": "/"}
            )
            driver.get(f"{url}/m/pass")
            from selenium.webdriver.support.ui import WebDriverWait

            WebDriverWait(driver, 15).until(
                lambda d: d.execute_script("return document.getElementById('pass-img').naturalWidth") > 0
            )
            token = driver.execute_script("return document.getElementById('pass-img').dataset.token")
            expires = dt.datetime.fromisoformat(
                driver.execute_script("return document.getElementById('pass-img').dataset.expires")
            )
            screen = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        ARTIFACTS.mkdir(exist_ok=True)
        screen.save(ARTIFACTS / "phone-pass-for-camera.png")

    # The door: a station that trusts the centre's pass key and knows the member; no network.
    config = make_config(tmp_path / "station", qr={"max_clock_skew_s": 0}, daemon={"qr_repeat_s": 1.0})
    station = Station(config, env={})
    station.face_model = face_model
    station.add_public_key(centre_pem, label="centre")
    station.add_member(member_id=member_id, name="张三")
    bgr = np.ascontiguousarray(np.asarray(screen)[:, :, ::-1])
    height = phone_height_px(DISTANCE_MM)
    video = tmp_path / "door.avi"
    write_video(
        video, [Scene("empty", None, 1.0), Scene("qr", bgr, 2.0, "phone", height), Scene("empty", None, 1.5)]
    )

    def events(kind: str) -> list[Any]:
        with station.sessions() as session:
            return [e for e in event_store.list_events(session, kind=kind) if e.method == "qr"]

    try:
        with running_daemon(config, station, video) as (_daemon, factory):
            relay = factory.pin(RELAY_PIN)
            entries = wait_for(lambda: events("entry"), 20)
            assert entries[0].member_id == member_id
            wait_for(lambda: any(state.state for state in relay.states), 5)  # the relay pulsed
            assert dt.datetime.now(dt.UTC) < expires, "the entry must come while the pass is valid"
            # The video loops: the same screenshot keeps coming back. Once the pass has expired the
            # station refuses it by its own clock, offline.
            refused = wait_for(
                lambda: [e for e in events("refused") if e.reason == "expired"], VALID_FOR_S + 20
            )
            assert refused[0].ts_wall >= expires.timestamp()
            late_entries = [e for e in events("entry") if e.ts_wall >= expires.timestamp()]
            assert late_entries == []
    finally:
        station.close()
    assert token and token.startswith("YZ1:")
