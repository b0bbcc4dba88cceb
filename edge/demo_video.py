"""A door-camera video made from the fixture photos, for the demo and the end-to-end tests.

People "approach" (their face grows from far to near over about a second), stand at the door, and
leave; a QR code is held up on a card. The video is written at demo time, not committed: the QR
codes in it must be signed by the demo station's own key, and the White House photos' notice asks
that the originals are not altered (the video only scales and places them on a plain background).
OpenCV writes MJPG .avi, which its FFmpeg build reads back everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

FRAME_W, FRAME_H = 640, 480
BACKGROUND = (96, 104, 110)  # BGR: a grey door frame, not a flat colour the detector loves


@dataclass(frozen=True, slots=True)
class Scene:
    """One thing happening in front of the camera."""

    kind: str  # "face" | "qr" | "empty"
    image: npt.NDArray[np.uint8] | None  # BGR
    seconds: float
    label: str = ""
    #: Held still at a known size (pixels tall, e.g. a phone at a measured distance) instead of
    #: approaching; None: the approach of a person or a card.
    height: int | None = None


def face_crop(
    rgb: npt.NDArray[np.uint8], box: tuple[int, int, int, int], margin: float = 0.9
) -> npt.NDArray[np.uint8]:
    """A head-and-shoulders crop (BGR) around a (top, right, bottom, left) face box."""
    top, right, bottom, left = box
    side = max(right - left, bottom - top)
    pad = int(side * margin)
    h, w = rgb.shape[:2]
    crop = rgb[max(0, top - pad) : min(h, bottom + pad), max(0, left - pad) : min(w, right + pad)]
    return np.ascontiguousarray(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))


def _background(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    frame = np.empty((FRAME_H, FRAME_W, 3), np.uint8)
    frame[:] = BACKGROUND
    noise = rng.integers(-3, 4, size=frame.shape, dtype=np.int16)
    return np.asarray(np.clip(frame.astype(np.int16) + noise, 0, 255), np.uint8)


def _place(frame: npt.NDArray[np.uint8], item: npt.NDArray[np.uint8], height: int) -> None:
    scale = height / item.shape[0]
    width = max(1, int(item.shape[1] * scale))
    if width > FRAME_W:
        scale = FRAME_W / item.shape[1]
        width, height = FRAME_W, max(1, int(item.shape[0] * scale))
    resized = cv2.resize(
        item, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    y = max(0, (FRAME_H - height) // 2)
    x = max(0, (FRAME_W - width) // 2)
    frame[y : y + height, x : x + width] = resized[: FRAME_H - y, : FRAME_W - x]


def render_scene(scene: Scene, fps: float, rng: np.random.Generator) -> Iterator[npt.NDArray[np.uint8]]:
    frames = max(1, round(scene.seconds * fps))
    approach = min(frames // 3, round(fps))  # about a second walking up
    for i in range(frames):
        frame = _background(rng)
        if scene.image is not None and scene.height is not None:
            _place(frame, scene.image, scene.height)
        elif scene.image is not None:
            near = 440 if scene.kind == "face" else 300
            progress = min(1.0, (i + 1) / max(1, approach))
            _place(frame, scene.image, int(near * (0.45 + 0.55 * progress)))
        yield frame


def write_video(path: Path, scenes: Sequence[Scene], fps: float = 15.0, seed: int = 7) -> tuple[int, float]:
    """Write the scenes to `path` (MJPG .avi). Returns (frames written, duration in seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {tmp} (MJPG)")
    rng = np.random.default_rng(seed)
    count = 0
    try:
        for scene in scenes:
            for frame in render_scene(scene, fps, rng):
                writer.write(frame)
                count += 1
    finally:
        writer.release()
    tmp.replace(path)
    return count, count / fps


def qr_card(qr_grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A QR image on a white card with a border, as a phone screen or printed card shows it."""
    card = cv2.copyMakeBorder(qr_grey, 24, 24, 24, 24, cv2.BORDER_CONSTANT, value=255)
    return np.ascontiguousarray(cv2.cvtColor(card, cv2.COLOR_GRAY2BGR))
