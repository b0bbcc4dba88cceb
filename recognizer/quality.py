"""Face quality gates: is this face good enough to identify (or to enrol)?

A blurry, dark, tiny or turned-away face produces an encoding that sits "somewhere" in the 128-d
space, close to nobody in particular, and at roster scale close enough to *somebody*. Refusing such
faces up front (and telling the installer or the worker why) is cheaper and safer than trusting the
matcher with them. All numbers are plain floats computed from the face crop and dlib's 5-point
landmarks; the thresholds live in `QualityPolicy` and were chosen from measurement (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

#: Side the face crop is resampled to before measuring sharpness, so that the figure does not
#: depend on how large the face happens to be in the frame.
SHARPNESS_SIDE = 128


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    """Thresholds for accepting a face. Reasons are stable words the UI translates."""

    min_face_px: int = 80
    min_sharpness: float = 12.0
    min_brightness: float = 40.0
    max_brightness: float = 230.0
    max_roll_deg: float = 30.0
    max_yaw: float = 0.45


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Measured quality of one face and, if it fails, the first gate it failed."""

    face_px: int
    sharpness: float
    brightness: float
    roll_deg: float
    yaw: float
    landmarks_ok: bool
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, float | int | bool | str | None]:
        return {
            "face_px": self.face_px,
            "sharpness": round(self.sharpness, 2),
            "brightness": round(self.brightness, 1),
            "roll_deg": round(self.roll_deg, 1),
            "yaw": round(self.yaw, 3),
            "landmarks_ok": self.landmarks_ok,
            "reason": self.reason,
        }


def sharpness_of(grey_face: npt.NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the face resampled to a fixed size (higher is sharper)."""
    if grey_face.size == 0:
        return 0.0
    sample = cv2.resize(grey_face, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(sample, cv2.CV_64F).var())


def landmark_geometry(
    landmarks: npt.NDArray[np.float64], box: tuple[int, int, int, int]
) -> tuple[float, float, bool]:
    """(roll in degrees, yaw as a signed ratio, plausible) from dlib's 5-point landmarks.

    The 5-point model gives two corners per eye (points 0-1 one eye, 2-3 the other) and the base
    of the nose (4). Roll is the angle of the eye line. Yaw is how far the nose sits from the
    mid-point of the eyes, in units of the distance between the eyes: about 0 for a frontal face,
    growing towards +-0.5 and beyond as the head turns. Landmarks are implausible when the eye
    distance is not a sensible fraction of the box or points fall far outside it (a detector false
    positive on texture, or a face cut by the frame edge).
    """
    top, right, bottom, left = box
    width = max(1, right - left)
    height = max(1, bottom - top)
    eye_a = landmarks[0:2].mean(axis=0)
    eye_b = landmarks[2:4].mean(axis=0)
    nose = landmarks[4]
    left_eye, right_eye = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    dx, dy = right_eye[0] - left_eye[0], right_eye[1] - left_eye[1]
    eye_dist = math.hypot(dx, dy)
    roll = math.degrees(math.atan2(dy, dx)) if eye_dist > 0 else 90.0
    mid = (left_eye + right_eye) / 2.0
    # Project the nose offset onto the eye line: rotation-invariant horizontal offset.
    yaw = ((nose[0] - mid[0]) * dx + (nose[1] - mid[1]) * dy) / (eye_dist * eye_dist) if eye_dist > 0 else 1.0
    slack_x, slack_y = 0.25 * width, 0.25 * height
    inside = bool(
        np.all(landmarks[:, 0] >= left - slack_x)
        and np.all(landmarks[:, 0] <= right + slack_x)
        and np.all(landmarks[:, 1] >= top - slack_y)
        and np.all(landmarks[:, 1] <= bottom + slack_y)
    )
    nose_below_eyes = bool(((nose - mid) @ np.array([-dy, dx])) > 0) if eye_dist > 0 else False
    plausible = inside and nose_below_eyes and 0.2 * width <= eye_dist <= 0.8 * width
    return roll, float(yaw), plausible


def assess(
    grey_face: npt.NDArray[np.uint8],
    landmarks: npt.NDArray[np.float64],
    box: tuple[int, int, int, int],
    policy: QualityPolicy,
    face_px: int | None = None,
) -> QualityReport:
    """Measure one face and name the first gate it fails (None when it passes them all).

    `face_px` is the face's size in the *source* image when `box` is in a resampled crop.
    """
    top, right, bottom, left = box
    if face_px is None:
        face_px = int(min(right - left, bottom - top))
    sharp = sharpness_of(grey_face)
    bright = float(grey_face.mean()) if grey_face.size else 0.0
    roll, yaw, plausible = landmark_geometry(landmarks, box)
    reason: str | None = None
    if face_px < policy.min_face_px:
        reason = "face_too_small"
    elif not plausible:
        reason = "bad_landmarks"
    elif bright < policy.min_brightness:
        reason = "too_dark"
    elif bright > policy.max_brightness:
        reason = "too_bright"
    elif sharp < policy.min_sharpness:
        reason = "too_blurry"
    elif abs(roll) > policy.max_roll_deg:
        reason = "head_tilted"
    elif abs(yaw) > policy.max_yaw:
        reason = "face_turned"
    return QualityReport(face_px, sharp, bright, roll, yaw, plausible, reason)
