"""Checking enrolment photos before anything is stored.

Enrolment is where a bad template enters the roster and then misleads the door for months, so every
photo must show exactly one good face, the photos of one call must show the same person, only the
best few are kept, and each face is judged against the roster by absolute distances
(`recognizer.duplicates`, numbers from the scoring policy): the same person under a new id is
refused at any roster size; a photo added to a member must be that member 1:1, or the installer
confirms it is; a lookalike of another member is enrolled only when the installer confirms they are
two people, and then both require the pass at the door.

This module is pure: it takes decoded images and a roster snapshot and returns a plan or a list of
refusals. The caller stores the plan in one transaction, so a refused call stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recognizer.duplicates import (
    FATAL,
    LOOKALIKE,
    NEEDS_DIFFERENT_PERSON,
    NEEDS_SAME_PERSON,
    Finding,
    check_new_faces,
    nearest_by_member,
)
from recognizer.face_pipeline import FacePipeline
from recognizer.roster import RosterSnapshot
from recognizer.scoring import ScoringPolicy
from recognizer.templates import SelectionPolicy, TemplateCandidate, TemplateSelection, select_templates


@dataclass(frozen=True, slots=True)
class PhotoCheck:
    """One photo's verdict: an encoding to store, or why it cannot be used."""

    source: str
    encoding: npt.NDArray[np.float32] | None
    quality: dict[str, Any]
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class EnrolmentPlan:
    """What an enrolment call amounts to: the photo checks, the templates kept, the findings.

    `findings` are every `recognizer.duplicates.Finding` of the kept faces; `blocking` those that
    refused the call (with `problems` in words); `lookalikes` member id -> distance of the confirmed
    lookalikes (both they and the enrolled member will require the pass).
    """

    photos: tuple[PhotoCheck, ...]
    findings: tuple[Finding, ...] = ()
    problems: tuple[str, ...] = field(default=())
    selection: TemplateSelection | None = None
    blocking: tuple[Finding, ...] = ()
    lookalikes: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and all(p.problem is None for p in self.photos)

    def all_problems(self) -> list[str]:
        return [f"{p.source}: {p.problem}" for p in self.photos if p.problem] + list(self.problems)

    def kept(self) -> list[PhotoCheck]:
        """The photos whose templates are stored (the best few, see recognizer.templates)."""
        if self.selection is None:
            return [p for p in self.photos if p.encoding is not None]
        keep = set(self.selection.sources)
        return [p for p in self.photos if p.source in keep]


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
    policy: ScoringPolicy,
    same_person_max_distance: float,
    max_templates: int = 3,
    existing_member: bool = False,
    confirm_same_person: bool = False,
    confirm_different_person: bool = False,
) -> EnrolmentPlan:
    """Combine per-photo checks with the cross-photo and cross-member checks.

    Photos that do not show one person are refused (not silently dropped: the installer mixed up
    photos). Of the good ones, the best few are kept (quality and diversity), and each kept face is
    checked by `recognizer.duplicates.check_new_faces`: `same_person` refuses whatever the
    confirmations; a lookalike or possible duplicate needs `confirm_different_person`; a photo
    added to a member that is not certainly them needs `confirm_same_person`.
    """
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
    selection = None
    if good and not problems:
        selection = select_templates(
            [
                TemplateCandidate.from_quality_json(p.source, p.encoding, p.quality)
                for p in good
                if p.encoding is not None
            ],
            SelectionPolicy(max_templates=max_templates, max_spread=same_person_max_distance),
        )
    kept = [p for p in good if selection is None or p.source in set(selection.sources)]
    findings = check_new_faces(
        roster,
        member_id,
        [(p.source, p.encoding) for p in kept if p.encoding is not None],
        policy,
        existing_member=existing_member,
    )
    blocking = [
        f
        for f in findings
        if f.kind in FATAL
        or (f.kind in NEEDS_DIFFERENT_PERSON and not confirm_different_person)
        or (f.kind in NEEDS_SAME_PERSON and not confirm_same_person)
    ]
    for finding in blocking:
        if finding.kind in FATAL:
            advice = "one person, one member id: add the photos to that member instead"
        elif finding.kind in NEEDS_SAME_PERSON:
            advice = "check it is them and confirm (--confirm-same-person), or use another photo"
        else:
            advice = (
                "check they are two different people and confirm (--confirm-different-person); "
                "lookalikes then both need the pass at the door"
            )
        problems.append(f"{finding.describe()}: {advice}")
    lookalikes = nearest_by_member(findings, frozenset({LOOKALIKE})) if not blocking else {}
    return EnrolmentPlan(tuple(photos), findings, tuple(problems), selection, tuple(blocking), lookalikes)
