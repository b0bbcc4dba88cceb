"""The API's face work: capture checks, enrolment and the live hints, on a face model of its own.

dlib's HOG detector and ResNet encoder are not thread-safe: two threads detecting with one model at
once crash the process (reproduced here: SIGSEGV in `detector.run` with the decide loop detecting
while an upload was checked). The door's model therefore stays the decide loop's alone, and the API
works through a `Station` of its own over the same database and key (as `yizhan enroll` does while
the daemon runs), whose model is loaded on the first face job (~0.6 s, ~35 MB) and never shared with
the door. The door thus never waits for the API; they only share the CPU, which is why the API runs
one face job at a time and computes the preview's face box at most every `interval_s` whatever the
number of viewers (their results are shared).

Live hints are stable words the page translates ("move_closer" is 靠近一点); they come from the same
quality gates as enrolment, so a face the preview calls good is one a capture will accept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.api.services import StationServices
from edge.enrolment import PhotoCheck
from edge.station import EnrolmentOutcome, Station
from recognizer.encoder import FaceModel
from recognizer.face_pipeline import FaceObservation

#: Quality gate reason -> what the person in front of the camera should do.
HINTS = {
    "face_too_small": "move_closer",
    "too_dark": "too_dark",
    "too_bright": "too_bright",
    "too_blurry": "hold_still",
    "head_tilted": "head_straight",
    "face_turned": "face_camera",
    "bad_landmarks": "face_camera",
}
STALE_FRAME_S = 3.0
MOVED_FRACTION = 0.15  # a face centre that moved this much of its width between looks: not still


def problem_code(check: PhotoCheck) -> str | None:
    """A stable word for a photo check's problem, for the page to translate (None when usable)."""
    if check.problem is None:
        return None
    reason = check.quality.get("reason") if check.quality else None
    if isinstance(reason, str):
        return reason
    if check.problem == "no face found":
        return "no_face"
    if "faces found" in check.problem:
        return "several_faces"
    return "bad_landmarks" if check.quality else "unreadable"


def check_to_json(check: PhotoCheck) -> dict[str, Any]:
    code = problem_code(check)
    return {
        "ok": check.problem is None,
        "problem": check.problem,
        "code": code,
        "hint": HINTS.get(code or "", code),
        "quality": check.quality,
    }


def jpeg(bgr: npt.NDArray[np.uint8], *, max_side: int, quality: int = 80) -> bytes:
    """A JPEG of `bgr`, scaled down so its longest side is at most `max_side`."""
    height, width = bgr.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1.0:
        bgr = np.asarray(
            cv2.resize(
                bgr,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            ),
            np.uint8,
        )
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buffer.tobytes())


def png(bgr: npt.NDArray[np.uint8]) -> bytes:
    """Lossless, so enrolment sees exactly the pixels the capture check saw."""
    ok, buffer = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(buffer.tobytes())


def _box_json(box: tuple[int, int, int, int]) -> dict[str, int]:
    top, right, bottom, left = box
    return {"top": int(top), "right": int(right), "bottom": int(bottom), "left": int(left)}


class FaceWork:
    """Serialised, rate-limited face work on behalf of installers, on the API's own face model."""

    def __init__(
        self, services: StationServices, *, interval_s: float, face_model: FaceModel | None = None
    ) -> None:
        self.services = services
        self.interval_s = interval_s
        self._face_model = face_model  # injected by tests; never the decide loop's model
        self._own: Station | None = None
        self._job = threading.Lock()  # one API face job at a time (the API's model is not shared)
        self._state = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._last_seq = -1
        self._last_at = -1e9
        self._last_box: tuple[int, int, int, int] | None = None

    def _station(self) -> Station:
        """The API's own Station (same config, database and template key); call with `_job` held."""
        if self._own is None:
            door_station = self.services.station
            if door_station is None:
                raise RuntimeError("the station is not running")
            own = Station(self.services.config, env=door_station.env)
            if self._face_model is not None:
                own.face_model = self._face_model
            self._own = own
        return self._own

    def close(self) -> None:
        with self._job:
            if self._own is not None:
                self._own.close()
                self._own = None

    # -- live analysis -------------------------------------------------------------------------

    def analyse_live(self) -> dict[str, Any]:
        """Face boxes and one hint for the newest frame; shared between viewers, rate-limited."""
        frame = self.services.latest_frame()
        now = time.monotonic()
        camera = self.services.camera
        state = camera.status.state if camera is not None else "down"
        if frame is None or now - frame.captured_mono > STALE_FRAME_S or state in ("down", "ended"):
            return {
                "hint": "no_camera",
                "camera": state,
                "faces": [],
                "seq": None,
                "width": None,
                "height": None,
            }
        with self._state:
            fresh = self._last is not None and (
                self._last_seq == frame.seq or now - self._last_at < self.interval_s
            )
            if fresh and self._last is not None:
                return self._last
        if not self._job.acquire(blocking=False):
            with self._state:  # an enrolment is running: the previous look will do
                if self._last is not None:
                    return self._last
            return {"hint": "busy", "camera": state, "faces": [], "seq": None, "width": None, "height": None}
        try:
            rgb = np.asarray(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB), np.uint8)
            observations = self._station().pipeline.analyze(rgb, encode=False)  # door-sized detection
        finally:
            self._job.release()
        faces = [o for o in observations if o.quality.landmarks_ok or o.quality.reason == "face_too_small"]
        with self._state:
            hint = self._hint(faces, now)
            result = {
                "hint": hint,
                "camera": state,
                "seq": frame.seq,
                "width": int(frame.image.shape[1]),
                "height": int(frame.image.shape[0]),
                "faces": [
                    {"box": _box_json(o.box), "reason": o.quality.reason, "face_px": o.quality.face_px}
                    for o in faces
                ],
            }
            self._last, self._last_seq, self._last_at = result, frame.seq, now
            self._last_box = faces[0].box if len(faces) == 1 else None
        return result

    def _hint(self, faces: Sequence[FaceObservation], now: float) -> str:
        if not faces:
            return "no_face"
        if len(faces) > 1:
            return "one_person"
        face = faces[0]
        if face.quality.reason is not None:
            return HINTS.get(face.quality.reason, "face_camera")
        previous = self._last_box
        if previous is not None and now - self._last_at < 3 * self.interval_s + 1.0:
            top, right, bottom, left = face.box
            p_top, p_right, p_bottom, p_left = previous
            width = max(1, right - left)
            dx = (left + right - p_left - p_right) / 2
            dy = (top + bottom - p_top - p_bottom) / 2
            if (dx * dx + dy * dy) ** 0.5 > MOVED_FRACTION * width:
                return "hold_still"
        return "ok"

    # -- capture checks and enrolment ----------------------------------------------------------

    def check(self, name: str, rgb: npt.NDArray[np.uint8]) -> PhotoCheck:
        """The enrolment photo check (same pipeline and gates as `yizhan enroll`)."""
        with self._job:
            return self._station().check_images([(name, rgb)])[0]

    def enroll(self, **kwargs: Any) -> EnrolmentOutcome:
        """`Station.enroll`: the CLI's checks and its one transaction."""
        with self._job:
            return self._station().enroll(**kwargs)
