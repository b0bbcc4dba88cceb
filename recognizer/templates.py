"""Choosing the few templates a member is enrolled with, from several photos or a burst of frames.

Why a few and not one: a single photo is one pose, one light, one day; on our data set enrolling up
to three photos per member instead of one lifts true accepts at zero false accepts (figures in
docs/RECOGNITION.md). Why not all of them: a burst of frames from the door camera is a dozen
near-identical faces; they add rows (1:N cost) and nothing else. So the rule is, in order:

1. Only faces that passed the quality gates are candidates (the caller filters them).
2. Same person: the medoid of the candidates (the one with the smallest total distance to the
   others) stands for the person; a candidate further than `max_spread` from it is someone else
   caught in the burst (or the wrong photo) and is rejected with that distance.
3. Best first: each candidate gets a quality score in [0, 1] from its measured quality (frontal
   pose counts most for dlib, then sharpness, size and light); the best one is kept.
4. Then greedily the candidate with the highest `quality + diversity_weight * spread`, where
   spread is its distance to the nearest template already kept (capped at `diversity_scale`);
   candidates closer than `min_spacing` to a kept one are near-duplicates and rejected.

Every kept and rejected candidate carries the numbers it was judged on. Pure: no I/O, no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recognizer.quality import QualityReport

FloatVector = npt.NDArray[np.float32]

# Rejection reasons (stable words).
NOT_SAME_PERSON = "not_same_person"
NEAR_DUPLICATE = "near_duplicate"
ENOUGH_TEMPLATES = "enough_templates"


@dataclass(frozen=True, slots=True)
class TemplateCandidate:
    """One encoded face that passed the quality gates, with the quality numbers measured on it."""

    source: str
    encoding: FloatVector
    face_px: int
    sharpness: float
    brightness: float
    roll_deg: float
    yaw: float

    @staticmethod
    def from_report(source: str, encoding: npt.ArrayLike, report: QualityReport) -> TemplateCandidate:
        return TemplateCandidate(
            source,
            np.asarray(encoding, dtype=np.float32).reshape(-1),
            int(report.face_px),
            float(report.sharpness),
            float(report.brightness),
            float(report.roll_deg),
            float(report.yaw),
        )

    @staticmethod
    def from_quality_json(
        source: str, encoding: npt.ArrayLike, quality: Mapping[str, Any]
    ) -> TemplateCandidate:
        """From `QualityReport.to_json()` (what enrolment's `PhotoCheck.quality` holds)."""
        return TemplateCandidate(
            source,
            np.asarray(encoding, dtype=np.float32).reshape(-1),
            int(quality.get("face_px", 0)),
            float(quality.get("sharpness", 0.0)),
            float(quality.get("brightness", 128.0)),
            float(quality.get("roll_deg", 0.0)),
            float(quality.get("yaw", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class SelectionPolicy:
    """How many templates to keep and how different they must be (distances in the model's units)."""

    max_templates: int = 3
    #: Same-person guard: dlib photos of one person sit up to ~0.6 apart on our data (enrolment
    #: refuses photos further apart than 0.65), so a face further than this from the medoid is
    #: taken for someone else.
    max_spread: float = 0.65
    #: Near-duplicates: consecutive frames of one appearance sit ~0.02-0.05 apart; a template this
    #: close to one already kept adds a matrix row and no information.
    min_spacing: float = 0.06
    diversity_weight: float = 0.5
    diversity_scale: float = 0.3
    #: Quality reference points: size and sharpness stop counting above these (dlib encodes a
    #: 150 px chip; the sharpness gate is 12), yaw and roll are scored against the gates' limits.
    good_face_px: float = 160.0
    min_sharpness: float = 12.0
    good_sharpness: float = 150.0
    max_yaw: float = 0.45
    max_roll_deg: float = 30.0

    def __post_init__(self) -> None:
        if self.max_templates < 1:
            raise ValueError("max_templates must be at least 1")
        if not 0.0 <= self.min_spacing < self.max_spread:
            raise ValueError("min_spacing must be in [0, max_spread)")
        if self.diversity_scale <= 0.0 or self.diversity_weight < 0.0:
            raise ValueError("diversity_scale must be > 0 and diversity_weight >= 0")


@dataclass(frozen=True, slots=True)
class QualityScore:
    """A candidate's quality in [0, 1] and its parts (each in [0, 1]), for the installer's log."""

    total: float
    pose: float
    sharpness: float
    size: float
    light: float

    def to_json(self) -> dict[str, float]:
        return {
            "total": round(self.total, 3),
            "pose": round(self.pose, 3),
            "sharpness": round(self.sharpness, 3),
            "size": round(self.size, 3),
            "light": round(self.light, 3),
        }


#: Weights of the quality parts: dlib's encodings move most with pose, then blur.
QUALITY_WEIGHTS: Mapping[str, float] = {"pose": 0.4, "sharpness": 0.3, "size": 0.2, "light": 0.1}


def quality_score(candidate: TemplateCandidate, policy: SelectionPolicy | None = None) -> QualityScore:
    """How good a template this face makes, from its measured quality alone."""
    policy = policy or SelectionPolicy()
    yaw_part = 1.0 - min(1.0, abs(candidate.yaw) / policy.max_yaw)
    roll_part = 1.0 - min(1.0, abs(candidate.roll_deg) / policy.max_roll_deg)
    pose = 0.7 * yaw_part + 0.3 * roll_part
    if candidate.sharpness <= policy.min_sharpness:
        sharp = 0.0
    else:
        sharp = min(
            1.0,
            math.log(candidate.sharpness / policy.min_sharpness)
            / math.log(policy.good_sharpness / policy.min_sharpness),
        )
    size = min(1.0, max(0.0, candidate.face_px / policy.good_face_px))
    light = max(0.0, 1.0 - abs(candidate.brightness - 128.0) / 128.0)
    total = (
        QUALITY_WEIGHTS["pose"] * pose
        + QUALITY_WEIGHTS["sharpness"] * sharp
        + QUALITY_WEIGHTS["size"] * size
        + QUALITY_WEIGHTS["light"] * light
    )
    return QualityScore(total, pose, sharp, size, light)


@dataclass(frozen=True, slots=True)
class KeptTemplate:
    source: str
    encoding: FloatVector
    quality: QualityScore
    distance_to_medoid: float
    spread: float | None  # distance to the nearest template kept before it (None for the first)
    utility: float

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "quality": self.quality.to_json(),
            "distance_to_medoid": round(self.distance_to_medoid, 4),
            "spread": None if self.spread is None else round(self.spread, 4),
            "utility": round(self.utility, 4),
        }


@dataclass(frozen=True, slots=True)
class RejectedTemplate:
    source: str
    reason: str
    quality: QualityScore
    distance: float | None  # to the medoid (not_same_person) or the nearest kept one (near_duplicate)
    other: str | None  # the medoid's or the kept template's source

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "reason": self.reason,
            "quality": self.quality.to_json(),
            "distance": None if self.distance is None else round(self.distance, 4),
            "other": self.other,
        }


@dataclass(frozen=True, slots=True)
class TemplateSelection:
    kept: tuple[KeptTemplate, ...]
    rejected: tuple[RejectedTemplate, ...]
    medoid: str | None

    @property
    def encodings(self) -> list[FloatVector]:
        return [k.encoding for k in self.kept]

    @property
    def sources(self) -> list[str]:
        return [k.source for k in self.kept]

    def to_json(self) -> dict[str, Any]:
        return {
            "medoid": self.medoid,
            "kept": [k.to_json() for k in self.kept],
            "rejected": [r.to_json() for r in self.rejected],
        }


def _pairwise(encodings: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    diffs = encodings[:, None, :] - encodings[None, :, :]
    squared: npt.NDArray[np.float64] = np.einsum("ijk,ijk->ij", diffs, diffs)
    return np.sqrt(squared)


def select_templates(
    candidates: Sequence[TemplateCandidate], policy: SelectionPolicy | None = None
) -> TemplateSelection:
    """Keep the best few of `candidates` (see the module docstring for the rule)."""
    policy = policy or SelectionPolicy()
    if not candidates:
        return TemplateSelection((), (), None)
    scores = [quality_score(c, policy) for c in candidates]
    matrix = np.stack([np.asarray(c.encoding, dtype=np.float64).reshape(-1) for c in candidates])
    dist = _pairwise(matrix)
    count = len(candidates)
    if count <= 2:
        # Two faces cannot outvote each other: the better one stands for the person.
        medoid = max(range(count), key=lambda i: scores[i].total)
    else:
        medoid = int(np.argmin(dist.sum(axis=1)))
    rejected: list[RejectedTemplate] = []
    pool: list[int] = []
    for i in range(count):
        if dist[i, medoid] > policy.max_spread:
            rejected.append(
                RejectedTemplate(
                    candidates[i].source,
                    NOT_SAME_PERSON,
                    scores[i],
                    float(dist[i, medoid]),
                    candidates[medoid].source,
                )
            )
        else:
            pool.append(i)
    pool.sort(key=lambda i: (-scores[i].total, i))
    kept: list[KeptTemplate] = []
    kept_index: list[int] = []
    while pool and len(kept) < policy.max_templates:
        best_i, best_utility, best_spread = -1, -math.inf, None
        for i in list(pool):
            spread = min((float(dist[i, j]) for j in kept_index), default=None)
            if spread is not None and spread < policy.min_spacing:
                nearest = min(kept_index, key=lambda j: float(dist[i, j]))
                rejected.append(
                    RejectedTemplate(
                        candidates[i].source, NEAR_DUPLICATE, scores[i], spread, candidates[nearest].source
                    )
                )
                pool.remove(i)
                continue
            bonus = (
                0.0 if spread is None else policy.diversity_weight * min(1.0, spread / policy.diversity_scale)
            )
            utility = scores[i].total + bonus
            if utility > best_utility:
                best_i, best_utility, best_spread = i, utility, spread
        if best_i < 0:
            break
        pool.remove(best_i)
        kept_index.append(best_i)
        kept.append(
            KeptTemplate(
                candidates[best_i].source,
                np.asarray(candidates[best_i].encoding, dtype=np.float32).reshape(-1),
                scores[best_i],
                float(dist[best_i, medoid]),
                best_spread,
                best_utility,
            )
        )
    for i in pool:
        rejected.append(RejectedTemplate(candidates[i].source, ENOUGH_TEMPLATES, scores[i], None, None))
    return TemplateSelection(tuple(kept), tuple(rejected), candidates[medoid].source)
