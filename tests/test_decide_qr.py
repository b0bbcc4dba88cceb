"""Several QR codes in one frame: every code is decided, a refused one never hides another.

Real frames: the codes are rendered with segno, put side by side on white cards, written to an MJPG
video and read back by the daemon's camera thread; the decide loop finds them with zxing. Door pins
are gpiozero's MockFactory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from edge.app import RunOptions, StationDaemon
from edge.config import parse_config
from edge.demo_video import FRAME_H, FRAME_W, face_crop, qr_card
from edge.station import Station, read_photo
from models import events as event_store
from recognizer.qr_decode import decode_qr_payloads, render_image

RELAY_PIN = 17
#: Looks like one of our tokens (the prefix the loop sorts first) but is a sticker's junk text.
JUNK = "YZ1:STICKER-ON-THE-DOOR-FRAME-NOT-A-PASS"


def side_by_side(*texts: str) -> np.ndarray:
    """One card holding several codes next to each other (BGR), as a frame would show them."""
    cards = [qr_card(render_image(text, scale=3, border=4)) for text in texts]
    height = max(card.shape[0] for card in cards)
    padded = [np.pad(c, ((0, height - c.shape[0]), (0, 8), (0, 0)), constant_values=255) for c in cards]
    return np.ascontiguousarray(np.hstack(padded))


@pytest.fixture
def station(tmp_path: Path) -> Any:
    config = parse_config(
        {
            "storage": {"data_dir": str(tmp_path / "data")},
            "station": {"station_id": "st-qr"},
            "api": {"enabled": False},
        }
    )
    station = Station(config, env={})
    station.init_keys()
    station.add_member(member_id="m-zhang", name="张三")
    station.add_member(member_id="m-li", name="李四")
    yield station
    station.close()


def still(image: np.ndarray) -> np.ndarray:
    """`image` centred on a grey 640x480 frame, the same pixels in every frame (so zxing finds the
    codes in the same order each time: the test does not depend on luck)."""
    frame = np.full((FRAME_H, FRAME_W, 3), 110, np.uint8)
    scale = min(1.0, (FRAME_W - 20) / image.shape[1], (FRAME_H - 20) / image.shape[0])
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    y, x = (FRAME_H - image.shape[0]) // 2, (FRAME_W - image.shape[1]) // 2
    frame[y : y + image.shape[0], x : x + image.shape[1]] = image
    return frame


def write_stills(path: Path, scenes: list[tuple[np.ndarray | None, float]], fps: float = 15.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (FRAME_W, FRAME_H))
    assert writer.isOpened()
    empty = np.full((FRAME_H, FRAME_W, 3), 110, np.uint8)
    try:
        for image, seconds in [(None, 0.5), *scenes, (None, 0.5)]:
            frame = empty if image is None else still(image)
            for _ in range(round(seconds * fps)):
                writer.write(frame)
    finally:
        writer.release()


def run_video(
    station: Station, video: Path, scenes: list[tuple[np.ndarray | None, float]]
) -> list[dict[str, Any]]:
    write_stills(video, scenes)
    factory = MockFactory()
    daemon = StationDaemon(
        station.config,
        RunOptions(exit_at_end=True, realtime=True, camera_source=str(video)),
        pin_factory=factory,
        station=station,
    )
    assert daemon.run() == 0
    with station.sessions() as session:
        return [
            event_store.event_to_json(e)
            for e in event_store.list_events(session, newest_first=False)
            if e.kind in ("entry", "refused")
        ]


def test_the_frame_really_holds_both_codes(station: Station) -> None:
    token = station.issue_qr(member_id="m-zhang", ttl_s=600)
    assert sorted(decode_qr_payloads(side_by_side(JUNK, token))) == sorted([JUNK, token])


@pytest.mark.parametrize("junk_left", [True, False], ids=["junk-left", "junk-right"])
def test_a_junk_yz_code_does_not_hide_a_valid_pass(station: Station, tmp_path: Path, junk_left: bool) -> None:
    """The sticker is in view first; then a member holds up a pass beside it (either side)."""
    token = station.issue_qr(member_id="m-zhang", ttl_s=600)
    both = side_by_side(JUNK, token) if junk_left else side_by_side(token, JUNK)
    scenes = [(side_by_side(JUNK), 1.0), (both, 2.5)]
    events = run_video(station, tmp_path / "junk.avi", scenes)
    decided = [(e["kind"], e["method"], e["member_id"], e["reason"]) for e in events]
    assert ("entry", "qr", "m-zhang", None) in decided, decided
    # The sticker is refused once for what it is (not a pass), and it does not repeat while in view.
    junk = [e for e in events if e["kind"] == "refused"]
    assert [e["reason"] for e in junk] == ["malformed"], decided


def test_two_passes_in_one_frame_are_both_decided(station: Station, tmp_path: Path) -> None:
    zhang = station.issue_qr(member_id="m-zhang", ttl_s=600)
    li = station.issue_qr(member_id="m-li", ttl_s=600)
    events = run_video(station, tmp_path / "two.avi", [(side_by_side(zhang, li), 2.5)])
    entries = sorted(e["member_id"] for e in events if e["kind"] == "entry")
    assert entries == ["m-li", "m-zhang"], events
    assert not [e for e in events if e["kind"] == "refused"], events


def test_two_factor_codes_in_one_frame_are_each_checked_once(
    tmp_path: Path, face_model: Any, fixtures: Path
) -> None:
    """Two two-factor members' codes at once: one face window at a time, the other code waits with
    its verdict (a single-use pass is not spent twice, so it is not refused as replayed)."""
    config = parse_config(
        {
            "storage": {"data_dir": str(tmp_path / "data")},
            "station": {"station_id": "st-qr"},
            "api": {"enabled": False},
            "recognition": {"two_factor": True, "two_factor_window_s": 2.0},
        }
    )
    station = Station(config, env={})
    station.face_model = face_model
    station.init_keys()
    station.enroll(member_id="m-obama", name="Barack Obama", photos=[fixtures / "obama_1.jpg"])
    station.enroll(member_id="m-biden", name="Joe Biden", photos=[fixtures / "biden_1.jpg"])
    obama = station.issue_qr(member_id="m-obama", ttl_s=600, single_use=True)
    biden = station.issue_qr(member_id="m-biden", ttl_s=600, single_use=True)
    rgb = read_photo(fixtures / "obama_2.jpg")
    face = face_crop(rgb, station.photo_pipeline.detect(rgb)[0].box)
    face = cv2.resize(face, (200, round(face.shape[0] * 200 / face.shape[1])))
    codes = side_by_side(obama, biden)
    codes = cv2.resize(
        codes, (420, round(codes.shape[0] * 420 / codes.shape[1])), interpolation=cv2.INTER_AREA
    )
    height = max(face.shape[0], codes.shape[0])
    frame = np.full((height, face.shape[1] + codes.shape[1] + 10, 3), 255, np.uint8)
    frame[: face.shape[0], : face.shape[1]] = face
    frame[: codes.shape[0], face.shape[1] + 10 :] = codes
    assert sorted(decode_qr_payloads(still(frame))) == sorted([obama, biden])
    try:
        events = run_video(station, tmp_path / "2fa.avi", [(frame, 6.0)])
    finally:
        station.close()
    decided = sorted((e["kind"], e["method"], e["member_id"], e["reason"]) for e in events)
    assert decided == [
        ("entry", "qr_face", "m-obama", None),
        ("refused", "qr_face", "m-biden", "face_mismatch"),
    ], decided


def test_a_pass_still_in_view_is_not_decided_again_by_a_busy_loop(tmp_path: Path) -> None:
    """The loop may look at frames further apart than qr_repeat_s (encoding on a loaded box): a
    single-use pass held up all along is one entry, not an entry and then 'replayed'. Simulated
    here with qr_repeat_s far below the time between two looks."""
    config = parse_config(
        {
            "storage": {"data_dir": str(tmp_path / "data")},
            "station": {"station_id": "st-qr"},
            "api": {"enabled": False},
            "daemon": {"qr_repeat_s": 0.01},
        }
    )
    station = Station(config, env={})
    try:
        station.init_keys()
        station.add_member(member_id="m-zhang", name="张三")
        token = station.issue_qr(member_id="m-zhang", ttl_s=600, single_use=True)
        events = run_video(station, tmp_path / "held.avi", [(side_by_side(token), 2.0)])
    finally:
        station.close()
    assert [(e["kind"], e["member_id"], e["reason"]) for e in events] == [("entry", "m-zhang", None)]
