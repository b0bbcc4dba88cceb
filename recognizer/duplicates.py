"""Enrolment that cannot be poisoned: is a new face someone already enrolled, and is an added photo
really the member's? Judged photo against template with the policy's enrolment distances.

A face under a *new* id, against every existing member (the nearest few):
- `same_person` (distance <= same_person_distance): the door would take this face for that member
  (no two distinct people of our data came that close). Refused, always: one person, one id.
- `lookalike` (<= lookalike_distance): rarely this close for two different people. Refused unless
  the installer confirms they are two people; then both members require the pass at the door.
- `possible_duplicate` (<= review_distance): most photo pairs of one person are this close, a few
  pairs of different people too. Refused unless the installer confirms they are two people.
Photos *added* to an existing member, against that member's own templates (1:1):
- `unconfirmed_same_person` (distance > same_person_distance): not certainly the same person;
  refused with the numbers unless the installer confirms it is.
- and against the *other* members, `same_person` (refused always) and `lookalike` (confirm; then
  both require the pass), as above.
Distances do not depend on the roster size: one member on the roster is judged like a thousand.
Pure: a roster snapshot and encodings in, findings out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recognizer.matcher import as_query, nearest_members, squared_distances
from recognizer.roster import RosterSnapshot
from recognizer.scoring import ScoringPolicy, check_model, without_member

SAME_PERSON: Final = "same_person"
LOOKALIKE: Final = "lookalike"
POSSIBLE_DUPLICATE: Final = "possible_duplicate"
UNCONFIRMED_SAME_PERSON: Final = "unconfirmed_same_person"

#: Findings that no confirmation overrides.
FATAL: Final = frozenset({SAME_PERSON})
#: Findings an installer's confirmation overrides: that they are different people...
NEEDS_DIFFERENT_PERSON: Final = frozenset({LOOKALIKE, POSSIBLE_DUPLICATE})
#: ... or that the added photo is the member's.
NEEDS_SAME_PERSON: Final = frozenset({UNCONFIRMED_SAME_PERSON})

#: How many of the nearest other members are examined for each face.
CANDIDATES: Final = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """A face and an existing member it matters to, with the numbers for the installer."""

    source: str
    member_id: str
    kind: str
    distance: float
    limit: float
    policy: str

    def describe(self) -> str:
        what = {
            SAME_PERSON: "is the same person for the door as",
            LOOKALIKE: "is a lookalike of",
            POSSIBLE_DUPLICATE: "may be the same person as",
            UNCONFIRMED_SAME_PERSON: "is not certainly the same person as",
        }[self.kind]
        relation = ">" if self.kind == UNCONFIRMED_SAME_PERSON else "<="
        return (
            f"{self.source}: {what} member {self.member_id!r} "
            f"(distance {self.distance:.3f} {relation} {self.limit:.3f}, policy {self.policy})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "member_id": self.member_id,
            "kind": self.kind,
            "distance": round(self.distance, 4),
            "limit": round(self.limit, 4),
            "policy": self.policy,
        }


def _nearest_others(others: RosterSnapshot, encoding: npt.ArrayLike) -> list[tuple[str, float]]:
    if others.size == 0:
        return []
    query = as_query(encoding, others.dim)
    positions, distances = nearest_members(others, squared_distances(others, query), CANDIDATES)
    return [(others.member_ids[int(p)], float(d)) for p, d in zip(positions, distances, strict=True)]


def check_new_faces(
    snapshot: RosterSnapshot,
    member_id: str,
    faces: Sequence[tuple[str, npt.ArrayLike]],
    policy: ScoringPolicy,
    *,
    existing_member: bool,
) -> tuple[Finding, ...]:
    """Every finding for `faces` (source, encoding) about to be enrolled for `member_id`.

    `existing_member`: photos added to a member already enrolled (checked 1:1 against their own
    templates, and only for same_person / lookalike against the others) rather than a new id.
    """
    check_model(snapshot, policy)
    others = without_member(snapshot, member_id)
    own_rows = (
        snapshot.templates[snapshot.owner_index == snapshot.position_of(member_id)]
        if (existing_member and snapshot.position_of(member_id) is not None)
        else np.zeros((0, snapshot.dim), dtype=np.float32)
    )
    findings: list[Finding] = []
    for source, encoding in faces:
        query = as_query(encoding, snapshot.dim)
        if own_rows.shape[0]:
            own = float(np.sqrt(np.min(np.sum((own_rows - query) ** 2, axis=1))))
            if own > policy.same_person_distance:
                findings.append(
                    Finding(
                        source,
                        member_id,
                        UNCONFIRMED_SAME_PERSON,
                        own,
                        policy.same_person_distance,
                        policy.name,
                    )
                )
        for other, distance in _nearest_others(others, query):
            if distance <= policy.same_person_distance:
                kind, limit = SAME_PERSON, policy.same_person_distance
            elif distance <= policy.lookalike_distance:
                kind, limit = LOOKALIKE, policy.lookalike_distance
            elif distance <= policy.review_distance and not existing_member:
                kind, limit = POSSIBLE_DUPLICATE, policy.review_distance
            else:
                continue
            findings.append(Finding(source, other, kind, distance, limit, policy.name))
    return tuple(findings)


def nearest_by_member(findings: Sequence[Finding], kinds: frozenset[str]) -> dict[str, float]:
    """member id -> the smallest distance among `findings` of `kinds` naming them."""
    out: dict[str, float] = {}
    for finding in findings:
        if finding.kind in kinds:
            out[finding.member_id] = min(out.get(finding.member_id, 9.0), finding.distance)
    return out
