"""A cheap per-frame change and brightness check, so face detection runs only when it can help.

HOG face detection costs ~33 ms per 640x480 frame here and encoding ~100 ms; an empty corridor at
night should cost neither. This check runs on every frame in well under a millisecond: it compares
a small blurred grey thumbnail with the previous frame's and measures the mean grey level (the
daemon skips detection in darkness and reports "too dark" instead of "no face").

It compares consecutive frames, not a learned background: a light slowly dimming does not count
as change, and neither does a person standing perfectly still. The daemon should therefore still
run detection now and then (every second or so) while nothing moves, and not treat "unchanged" as
"nobody there".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ChangeResult:
    """`changed`: enough of the picture moved (always True for the first frame or a new size).
    `score`: the fraction of thumbnail pixels whose grey level changed by more than the threshold.
    `brightness`: mean grey level, 0 (black) to 255 (white)."""

    changed: bool
    score: float
    brightness: float


class ChangeDetector:
    """Frame-to-frame change on a `sample_width`-wide grey thumbnail.

    `threshold` is the grey-level difference (0..255) a thumbnail pixel must exceed to count as
    changed, above sensor noise and JPEG flicker; `min_area_fraction` is the share of pixels that
    must change (0.01 of a 160x120 thumbnail is ~190 pixels, a hand-sized patch at the door).
    Not thread-safe: one detector per frame stream.
    """

    def __init__(
        self, threshold: float = 8.0, min_area_fraction: float = 0.01, sample_width: int = 160
    ) -> None:
        if not 0.0 <= threshold < 255.0:
            raise ValueError("threshold must be in [0, 255)")
        if not 0.0 <= min_area_fraction <= 1.0:
            raise ValueError("min_area_fraction must be in [0, 1]")
        if not 16 <= sample_width <= 4096:
            raise ValueError("sample_width must be in [16, 4096]")
        self.threshold = threshold
        self.min_area_fraction = min_area_fraction
        self.sample_width = sample_width
        self._previous: npt.NDArray[np.uint8] | None = None
        self._previous_shape: tuple[int, ...] = ()

    def reset(self) -> None:
        """Forget the previous frame (after a camera reconnect): the next frame counts as changed."""
        self._previous = None

    def update(self, bgr: npt.NDArray[np.uint8]) -> ChangeResult:
        """Compare `bgr` (H x W x 3 BGR, or H x W grey, uint8) with the previous frame."""
        sample = self._sample(bgr)
        brightness = float(sample.mean())
        previous, self._previous = self._previous, sample
        same_source = bgr.shape == self._previous_shape
        self._previous_shape = bgr.shape
        if previous is None or not same_source:  # first frame, or a camera back at another size
            return ChangeResult(changed=True, score=1.0, brightness=brightness)
        diff = cv2.absdiff(sample, previous)
        score = float(np.count_nonzero(diff > self.threshold)) / float(diff.size)
        return ChangeResult(changed=score >= self.min_area_fraction, score=score, brightness=brightness)

    def _sample(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"expected an H x W (x 3) image, got shape {image.shape}")
        height, width = image.shape[:2]
        if width > self.sample_width:
            size = (self.sample_width, max(1, round(height * self.sample_width / width)))
            # INTER_AREA averages, which also suppresses per-pixel sensor noise.
            image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        if image.ndim == 3:
            image = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        return np.asarray(cv2.GaussianBlur(image, (5, 5), 0), dtype=np.uint8)
