"""One appearance at the door, followed across frames, so a face is encoded once, not every frame.

Encoding is the expensive step (~100 ms with dlib-bin). A worker standing at the door for three
seconds at 15 fps is 45 frames of the same face; without tracking that is 45 encodings, 45 events
and 45 relay pulses. The tracker keeps one track (the largest face: the person at the door), matches
detections to it by box overlap, and says when an encoding is worth doing:
- a new appearance is encoded at once;
- once decided (granted, or refused after `max_attempts` unknown encodings), it is not encoded again
  until the person leaves (a frame without a face, `lost_after_s` after the last sighting) and a
  new appearance starts;
- an unknown or low-quality face is retried at most every `retry_interval_s`, because the next
  frame is often better (the person was still turning towards the camera);
- with `require_frames` > 1, that many encodings must agree on the same member before a match
  counts; a disagreeing match resets the count (two lookalikes alternating never add up);
- a decided appearance is re-checked every `reverify_s`: boxes alone cannot tell that the member
  stepped aside and someone else stepped into the same spot, so when the identity changes the
  track is ended and the newcomer starts an appearance of their own.

Pure logic: boxes and times in, instructions out. The daemon does the detecting and encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recognizer.results import Decision, FaceResult

Box = tuple[int, int, int, int]  # top, right, bottom, left


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (top, right, bottom, left) boxes."""
    top, bottom = max(a[0], b[0]), min(a[2], b[2])
    left, right = max(a[3], b[3]), min(a[1], b[1])
    inter = max(0, bottom - top) * max(0, right - left)
    area_a = max(0, a[2] - a[0]) * max(0, a[1] - a[3])
    area_b = max(0, b[2] - b[0]) * max(0, b[1] - b[3])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    require_frames: int = 1
    max_attempts: int = 3
    retry_interval_s: float = 0.3
    lost_after_s: float = 0.6
    min_iou: float = 0.2
    reverify_s: float = 2.0


@dataclass
class Track:
    track_id: int
    box: Box
    first_seen: float
    last_seen: float
    attempts: int = 0
    last_attempt: float | None = None
    decided: bool = False
    decided_member: str | None = None  # who the verdict was about (None: a stranger)
    next_verify: float = 0.0
    votes_member: str | None = None
    votes: int = 0
    results: list[FaceResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an appearance amounts to, once: a member recognised, or a stranger refused."""

    track_id: int
    result: FaceResult
    frames: int  # encodings it took


class FaceTracker:
    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._track: Track | None = None
        self._next_id = 1

    @property
    def track(self) -> Track | None:
        return self._track

    @property
    def active(self) -> bool:
        """Someone is (or was very recently) at the door: keep running detection."""
        return self._track is not None

    def observe(self, box: Box | None, now: float) -> Track | None:
        """Feed the largest detected box of a frame (or None). Returns the current track.

        A track ends on a frame that shows no face `lost_after_s` after the last sighting: the
        absence must be seen. Time alone ends nothing, because a busy loop (a loaded Pi encoding
        for a second) looks at few frames: the person it sees in each of them is one appearance,
        not a new entry per look (nor a stranger who is never refused because every look started
        over). Someone else stepping into the same spot is caught by the re-check (`reverify_s`).
        """
        track = self._track
        if box is None:
            if track is not None and now - track.last_seen > self.settings.lost_after_s:
                track = self._track = None
            return track
        if track is not None and iou(track.box, box) >= self.settings.min_iou:
            track.box = box
            track.last_seen = now
            return track
        # No overlap: a different person is now the largest face. They get their own appearance.
        self._track = Track(self._next_id, box, now, now)
        self._next_id += 1
        return self._track

    def needs_encoding(self, now: float) -> bool:
        track = self._track
        if track is None:
            return False
        if track.decided:
            return now >= track.next_verify
        if track.last_attempt is None:
            return True
        return now - track.last_attempt >= self.settings.retry_interval_s

    def record(self, result: FaceResult, now: float) -> Verdict | None:
        """Account one identification of the current track; a Verdict when the appearance is decided."""
        track = self._track
        if track is None:
            return None
        if track.decided:
            if not self._still_the_same(track, result, now):
                # Someone else now stands where the decided person stood: a new appearance.
                self._track = Track(self._next_id, track.box, now, now)
                self._next_id += 1
                return self.record(result, now)
            return None
        track.last_attempt = now
        track.results.append(result)
        if result.decision is Decision.MATCH and result.member_id is not None:
            if track.votes_member == result.member_id:
                track.votes += 1
            else:
                track.votes_member, track.votes = result.member_id, 1
            if track.votes >= self.settings.require_frames:
                self._decide(track, result.member_id, now)
                return Verdict(track.track_id, result, len(track.results))
            return None
        if result.decision is Decision.UNKNOWN:
            track.votes_member, track.votes = None, 0
            track.attempts += 1
            if track.attempts >= self.settings.max_attempts:
                self._decide(track, None, now)
                return Verdict(track.track_id, result, len(track.results))
        # no_face / poor_quality: not an attempt; try again on a later frame.
        return None

    def _decide(self, track: Track, member_id: str | None, now: float) -> None:
        track.decided = True
        track.decided_member = member_id
        track.next_verify = now + self.settings.reverify_s

    def _still_the_same(self, track: Track, result: FaceResult, now: float) -> bool:
        """A re-check of a decided track: True unless the face now says someone else."""
        track.next_verify = now + self.settings.reverify_s
        if result.decision is Decision.MATCH:
            return result.member_id == track.decided_member
        if result.decision is Decision.UNKNOWN:
            return track.decided_member is None
        return True  # no usable face this time: nothing learned

    def reset(self) -> None:
        self._track = None
