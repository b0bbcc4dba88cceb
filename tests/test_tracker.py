"""Tracking one appearance: several frames judged together, decided once, re-checked in place."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.tracker import FaceTracker, TrackerSettings, iou
from recognizer.results import Decision, FaceResult

BOX = (100, 300, 300, 100)
MOVED = (110, 310, 310, 110)
ELSEWHERE = (100, 600, 300, 400)
ENC = np.zeros(128, dtype=np.float32)


def match(member: str) -> FaceResult:
    return FaceResult(Decision.MATCH, member_id=member, distance=0.3, margin=0.2)


UNKNOWN = FaceResult(Decision.UNKNOWN, distance=0.8, reason="over_threshold")
GREY = FaceResult(Decision.SHOW_PASS, distance=0.45, reason="not_sure")
PENDING = FaceResult(Decision.PENDING, distance=0.3, reason="too_few_frames")


class Judge:
    """Stands in for the scoring of a window: answers from a script, records what it was asked."""

    def __init__(self, answer: FaceResult, need: int = 1, recheck: FaceResult | None = None) -> None:
        self.answer, self.need, self.recheck = answer, need, recheck or answer
        self.windows: list[tuple[int, bool]] = []

    def __call__(self, window: Sequence[np.ndarray], recheck: bool) -> FaceResult:
        self.windows.append((len(window), recheck))
        if recheck:
            return self.recheck
        return PENDING if len(window) < self.need else self.answer


def stand(
    t: FaceTracker, judge: Judge, start: float, end: float, box: tuple[int, int, int, int] = BOX
) -> tuple[list[float], list]:
    """Someone stands at `box` from start to end (10 fps); returns when encodings ran and verdicts."""
    asked, verdicts, now = [], [], start
    while now < end:
        t.observe(box, now)
        if t.needs_encoding(now):
            asked.append(now)
            verdict = t.add(ENC, now, judge)
            if verdict:
                verdicts.append(verdict)
        now = round(now + 0.1, 3)
    return asked, verdicts


def test_iou() -> None:
    assert iou(BOX, BOX) == 1.0
    assert iou(BOX, ELSEWHERE) == 0.0
    assert 0.7 < iou(BOX, MOVED) < 1.0


def test_a_member_is_decided_on_several_frames_together_then_not_encoded_again() -> None:
    t = FaceTracker(TrackerSettings(require_frames=3, frame_interval_s=0.1, reverify_s=10.0))
    judge = Judge(match("a"), need=3)
    asked, verdicts = stand(t, judge, 0.0, 3.0)
    assert asked == [0.0, 0.1, 0.2]  # three frames gathered, then nothing until the re-check
    assert [w for w, _ in judge.windows] == [1, 2, 3]
    assert len(verdicts) == 1 and verdicts[0].result.member_id == "a"
    assert verdicts[0].frames == 3 and len(verdicts[0].encodings) == 3


def test_a_stranger_is_refused_once_on_the_best_window_after_max_attempts() -> None:
    t = FaceTracker(TrackerSettings(require_frames=2, max_attempts=3, frame_interval_s=0.1))
    asked, verdicts = stand(t, Judge(UNKNOWN, need=2), 0.0, 3.0)
    assert len(verdicts) == 1
    verdict = verdicts[0]
    assert verdict.result.decision is Decision.UNKNOWN and verdict.frames == 4  # windows 1-2, 2-3, 3-4


def test_grey_zone_beats_unknown_when_the_appearance_is_decided() -> None:
    t = FaceTracker(TrackerSettings(require_frames=1, max_attempts=3, frame_interval_s=0.0))
    t.observe(BOX, 0.0)
    answers = iter([UNKNOWN, GREY, UNKNOWN])
    verdict = None
    for i in range(3):
        verdict = t.add(ENC, i * 0.1, lambda _w, _r: next(answers))
    assert verdict is not None and verdict.result.decision is Decision.SHOW_PASS


def test_a_poor_look_is_not_an_attempt_and_waits_the_retry_interval() -> None:
    t = FaceTracker(TrackerSettings(max_attempts=1, frame_interval_s=0.05, retry_interval_s=0.3))
    t.observe(BOX, 0.0)
    assert t.needs_encoding(0.0)
    t.poor_look(0.0)
    assert not t.needs_encoding(0.2) and t.needs_encoding(0.31)
    assert t.add(ENC, 0.31, Judge(UNKNOWN)) is not None


def test_new_person_replacing_the_tracked_one_is_a_new_appearance() -> None:
    t = FaceTracker()
    first = t.observe(BOX, 0.0)
    t.add(ENC, 0.0, Judge(match("a")))
    second = t.observe(ELSEWHERE, 0.1)
    assert first is not None and second is not None and second.track_id != first.track_id
    assert t.needs_encoding(0.1) and second.encodings == []


def test_decided_track_is_rechecked_on_one_frame_and_a_newcomer_starts_a_new_appearance() -> None:
    t = FaceTracker(TrackerSettings(reverify_s=2.0, frame_interval_s=0.0))
    judge = Judge(match("a"))
    asked, verdicts = stand(t, judge, 0.0, 4.5)
    assert asked == [0.0, 2.0, 4.0]  # first encoding, then a re-check every 2 s
    assert judge.windows == [(1, False), (1, True), (1, True)]
    assert len(verdicts) == 1 and verdicts[0].result.member_id == "a"
    asked, verdicts = stand(t, Judge(match("b")), 4.5, 6.5)  # b stepped into a's place
    assert asked == [6.0]
    assert len(verdicts) == 1 and verdicts[0].result.member_id == "b"
    assert verdicts[0].track_id != 1


def test_a_grey_recheck_of_a_member_learns_nothing() -> None:
    t = FaceTracker(TrackerSettings(reverify_s=1.0, frame_interval_s=0.0))
    stand(t, Judge(match("a")), 0.0, 0.5)
    asked, verdicts = stand(t, Judge(match("a"), recheck=GREY), 0.5, 3.5)
    assert asked == [1.0, 2.0, 3.0] and verdicts == []


def test_stranger_replacing_a_member_in_place_is_refused_in_time() -> None:
    t = FaceTracker(TrackerSettings(reverify_s=1.0, max_attempts=2, frame_interval_s=0.2))
    t.observe(BOX, 0.0)
    assert t.add(ENC, 0.0, Judge(match("a"))) is not None
    asked, verdicts = stand(t, Judge(UNKNOWN), 1.0, 3.0)
    assert len(verdicts) == 1 and verdicts[0].result.decision is Decision.UNKNOWN
    assert verdicts[0].track_id != 1


def test_an_appearance_that_walks_away_undecided_is_decided_on_what_was_seen() -> None:
    t = FaceTracker(TrackerSettings(require_frames=2, max_attempts=3, frame_interval_s=0.0, lost_after_s=0.5))
    t.observe(BOX, 0.0)
    assert t.add(ENC, 0.0, Judge(GREY, need=2)) is None  # pending: nothing judged yet
    assert t.add(ENC, 0.1, Judge(GREY, need=2)) is None  # one grey window
    t.observe(None, 0.3)
    assert t.take_ended() is None  # not lost yet
    t.observe(None, 0.7)
    ended = t.take_ended()
    assert ended is not None and ended.result.decision is Decision.SHOW_PASS and ended.frames == 2
    assert t.take_ended() is None and t.track is None
    # Someone who never got a judged window leaves nothing to decide.
    t.observe(BOX, 1.0)
    t.add(ENC, 1.0, Judge(GREY, need=2))
    t.observe(ELSEWHERE, 1.1)  # replaced by another person
    assert t.take_ended() is None


def test_a_stranger_who_leaves_before_a_full_window_is_still_refused() -> None:
    far = FaceResult(
        Decision.PENDING,
        distance=0.8,
        reason="too_few_frames",
        scores={"failed": ["over_threshold", "too_few_frames"]},
    )
    near = FaceResult(
        Decision.PENDING, distance=0.3, reason="too_few_frames", scores={"failed": ["too_few_frames"]}
    )
    t = FaceTracker(TrackerSettings(require_frames=3, frame_interval_s=0.0, lost_after_s=0.5))
    t.observe(BOX, 0.0)
    t.add(ENC, 0.0, lambda _w, _r: far)
    t.observe(None, 0.7)
    ended = t.take_ended()
    assert (
        ended is not None
        and ended.result.decision is Decision.UNKNOWN
        and ended.result.reason == "over_threshold"
    )
    t.observe(BOX, 1.0)
    t.add(ENC, 1.0, lambda _w, _r: near)  # close to a member but left: nothing to say about it
    t.observe(None, 1.7)
    assert t.take_ended() is None
