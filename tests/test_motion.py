"""The change / brightness check, on frames decoded from real MJPG video files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.motion import ChangeDetector

SIZE = (320, 240)


def write_and_read(path: Path, *, moving: bool, frames: int = 20) -> list[np.ndarray]:
    """Write an MJPG .avi (a square 80 px wide, moving 8 px per frame or still), decode it back."""
    width, height = SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, SIZE)
    assert writer.isOpened()
    for index in range(frames):
        image = np.full((height, width, 3), 90, np.uint8)
        x = 20 + index * 8 if moving else 100
        cv2.rectangle(image, (x, 60), (x + 80, 140), (30, 200, 240), -1)
        writer.write(image)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    decoded: list[np.ndarray] = []
    while True:
        ok, raw = capture.read()
        if not ok:
            break
        decoded.append(np.asarray(raw, np.uint8))
    capture.release()
    assert len(decoded) == frames
    return decoded


def test_first_frame_counts_as_changed() -> None:
    result = ChangeDetector().update(np.full((240, 320, 3), 100, np.uint8))
    assert result.changed and result.score == 1.0


def test_still_video_is_unchanged(tmp_path: Path) -> None:
    detector = ChangeDetector()
    results = [detector.update(frame) for frame in write_and_read(tmp_path / "still.avi", moving=False)]
    assert results[0].changed
    assert not any(r.changed for r in results[1:])
    assert max(r.score for r in results[1:]) < 0.001


def test_moving_object_is_changed(tmp_path: Path) -> None:
    detector = ChangeDetector()
    results = [detector.update(frame) for frame in write_and_read(tmp_path / "moving.avi", moving=True)]
    assert all(r.changed for r in results)
    assert min(r.score for r in results[1:]) > 0.01


def test_sensor_noise_is_not_change(tmp_path: Path) -> None:
    base = write_and_read(tmp_path / "still.avi", moving=False, frames=1)[0].astype(np.int16)
    rng = np.random.default_rng(7)
    detector = ChangeDetector()
    detector.update(base.astype(np.uint8))
    for _ in range(10):
        noisy = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        assert not detector.update(noisy).changed


def test_brightness() -> None:
    detector = ChangeDetector()
    assert detector.update(np.zeros((480, 640, 3), np.uint8)).brightness == pytest.approx(0.0)
    white = detector.update(np.full((480, 640, 3), 255, np.uint8))
    assert white.brightness == pytest.approx(255.0, abs=0.5)
    assert white.changed  # black to white is a change
    grey = ChangeDetector().update(np.full((100, 100), 128, np.uint8))  # grey input is accepted
    assert grey.brightness == pytest.approx(128.0, abs=0.5)


def test_new_size_and_reset_count_as_changed() -> None:
    detector = ChangeDetector()
    frame = np.full((240, 320, 3), 50, np.uint8)
    detector.update(frame)
    assert not detector.update(frame).changed
    assert detector.update(np.full((480, 640, 3), 50, np.uint8)).changed  # camera reconnected at another size
    detector.reset()
    assert detector.update(frame).changed


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        ChangeDetector(threshold=-1)
    with pytest.raises(ValueError):
        ChangeDetector(min_area_fraction=2)
    with pytest.raises(ValueError):
        ChangeDetector(sample_width=4)
    with pytest.raises(ValueError):
        ChangeDetector().update(np.zeros((0, 10, 3), np.uint8))
