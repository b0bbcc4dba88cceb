"""The two-factor gate on its own: timing, attempts, verdicts."""

from __future__ import annotations

from edge.two_factor import FACE_MISMATCH, FACE_REQUIRED, TwoFactorGate
from recognizer.scoring import ScoreResult


def result(accepted: bool, distance: float) -> ScoreResult:
    return ScoreResult(
        accepted,
        "verify",
        "m1" if accepted else None,
        None if accepted else "over_threshold",
        "balanced",
        subject_id="m1",
        claimed_id="m1",
        distance=distance,
    )


def test_confirmed_on_a_good_face() -> None:
    gate = TwoFactorGate(window_s=5, max_attempts=3, retry_interval_s=0.3)
    gate.start("m1", {"key_id": "k"}, 0.0)
    assert gate.needs_face(0.1)
    verdict = gate.record(result(True, 0.3), 0.1)
    assert verdict is not None and verdict.accepted and verdict.details["key_id"] == "k"
    assert gate.pending is None and not gate.needs_face(0.2)


def test_mismatch_after_max_attempts_keeps_the_best_numbers() -> None:
    gate = TwoFactorGate(window_s=5, max_attempts=3, retry_interval_s=0.3)
    gate.start("m1", {}, 0.0)
    assert gate.record(result(False, 0.8), 0.0) is None
    assert not gate.needs_face(0.1) and gate.needs_face(0.31)
    assert gate.record(result(False, 0.7), 0.4) is None
    verdict = gate.record(result(False, 0.9), 0.8)
    assert verdict is not None and not verdict.accepted and verdict.reason == FACE_MISMATCH
    assert verdict.details["scores"]["distance"] == 0.7 and verdict.details["face_attempts"] == 3


def test_window_expiry() -> None:
    gate = TwoFactorGate(window_s=2)
    gate.start("m1", {}, 0.0)
    assert gate.expire(1.9) is None
    verdict = gate.expire(2.1)
    assert verdict is not None and verdict.reason == FACE_REQUIRED
    gate.start("m1", {}, 10.0)
    gate.record(result(False, 0.8), 10.1)
    late = gate.expire(12.5)
    assert late is not None and late.reason == FACE_MISMATCH
