"""Door-camera "frames" of a face made from one photo: the proxy for several frames of one appearance.

The door judges an appearance on several encoded frames, but a labelled photo set has one photo per
look. To measure (and calibrate) that rule, each probe photo is turned into a handful of frames the
way a door camera would see the same person in the same moment: a slightly different crop and
distance (the face 80-160 px wide, as at 0.5-1.2 m from a 640x480 camera), a small head roll,
brighter or darker, a little blur, and MJPEG-like JPEG re-compression. The perturbations are
deterministic per (photo, face, frame) so reruns and caches agree.

It is a proxy, and an optimistic one in one respect: real frames of one appearance also differ in
pose and expression, which these do not; and a pessimistic one in another: consecutive real frames
are nearly identical, while these vary more than a second at the door would. docs/RECOGNITION.md
says so next to every figure measured with it. Pure: arrays in, arrays out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # top, right, bottom, left


@dataclass(frozen=True, slots=True)
class PerturbRanges:
    """The ranges each frame's parameters are drawn from (uniformly)."""

    face_px: tuple[float, float] = (80.0, 160.0)  # face box width in the frame
    context: tuple[float, float] = (2.2, 2.8)  # frame side / face side
    shift: float = 0.08  # centre jitter, fraction of the face side
    roll_deg: float = 6.0
    gain: tuple[float, float] = (0.75, 1.25)
    offset: float = 15.0
    blur_sigma: tuple[float, float] = (0.0, 0.8)
    jpeg_quality: tuple[int, int] = (35, 85)


@dataclass(frozen=True, slots=True)
class FrameParams:
    face_px: float
    context: float
    shift_x: float
    shift_y: float
    roll_deg: float
    gain: float
    offset: float
    blur_sigma: float
    jpeg_quality: int

    def to_json(self) -> dict[str, float]:
        return {
            "face_px": round(self.face_px, 1),
            "context": round(self.context, 2),
            "shift_x": round(self.shift_x, 3),
            "shift_y": round(self.shift_y, 3),
            "roll_deg": round(self.roll_deg, 2),
            "gain": round(self.gain, 3),
            "offset": round(self.offset, 1),
            "blur_sigma": round(self.blur_sigma, 2),
            "jpeg_quality": self.jpeg_quality,
        }


def frame_params(key: str, index: int, ranges: PerturbRanges | None = None) -> FrameParams:
    """The parameters of frame `index` of the photo/face named `key` (deterministic)."""
    ranges = ranges or PerturbRanges()
    seed = int.from_bytes(hashlib.sha256(f"{key}#{index}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return FrameParams(
        face_px=float(rng.uniform(*ranges.face_px)),
        context=float(rng.uniform(*ranges.context)),
        shift_x=float(rng.uniform(-ranges.shift, ranges.shift)),
        shift_y=float(rng.uniform(-ranges.shift, ranges.shift)),
        roll_deg=float(rng.uniform(-ranges.roll_deg, ranges.roll_deg)),
        gain=float(rng.uniform(*ranges.gain)),
        offset=float(rng.uniform(-ranges.offset, ranges.offset)),
        blur_sigma=float(rng.uniform(*ranges.blur_sigma)),
        jpeg_quality=int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1)),
    )


def door_frame(rgb: npt.NDArray[np.uint8], box: Box, params: FrameParams) -> npt.NDArray[np.uint8]:
    """The face at `box` of `rgb` as one door-camera frame under `params` (RGB uint8)."""
    top, right, bottom, left = box
    side = float(max(right - left, bottom - top, 1))
    centre_x = (left + right) / 2.0 + params.shift_x * side
    centre_y = (top + bottom) / 2.0 + params.shift_y * side
    out_side = max(16, int(round(params.face_px * params.context)))
    scale = params.face_px / side
    # One similarity transform: rotate about the face centre, scale, and put that centre mid-frame.
    # Large reductions go through INTER_AREA first (a warp alone would alias like no camera does).
    source = rgb
    if scale < 0.5:
        pre = max(scale * 2.0, 1e-3)
        size = (max(1, round(rgb.shape[1] * pre)), max(1, round(rgb.shape[0] * pre)))
        source = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
        centre_x, centre_y, scale = centre_x * pre, centre_y * pre, scale / pre
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), params.roll_deg, scale)
    matrix[0, 2] += out_side / 2.0 - centre_x
    matrix[1, 2] += out_side / 2.0 - centre_y
    frame = cv2.warpAffine(
        source,
        matrix,
        (out_side, out_side),
        flags=cv2.INTER_LINEAR if scale >= 1.0 else cv2.INTER_AREA,
        borderMode=cv2.BORDER_REFLECT101,
    )
    light = frame.astype(np.float32) * params.gain + params.offset
    frame = np.clip(light, 0, 255).astype(np.uint8)
    if params.blur_sigma > 0.05:
        frame = cv2.GaussianBlur(frame, (0, 0), params.blur_sigma)
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality]
    )
    if not ok:  # pragma: no cover - OpenCV's JPEG encoder does not fail on a valid array
        raise ValueError("JPEG encoding failed")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover - it decodes what it just encoded
        raise ValueError("JPEG decoding failed")
    return np.ascontiguousarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)
