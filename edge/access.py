"""Who gets in: the door's access decision, as pure logic over plain data.

The daemon turns what a reader saw into a `Credential`, hands it to `AccessDecider.decide` with the
current roster members and both clocks, and acts on the `AccessDecision`: pulse the door if
`granted`, record an event unless `kind == "ignored"`, raise `alarm` if set. Nothing here reads a
clock, touches hardware or logs; durations use only `now_mono` (a Pi without an RTC can jump its
wall clock by years when NTP arrives), while opening hours and membership validity use `now_wall`.

Rules, in order (the first that applies decides):

1. Exit button: always granted, kind "exit" (fire egress must never depend on software state).
   Remote opening (a staff decision from the centre): always granted, kind "entry" (or "exit" for
   direction "out"). Neither is subject to lockout, opening hours or cooldown, nor counted.
2. Exit reader (a face or QR credential with direction "out"): never locked out and never counted
   (the person is already inside). A credential the recognizer refused is refused with its reason
   (the exit button still works); a recognised member is granted kind "exit" whatever their status
   or the hour, subject only to the cooldown, and recorded as outside for anti-passback.
3. Entry with a locked credential or appearance (`edge.lockouts`): refused with "lockout", even
   when it would match: a run of failed attempts often precedes the lookalike photo that finally
   matches. Only what was tried is locked (this face track, face entry as this member, this pass),
   never the door: other members, and the locked member's own pass, keep working.
4. The recognizer refused the credential: refused with its reason ("unknown_face", or the QR
   checker's word such as "expired", "bad_signature", "replayed").
5. The member is not in the roster any more: "unknown_member".
6. The member is not valid now (`MemberInfo.is_valid_at`): "member_suspended", "member_expired",
   "member_not_yet_valid".
7. The member's kind or groups are not admitted at this station: "not_allowed_here".
8. The station is closed: "station_closed" (details carry "opens_at" when known).
9. The same member was granted entry less than cooldown_s ago: kind "ignored", reason "cooldown",
   granted False. The door is still open for them from the first decision: no second pulse, no
   second event for one person standing in front of the camera.
10. Anti-passback (when enabled): the member is recorded inside (last granted "in", not followed by
    an "out", less than anti_passback_reset_s ago): "anti_passback".
11. Otherwise granted, kind "entry".

Repeated refusals: the same refusal (method, direction, member, reason, and for faces the
appearance id in details["appearance"], for passes details["pass"]) within refusal_repeat_s of the
last one recorded is kind "ignored", reason "repeated_refusal": not an event, not counted.

Lockout: only refusals of *unidentified* credentials count (rule 4 with no member id: an unknown
face, or a QR code whose signature did not verify, since the checker reports a member id only from
verified tokens). Refusals of an identified member (expired token, suspended, closed, anti-passback,
...) are events with the member's id but do not count: they are not probing. Each counted refusal
counts against what was tried: an unknown face against its appearance (details["appearance"]) and,
when it came close to a member (details["near_member"]: within the distance cap, refused on margin
or crowd ratio), against face entry as that member; a forged QR code against that pass
(details["pass"]). When lockout_attempts counted refusals of one key fall within lockout_window_s,
the tripping refusal carries alarm "lockout_started" (details["locked"] names the locks) and that key
is refused until lockout_s later; its count starts from zero afterwards, and "lockout" refusals
neither count nor extend it. Refusals while an enrolment is under way at the door
(`pause_face_counting`) are not counted either: the person being enrolled is not probing.

Exception: a two-factor "face_mismatch" (a verified QR code, but the face is someone else's) counts
even though the code names a member: that is someone trying a colleague's code, so the pass is
locked (its owner's face still works where a face alone admits). And a face in the grey zone
("show_pass": the door asks for the pass) does not count although it names nobody, nor as a near
miss of the member it resembles: the door did not refuse a stranger, it asked for the second factor
(half of the members are asked at times, docs/RECOGNITION.md; counting them would lock them out).
An unknown face is beyond the grey zone, far from every member: it counts against its appearance.

Face results that are not attempts: `Credential.from_face` returns None for "no_face" and
"poor_quality" frames. The daemon keeps looking instead of recording a refusal for every blurry
frame, and such frames never count toward lockout.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, TypeVar, get_args

from contract.schedule import OpeningHours, require_aware
from edge.access_config import AccessConfig
from edge.lockouts import LockKey, LockoutInfo, Lockouts, Scope
from recognizer.results import Decision, FaceResult, QrResult
from recognizer.roster import MemberInfo
from recognizer.scoring import OVER_THRESHOLD

Method: TypeAlias = Literal["face", "qr", "qr_face", "remote", "exit_button"]
Direction: TypeAlias = Literal["in", "out"]
DecisionKind: TypeAlias = Literal["entry", "exit", "refused", "ignored"]

METHODS: Final[frozenset[str]] = frozenset(get_args(Method))
DIRECTIONS: Final[frozenset[str]] = frozenset(get_args(Direction))

#: Refusals that count toward lockout although the credential names a member.
PROBING_REASONS: Final[frozenset[str]] = frozenset({"face_mismatch"})
#: Refusals of an unidentified credential that do not count: the door asked for more (the pass).
NOT_PROBING_REASONS: Final[frozenset[str]] = frozenset({"show_pass"})

# Stable reason words (events, logs and the screen key on them).
UNKNOWN_FACE: Final = "unknown_face"
SHOW_PASS: Final = "show_pass"
UNKNOWN_MEMBER: Final = "unknown_member"
MEMBER_INVALID: Final = "member_invalid"
NOT_ALLOWED_HERE: Final = "not_allowed_here"
STATION_CLOSED: Final = "station_closed"
LOCKOUT: Final = "lockout"
ANTI_PASSBACK: Final = "anti_passback"
COOLDOWN: Final = "cooldown"
REPEATED_REFUSAL: Final = "repeated_refusal"
QR_REFUSED: Final = "qr_refused"
# Alarm words.
LOCKOUT_STARTED: Final = "lockout_started"

SNAPSHOT_VERSION: Final = 2

_K = TypeVar("_K")
_V = TypeVar("_V")


def _frozen(details: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(details or {}))


def _numbers(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class Credential:
    """What a reader presented, already judged by the recognizer.

    `ok` is the recognizer's verdict (face matched / QR token valid); when False, `reason` is its
    stable refusal word and `member_id` is set only if the identity is trustworthy (the QR checker
    fills it only from tokens whose signature verified). `details` holds the numbers worth keeping
    in the event (distance, margin, key id...). `direction` is "out" for an exit reader.
    Remote and exit-button credentials are decisions already taken, so they are always `ok`.
    """

    method: Method
    member_id: str | None = None
    ok: bool = True
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    direction: Direction = "in"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown credential method {self.method!r} (one of {sorted(METHODS)})")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', got {self.direction!r}")
        if self.member_id is not None and (not isinstance(self.member_id, str) or not self.member_id):
            raise ValueError(f"member_id must be a non-empty string or None, got {self.member_id!r}")
        if self.method in ("remote", "exit_button"):
            if not self.ok or self.reason is not None:
                raise ValueError(f"a {self.method} credential is a decision already taken: ok, no reason")
            if self.method == "exit_button" and (self.direction != "out" or self.member_id is not None):
                raise ValueError("an exit_button credential has direction 'out' and no member_id")
        elif self.ok:
            if self.member_id is None:
                raise ValueError(f"an accepted {self.method} credential needs the member_id")
            if self.reason is not None:
                raise ValueError("an accepted credential carries no refusal reason")
        elif not isinstance(self.reason, str) or not self.reason:
            raise ValueError(f"a refused {self.method} credential needs the recognizer's reason")
        object.__setattr__(self, "details", _frozen(self.details))

    @classmethod
    def from_face(
        cls, result: FaceResult, *, direction: Direction = "in", appearance: int | None = None
    ) -> Credential | None:
        """The credential a face result amounts to, or None when the frame is not an attempt.

        MATCH -> accepted for its member. UNKNOWN -> refused "unknown_face", the matcher's own
        reason (over_threshold, empty_roster) kept in details["matcher_reason"] and no member id
        (an unmatched face is nobody). SHOW_PASS -> refused "show_pass" (the face rule was not sure:
        the door asks for the pass; not counted toward lockout; the gate that held it back in
        details["matcher_reason"]). NO_FACE, POOR_QUALITY and PENDING -> None: the daemon keeps
        looking.
        """
        numbers = _numbers(
            distance=result.distance,
            margin=result.margin,
            runner_up_id=result.runner_up_id,
            appearance=appearance,
        )
        if result.decision == Decision.MATCH:
            return cls("face", result.member_id, True, None, numbers, direction)
        if result.decision == Decision.UNKNOWN:
            numbers["matcher_reason"] = result.reason
            near = _near_member(result)
            if near is not None:
                numbers["near_member"] = near
            return cls("face", None, False, UNKNOWN_FACE, numbers, direction)
        if result.decision == Decision.SHOW_PASS:
            numbers["matcher_reason"] = result.reason
            return cls("face", None, False, SHOW_PASS, numbers, direction)
        if result.decision in (Decision.NO_FACE, Decision.POOR_QUALITY, Decision.PENDING):
            return None
        raise ValueError(f"not a face decision: {result.decision.value!r}")

    @classmethod
    def from_qr(
        cls, result: QrResult, *, direction: Direction = "in", pass_id: str | None = None
    ) -> Credential:
        """The credential a checked QR token amounts to; a refusal keeps the checker's reason.

        `pass_id` (`edge.lockouts.pass_fingerprint` of the text) is what a lockout of this pass keys on.
        """
        numbers = _numbers(key_id=result.key_id, expires_at=result.expires_at, **{"pass": pass_id})
        if result.decision == Decision.QR_OK:
            return cls("qr", result.member_id, True, None, numbers, direction)
        if result.decision == Decision.QR_REFUSED:
            return cls("qr", result.member_id, False, result.reason or QR_REFUSED, numbers, direction)
        raise ValueError(f"not a QR decision: {result.decision.value!r}")

    @classmethod
    def remote(
        cls,
        member_id: str | None = None,
        *,
        direction: Direction = "in",
        details: Mapping[str, Any] | None = None,
    ) -> Credential:
        """A remote opening ordered by staff (optionally on behalf of a member)."""
        return cls("remote", member_id, True, None, _frozen(details), direction)

    @classmethod
    def exit_button(cls, details: Mapping[str, Any] | None = None) -> Credential:
        """A press of the inside exit button."""
        return cls("exit_button", None, True, None, _frozen(details), "out")


@dataclass(frozen=True)
class AccessDecision:
    """The outcome of one credential: what the door does and what the event says.

    `granted`: pulse the door. `kind`: "entry" / "exit" (granted), "refused", or "ignored" (a
    repeat: neither pulse nor event). `reason`: the stable word explaining a refusal or an ignore.
    `alarm`: "lockout_started" on the refusal that tripped the lockout.
    """

    granted: bool
    kind: DecisionKind
    method: Method
    member_id: str | None
    reason: str | None = None
    alarm: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    direction: Direction = "in"

    @property
    def is_event(self) -> bool:
        """Whether the daemon records this decision (everything but repeats)."""
        return self.kind != "ignored"


class AccessDecider:
    """Applies the rules in the module docstring and keeps the little state they need.

    State (all in monotonic seconds): recent counted refusals, the lockout end, the last grant per
    (member, direction), the last occurrence of each refusal, and each member's last direction for
    anti-passback. Entries are dropped once they can no longer matter, so memory stays bounded by the
    traffic of the longest window. `decide` is serialised by a lock: face and QR threads may share
    one decider. `now_mono` values that go backwards are treated as the latest one seen.
    """

    def __init__(self, config: AccessConfig, hours: OpeningHours) -> None:
        self._config = config
        self._hours = hours
        self._lock = threading.Lock()
        self._clock = -math.inf
        self._lockouts = Lockouts(
            attempts=config.lockout_attempts, window_s=config.lockout_window_s, lockout_s=config.lockout_s
        )
        self._counting_paused_until = -math.inf
        #: Bumped whenever lockout state changes (a counted refusal, a lock, a clear): the daemon
        #: persists `snapshot_state` when it moved, so a kill -9 does not clear a lockout.
        self.state_version = 0
        self._granted_at: dict[tuple[str, Direction], float] = {}
        self._refused_at: dict[tuple[str, Direction, str | None, str, Any, Any], float] = {}
        self._presence: dict[str, tuple[Direction, float]] = {}

    @property
    def config(self) -> AccessConfig:
        return self._config

    @property
    def hours(self) -> OpeningHours:
        return self._hours

    def set_hours(self, hours: OpeningHours) -> None:
        """Replace the opening hours (a schedule sent by the centre or the installer)."""
        with self._lock:
            self._hours = hours

    def decide(
        self,
        credential: Credential,
        members: Mapping[str, MemberInfo],
        *,
        now_wall: dt.datetime,
        now_mono: float,
    ) -> AccessDecision:
        """Decide on `credential` against `members` at `now_wall` (aware) / `now_mono` (seconds)."""
        require_aware(now_wall, "now_wall")
        if not isinstance(now_mono, (int, float)) or not math.isfinite(now_mono):
            raise ValueError(f"now_mono must be a finite number of seconds, got {now_mono!r}")
        with self._lock:
            now = self._advance(float(now_mono))
            return self._decide(credential, members, now_wall, now)

    def lockout_remaining(self, now_mono: float) -> float:
        """Seconds left of the longest active lockout at `now_mono` (0.0 when none)."""
        with self._lock:
            return self._lockouts.remaining(max(self._clock, float(now_mono)))

    def active_lockouts(self, now_mono: float) -> list[LockoutInfo]:
        """Every active lockout (what is locked, for how long, after how many attempts)."""
        with self._lock:
            now = self._advance(float(now_mono))
            return self._lockouts.active(now)

    def clear_lockout(
        self, lock_id: str | None = None, *, scope: Scope | None = None, now_mono: float | None = None
    ) -> list[LockoutInfo]:
        """End one lockout (by id, e.g. "member:W-0001"), every one of a scope, or all (staff
        cleared it); their counted refusals are forgotten. Returns what was cleared."""
        with self._lock:
            now = self._advance(float(now_mono)) if now_mono is not None else self._clock
            cleared = self._lockouts.clear(now, lock_id, scope)
            self.state_version += 1
            return cleared

    def pause_face_counting(self, now_mono: float, seconds: float) -> None:
        """Face refusals in the next `seconds` do not count toward lockouts (an installer is
        enrolling someone at the door: the camera refuses them until they are enrolled)."""
        with self._lock:
            now = self._advance(float(now_mono))
            self._counting_paused_until = max(self._counting_paused_until, now + max(0.0, seconds))

    def face_counting_paused_s(self, now_mono: float) -> float:
        with self._lock:
            return max(0.0, self._counting_paused_until - max(self._clock, float(now_mono)))

    def snapshot_state(self, *, now_mono: float) -> dict[str, Any]:
        """What should survive a restart, with times as ages (monotonic clocks restart at boot).

        Member and pass lockouts and their counted refusals (so a restart does not reset an
        attack) and anti-passback presence. Appearance lockouts end with the appearance, and
        cooldowns and refusal repeats are short-lived: deliberately not kept.
        """
        with self._lock:
            now = self._advance(float(now_mono))
            return {
                "version": SNAPSHOT_VERSION,
                **self._lockouts.snapshot(now),
                "presence": {
                    member: {"direction": direction, "age_s": now - at}
                    for member, (direction, at) in self._presence.items()
                },
            }

    def restore_state(self, state: Mapping[str, Any], *, now_mono: float) -> None:
        """Load a `snapshot_state` taken earlier; ValueError (state unchanged) if it is malformed.

        Time spent down is not known (the wall clock may be wrong), so ages resume where they were:
        a lockout or an "inside" record lasts at most that much longer, never shorter.
        """
        if not isinstance(state, Mapping) or state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"not an access state snapshot of version {SNAPSHOT_VERSION}")
        Lockouts.parse_snapshot(state)  # validated before anything changes
        raw_presence = state.get("presence")
        if not isinstance(raw_presence, Mapping):
            raise ValueError("access state snapshot: presence must be a mapping")
        presence: list[tuple[float, str, Direction]] = []
        for member, entry in raw_presence.items():
            if not isinstance(member, str) or not member or not isinstance(entry, Mapping):
                raise ValueError(f"access state snapshot: bad presence entry {member!r}")
            direction = entry.get("direction")
            if direction not in DIRECTIONS:
                raise ValueError(f"access state snapshot: bad direction for {member!r}")
            side: Direction = "in" if direction == "in" else "out"
            presence.append((_age(entry.get("age_s"), "presence.age_s"), member, side))
        presence.sort(key=lambda item: -item[0])
        with self._lock:
            now = self._advance(float(now_mono))
            self._lockouts.restore(state, now)
            self._presence = {member: (direction, now - age) for age, member, direction in presence}

    # ------------------------------------------------------------------------------- the rules

    def _decide(
        self, c: Credential, members: Mapping[str, MemberInfo], now_wall: dt.datetime, now: float
    ) -> AccessDecision:
        if c.method == "exit_button":
            return self._grant(c, "exit")
        if c.method == "remote":
            if c.member_id is not None:
                self._note_presence(c.member_id, c.direction, now)
            return self._grant(c, "entry" if c.direction == "in" else "exit")
        if c.direction == "out":
            return self._exit_reader(c, now)

        locked = self._lockouts.find(_lock_keys(c), now)
        if locked is not None:
            lockout = {
                "lockout": locked.id,
                "lockout_scope": locked.scope,
                "lockout_remaining_s": round(locked.remaining_s, 3),
            }
            return self._refuse(c, LOCKOUT, now, extra=lockout)
        if not c.ok:
            reason = c.reason or UNKNOWN_FACE
            counted = (c.member_id is None and reason not in NOT_PROBING_REASONS) or reason in PROBING_REASONS
            paused = c.method == "face" and now < self._counting_paused_until
            keys = _count_keys(c, reason) if counted and not paused else []
            return self._refuse(c, reason, now, count_keys=keys)
        member_id = c.member_id
        member = members.get(member_id) if member_id is not None else None
        if member is None or member_id is None:
            return self._refuse(c, UNKNOWN_MEMBER, now)
        valid, why = member.is_valid_at(now_wall)
        if not valid:
            return self._refuse(c, why or MEMBER_INVALID, now)
        if not self._admitted(member):
            return self._refuse(c, NOT_ALLOWED_HERE, now, extra=_numbers(kind=member.kind))
        if not self._hours.is_open(now_wall):
            opens = self._hours.next_change(now_wall)
            extra = {"opens_at": opens.isoformat()} if opens is not None else None
            return self._refuse(c, STATION_CLOSED, now, extra=extra)
        ignored = self._cooldown(c, member_id, now)
        if ignored is not None:
            return ignored
        if self._config.anti_passback:
            last = self._presence.get(member_id)
            if last is not None and last[0] == "in" and now - last[1] < self._config.anti_passback_reset_s:
                inside = round(now - last[1], 3)
                return self._refuse(c, ANTI_PASSBACK, now, extra={"inside_since_s": inside})
        _touch(self._granted_at, (member_id, "in"), now)
        self._note_presence(member_id, "in", now)
        return self._grant(c, "entry")

    def _exit_reader(self, c: Credential, now: float) -> AccessDecision:
        if not c.ok:
            return self._refuse(c, c.reason or UNKNOWN_FACE, now)
        member_id = c.member_id
        if member_id is None:  # Credential forbids this; refuse rather than open for nobody
            return self._refuse(c, UNKNOWN_MEMBER, now)
        ignored = self._cooldown(c, member_id, now)
        if ignored is not None:
            return ignored
        _touch(self._granted_at, (member_id, "out"), now)
        self._note_presence(member_id, "out", now)
        return self._grant(c, "exit")

    def _admitted(self, member: MemberInfo) -> bool:
        kinds = self._config.allowed_kinds
        groups = self._config.allowed_groups
        if kinds and member.kind not in kinds:
            return False
        return not groups or any(group in groups for group in member.groups)

    def _cooldown(self, c: Credential, member_id: str, now: float) -> AccessDecision | None:
        last = self._granted_at.get((member_id, c.direction))
        if last is None or now - last >= self._config.cooldown_s:
            return None
        return AccessDecision(
            granted=False,
            kind="ignored",
            method=c.method,
            member_id=member_id,
            reason=COOLDOWN,
            details={**c.details, "since_grant_s": round(now - last, 3)},
            direction=c.direction,
        )

    def _grant(self, c: Credential, kind: DecisionKind) -> AccessDecision:
        return AccessDecision(
            granted=True,
            kind=kind,
            method=c.method,
            member_id=c.member_id,
            details=dict(c.details),
            direction=c.direction,
        )

    def _refuse(
        self,
        c: Credential,
        reason: str,
        now: float,
        *,
        count_keys: list[LockKey] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AccessDecision:
        details = {**c.details, **(extra or {})}
        # A face credential names its appearance (the tracker's track id) and a QR credential its
        # pass: two strangers, or two different passes, one after the other are two refusals.
        key = (c.method, c.direction, c.member_id, reason, c.details.get("appearance"), c.details.get("pass"))
        last = self._refused_at.get(key)
        if last is not None and now - last < self._config.refusal_repeat_s:
            return AccessDecision(
                granted=False,
                kind="ignored",
                method=c.method,
                member_id=c.member_id,
                reason=REPEATED_REFUSAL,
                details={**details, "repeat_of": reason},
                direction=c.direction,
            )
        _touch(self._refused_at, key, now)
        alarm: str | None = None
        if count_keys:
            attempts, started = self._lockouts.count(count_keys, now, reason=reason, member_id=c.member_id)
            self.state_version += 1
            if attempts:
                details["attempts_in_window"] = attempts
            if started:
                alarm = LOCKOUT_STARTED
                details["lockout_s"] = self._config.lockout_s
                details["locked"] = [
                    {"id": info.id, "scope": info.scope, "key": info.key, "member_id": info.member_id}
                    for info in started
                ]
        return AccessDecision(
            granted=False,
            kind="refused",
            method=c.method,
            member_id=c.member_id,
            reason=reason,
            alarm=alarm,
            details=details,
            direction=c.direction,
        )

    # ------------------------------------------------------------------------------- state

    def _advance(self, now_mono: float) -> float:
        """Move the decider's clock forward (never back) and drop state that can no longer matter."""
        now = max(self._clock, now_mono)
        self._clock = now
        config = self._config
        self._lockouts.expire(now)
        _expire(self._granted_at, now, config.cooldown_s, lambda t: t)
        _expire(self._refused_at, now, config.refusal_repeat_s, lambda t: t)
        _expire(self._presence, now, config.anti_passback_reset_s, lambda entry: entry[1])
        return now

    def _note_presence(self, member_id: str, direction: Direction, now: float) -> None:
        if self._config.anti_passback:
            _touch(self._presence, member_id, (direction, now))


def _near_member(result: FaceResult) -> str | None:
    """The member an unknown face came close to: within the distance cap, refused only by the margin
    or the crowd ratio (the lookalike probe). None for a face far from everyone (over_threshold).

    With the zone rule (`recognizer.scoring`) every unknown face is over_threshold: faces refused
    on margin or ratio are asked for the pass instead (show_pass, never counted)."""
    scores = result.scores or {}
    subject = scores.get("subject_id")
    failed = scores.get("failed")
    if not isinstance(subject, str) or not subject or not isinstance(failed, list | tuple):
        return None
    return None if not failed or OVER_THRESHOLD in failed else subject


def _lock_keys(c: Credential) -> list[LockKey]:
    """The locks that would refuse this entry credential."""
    keys: list[LockKey] = []
    if c.method == "face":
        appearance = c.details.get("appearance")
        if appearance is not None:
            keys.append(LockKey("appearance", str(appearance)))
        if c.ok and c.member_id is not None:
            keys.append(LockKey("member", c.member_id))
    pass_id = c.details.get("pass")
    if c.method in ("qr", "qr_face") and isinstance(pass_id, str) and pass_id:
        keys.append(LockKey("pass", pass_id))
    return keys


def _count_keys(c: Credential, reason: str) -> list[LockKey]:
    """What a counted refusal counts against (see the module docstring)."""
    if c.method == "face":
        keys = [LockKey("appearance", str(c.details["appearance"]))] if "appearance" in c.details else []
        near = c.details.get("near_member")
        if isinstance(near, str) and near:
            keys.append(LockKey("member", near))
        return keys
    pass_id = c.details.get("pass")
    if isinstance(pass_id, str) and pass_id:
        return [LockKey("pass", pass_id)]
    if reason in PROBING_REASONS and c.member_id is not None:
        return [LockKey("member", c.member_id)]  # no pass fingerprint: lock the claimed member
    return []


def _touch(table: dict[_K, _V], key: _K, value: _V) -> None:
    """Set `key` and move it to the end, keeping `table` ordered oldest first for `_expire`."""
    table.pop(key, None)
    table[key] = value


def _expire(table: dict[_K, _V], now: float, lifetime: float, when: Callable[[_V], float]) -> None:
    """Drop the oldest entries of `table` whose time (`when(value)`) is `lifetime` or more ago."""
    while table:
        key, value = next(iter(table.items()))
        if now - when(value) < lifetime:
            return
        del table[key]


def _age(value: Any, what: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ValueError(f"access state snapshot: {what} must be a non-negative number, got {value!r}")
    return float(value)
