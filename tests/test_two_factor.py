"""The two-factor gate on its own: timing, frames, attempts, verdicts, the door asking for the pass."""

from __future__ import annotations

import numpy as np

from edge.two_factor import FACE_MISMATCH, FACE_REQUIRED, TwoFactorGate
from recognizer.scoring import ACCEPT, PENDING, UNKNOWN, ScoreResult


def result(accepted: bool, distance: float, zone: str | None = None) -> ScoreResult:
    return ScoreResult(
        accepted,
        "verify",
        zone or (ACCEPT if accepted else UNKNOWN),
        "m1" if accepted else None,
        None if accepted else "over_threshold",
        "balanced",
        frames=3,
        subject_id="m1",
        claimed_id="m1",
        distance=distance,
    )


def enc(value: float) -> np.ndarray:
    return np.full(128, value, dtype=np.float32)


def test_confirmed_on_a_good_face() -> None:
    gate = TwoFactorGate(window_s=5, max_attempts=3, retry_interval_s=0.3)
    gate.start("m1", {"key_id": "k"}, 0.0)
    assert gate.needs_face(0.1)
    verdict = gate.record(result(True, 0.3), 0.1)
    assert verdict is not None and verdict.accepted and verdict.details["key_id"] == "k"
    assert verdict.details["two_factor"] is True and verdict.details["on_demand"] is False
    assert gate.pending is None and not gate.needs_face(0.2)


def test_mismatch_after_max_attempts_keeps_the_best_numbers() -> None:
    gate = TwoFactorGate(window_s=5, max_attempts=3, retry_interval_s=0.3)
    gate.start("m1", {}, 0.0)
    assert gate.needs_face(0.0)  # no frame yet: look at once
    gate.add_frame(enc(0.1))
    assert gate.record(result(False, 0.8), 0.0) is None
    assert not gate.needs_face(0.1) and gate.needs_face(0.31)
    assert gate.record(result(False, 0.7), 0.4) is None
    verdict = gate.record(result(False, 0.9), 0.8)
    assert verdict is not None and not verdict.accepted and verdict.reason == FACE_MISMATCH
    assert verdict.details["scores"]["distance"] == 0.7 and verdict.details["face_attempts"] == 3


def test_too_few_frames_is_not_an_attempt() -> None:
    gate = TwoFactorGate(window_s=5, max_attempts=1, min_frames=3)
    gate.start("m1", {}, 0.0)
    assert gate.add_frame(enc(0.1)) and len(gate.window()) == 1
    assert gate.record(result(False, 0.3, zone=PENDING), 0.1) is None and gate.pending is not None
    gate.add_frame(enc(0.2))
    assert len(gate.add_frame(enc(0.3))) == 3
    gate.add_frame(enc(0.4))
    assert [float(f[0]) for f in gate.window()] == [np.float32(0.2), np.float32(0.3), np.float32(0.4)]


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


def test_the_door_asks_and_a_pass_in_time_is_confirmed_with_the_frames_already_seen() -> None:
    gate = TwoFactorGate(window_s=5, min_frames=2)
    gate.ask(7, [enc(0.1), enc(0.2), enc(0.3)], {"scores": {}}, 0.0)
    asked = gate.take_asked(4.0)
    assert asked is not None and asked.appearance == 7 and gate.take_asked(4.0) is None  # consumed
    gate.start("m1", {"key_id": "k"}, 4.0, frames=asked.frames, on_demand=True)
    assert len(gate.window()) == 2
    verdict = gate.record(result(True, 0.4), 4.0)
    assert verdict is not None and verdict.accepted and verdict.details["on_demand"] is True


def test_a_pass_after_the_ask_window_is_not_on_demand() -> None:
    gate = TwoFactorGate(window_s=5)
    gate.ask(1, [enc(0.1)], {}, 0.0)
    assert gate.take_asked(5.5) is None
    gate.ask(2, [enc(0.1)], {}, 10.0)
    assert gate.expire(16.0) is None and gate.asked is None
