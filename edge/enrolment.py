"""Checking enrolment photos before anything is stored.

Enrolment is where a bad template enters the roster and then misleads the door for months, so every
photo must show exactly one good face, the photos of one call must show the same person, and a face
that already looks like a *different* member is flagged to the installer with the numbers (on East
Asian faces dlib's distances between distinct people are small, so such "duplicates" are often two
real people who look alike: the installer decides, `--force` records the decision).

This module is pure: it takes decoded images and a roster snapshot and returns a plan or a list of
refusals. The caller stores the plan in one transaction, so a refused call stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recognizer.face_pipeline import FacePipeline
from recognizer.matcher import as_query, best_two
from recognizer.roster import RosterSnapshot


@dataclass(frozen=True, slots=True)
class PhotoCheck:
    """One photo's verdict: an encoding to store, or why it cannot be used."""

    source: str
    encoding: npt.NDArray[np.float32] | None
    quality: dict[str, Any]
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Lookalike:
    """A different member this face is close to (the numbers go to the installer)."""

    source: str
    member_id: str
    distance: float

    def describe(self) -> str:
        return f"{self.source}: looks like existing member {self.member_id!r} (distance {self.distance:.3f})"


@dataclass(frozen=True, slots=True)
class EnrolmentPlan:
    photos: tuple[PhotoCheck, ...]
    lookalikes: tuple[Lookalike, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and all(p.problem is None for p in self.photos)

    def all_problems(self) -> list[str]:
        return [f"{p.source}: {p.problem}" for p in self.photos if p.problem] + list(self.problems)


QUALITY_MESSAGES = {
    "face_too_small": "the face is too small (move closer or use a larger photo)",
    "too_blurry": "the face is too blurry",
    "too_dark": "the face is too dark",
    "too_bright": "the face is over-exposed",
    "head_tilted": "the head is tilted too far",
    "face_turned": "the face is turned away from the camera",
    "bad_landmarks": "the face could not be located reliably (eyes and nose not found)",
}


def check_photo(pipeline: FacePipeline, source: str, rgb: npt.NDArray[np.uint8]) -> PhotoCheck:
    """Exactly one good face, encoded; otherwise the reason in words an installer understands."""
    observations = pipeline.analyze(rgb)
    # A detector hit whose landmarks make no sense is texture, not a face: do not count it.
    faces = [o for o in observations if o.quality.landmarks_ok or o.quality.reason == "face_too_small"]
    if not faces:
        return PhotoCheck(source, None, {}, "no face found")
    if len(faces) > 1:
        return PhotoCheck(
            source, None, {}, f"{len(faces)} faces found: use a photo showing only the person being enrolled"
        )
    face = faces[0]
    quality = face.quality.to_json()
    if face.quality.reason is not None or face.encoding is None:
        reason = face.quality.reason or "bad_landmarks"
        return PhotoCheck(source, None, quality, QUALITY_MESSAGES.get(reason, reason))
    return PhotoCheck(source, face.encoding, quality)


def plan_enrolment(
    member_id: str,
    photos: list[PhotoCheck],
    roster: RosterSnapshot,
    *,
    duplicate_threshold: float,
    same_person_max_distance: float,
    force: bool = False,
) -> EnrolmentPlan:
    """Combine per-photo checks with the cross-photo and cross-member checks."""
    problems: list[str] = []
    good = [p for p in photos if p.encoding is not None]
    for i, first in enumerate(good):
        for second in good[i + 1 :]:
            assert first.encoding is not None and second.encoding is not None
            distance = float(np.linalg.norm(first.encoding - second.encoding))
            if distance > same_person_max_distance:
                problems.append(
                    f"{first.source} and {second.source} do not look like the same person "
                    f"(distance {distance:.3f} > {same_person_max_distance})"
                )
    lookalikes = _lookalikes(member_id, good, roster, duplicate_threshold)
    if lookalikes and not force:
        problems.extend(
            f"{look.describe()}: possible duplicate enrolment; check it is a different person and "
            "use --force to enrol anyway"
            for look in lookalikes
        )
    return EnrolmentPlan(tuple(photos), tuple(lookalikes), tuple(problems))


def _lookalikes(
    member_id: str, photos: list[PhotoCheck], roster: RosterSnapshot, threshold: float
) -> list[Lookalike]:
    others = RosterSnapshot.build(
        (owner, row) for owner, row in zip(roster.owners, roster.templates, strict=True) if owner != member_id
    )
    found: list[Lookalike] = []
    for photo in photos:
        assert photo.encoding is not None
        nearest, distance, _, _ = best_two(others, as_query(photo.encoding))
        if nearest is not None and distance is not None and distance <= threshold:
            found.append(Lookalike(photo.source, nearest, distance))
    return found
