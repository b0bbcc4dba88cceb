"""Frozen results of the recognition hot path.

Every decision the recognizer makes is returned as one of these immutable values, carrying the
numbers it was made on (distance, margin, per-stage timings) so that an event row, a log line or an
installer can explain *why* a door opened or stayed shut.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Decision(enum.StrEnum):
    """What one look at a frame, photo or QR payload concluded."""

    MATCH = "match"
    UNKNOWN = "unknown"
    SHOW_PASS = "show_pass"  # not sure enough for the face alone: the door asks for the pass
    PENDING = "pending"  # one appearance needs more frames before it is decided
    NO_FACE = "no_face"
    POOR_QUALITY = "poor_quality"
    QR_OK = "qr_ok"
    QR_REFUSED = "qr_refused"


@dataclass(frozen=True, slots=True)
class FaceResult:
    """Outcome of matching one face (or of failing to find a usable one).

    `distance` is the Euclidean distance to the best member's nearest template; `margin` is how much
    further the best *other* member is (None when the roster holds a single member). `reason` names
    the rule that refused (quality gate, threshold, margin) so refusals are never silent.
    """

    decision: Decision
    member_id: str | None = None
    distance: float | None = None
    margin: float | None = None
    reason: str | None = None
    runner_up_id: str | None = None
    box: tuple[int, int, int, int] | None = None  # top, right, bottom, left in image pixels
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Every number the scoring rule used (recognizer.scoring.ScoreResult.to_json), when scored.
    scores: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "scores": self.scores,
            "member_id": self.member_id,
            "distance": _round(self.distance),
            "margin": _round(self.margin),
            "reason": self.reason,
            "runner_up_id": self.runner_up_id,
            "box": list(self.box) if self.box else None,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


@dataclass(frozen=True, slots=True)
class QrResult:
    """Outcome of checking one QR payload. `reason` is a stable machine word when refused."""

    decision: Decision
    member_id: str | None = None
    reason: str | None = None
    key_id: str | None = None
    expires_at: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Whether the token is single-use (None when its signature did not verify).
    single_use: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "member_id": self.member_id,
            "reason": self.reason,
            "key_id": self.key_id,
            "expires_at": self.expires_at,
            "single_use": self.single_use,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
