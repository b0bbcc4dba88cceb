"""One appearance at the door, followed across frames, judged on several frames together.

Encoding is the expensive step (~100 ms with dlib-bin). A worker standing at the door for three
seconds at 15 fps is 45 frames of the same face; the tracker keeps one track (the largest face: the
person at the door), matches detections to it by box overlap, and says when an encoding is worth
doing and when the appearance is decided:
- a new appearance gathers `require_frames` encodings (one every `frame_interval_s`), and is judged
  on all of them together (`recognizer.scoring.score`: fused distance, every frame agreeing on the
  member): one frame is never enough for the face alone to open the door;
- judged "accept": decided at once (the member); "show_pass" or "unknown": the window slides by one
  frame (the next look may be better: the person was still turning towards the camera), up to
  `max_attempts` judged windows; then the appearance is decided on its best window (asked for the
  pass when any window was in the grey zone, else refused as unknown);
- a person who walks away (or is replaced by someone else) before their appearance is decided is
  decided on the windows judged so far (`take_ended`), so a stranger who gives up after two looks
  is still a refusal in the log, and a member the door was about to ask is still asked;
- once decided, it is not judged again until the person leaves (no detection for `lost_after_s`) and
  a new appearance starts; but it is re-checked every `reverify_s` on a single frame, because boxes
  alone cannot tell that the member stepped aside and someone else stepped into the same spot: when
  that frame names somebody else, the track ends and the newcomer starts an appearance of their own.

Pure logic: boxes, times and encodings in; a `judge` callable (the daemon's scoring of a window of
encodings) is injected, so this module never touches the model or the roster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from recognizer.results import Decision, FaceResult

Box = tuple[int, int, int, int]  # top, right, bottom, left
Encoding = npt.NDArray[np.float32]
#: (encodings of the window, is_recheck) -> the judgement of those encodings together.
Judge = Callable[[Sequence[Encoding], bool], FaceResult]


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
    retry_interval_s: float = 0.3  # between re-checks of poor-quality looks
    frame_interval_s: float = 0.1  # between the frames one appearance is judged on
    lost_after_s: float = 0.6
    min_iou: float = 0.2
    reverify_s: float = 2.0
    max_frames: int = 12  # encodings kept per appearance (the window uses the last require_frames)


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
    encodings: list[Encoding] = field(default_factory=list)
    results: list[FaceResult] = field(default_factory=list)
    best: FaceResult | None = None  # the most convincing refused window so far

    def window(self, size: int) -> list[Encoding]:
        return self.encodings[-size:]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an appearance amounts to, once: a member recognised, asked for the pass, or refused."""

    track_id: int
    result: FaceResult
    frames: int  # encodings it took
    encodings: tuple[Encoding, ...] = ()  # the frames the verdict rests on (two-factor reuses them)


def _better(a: FaceResult | None, b: FaceResult) -> bool:
    """Is `b` a more convincing refused window than `a`? Grey zone beats unknown, then distance."""
    if a is None:
        return True
    rank = {Decision.SHOW_PASS: 0, Decision.UNKNOWN: 1}
    key_a = (rank.get(a.decision, 2), a.distance if a.distance is not None else 9.0)
    key_b = (rank.get(b.decision, 2), b.distance if b.distance is not None else 9.0)
    return key_b < key_a


def _only_the_pass_is_missing(result: FaceResult) -> bool:
    """The face was good enough and only the member's own rule (requires the pass) held it back:
    another look will not change that, so the door asks at once."""
    failed = (result.scores or {}).get("failed")
    return result.decision is Decision.SHOW_PASS and failed == ["requires_pass"]


class FaceTracker:
    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._track: Track | None = None
        self._next_id = 1
        self._ended: Verdict | None = None

    @property
    def track(self) -> Track | None:
        return self._track

    @property
    def active(self) -> bool:
        """Someone is (or was very recently) at the door: keep running detection."""
        return self._track is not None

    def observe(self, box: Box | None, now: float) -> Track | None:
        """Feed the largest detected box of a frame (or None). Returns the current track.

        A track ends when frames without a face have been seen for `lost_after_s`, not merely when
        time passed: on a loaded box frames with the same face may come further apart than that,
        and one person must stay one appearance (one decision, one refusal at most)."""
        track = self._track
        if box is None:
            if track is not None and now - track.last_seen > self.settings.lost_after_s:
                self._finish(track)
                self._track = None
            return self._track
        if track is not None and iou(track.box, box) >= self.settings.min_iou:
            track.box = box
            track.last_seen = now
            return track
        # No overlap: a different person is now the largest face. They get their own appearance.
        return self._new_track(box, now)

    def claim_for_pass(self) -> Verdict | None:
        """A pass was shown while this appearance was still being judged and the face was in the
        grey zone: the appearance is decided (no separate "asked" event: the door did not need to
        ask) and its frames go to the pass's 1:1 check."""
        track = self._track
        if track is None or track.decided or track.best is None:
            return None
        if track.best.decision is not Decision.SHOW_PASS:
            return None
        track.decided = True
        track.next_verify = track.last_seen + self.settings.reverify_s
        return Verdict(track.track_id, track.best, len(track.encodings), tuple(track.encodings))

    def adopt(self, box: Box | None, member_id: str | None, now: float) -> None:
        """The person at `box` was just decided elsewhere (pass + face): their appearance is decided,
        so the face lingering at the door is not judged (and refused) again."""
        if box is None:
            if self._track is None:
                return
            track = self._track
        elif self._track is not None and iou(self._track.box, box) >= self.settings.min_iou:
            track = self._track
            track.box, track.last_seen = box, now
        else:
            track = self._new_track(box, now)
        self._decide(track, member_id, now)

    def take_ended(self) -> Verdict | None:
        """The verdict of an appearance that ended before it was decided (once), else None."""
        ended, self._ended = self._ended, None
        return ended

    def _finish(self, track: Track) -> None:
        """An undecided track is over: decide it on its most convincing refused window, if any; a
        face seen on fewer frames than a window that was beyond everyone's grey zone is refused too
        (a stranger who walked off after one look stays in the log)."""
        if track.decided:
            return
        best = track.best
        if best is None and track.results:
            last = track.results[-1]
            beyond_grey = "over_threshold" in (last.scores or {}).get("failed", [])
            if last.decision is Decision.PENDING and beyond_grey:
                best = replace(last, decision=Decision.UNKNOWN, reason="over_threshold")
        if best is not None:
            track.decided = True
            self._ended = Verdict(track.track_id, best, len(track.encodings), tuple(track.encodings))

    def _new_track(self, box: Box, now: float) -> Track:
        if self._track is not None:
            self._finish(self._track)
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
        return now - track.last_attempt >= self.settings.frame_interval_s

    def poor_look(self, now: float) -> None:
        """A look at the current track gave no usable encoding: not an attempt, retry later."""
        track = self._track
        if track is not None and not track.decided:
            track.last_attempt = now - self.settings.frame_interval_s + self.settings.retry_interval_s

    def add(self, encoding: Encoding, now: float, judge: Judge) -> Verdict | None:
        """One more encoding of the current track; a Verdict when the appearance is decided."""
        track = self._track
        if track is None:
            return None
        if track.decided:
            track.next_verify = now + self.settings.reverify_s
            if self._still_the_same(track, judge([encoding], True)):
                return None
            # Someone else now stands where the decided person stood: a new appearance.
            track = self._new_track(track.box, now)
        track.last_attempt = now
        track.encodings.append(encoding)
        del track.encodings[: -self.settings.max_frames]
        window = track.window(max(1, self.settings.require_frames))
        result = judge(window, False)
        track.results.append(result)
        return self._account(track, result, tuple(window), now)

    def _account(
        self, track: Track, result: FaceResult, window: tuple[Encoding, ...], now: float
    ) -> Verdict | None:
        if result.decision is Decision.MATCH and result.member_id is not None:
            self._decide(track, result.member_id, now)
            return Verdict(track.track_id, result, len(track.encodings), window)
        if result.decision in (Decision.SHOW_PASS, Decision.UNKNOWN):
            track.attempts += 1
            if _better(track.best, result):
                track.best = result
            if track.attempts >= self.settings.max_attempts or _only_the_pass_is_missing(result):
                self._decide(track, None, now)
                best = track.best or result
                return Verdict(track.track_id, best, len(track.encodings), window)
        # pending (more frames needed) / no usable face: keep looking.
        return None

    def _decide(self, track: Track, member_id: str | None, now: float) -> None:
        track.decided = True
        track.decided_member = member_id
        track.next_verify = now + self.settings.reverify_s

    @staticmethod
    def _still_the_same(track: Track, result: FaceResult) -> bool:
        """A single-frame re-check of a decided track: True unless the face now says someone else."""
        if result.decision is Decision.MATCH:
            return result.member_id == track.decided_member
        if result.decision is Decision.UNKNOWN:
            # Beyond the grey zone of everyone: a member who was let in does not look like that.
            return track.decided_member is None
        return True  # grey zone or no usable face: nothing learned

    def reset(self) -> None:
        self._track = None
        self._ended = None
