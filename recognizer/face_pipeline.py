"""From an RGB image to a face decision: detect, check quality, encode, match.

Speed comes from doing each expensive thing once and on no more pixels than it needs:
- detection runs on a grey copy scaled so its longest side is `detect_max_side` (HOG cost grows
  with pixels; a door camera's faces are large; grey skips dlib's per-channel gradients, -25 %),
  at upsample 0 unless the image is already small (tight crops, where upsampling is what finds the
  face at all). At the door's default of 400 a face needs to be about 105 px wide in a 640-wide
  frame (within about 0.8 m of a typical door camera); when that pass finds nothing, a second one
  at 640 finds faces down to ~80 px; enrolment photos use a larger size;
- the encoder works on a crop around the face, resampled so the face is at most `encode_face_px`
  wide: dlib's encoder looks at a 150x150 chip anyway, so a 2000-pixel face only costs time;
- only the face the decision is about is encoded (the largest one at the door), and only after it
  passed the quality gates.
The naive `face_recognition.face_encodings(frame)` does none of this (see bench/recognition.py).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from recognizer.encoder import Box, Detection, FaceModel
from recognizer.matcher import MatchPolicy, match
from recognizer.quality import QualityPolicy, QualityReport, assess
from recognizer.results import Decision, FaceResult
from recognizer.roster import RosterSnapshot
from recognizer.scoring import ACCEPT, PENDING, SHOW_PASS, ScoringPolicy, score


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """How to look for faces; defaults chosen from measurement (docs/BENCHMARKS.md)."""

    detect_max_side: int = 400
    fallback_max_side: int = 640  # second pass when the first finds nothing (0: none)
    upsample: int = 0
    small_image_side: int = 400  # images this small (tight crops) are searched with upsample + 1
    encode_face_px: int = 200
    jitters: int = 1
    # HOG's own confidence. Textured patches (a suit's fabric, a poster) come out at 0.0-0.05 with
    # plausible landmarks; the weakest real face in our data set scored 0.12 (median ~1.9).
    min_score: float = 0.1

    def __post_init__(self) -> None:
        if self.detect_max_side < 160:
            raise ValueError("detect_max_side must be at least 160")
        if not 0 <= self.upsample <= 2:
            raise ValueError("upsample must be 0, 1 or 2")


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """One detected face: where, how good, and (if asked for and good enough) its encoding."""

    box: Box
    score: float
    quality: QualityReport
    encoding: npt.NDArray[np.float32] | None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def area(self) -> int:
        top, right, bottom, left = self.box
        return (bottom - top) * (right - left)


def _scale_box(box: Box, factor: float, width: int, height: int) -> Box:
    """A (top, right, bottom, left) box scaled by `factor` and clipped to a width x height image."""
    top, right, bottom, left = box
    return (
        max(0, round(top * factor)),
        min(width, round(right * factor)),
        min(height, round(bottom * factor)),
        max(0, round(left * factor)),
    )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class FacePipeline:
    """Stateless apart from the loaded model: safe to share between threads that do not overlap."""

    def __init__(
        self,
        model: FaceModel,
        detection: DetectionSettings | None = None,
        quality: QualityPolicy | None = None,
    ) -> None:
        self.model = model
        self.detection = detection or DetectionSettings()
        self.quality_policy = quality or QualityPolicy()

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        """Faces in `rgb`, boxes in `rgb`'s own pixel coordinates, largest first.

        A fast pass at `detect_max_side`; if it finds nothing and the image is larger than that,
        one more pass at `fallback_max_side` for faces further away (costs only on faceless frames,
        which the door loop rarely examines: it detects on change).
        """
        grey = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.uint8) if rgb.ndim == 3 else rgb
        found = self._detect_at(grey, self.detection.detect_max_side)
        longest = max(grey.shape[:2])
        fallback = self.detection.fallback_max_side
        if (
            not found
            and fallback > self.detection.detect_max_side
            and longest > self.detection.detect_max_side
        ):
            found = self._detect_at(grey, fallback)
        return sorted(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[1] - d.box[3]), reverse=True)

    def _detect_at(self, grey: npt.NDArray[np.uint8], max_side: int) -> list[Detection]:
        height, width = grey.shape[:2]
        longest = max(height, width)
        scale = min(1.0, max_side / longest)
        small = grey
        if scale < 1.0:
            size = (round(width * scale), round(height * scale))
            small = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), np.uint8)
        upsample = self.detection.upsample
        if longest <= self.detection.small_image_side:
            upsample += 1
        found = [d for d in self.model.detect(small, upsample) if d.score >= self.detection.min_score]
        if scale < 1.0:
            found = [Detection(_scale_box(d.box, 1.0 / scale, width, height), d.score) for d in found]
        return found

    def observe(
        self, rgb: npt.NDArray[np.uint8], detection: Detection, *, encode: bool = True
    ) -> FaceObservation:
        """Landmarks and quality for one detection; the encoding only when quality passes."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        crop, offset, factor = self._face_region(rgb, detection.box)
        top, right, bottom, left = detection.box
        oy, ox = offset
        local_box = (
            int((top - oy) * factor),
            int((right - ox) * factor),
            int((bottom - oy) * factor),
            int((left - ox) * factor),
        )
        shape = self.model.shape(crop, local_box)
        points_local = self.model.points(shape)
        timings["landmarks"] = _ms(start)
        start = time.perf_counter()
        lt, lr, lb, ll = local_box
        grey = np.asarray(cv2.cvtColor(crop[max(lt, 0) : lb, max(ll, 0) : lr], cv2.COLOR_RGB2GRAY), np.uint8)
        # Size is judged in the source image's pixels, not the resampled crop's.
        face_px = min(right - left, bottom - top)
        report = assess(grey, points_local, local_box, self.quality_policy, face_px=face_px)
        timings["quality"] = _ms(start)
        encoding = None
        if encode and report.ok:
            start = time.perf_counter()
            encoding = self.model.encode(crop, shape, self.detection.jitters)
            timings["encode"] = _ms(start)
        return FaceObservation(detection.box, detection.score, report, encoding, timings)

    def _face_region(
        self, rgb: npt.NDArray[np.uint8], box: Box
    ) -> tuple[npt.NDArray[np.uint8], tuple[int, int], float]:
        """A crop around the face with room for dlib's chip padding, shrunk if the face is large.

        Returns (crop, (y, x) offset of the crop in `rgb`, scale factor applied to the crop).
        """
        top, right, bottom, left = box
        height, width = rgb.shape[:2]
        side = max(right - left, bottom - top)
        pad = int(side * 0.6)
        y0, y1 = max(0, top - pad), min(height, bottom + pad)
        x0, x1 = max(0, left - pad), min(width, right + pad)
        crop = rgb[y0:y1, x0:x1]
        factor = min(1.0, self.detection.encode_face_px / max(side, 1))
        if factor < 1.0:
            crop = np.asarray(
                cv2.resize(
                    crop,
                    (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))),
                    interpolation=cv2.INTER_AREA,
                ),
                np.uint8,
            )
        return np.ascontiguousarray(crop), (y0, x0), factor

    def analyze(self, rgb: npt.NDArray[np.uint8], *, encode: bool = True) -> list[FaceObservation]:
        """Every face in the image, observed (enrolment wants them all to count and check)."""
        return [self.observe(rgb, d, encode=encode) for d in self.detect(rgb)]

    def decide_frames(
        self,
        encodings: Sequence[npt.NDArray[np.float32]],
        box: Box | None,
        snapshot: RosterSnapshot,
        policy: ScoringPolicy,
        timings: dict[str, float] | None = None,
        *,
        requires_pass: Collection[str] = (),
    ) -> FaceResult:
        """Judge the encodings of one appearance together (`recognizer.scoring.score`)."""
        timings = {} if timings is None else timings
        start = time.perf_counter()
        scored = score(snapshot, list(encodings), policy, requires_pass=requires_pass)
        timings["match"] = _ms(start)
        decision = {
            ACCEPT: Decision.MATCH,
            SHOW_PASS: Decision.SHOW_PASS,
            PENDING: Decision.PENDING,
        }.get(scored.zone, Decision.UNKNOWN)
        return FaceResult(
            decision,
            member_id=scored.member_id,
            distance=scored.distance,
            margin=scored.margin,
            reason=scored.reason if decision is not Decision.SHOW_PASS else scored.gate,
            runner_up_id=scored.runner_up_id,
            box=box,
            timings_ms=timings,
            scores=scored.to_json(),
        )

    def identify(
        self, rgb: npt.NDArray[np.uint8], snapshot: RosterSnapshot, policy: MatchPolicy | ScoringPolicy
    ) -> FaceResult:
        """Decide on the largest (nearest) face in `rgb` against `snapshot`.

        One photo is one frame: a `ScoringPolicy` is applied with `min_frames` 1 (the door itself
        waits for `min_frames` agreeing frames of an appearance)."""
        if isinstance(policy, ScoringPolicy):
            policy = policy.for_one_photo()
        total = time.perf_counter()
        timings: dict[str, float] = {}
        start = time.perf_counter()
        detections = self.detect(rgb)
        timings["detect"] = _ms(start)
        if not detections:
            timings["total"] = _ms(total)
            return FaceResult(Decision.NO_FACE, reason="no_face", timings_ms=timings)
        observation = self.observe(rgb, detections[0])
        timings.update(observation.timings_ms)
        return self.decide(observation, snapshot, policy, timings, total)

    def decide(
        self,
        observation: FaceObservation,
        snapshot: RosterSnapshot,
        policy: MatchPolicy | ScoringPolicy,
        timings: dict[str, float] | None = None,
        started: float | None = None,
    ) -> FaceResult:
        """Match an observed face (the door loop detects and tracks first, then calls this)."""
        timings = dict(observation.timings_ms) if timings is None else timings
        if observation.encoding is None:
            if started is not None:
                timings["total"] = _ms(started)
            return FaceResult(
                Decision.POOR_QUALITY,
                reason=observation.quality.reason,
                box=observation.box,
                timings_ms=timings,
            )
        start = time.perf_counter()
        if isinstance(policy, ScoringPolicy):
            result = self.decide_frames([observation.encoding], observation.box, snapshot, policy, timings)
            if started is not None:
                timings["total"] = _ms(started)
            return result
        outcome = match(snapshot, observation.encoding, policy)
        timings["match"] = _ms(start)
        if started is not None:
            timings["total"] = _ms(started)
        return FaceResult(
            Decision.MATCH if outcome.accepted else Decision.UNKNOWN,
            member_id=outcome.nearest_id if outcome.accepted else None,
            distance=outcome.distance,
            margin=outcome.margin,
            reason=outcome.reason,
            runner_up_id=outcome.runner_up_id,
            box=observation.box,
            timings_ms=timings,
        )
