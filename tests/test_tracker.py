"""Tracking one appearance: encode once, decide once, agree across frames when asked to."""

from __future__ import annotations

from edge.tracker import FaceTracker, TrackerSettings, iou
from recognizer.results import Decision, FaceResult

BOX = (100, 300, 300, 100)
MOVED = (110, 310, 310, 110)
ELSEWHERE = (100, 600, 300, 400)


def match(member: str) -> FaceResult:
    return FaceResult(Decision.MATCH, member_id=member, distance=0.3, margin=0.2)


UNKNOWN = FaceResult(Decision.UNKNOWN, distance=0.8, reason="over_threshold")
BLURRY = FaceResult(Decision.POOR_QUALITY, reason="too_blurry")


def test_iou() -> None:
    assert iou(BOX, BOX) == 1.0
    assert iou(BOX, ELSEWHERE) == 0.0
    assert 0.7 < iou(BOX, MOVED) < 1.0


def test_member_encoded_once_per_appearance() -> None:
    t = FaceTracker()
    t.observe(BOX, 0.0)
    assert t.needs_encoding(0.0)
    verdict = t.record(match("a"), 0.0)
    assert verdict is not None and verdict.result.member_id == "a" and verdict.frames == 1
    for i in range(1, 30):
        t.observe(MOVED, i * 0.066)
        assert not t.needs_encoding(i * 0.066)
    # They leave; after lost_after_s a new appearance starts and is encoded again.
    t.observe(None, 5.0)
    t.observe(BOX, 5.1)
    assert t.needs_encoding(5.1)


def test_stranger_refused_once_after_max_attempts_with_retry_spacing() -> None:
    t = FaceTracker(TrackerSettings(max_attempts=3, retry_interval_s=0.3))
    now, verdicts = 0.0, []
    while now < 3.0:
        t.observe(BOX, now)
        if t.needs_encoding(now):
            v = t.record(UNKNOWN, now)
            if v:
                verdicts.append((now, v))
        now += 0.066
    assert len(verdicts) == 1
    at, verdict = verdicts[0]
    assert verdict.frames == 3 and 0.6 <= at < 0.9


def test_poor_quality_does_not_count_as_attempt() -> None:
    t = FaceTracker(TrackerSettings(max_attempts=1, retry_interval_s=0.0))
    t.observe(BOX, 0.0)
    assert t.record(BLURRY, 0.0) is None and t.needs_encoding(0.1)
    assert t.record(UNKNOWN, 0.1) is not None


def test_require_frames_needs_agreement() -> None:
    t = FaceTracker(TrackerSettings(require_frames=2, retry_interval_s=0.0))
    t.observe(BOX, 0.0)
    assert t.record(match("a"), 0.0) is None
    assert t.record(match("b"), 0.1) is None  # disagreement resets
    assert t.record(match("a"), 0.2) is None
    verdict = t.record(match("a"), 0.3)
    assert verdict is not None and verdict.result.member_id == "a" and verdict.frames == 4


def test_new_person_replacing_the_tracked_one_is_a_new_appearance() -> None:
    t = FaceTracker()
    first = t.observe(BOX, 0.0)
    t.record(match("a"), 0.0)
    second = t.observe(ELSEWHERE, 0.1)
    assert first is not None and second is not None and second.track_id != first.track_id
    assert t.needs_encoding(0.1)


def stand(t: FaceTracker, start: float, end: float, result: FaceResult) -> tuple[list[float], list]:
    """Someone stands at BOX from start to end (10 fps); returns when encodings ran and verdicts."""
    asked, verdicts, now = [], [], start
    while now < end:
        t.observe(BOX, now)
        if t.needs_encoding(now):
            asked.append(now)
            verdict = t.record(result, now)
            if verdict:
                verdicts.append(verdict)
        now = round(now + 0.1, 3)
    return asked, verdicts


def test_decided_track_is_reverified_and_a_newcomer_starts_a_new_appearance() -> None:
    t = FaceTracker(TrackerSettings(reverify_s=2.0, retry_interval_s=0.0))
    asked, verdicts = stand(t, 0.0, 4.5, match("a"))
    assert asked == [0.0, 2.0, 4.0]  # first encoding, then a re-check every 2 s
    assert len(verdicts) == 1 and verdicts[0].result.member_id == "a"
    asked, verdicts = stand(t, 4.5, 6.5, match("b"))  # b stepped into a's place
    assert asked == [6.0]
    assert len(verdicts) == 1 and verdicts[0].result.member_id == "b"
    assert verdicts[0].track_id != 1


def test_stranger_replacing_a_member_in_place_is_refused_in_time() -> None:
    t = FaceTracker(TrackerSettings(reverify_s=1.0, max_attempts=2, retry_interval_s=0.2))
    t.observe(BOX, 0.0)
    assert t.record(match("a"), 0.0) is not None
    now, verdicts = 1.0, []
    while now < 3.0:
        t.observe(BOX, now)
        if t.needs_encoding(now):
            v = t.record(UNKNOWN, now)
            if v:
                verdicts.append(v)
        now += 0.1
    assert len(verdicts) == 1 and verdicts[0].result.decision is Decision.UNKNOWN


def test_a_busy_loop_does_not_split_one_appearance() -> None:
    """On a loaded box the loop may look at a frame only every second. The person is in every frame
    it looks at: one appearance, one decision (not a new entry, or a stranger never refused because
    each look started a new appearance). Only a frame without them ends it."""
    t = FaceTracker(TrackerSettings(max_attempts=3, retry_interval_s=0.3, lost_after_s=0.6))
    verdicts = []
    for i in range(6):  # one look per second, the face there each time
        now = float(i)
        t.observe(BOX if i % 2 == 0 else MOVED, now)
        if t.needs_encoding(now):
            verdict = t.record(UNKNOWN, now)
            if verdict is not None:
                verdicts.append(verdict)
    assert [v.frames for v in verdicts] == [3]  # the stranger, refused once, after three tries
    first = t.track
    assert first is not None
    t.observe(None, 7.0)  # a look at the empty door, long after the last sighting: gone
    assert t.track is None
    t.observe(BOX, 7.1)
    assert t.track is not None and t.track.track_id != first.track_id and t.needs_encoding(7.1)


def test_a_member_seen_by_a_busy_loop_is_let_in_once() -> None:
    t = FaceTracker(TrackerSettings(lost_after_s=0.6))
    entries = 0
    for i in range(5):
        t.observe(BOX, i * 0.9)
        if t.needs_encoding(i * 0.9) and t.record(match("a"), i * 0.9) is not None:
            entries += 1
    assert entries == 1
