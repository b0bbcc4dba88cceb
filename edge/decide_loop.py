"""The hot loop: camera frames in, access decisions, event rows and relay pulses out.

One thread runs `DecideLoop.run`. Per frame, cheapest first (docs/ARCHITECTURE.md has the diagram):
1. QR decode on the grey frame (~1.5 ms) — a QR code always works, face or no face;
2. the change / brightness check (~0.4 ms);
3. face detection only when something changed, a face is being tracked, or `idle_detect_s` passed
   (someone standing perfectly still), and never in darkness;
4. the tracker decides whether this appearance still needs an encoding; an appearance is judged on
   `min_frames` encodings together (`recognizer.scoring.score`): accepted, asked for the pass
   (`show_pass`: the door waits for a pass the face then confirms 1:1, `edge.two_factor`), or
   refused as unknown;
5. a decided appearance or QR becomes a `Credential`, the `AccessDecider` applies the rules, the
   event (+ outbox) row is committed, and only then is the relay driven; the frame-to-relay latency
   is filled in afterwards and the snapshot queued for the snapshot thread.
Nothing here waits on the network.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from edge.access import AccessDecider, AccessDecision, Credential
from edge.camera import Frame, LatestFrame
from edge.lockouts import pass_fingerprint
from edge.motion import ChangeDetector
from edge.recorder import EventRecorder
from edge.tracker import FaceTracker, Verdict
from edge.two_factor import Asked, TwoFactorGate, TwoFactorVerdict
from recognizer.face_pipeline import FacePipeline
from recognizer.qr_decode import decode_qr_payloads
from recognizer.results import Decision, FaceResult, QrResult
from recognizer.roster import MemberInfo, RosterSnapshot
from recognizer.scoring import ScoringPolicy, verify

log = logging.getLogger(__name__)


class Door(Protocol):
    def grant(self, seconds: float | None = None, *, reason: str) -> float: ...

    def grant_aux(self, member_groups: Any, seconds: float | None = None) -> bool: ...


class SnapshotSink(Protocol):
    def path_for(self, event_id: str, when_wall: float) -> str | None: ...

    def submit(
        self, event_id: str, frame: Frame, box: tuple[int, int, int, int] | None, when_wall: float
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class LoopSettings:
    idle_detect_s: float = 1.0
    min_brightness: float = 12.0
    qr_repeat_s: float = 3.0


@dataclass
class LoopStats:
    frames: int = 0
    detections: int = 0
    encodings: int = 0
    qr_checks: int = 0
    decisions: int = 0
    record_failures: int = 0
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {"face": [], "qr": []})


class DecideLoop:
    def __init__(
        self,
        *,
        frames: LatestFrame,
        pipeline: FacePipeline,
        roster: Callable[[], RosterSnapshot],
        match_policy: ScoringPolicy,
        check_qr: Callable[[str], QrResult],
        decider: AccessDecider,
        recorder: EventRecorder,
        door: Door,
        snapshots: SnapshotSink | None,
        tracker: FaceTracker,
        settings: LoopSettings,
        stop: threading.Event,
        needs_two_factor: Callable[[MemberInfo | None], bool] = lambda _member: False,
        two_factor: TwoFactorGate | None = None,
    ) -> None:
        self.frames = frames
        self.pipeline = pipeline
        self.roster = roster
        self.match_policy = match_policy
        self.check_qr = check_qr
        self.decider = decider
        self.recorder = recorder
        self.door = door
        self.snapshots = snapshots
        self.tracker = tracker
        self.settings = settings
        self.stop = stop
        self.needs_two_factor = needs_two_factor
        self.two_factor = two_factor or TwoFactorGate()
        self.change = ChangeDetector()
        self.stats = LoopStats()
        self.heartbeat = time.monotonic()
        self.last_frame_mono: float | None = None
        self._last_detect = -1e9
        self._recent_qr: dict[str, float] = {}

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Until `stop` is set or a finite source is exhausted."""
        last_seq = 0
        while not self.stop.is_set():
            self.heartbeat = time.monotonic()
            frame = self.frames.get(after_seq=last_seq, timeout=0.5)
            if frame is None:
                if self.frames.exhausted(last_seq):
                    log.info("video source exhausted", extra={"fields": {"frames": self.stats.frames}})
                    return
                continue
            last_seq = frame.seq
            self.last_frame_mono = frame.captured_mono
            try:
                self.process(frame)
            except Exception:
                # A bug on one frame must not stop the door: log it and carry on with the next.
                log.exception("frame processing failed", extra={"fields": {"seq": frame.seq}})

    def process(self, frame: Frame) -> None:
        self.stats.frames += 1
        grey = np.asarray(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY), np.uint8)
        self._check_qr_codes(frame, grey)
        change = self.change.update(grey)
        now = time.monotonic()
        expired = self.two_factor.expire(now)
        if expired is not None:
            self._decide_two_factor(expired, frame, None)
        if change.brightness < self.settings.min_brightness:
            self.tracker.observe(None, now)
            self._face_verdict(self.tracker.take_ended(), frame)
            return
        waiting = self.two_factor.pending is not None
        due = (
            waiting
            or change.changed
            or self.tracker.active
            or now - self._last_detect >= self.settings.idle_detect_s
        )
        if not due:
            return
        self._last_detect = now
        if self.roster().faces_unavailable:
            return  # templates unreadable (logged by the station): QR and buttons still work
        rgb = np.asarray(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB), np.uint8)
        started = time.perf_counter()
        detections = self.pipeline.detect(rgb)
        detect_ms = (time.perf_counter() - started) * 1000
        self.stats.detections += 1
        box = detections[0].box if detections else None
        if waiting:
            # A QR code named a two-factor member: their face is checked 1:1, not identified 1:N.
            if box is not None and self.two_factor.needs_face(now):
                self._confirm_face(frame, rgb, detections[0])
            return
        self.tracker.observe(box, now)
        self._face_verdict(self.tracker.take_ended(), frame)
        if box is None or not self.tracker.needs_encoding(now):
            return
        observation = self.pipeline.observe(rgb, detections[0])
        if observation.encoding is None:
            self.tracker.poor_look(time.monotonic())
            return
        self.stats.encodings += 1
        timings = {"detect": detect_ms, **observation.timings_ms}
        roster = self.roster()

        needs_pass = _NeedsPass(roster, self.needs_two_factor)

        def judge(window: Sequence[np.ndarray], recheck: bool) -> FaceResult:
            policy = self.match_policy.for_one_photo() if recheck else self.match_policy
            result = self.pipeline.decide_frames(
                window, observation.box, roster, policy, timings, requires_pass=needs_pass
            )
            timings["total"] = (time.perf_counter() - started) * 1000
            return result

        self._face_verdict(self.tracker.add(observation.encoding, time.monotonic(), judge), frame)

    def _face_verdict(self, verdict: Verdict | None, frame: Frame) -> None:
        """Act on a decided appearance: entry, refusal, or the door asking for the pass."""
        if verdict is None:
            return
        credential = Credential.from_face(verdict.result, appearance=verdict.track_id)
        if credential is None:
            return
        details = _face_details(verdict.result, verdict.frames)
        decision = self._decide(credential, frame, verdict.result.box, details)
        if verdict.result.decision is Decision.SHOW_PASS and decision is not None and decision.is_event:
            # The door asked for the pass: a pass shown in the window is confirmed by these frames.
            self.two_factor.ask(verdict.track_id, list(verdict.encodings), details, time.monotonic())

    def _check_qr_codes(self, frame: Frame, grey: np.ndarray) -> None:
        payloads = decode_qr_payloads(grey)
        if not payloads:
            return
        now = time.monotonic()
        self._recent_qr = {
            t: seen for t, seen in self._recent_qr.items() if now - seen < self.settings.qr_repeat_s
        }
        # Ours first: a poster's QR code must not hide a member's token; one decision per frame.
        for text in sorted(payloads, key=lambda t: not t.startswith("YZ"))[:1]:
            if text in self._recent_qr:
                self._recent_qr[text] = now
                continue
            self._recent_qr[text] = now
            self.stats.qr_checks += 1
            result = self.check_qr(text)
            details: dict[str, Any] = {
                "qr_reason": result.reason,
                "key_id": result.key_id,
                "timings_ms": result.timings_ms,
                "pass": pass_fingerprint(text),  # what a lockout of this pass keys on
            }
            if result.decision is Decision.QR_OK and result.member_id is not None:
                snapshot = self.roster()
                member = snapshot.members.get(result.member_id)
                enrolled = (
                    snapshot.position_of(result.member_id) is not None and not snapshot.faces_unavailable
                )
                asked = self.two_factor.take_asked(now)
                if asked is None and enrolled:
                    # Shown while the face at the door was still being judged, in the grey zone.
                    claimed = self.tracker.claim_for_pass()
                    if claimed is not None:
                        asked = Asked(claimed.track_id, list(claimed.encodings), {}, now)
                if self.needs_two_factor(member) or (asked is not None and enrolled):
                    if enrolled:
                        frames = asked.frames if asked is not None else []
                        if asked is not None:
                            details["asked_appearance"] = asked.appearance
                        self.two_factor.start(
                            result.member_id, details, now, frames=frames, on_demand=asked is not None
                        )
                        if len(self.two_factor.window()) >= self.match_policy.min_frames:
                            self._verify_pending(frame, None, now)
                        return
                    # No face to confirm with: the code alone admits (a face is never the only way in).
                    details["qr_only_member"] = True
            self._decide(Credential.from_qr(result, pass_id=details["pass"]), frame, None, details)

    def _confirm_face(self, frame: Frame, rgb: np.ndarray, detection: Any) -> None:
        pending = self.two_factor.pending
        if pending is None:
            return
        observation = self.pipeline.observe(rgb, detection)
        if observation.encoding is None:
            return  # not a usable face yet; the window keeps running
        self.stats.encodings += 1
        self.two_factor.add_frame(observation.encoding)
        self._verify_pending(frame, observation.box, time.monotonic())

    def _verify_pending(self, frame: Frame, box: tuple[int, int, int, int] | None, now: float) -> None:
        pending = self.two_factor.pending
        if pending is None:
            return
        result = verify(
            self.roster(),
            pending.member_id,
            self.two_factor.window(),
            self.match_policy,
            on_demand=pending.on_demand
            and not self.needs_two_factor(self.roster().members.get(pending.member_id)),
        )
        verdict = self.two_factor.record(result, now)
        if verdict is not None:
            self._decide_two_factor(verdict, frame, box)

    def _decide_two_factor(
        self, verdict: TwoFactorVerdict, frame: Frame, box: tuple[int, int, int, int] | None
    ) -> None:
        # The person at the door has been decided: their face is not judged 1:N again meanwhile.
        self.tracker.adopt(box, verdict.member_id if verdict.accepted else None, time.monotonic())
        credential = Credential(
            "qr_face", verdict.member_id, verdict.accepted, verdict.reason, verdict.details
        )
        self._decide(credential, frame, box, dict(verdict.details))

    # -- deciding -------------------------------------------------------------------------------

    def _decide(
        self,
        credential: Credential,
        frame: Frame,
        box: tuple[int, int, int, int] | None,
        details: dict[str, Any],
    ) -> AccessDecision | None:
        snapshot = self.roster()
        decision = self.decider.decide(
            credential, snapshot.members, now_wall=dt.datetime.now(dt.UTC), now_mono=time.monotonic()
        )
        self.stats.decisions += 1
        if not decision.is_event:
            return decision
        event_id = str(uuid.uuid4())
        when_wall = time.time()
        snapshot_path = self.snapshots.path_for(event_id, when_wall) if self.snapshots else None
        try:
            self.recorder.record(
                kind=decision.kind,
                method=decision.method,
                member_id=decision.member_id,
                reason=decision.reason,
                details={
                    **details,
                    **decision.details,
                    **({"alarm": decision.alarm} if decision.alarm else {}),
                },
                snapshot=snapshot_path,
                event_id=event_id,
                ts_mono=frame.captured_mono,
                ts_wall=frame.captured_wall,
            )
        except Exception:
            # No record, no entry: the door stays shut rather than open without an audit trail.
            self.stats.record_failures += 1
            log.error(
                "decision not recorded: door stays shut", extra={"fields": {"member_id": decision.member_id}}
            )
            return decision
        if decision.granted:
            energised = self.door.grant(reason=f"{decision.method}:{decision.member_id}")
            latency = (energised - frame.captured_mono) * 1000.0
            self.stats.latencies_ms.setdefault(decision.method, []).append(latency)
            self.recorder.set_latency(event_id, latency)
            member = snapshot.members.get(decision.member_id or "")
            if member is not None and member.groups:
                self.door.grant_aux(member.groups)
        if decision.alarm:
            locked = decision.details.get("locked") or []
            self.recorder.record(
                kind="lockout",
                method=decision.method,
                member_id=next((lock["member_id"] for lock in locked if lock.get("member_id")), None),
                reason=decision.alarm,
                details={
                    "trigger_event": event_id,
                    "locked": locked,
                    "lockout_s": decision.details.get("lockout_s"),
                },
            )
        if self.snapshots is not None and snapshot_path is not None:
            self.snapshots.submit(event_id, frame, box, when_wall)
        return decision


class _NeedsPass(Collection[str]):
    """Members whose face alone must not open (two-factor station or group, or requires_pass), as
    the collection `recognizer.scoring.score` asks about (only `in` is used, per candidate)."""

    def __init__(self, roster: RosterSnapshot, needs: Callable[[MemberInfo | None], bool]) -> None:
        self._roster = roster
        self._needs = needs

    def __contains__(self, member_id: object) -> bool:
        return isinstance(member_id, str) and self._needs(self._roster.members.get(member_id))

    def __iter__(self) -> Iterator[str]:
        return (m for m in self._roster.members if self._needs(self._roster.members[m]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _face_details(result: FaceResult, frames: int) -> dict[str, Any]:
    """The numbers of a face decision for its event (`scores` holds all of them)."""
    return {
        "scores": result.scores,
        "distance": None if result.distance is None else round(result.distance, 4),
        "margin": None if result.margin is None else round(result.margin, 4),
        "matcher_reason": result.reason,
        "runner_up_id": result.runner_up_id,
        "encodings": frames,
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
    }
