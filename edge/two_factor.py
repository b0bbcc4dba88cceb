"""Two-factor at the door: a verified pass (QR code) names the member, then their face confirms it.

Two ways in:
- configured (`[recognition] two_factor`, `two_factor_groups`, or a member who requires the pass,
  e.g. one of two confirmed lookalikes): every verified pass of such a member opens a window in
  which their face must confirm it 1:1;
- on demand: an appearance the face rule was not sure of (`show_pass`, the grey zone) makes the
  door ask for the pass (`ask`); a pass shown within the window is confirmed against the frames
  already seen (and any new ones), so a member whose face alone was not enough gets in with
  pass + face, and someone holding a colleague's pass is refused.

1:1 against the named member is far more reliable than 1:N (the pass settles which of two lookalike
members this is), and the same numbers are checked for the claimed member (`recognizer.scoring
.verify` over the fused frames), so a colleague holding someone else's pass is refused with the
reason and the numbers (`face_mismatch`, counted toward lockout: that is probing). A member with no
face template is admitted by the pass alone: a face must never be the only way in.

Pure logic: the daemon feeds the QR verdict, encodings and each 1:1 result with times; this says
when to decide and what.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recognizer.scoring import PENDING, ScoreResult

FACE_MISMATCH = "face_mismatch"
FACE_REQUIRED = "face_required"
Encoding = npt.NDArray[np.float32]


@dataclass
class PendingTwoFactor:
    member_id: str
    qr_details: dict[str, Any]
    started: float
    deadline: float
    on_demand: bool = False
    frames: list[Encoding] = field(default_factory=list)
    attempts: list[ScoreResult] = field(default_factory=list)
    last_attempt: float | None = None


@dataclass
class Asked:
    """The door asked an appearance for the pass (grey zone): its frames and until when."""

    appearance: int
    frames: list[Encoding]
    details: dict[str, Any]
    deadline: float


@dataclass(frozen=True, slots=True)
class TwoFactorVerdict:
    """`accepted`: the face confirmed the pass. Otherwise `reason` and the best attempt's numbers."""

    member_id: str
    accepted: bool
    reason: str | None
    details: dict[str, Any]


class TwoFactorGate:
    def __init__(
        self,
        *,
        window_s: float = 10.0,
        max_attempts: int = 3,
        retry_interval_s: float = 0.3,
        min_frames: int = 1,
        max_frames: int = 12,
    ) -> None:
        self.window_s = window_s
        self.max_attempts = max_attempts
        self.retry_interval_s = retry_interval_s
        self.min_frames = max(1, min_frames)
        self.max_frames = max_frames
        self.pending: PendingTwoFactor | None = None
        self.asked: Asked | None = None

    # -- on demand ------------------------------------------------------------------------------

    def ask(self, appearance: int, frames: list[Encoding], details: dict[str, Any], now: float) -> None:
        """The face rule was not sure of this appearance: wait `window_s` for a pass."""
        self.asked = Asked(appearance, list(frames)[-self.max_frames :], dict(details), now + self.window_s)

    def take_asked(self, now: float) -> Asked | None:
        """The appearance asked for the pass, if the window is still open (then it is consumed)."""
        asked, self.asked = self.asked, None
        if asked is None or now > asked.deadline:
            return None
        return asked

    # -- a pass was shown -------------------------------------------------------------------------

    def start(
        self,
        member_id: str,
        qr_details: dict[str, Any],
        now: float,
        *,
        frames: list[Encoding] | None = None,
        on_demand: bool = False,
    ) -> None:
        """A verified pass that needs the face: wait for it (`frames` already seen count)."""
        self.asked = None
        self.pending = PendingTwoFactor(
            member_id,
            dict(qr_details),
            now,
            now + self.window_s,
            on_demand=on_demand,
            frames=list(frames or [])[-self.max_frames :],
        )

    def needs_face(self, now: float) -> bool:
        """Whether to look at the face now: at once while the window lacks frames, then every
        `retry_interval_s` (the next look may be better)."""
        pending = self.pending
        if pending is None or now > pending.deadline:
            return False
        if len(pending.frames) < self.min_frames:
            return True
        return pending.last_attempt is None or now - pending.last_attempt >= self.retry_interval_s

    def add_frame(self, encoding: Encoding) -> list[Encoding]:
        """One more face encoding in the window; returns the frames to verify (the last few)."""
        pending = self.pending
        if pending is None:
            return []
        pending.frames.append(encoding)
        del pending.frames[: -self.max_frames]
        return self.window()

    def window(self) -> list[Encoding]:
        pending = self.pending
        return [] if pending is None else pending.frames[-self.min_frames :]

    def record(self, result: ScoreResult, now: float) -> TwoFactorVerdict | None:
        """Account one 1:1 check of the window's frames against the named member."""
        pending = self.pending
        if pending is None:
            return None
        pending.last_attempt = now
        if result.zone == PENDING:
            return None  # not enough frames yet: not an attempt
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
        if self.asked is not None and now > self.asked.deadline:
            self.asked = None
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
            "on_demand": pending.on_demand,
            "face_attempts": len(pending.attempts),
        }
        if result is not None:
            details["scores"] = result.to_json()
            if result.reason:
                details["face_reason"] = result.reason
        return details
