"""The face path on real photos: detection, quality gates, encoding, identification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from recognizer.face_pipeline import FacePipeline
from recognizer.images import decode_image
from recognizer.matcher import MatchPolicy
from recognizer.quality import QualityPolicy
from recognizer.results import Decision
from recognizer.roster import RosterSnapshot


def load(path: Path) -> np.ndarray:
    return decode_image(path.read_bytes())


@pytest.fixture(scope="module")
def roster(pipeline: FacePipeline, fixtures: Path) -> RosterSnapshot:
    rows = []
    for member, photo in (("obama", "obama_1.jpg"), ("biden", "biden_1.jpg")):
        (obs,) = pipeline.analyze(load(fixtures / photo))
        assert obs.quality.ok and obs.encoding is not None
        rows.append((member, obs.encoding))
    return RosterSnapshot.build(rows)


def test_member_recognised_from_a_different_photo(
    pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path
) -> None:
    result = pipeline.identify(load(fixtures / "obama_2.jpg"), roster, MatchPolicy())
    assert result.decision is Decision.MATCH and result.member_id == "obama"
    assert result.distance is not None and result.distance < 0.55
    assert result.margin is not None and result.margin >= 0.10
    assert {"detect", "landmarks", "quality", "encode", "match", "total"} <= set(result.timings_ms)


def test_stranger_stays_unknown(pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path) -> None:
    result = pipeline.identify(load(fixtures / "eileen_collins.png"), roster, MatchPolicy())
    assert result.decision is Decision.UNKNOWN and result.member_id is None
    assert result.reason in {"over_threshold", "low_margin"} and result.distance is not None


@pytest.mark.parametrize("photo", ["cat.png", "coffee.png"])
def test_no_face(pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path, photo: str) -> None:
    result = pipeline.identify(load(fixtures / photo), roster, MatchPolicy())
    assert result.decision is Decision.NO_FACE and "encode" not in result.timings_ms


def test_blurred_face_is_poor_quality_and_not_encoded(
    pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path
) -> None:
    blurred = cv2.GaussianBlur(load(fixtures / "obama_2.jpg"), (0, 0), 6)
    result = pipeline.identify(blurred, roster, MatchPolicy())
    assert result.decision is Decision.POOR_QUALITY and result.reason == "too_blurry"
    assert "encode" not in result.timings_ms


def test_small_face_is_poor_quality(pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path) -> None:
    img = load(fixtures / "obama_2.jpg")
    tiny = cv2.resize(img, (img.shape[1] // 6, img.shape[0] // 6), interpolation=cv2.INTER_AREA)
    result = pipeline.identify(tiny, roster, MatchPolicy())
    assert result.decision is Decision.POOR_QUALITY and result.reason == "face_too_small"


def test_dark_face_is_poor_quality(pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path) -> None:
    dark = (load(fixtures / "obama_2.jpg") * 0.12).astype(np.uint8)
    result = pipeline.identify(dark, roster, MatchPolicy())
    assert result.decision in (Decision.POOR_QUALITY, Decision.NO_FACE)
    if result.decision is Decision.POOR_QUALITY:
        assert result.reason == "too_dark"


def test_camera_sized_frame_matches_photo_result(
    pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path
) -> None:
    """The same face in a 640x480 frame (the door's view) still matches."""
    img = load(fixtures / "obama_2.jpg")
    top, right, bottom, left = pipeline.detect(img)[0].box
    side = bottom - top
    crop = img[max(0, top - side) : bottom + side, max(0, left - side) : right + side]
    scale = 480 / crop.shape[0]  # the face ends up about 160 px tall, as at a door
    small = cv2.resize(crop, (int(crop.shape[1] * scale), 480), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 80, np.uint8)
    frame[:, : min(640, small.shape[1])] = small[:, :640]
    result = pipeline.identify(frame, roster, MatchPolicy())
    assert result.decision is Decision.MATCH and result.member_id == "obama"


def test_group_photo_decides_on_the_largest_face(
    pipeline: FacePipeline, roster: RosterSnapshot, fixtures: Path
) -> None:
    a = load(fixtures / "obama_1.jpg")  # face ~266 px
    b = cv2.resize(load(fixtures / "eileen_collins.png"), (1024, 1024))  # face ~174 px
    canvas = np.full((a.shape[0], a.shape[1] + 1040, 3), 100, np.uint8)
    canvas[:, : a.shape[1]] = a
    canvas[50:1074, a.shape[1] + 10 : a.shape[1] + 1034] = b
    assert len(pipeline.detect(canvas)) == 2
    result = pipeline.identify(canvas, roster, MatchPolicy())
    assert result.member_id == "obama"


def test_quality_gates_are_configurable(face_model: Any, fixtures: Path) -> None:
    strict = FacePipeline(face_model, quality=QualityPolicy(min_face_px=2000))
    (obs,) = strict.analyze(load(fixtures / "obama_1.jpg"))
    assert obs.quality.reason == "face_too_small" and obs.encoding is None


def test_encoding_is_stable_for_the_same_image(pipeline: FacePipeline, fixtures: Path) -> None:
    img = load(fixtures / "obama_1.jpg")
    (a,) = pipeline.analyze(img)
    (b,) = pipeline.analyze(img.copy())
    assert a.encoding is not None and b.encoding is not None
    assert float(np.linalg.norm(a.encoding - b.encoding)) < 1e-5
