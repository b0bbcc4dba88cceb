"""Two-factor at the door: a verified QR code names the member, then their face must confirm it.

1:1 against the named member is far more reliable than 1:N (the code settles which of two lookalike
members this is), and the same scoring numbers are checked for the claimed member, so a colleague
holding someone else's code is refused with the reason and the numbers (`face_mismatch`, counted
toward lockout: that is probing). A member with no face template is admitted by the code alone: a
face must never be the only way in, and such members exist on purpose.

Pure logic: the daemon feeds the QR verdict and each 1:1 result with times; this says when to
decide and what.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recognizer.scoring import ScoreResult

FACE_MISMATCH = "face_mismatch"
FACE_REQUIRED = "face_required"


@dataclass
class PendingTwoFactor:
    member_id: str
    qr_details: dict[str, Any]
    started: float
    deadline: float
    attempts: list[ScoreResult] = field(default_factory=list)
    last_attempt: float | None = None


@dataclass(frozen=True, slots=True)
class TwoFactorVerdict:
    """`accepted`: the face confirmed the code. Otherwise `reason` and the best attempt's numbers."""

    member_id: str
    accepted: bool
    reason: str | None
    details: dict[str, Any]


class TwoFactorGate:
    def __init__(
        self, *, window_s: float = 10.0, max_attempts: int = 3, retry_interval_s: float = 0.3
    ) -> None:
        self.window_s = window_s
        self.max_attempts = max_attempts
        self.retry_interval_s = retry_interval_s
        self.pending: PendingTwoFactor | None = None

    def start(self, member_id: str, qr_details: dict[str, Any], now: float) -> None:
        """A verified code for a two-factor member was shown: wait for their face."""
        self.pending = PendingTwoFactor(member_id, dict(qr_details), now, now + self.window_s)

    def needs_face(self, now: float) -> bool:
        pending = self.pending
        if pending is None or now > pending.deadline:
            return False
        return pending.last_attempt is None or now - pending.last_attempt >= self.retry_interval_s

    def record(self, result: ScoreResult, now: float) -> TwoFactorVerdict | None:
        """Account one 1:1 check of a face against the named member."""
        pending = self.pending
        if pending is None:
            return None
        pending.last_attempt = now
        pending.attempts.append(result)
        if result.accepted:
            self.pending = None
            return TwoFactorVerdict(pending.member_id, True, None, self._details(pending, result))
        if len(pending.attempts) >= self.max_attempts:
            self.pending = None
            return TwoFactorVerdict(
                pending.member_id, False, FACE_MISMATCH, self._details(pending, self._best(pending))
            )
        return None

    def expire(self, now: float) -> TwoFactorVerdict | None:
        """The window closed: refused, as a mismatch if faces were seen, else for want of a face."""
        pending = self.pending
        if pending is None or now <= pending.deadline:
            return None
        self.pending = None
        if pending.attempts:
            return TwoFactorVerdict(
                pending.member_id, False, FACE_MISMATCH, self._details(pending, self._best(pending))
            )
        return TwoFactorVerdict(pending.member_id, False, FACE_REQUIRED, self._details(pending, None))

    @staticmethod
    def _best(pending: PendingTwoFactor) -> ScoreResult:
        return min(pending.attempts, key=lambda r: r.distance if r.distance is not None else 9.0)

    @staticmethod
    def _details(pending: PendingTwoFactor, result: ScoreResult | None) -> dict[str, Any]:
        details: dict[str, Any] = {
            **pending.qr_details,
            "two_factor": True,
            "face_attempts": len(pending.attempts),
        }
        if result is not None:
            details["scores"] = result.to_json()
            if result.reason:
                details["face_reason"] = result.reason
        return details
