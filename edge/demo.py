"""`yizhan demo`: the whole door on a laptop, with no camera, Pi or broker.

It builds a throw-away station (its own data folder), enrols the public-domain fixture faces, issues
QR tokens, writes a door-camera video from the fixture photos (a member walks up, a stranger, a QR
code held up, a forged and an expired QR code, another member), and runs the real daemon on it:
camera thread, decide loop, SQLite events, gpiozero mock pins for the relay and buttons. It then
presses the exit and emergency buttons on the mock pins. One line per event, then a summary.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from gpiozero.pins.mock import MockFactory

from edge.app import RunOptions, StationDaemon
from edge.config import Config
from edge.demo_video import Scene, face_crop, qr_card, write_video
from edge.station import Station, read_photo
from recognizer import qr_token
from recognizer.qr_decode import render_image

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

# What the demo expects, in order: (kind, method, member_id, reason).
EXPECTED = [
    ("refused", "face", None, "show_pass"),
    ("entry", "qr_face", "m-obama", None),
    ("refused", "face", None, "unknown_face"),
    ("entry", "qr", "m-zhang", None),
    ("refused", "qr", None, "bad_signature"),
    ("refused", "qr", "m-zhang", "expired"),
    ("entry", "face", "m-biden", None),
    ("exit", "exit_button", None, None),
    ("emergency", "emergency_button", None, None),
]


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def bgr_face(station: Station, name: str) -> np.ndarray:
    """A fixture photo's face cropped as the door camera would frame it (BGR); the fleet demo
    (demo/) builds its stations' videos with it too."""
    rgb = read_photo(FIXTURES / name)
    detections = station.photo_pipeline.detect(rgb)
    if not detections:
        raise RuntimeError(f"no face found in fixture {name}")
    return face_crop(rgb, detections[0].box)


def build_run_demo_video(station: Station) -> Path:
    """The video `yizhan run` plays when `[camera] source = "demo"`: faces only, built once."""
    path = station.data_dir / "demo" / "door.avi"
    if not path.exists():
        empty = Scene("empty", None, 1.0)
        scenes = [empty]
        for name in ("obama_2.jpg", "eileen_collins.png", "biden_1.jpg"):
            scenes += [Scene("face", bgr_face(station, name), 3.0, name), empty]
        write_video(path, scenes)
    return path


def _demo_scenes(station: Station, tokens: dict[str, str]) -> list[Scene]:
    empty = Scene("empty", None, 1.2)

    def card(token: str) -> np.ndarray:
        return qr_card(render_image(token, scale=3, border=2))

    return [
        empty,
        Scene(
            "face",
            bgr_face(station, "obama_2.jpg"),
            3.0,
            "member m-obama walks up (another photo of him); he must show his pass: the door asks",
        ),
        Scene("qr", card(tokens["obama"]), 1.5, "m-obama shows his pass: pass + the face just seen"),
        empty,
        Scene("face", bgr_face(station, "eileen_collins.png"), 3.0, "a stranger"),
        empty,
        Scene("qr", card(tokens["zhang"]), 2.0, "m-zhang (张三, no face enrolled) shows a QR code"),
        empty,
        Scene("qr", card(tokens["forged"]), 2.0, "a forged QR code"),
        empty,
        Scene("qr", card(tokens["expired"]), 2.0, "an expired QR code"),
        empty,
        Scene("face", bgr_face(station, "biden_1.jpg"), 3.0, "member m-biden walks up"),
        empty,
    ]


def _event_line(event: dict[str, Any], t0: float) -> str:
    return (
        f"  +{time.monotonic() - t0:5.1f}s  {event['kind']:<15} method={event['method'] or '-':<16} "
        f"member={event['member_id'] or '-':<9} reason={event['reason'] or '-'}"
    )


def run_demo(config: Config, data_dir: Path | None = None) -> int:
    temporary = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="yizhan-demo-")) if data_dir is None else data_dir
    if data_dir is not None and folder.exists() and any(folder.iterdir()):
        _say(f"demo data folder {folder} is not empty; give an empty or new folder")
        return 2
    demo_config = config.model_copy(
        update={
            "storage": config.storage.model_copy(update={"data_dir": folder, "key_file": None}),
            "door": config.door.model_copy(
                update={"gpio": config.door.gpio.model_copy(update={"pin_factory": "mock"})}
            ),
        }
    )
    station = Station(demo_config, env={})
    try:
        return _run(station, demo_config, folder)
    finally:
        station.close()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def _run(station: Station, config: Config, folder: Path) -> int:
    _say(f"yizhan demo: station {config.station.station_id!r}, data in {folder}")
    kid = station.init_keys()
    _say(f"QR signing key {kid} created (stations trust only its public half)")
    for member_id, name, photo in (
        ("m-obama", "Barack Obama", "obama_1.jpg"),
        ("m-biden", "Joe Biden", "biden_1.jpg"),
    ):
        station.enroll(member_id=member_id, name=name, photos=[FIXTURES / photo], kind="driver")
        _say(f"enrolled {member_id} ({name}) from {photo}")
    station.update_member("m-obama", requires_pass=True)
    _say("m-obama requires the pass (as a confirmed lookalike would): his face alone never opens")
    station.add_member(member_id="m-zhang", name="张三", kind="courier", groups=("couriers",))
    _say("added m-zhang (张三) without a face: QR only")
    private_raw = qr_token.private_key_from_pem(station.signing_key_path.read_bytes())
    good = station.issue_qr(member_id="m-zhang", ttl_s=3600)
    tokens = {
        "zhang": good,
        "obama": station.issue_qr(member_id="m-obama", ttl_s=3600),
        "forged": good[:-8] + ("A" * 8 if not good.endswith("A" * 8) else "B" * 8),
        "expired": qr_token.issue_token(private_raw, "m-zhang", now=int(time.time()) - 7200, ttl_s=600),
    }
    video = folder / "demo" / "demo.avi"
    frames, seconds = write_video(video, _demo_scenes(station, tokens))
    _say(f"camera: {video.name}, {frames} frames, {seconds:.0f} s at 15 fps (played at its native rate)")

    factory = MockFactory()
    daemon = StationDaemon(
        config,
        RunOptions(
            exit_at_end=True, realtime=True, camera_source=str(video), with_api=False, with_sync=False
        ),
        pin_factory=factory,
        station=station,
    )
    events: list[dict[str, Any]] = []
    t0 = time.monotonic()
    _say("events:")
    try:
        daemon.start()
        assert daemon.recorder is not None and daemon._loop_thread is not None

        def show(event: dict[str, Any]) -> None:
            events.append(event)
            _say(_event_line(event, t0))

        daemon.recorder.subscribe(show)
        daemon._loop_thread.join()
        relay_pin = factory.pin(config.door.relay.pin)
        time.sleep(config.door.relay.unlock_s + 0.2)  # let the last unlock end before the exit press
        for pin_number in (config.door.exit_button.pin, config.door.emergency.pin):
            pin = factory.pin(pin_number)
            pin.drive_low()  # pull-up inputs: pressed = low
            time.sleep(0.15)
            pin.drive_high()
        time.sleep(0.3)
        relay_pulses = sum(
            1
            for before, after in zip(relay_pin.states, relay_pin.states[1:], strict=False)
            if not before.state and after.state
        )
        stats = daemon.loop.stats if daemon.loop else None
    finally:
        daemon.stop()
    seen = [
        (e["kind"], e["method"], e["member_id"], e["reason"])
        for e in events
        if e["kind"] not in ("station_started", "station_stopped")
    ]
    _say("summary:")
    entries = [e for e in events if e["kind"] == "entry"]
    refusals = [e for e in events if e["kind"] == "refused"]
    _say(
        f"  entries {len(entries)}, refusals {len(refusals)}, door events "
        f"{len([e for e in events if e['kind'] in ('exit', 'emergency')])}, relay pulses {relay_pulses}"
    )
    if stats is not None:
        for method in ("face", "qr"):
            values = stats.latencies_ms.get(method, [])
            if values:
                _say(
                    f"  {method} latency, frame captured to relay energised: "
                    f"p50 {statistics.median(values):.0f} ms, "
                    f"p95 {_p95(values):.0f} ms (n={len(values)})"
                )
        _say(
            f"  frames {stats.frames}, face detections {stats.detections}, encodings {stats.encodings}, "
            f"QR checks {stats.qr_checks}"
        )
    ok = seen == EXPECTED
    _say("  all decisions as expected" if ok else f"  UNEXPECTED decisions: {seen}")
    return 0 if ok else 1


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
