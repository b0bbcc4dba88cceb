"""Access decisions: every rule and reason, their order, lockout, cooldown, anti-passback, config."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract.schedule import OpeningHours
from edge.access import AccessDecider, AccessDecision, Credential
from edge.access_config import AccessConfig
from recognizer.results import Decision, FaceResult, QrResult
from recognizer.roster import MemberInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC
NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=SHANGHAI)  # a Monday

MEMBERS: Mapping[str, MemberInfo] = {
    "alice": MemberInfo("alice", "Alice", kind="courier", groups=("riders",)),
    "bob": MemberInfo("bob", "Bob", kind="sanitation", groups=("sanitation", "district-3")),
    "carol": MemberInfo("carol", "Carol"),  # no kind, no group
    "sus": MemberInfo("sus", "Suspended", status="suspended", kind="courier"),
    "old": MemberInfo("old", "Expired", valid_until=dt.datetime(2026, 1, 1, tzinfo=UTC), kind="courier"),
    "new": MemberInfo("new", "Not yet", valid_from=dt.datetime(2026, 6, 1, tzinfo=UTC), kind="courier"),
}

DAYTIME = OpeningHours(always_open=False, weekly={d: "08:00-20:00" for d in ("mon", "tue", "wed")})


def decider(hours: OpeningHours | None = None, **config: Any) -> AccessDecider:
    return AccessDecider(AccessConfig(**config), hours if hours is not None else OpeningHours())


def face(member_id: str, direction: str = "in") -> Credential:
    return Credential("face", member_id, direction=direction)  # type: ignore[arg-type]


def stranger(direction: str = "in", appearance: int = 1, near: str | None = None) -> Credential:
    details: dict[str, Any] = {"appearance": appearance}
    if near is not None:
        details["near_member"] = near
    return Credential("face", None, ok=False, reason="unknown_face", details=details, direction=direction)  # type: ignore[arg-type]


def seen(member_id: str, appearance: int) -> Credential:
    """A face matching `member_id`, seen as face track `appearance`."""
    return Credential("face", member_id, details={"appearance": appearance})


def forged_qr(pass_id: str = "f0f0f0f0f0f0f0f0") -> Credential:
    return Credential("qr", None, ok=False, reason="bad_signature", details={"pass": pass_id})


def qr(member_id: str, pass_id: str) -> Credential:
    return Credential("qr", member_id, details={"pass": pass_id})


def run(
    door: AccessDecider,
    credential: Credential,
    mono: float,
    wall: dt.datetime = NOON,
    members: Mapping[str, MemberInfo] = MEMBERS,
) -> AccessDecision:
    return door.decide(credential, members, now_wall=wall, now_mono=mono)


def assert_refused(decision: AccessDecision, reason: str) -> None:
    assert (decision.granted, decision.kind, decision.reason) == (False, "refused", reason)
    assert decision.is_event


# ------------------------------------------------------------------------------ credentials


def test_from_face_match_is_an_accepted_credential_with_its_numbers() -> None:
    result = FaceResult(Decision.MATCH, member_id="alice", distance=0.41, margin=0.2, runner_up_id="bob")
    credential = Credential.from_face(result)
    assert credential is not None
    assert (credential.method, credential.member_id, credential.ok, credential.reason) == (
        "face",
        "alice",
        True,
        None,
    )
    assert dict(credential.details) == {"distance": 0.41, "margin": 0.2, "runner_up_id": "bob"}
    assert credential.direction == "in"
    out = Credential.from_face(result, direction="out")
    assert out is not None and out.direction == "out"


def test_from_face_unknown_is_an_anonymous_refusal_keeping_the_matcher_reason() -> None:
    credential = Credential.from_face(FaceResult(Decision.UNKNOWN, distance=0.7, reason="over_threshold"))
    assert credential is not None
    assert (credential.member_id, credential.ok, credential.reason) == (None, False, "unknown_face")
    assert credential.details["matcher_reason"] == "over_threshold"
    assert credential.details["distance"] == 0.7


@pytest.mark.parametrize("decision", [Decision.NO_FACE, Decision.POOR_QUALITY])
def test_from_face_frames_without_a_usable_face_are_not_attempts(decision: Decision) -> None:
    assert Credential.from_face(FaceResult(decision, reason="too_blurry")) is None


def test_from_face_and_from_qr_refuse_the_other_kind_of_result() -> None:
    with pytest.raises(ValueError, match="not a face decision"):
        Credential.from_face(FaceResult(Decision.QR_OK, member_id="alice"))
    with pytest.raises(ValueError, match="not a QR decision"):
        Credential.from_qr(QrResult(Decision.MATCH, member_id="alice"))


def test_from_qr_accepted_and_refused() -> None:
    ok = Credential.from_qr(QrResult(Decision.QR_OK, member_id="bob", key_id="0a1b2c3d", expires_at=99))
    assert (ok.method, ok.member_id, ok.ok) == ("qr", "bob", True)
    assert dict(ok.details) == {"key_id": "0a1b2c3d", "expires_at": 99}
    expired = Credential.from_qr(QrResult(Decision.QR_REFUSED, member_id="bob", reason="expired"))
    assert (expired.member_id, expired.ok, expired.reason) == ("bob", False, "expired")
    forged = Credential.from_qr(QrResult(Decision.QR_REFUSED, reason="bad_signature"))
    assert (forged.member_id, forged.reason) == (None, "bad_signature")
    wordless = Credential.from_qr(QrResult(Decision.QR_REFUSED))
    assert wordless.reason == "qr_refused"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "badge", "member_id": "alice"}, "unknown credential method"),
        ({"method": "face", "member_id": "alice", "direction": "up"}, "direction"),
        ({"method": "face"}, "needs the member_id"),
        ({"method": "face", "member_id": ""}, "non-empty"),
        ({"method": "face", "member_id": "alice", "reason": "x"}, "no refusal reason"),
        ({"method": "qr", "ok": False}, "needs the recognizer's reason"),
        ({"method": "remote", "ok": False, "reason": "no"}, "decision already taken"),
        ({"method": "exit_button", "direction": "in"}, "exit_button"),
        ({"method": "exit_button", "member_id": "alice", "direction": "out"}, "exit_button"),
    ],
)
def test_inconsistent_credentials_are_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Credential(**kwargs)


def test_credential_details_are_a_frozen_copy() -> None:
    source = {"distance": 0.3}
    credential = Credential("face", "alice", details=source)
    source["distance"] = 0.9
    assert credential.details["distance"] == 0.3
    with pytest.raises(TypeError):
        credential.details["distance"] = 1.0  # type: ignore[index]


# ------------------------------------------------------------------------------ granted and refused


def test_a_valid_member_is_granted_entry_with_the_recognizer_numbers() -> None:
    credential = Credential.from_face(
        FaceResult(Decision.MATCH, member_id="alice", distance=0.4, margin=0.15)
    )
    assert credential is not None
    decision = run(decider(), credential, 0.0)
    assert (decision.granted, decision.kind, decision.method, decision.member_id) == (
        True,
        "entry",
        "face",
        "alice",
    )
    assert decision.reason is None and decision.alarm is None and decision.is_event
    assert decision.details == {"distance": 0.4, "margin": 0.15}


@pytest.mark.parametrize(
    ("member_id", "reason"),
    [
        ("sus", "member_suspended"),
        ("old", "member_expired"),
        ("new", "member_not_yet_valid"),
        ("ghost", "unknown_member"),
    ],
)
def test_member_state_refusals(member_id: str, reason: str) -> None:
    decision = run(decider(), face(member_id), 0.0)
    assert_refused(decision, reason)
    assert decision.member_id == member_id
    qr = run(decider(), Credential("qr", member_id), 0.0)
    assert_refused(qr, reason)


@pytest.mark.parametrize("reason", ["expired", "bad_signature", "replayed", "wrong_station", "key_revoked"])
def test_recognizer_qr_reasons_pass_through(reason: str) -> None:
    decision = run(decider(), Credential.from_qr(QrResult(Decision.QR_REFUSED, reason=reason)), 0.0)
    assert_refused(decision, reason)
    assert decision.method == "qr"


def test_unknown_face_is_refused_with_the_matcher_reason_in_details() -> None:
    credential = Credential.from_face(
        FaceResult(Decision.UNKNOWN, distance=0.58, margin=0.02, reason="low_margin"), appearance=1
    )
    assert credential is not None
    decision = run(decider(), credential, 0.0)
    assert_refused(decision, "unknown_face")
    assert decision.member_id is None
    assert decision.details["matcher_reason"] == "low_margin" and decision.details["attempts_in_window"] == 1


@pytest.mark.parametrize(
    ("config", "granted", "refused"),
    [
        ({"allowed_kinds": ("sanitation",)}, {"bob"}, {"alice", "carol"}),
        ({"allowed_groups": ("riders", "district-3")}, {"alice", "bob"}, {"carol"}),
        (
            {"allowed_kinds": ("courier",), "allowed_groups": ("sanitation",)},
            set(),
            {"alice", "bob", "carol"},
        ),
        ({}, {"alice", "bob", "carol"}, set()),
    ],
)
def test_allowed_kinds_and_groups(config: dict[str, Any], granted: set[str], refused: set[str]) -> None:
    door = decider(**config)
    for member_id in granted:
        assert run(door, face(member_id), 0.0).kind == "entry"
    for member_id in refused:
        assert_refused(run(door, face(member_id), 0.0), "not_allowed_here")


def test_station_closed_refuses_members_and_says_when_it_opens() -> None:
    door = decider(DAYTIME)
    evening = NOON.replace(hour=21)
    decision = run(door, face("alice"), 0.0, evening)
    assert_refused(decision, "station_closed")
    assert decision.details["opens_at"] == "2026-03-03T08:00:00+08:00"
    assert run(door, face("alice"), 1.0, NOON).kind == "entry"
    assert_refused(run(door, Credential("qr", "bob"), 2.0, evening), "station_closed")


def test_naive_wall_time_and_bad_monotonic_time_are_refused() -> None:
    door = decider()
    with pytest.raises(ValueError, match="now_wall"):
        door.decide(face("alice"), MEMBERS, now_wall=dt.datetime(2026, 3, 2, 12), now_mono=0.0)
    with pytest.raises(ValueError, match="now_mono"):
        door.decide(face("alice"), MEMBERS, now_wall=NOON, now_mono=math.nan)


# ------------------------------------------------------------------------------ order of the rules


def test_validity_is_checked_before_kind_and_hours() -> None:
    door = decider(DAYTIME, allowed_kinds=("sanitation",))
    evening = NOON.replace(hour=21)
    assert_refused(run(door, face("sus"), 0.0, evening), "member_suspended")
    assert_refused(run(door, face("ghost"), 0.0, evening), "unknown_member")
    assert_refused(run(door, face("alice"), 0.0, evening), "not_allowed_here")
    assert_refused(run(door, face("bob"), 0.0, evening), "station_closed")


def test_recognizer_refusal_comes_before_the_roster() -> None:
    door = decider()
    refused = Credential.from_qr(QrResult(Decision.QR_REFUSED, member_id="ghost", reason="token_revoked"))
    assert_refused(run(door, refused, 0.0), "token_revoked")


def test_cooldown_does_not_hide_fresh_refusals() -> None:
    door = decider(cooldown_s=10)
    assert run(door, face("alice"), 0.0).kind == "entry"
    suspended_now = {**MEMBERS, "alice": MemberInfo("alice", "Alice", status="suspended")}
    assert_refused(run(door, face("alice"), 1.0, members=suspended_now), "member_suspended")


def test_cooldown_comes_before_anti_passback() -> None:
    door = decider(anti_passback=True, cooldown_s=10)
    assert run(door, face("alice"), 0.0).kind == "entry"
    repeat = run(door, face("alice"), 2.0)
    assert (repeat.kind, repeat.reason) == ("ignored", "cooldown")
    assert_refused(run(door, face("alice"), 12.0), "anti_passback")


# ----------------------------------------------------------------------- exit button, remote, exit reader


def test_exit_button_and_remote_always_work() -> None:
    door = decider(DAYTIME, lockout_attempts=1, refusal_repeat_s=0)
    night = NOON.replace(hour=3)
    decision = run(door, stranger(), 0.0, night)
    assert decision.alarm == "lockout_started"
    exit_press = run(door, Credential.exit_button(), 1.0, night)
    assert (exit_press.granted, exit_press.kind, exit_press.method, exit_press.member_id) == (
        True, "exit", "exit_button", None,
    )  # fmt: skip
    remote = run(door, Credential.remote("sus", details={"operator": "centre"}), 2.0, night)
    assert (remote.granted, remote.kind, remote.member_id) == (True, "entry", "sus")
    assert remote.details == {"operator": "centre"}
    assert run(door, Credential.remote(direction="out"), 3.0, night).kind == "exit"
    assert_refused(run(door, stranger(), 4.0), "lockout")  # that appearance is locked, nobody else
    assert run(door, face("alice"), 4.0).kind == "entry"


def test_exit_button_and_remote_are_never_ignored_nor_counted() -> None:
    door = decider(lockout_attempts=1, cooldown_s=600)
    for second in range(20):
        assert run(door, Credential.exit_button(), float(second)).kind == "exit"
        assert run(door, Credential.remote("alice"), float(second)).kind == "entry"
    assert door.lockout_remaining(20.0) == 0.0
    assert run(door, face("alice"), 20.0).kind == "entry"


def test_exit_reader_lets_any_recognised_member_out_at_any_time() -> None:
    door = decider(DAYTIME, lockout_attempts=1, refusal_repeat_s=0)
    night = NOON.replace(hour=3)
    run(door, stranger(), 0.0, night)
    assert door.lockout_remaining(0.0) > 0
    for member_id in ("alice", "sus", "old", "ghost"):
        decision = run(door, face(member_id, "out"), 1.0, night)
        assert (decision.granted, decision.kind, decision.direction) == (True, "exit", "out")


def test_exit_reader_refusals_are_events_but_never_count_toward_lockout() -> None:
    door = decider(lockout_attempts=2, refusal_repeat_s=0)
    for second in range(5):
        decision = run(door, stranger("out"), float(second))
        assert_refused(decision, "unknown_face")
        assert decision.alarm is None and "attempts_in_window" not in decision.details
    assert run(door, face("alice"), 6.0).kind == "entry"


# ------------------------------------------------------------------------------ lockout


def test_a_face_track_is_locked_after_n_counted_refusals_and_nobody_else_is() -> None:
    door = decider(lockout_attempts=3, lockout_window_s=60, lockout_s=120, refusal_repeat_s=0)
    first = run(door, stranger(appearance=7), 0.0)
    second = run(door, stranger(appearance=7), 1.0)
    assert first.alarm is None and second.alarm is None
    assert second.details["attempts_in_window"] == 2
    third = run(door, stranger(appearance=7), 3.0)
    assert_refused(third, "unknown_face")  # the tripping refusal keeps its own reason
    assert third.alarm == "lockout_started" and third.details["lockout_s"] == 120
    assert third.details["locked"] == [
        {"id": "appearance:7", "scope": "appearance", "key": "7", "member_id": None}
    ]
    # The same person then shows a lookalike photo that matches alice: refused, it is that track.
    locked = run(door, seen("alice", 7), 4.0)
    assert_refused(locked, "lockout")
    assert locked.details["lockout"] == "appearance:7"
    assert locked.details["lockout_remaining_s"] == pytest.approx(119.0)
    # Everyone else walks in.
    assert run(door, seen("bob", 8), 5.0).kind == "entry"
    assert run(door, qr("carol", "c0c0c0c0c0c0c0c0"), 6.0).kind == "entry"
    assert [info.id for info in door.active_lockouts(6.0)] == ["appearance:7"]


def test_strangers_passing_by_lock_no_member_out() -> None:
    """The new user's trial: three strangers per loop of a video, a member with a pass refused."""
    door = decider(lockout_attempts=5, lockout_window_s=60, refusal_repeat_s=10)
    mono = 0.0
    for loop in range(20):
        for n in range(3):
            mono += 1.0
            decision = run(door, stranger(appearance=loop * 3 + n), mono)
            assert_refused(decision, "unknown_face")
            assert decision.alarm is None
    assert door.active_lockouts(mono) == []
    assert run(door, qr("alice", "a1a1a1a1a1a1a1a1"), mono + 1).kind == "entry"
    assert run(door, seen("bob", 999), mono + 1).kind == "entry"


def test_near_misses_lock_face_entry_as_that_member_only() -> None:
    door = decider(lockout_attempts=3, refusal_repeat_s=0)
    for n in range(2):
        assert run(door, stranger(appearance=n, near="alice"), float(n)).alarm is None
    tripped = run(door, stranger(appearance=2, near="alice"), 2.0)
    assert tripped.alarm == "lockout_started"
    assert {lock["id"] for lock in tripped.details["locked"]} == {"member:alice"}
    assert tripped.details["locked"][0]["member_id"] is None  # the refused face named nobody
    refused = run(door, seen("alice", 50), 3.0)  # even a true match, on a fresh appearance
    assert_refused(refused, "lockout")
    assert refused.details["lockout"] == "member:alice" and refused.details["lockout_scope"] == "member"
    assert run(door, qr("alice", "a1a1a1a1a1a1a1a1"), 4.0).kind == "entry"  # her pass still works
    assert run(door, seen("bob", 51), 5.0).kind == "entry"


def test_far_strangers_do_not_count_against_any_member() -> None:
    door = decider(lockout_attempts=2, refusal_repeat_s=0)
    for n in range(10):
        run(door, stranger(appearance=n), float(n))
    assert door.active_lockouts(10.0) == []


def test_from_face_marks_a_near_miss_with_the_member_it_came_close_to() -> None:
    near = FaceResult(
        Decision.UNKNOWN,
        distance=0.45,
        reason="low_margin",
        scores={"subject_id": "alice", "failed": ["low_margin"]},
    )
    far = FaceResult(
        Decision.UNKNOWN,
        distance=0.7,
        reason="over_threshold",
        scores={"subject_id": "alice", "failed": ["over_threshold", "high_ratio"]},
    )
    near_credential = Credential.from_face(near, appearance=3)
    far_credential = Credential.from_face(far, appearance=4)
    assert near_credential is not None and near_credential.details["near_member"] == "alice"
    assert far_credential is not None and "near_member" not in far_credential.details


def test_a_forged_pass_is_locked_and_other_passes_are_not() -> None:
    door = decider(lockout_attempts=2, refusal_repeat_s=0)
    run(door, forged_qr("dead0000dead0000"), 0.0)
    tripped = run(door, forged_qr("dead0000dead0000"), 1.0)
    assert tripped.alarm == "lockout_started"
    assert_refused(run(door, forged_qr("dead0000dead0000"), 2.0), "lockout")
    assert run(door, qr("bob", "b0b0b0b0b0b0b0b0"), 3.0).kind == "entry"
    assert_refused(run(door, forged_qr("beef0000beef0000"), 4.0), "bad_signature")


def test_a_colleagues_pass_with_the_wrong_face_locks_that_pass() -> None:
    door = decider(lockout_attempts=2, refusal_repeat_s=0)

    def mismatch(t: float) -> AccessDecision:
        credential = Credential("qr_face", "bob", ok=False, reason="face_mismatch", details={"pass": "b0b0"})
        return run(door, credential, t)

    assert mismatch(0.0).alarm is None
    tripped = mismatch(1.0)
    assert tripped.alarm == "lockout_started"
    assert tripped.details["locked"] == [
        {"id": "pass:b0b0", "scope": "pass", "key": "b0b0", "member_id": "bob"}
    ]
    assert_refused(run(door, Credential("qr_face", "bob", details={"pass": "b0b0"}), 2.0), "lockout")
    assert run(door, seen("bob", 1), 3.0).kind == "entry"  # his face alone (no two-factor here)


def test_old_failures_slide_out_of_the_window() -> None:
    door = decider(lockout_attempts=3, lockout_window_s=60, refusal_repeat_s=0)
    run(door, stranger(), 0.0)
    run(door, stranger(), 30.0)
    # At t=60 the t=0 failure is exactly window_s old and no longer counts.
    assert run(door, stranger(), 60.0).alarm is None
    assert run(door, stranger(), 61.0).alarm == "lockout_started"  # 30, 60, 61


def test_lockout_expires_and_the_count_starts_again() -> None:
    door = decider(lockout_attempts=2, lockout_window_s=60, lockout_s=100, refusal_repeat_s=0)
    run(door, stranger(), 0.0)
    assert run(door, stranger(), 10.0).alarm == "lockout_started"
    assert_refused(run(door, seen("alice", 1), 109.999), "lockout")
    assert door.lockout_remaining(109.999) == pytest.approx(0.001)
    assert run(door, seen("alice", 1), 110.0).kind == "entry"
    assert door.lockout_remaining(110.0) == 0.0
    assert run(door, stranger(), 111.0).alarm is None  # the tripping failures were used up


def test_refusals_during_a_lockout_neither_count_nor_extend_it() -> None:
    door = decider(lockout_attempts=2, lockout_s=100, refusal_repeat_s=0)
    run(door, stranger(), 0.0)
    run(door, stranger(), 1.0)
    for second in range(2, 100):
        decision = run(door, stranger(), float(second))
        assert_refused(decision, "lockout")
        assert decision.alarm is None
    assert run(door, seen("alice", 1), 101.0).kind == "entry"
    assert run(door, stranger(), 102.0).alarm is None


def test_refusals_of_identified_members_do_not_count_toward_lockout() -> None:
    door = decider(DAYTIME, lockout_attempts=2, refusal_repeat_s=0, allowed_groups=("riders",))
    night = NOON.replace(hour=3)
    expired_qr = Credential.from_qr(
        QrResult(Decision.QR_REFUSED, member_id="alice", reason="expired"), pass_id="e0e0e0e0"
    )
    for second in range(10):
        for credential, wall in [
            (seen("sus", 1), NOON),
            (seen("ghost", 1), NOON),
            (seen("bob", 1), NOON),
            (seen("alice", 1), night),
            (expired_qr, NOON),
        ]:
            decision = run(door, credential, float(second), wall)
            assert decision.kind == "refused" and decision.alarm is None
    assert door.lockout_remaining(10.0) == 0.0
    assert run(door, face("alice"), 11.0).kind == "entry"


def test_the_person_being_enrolled_never_counts() -> None:
    door = decider(lockout_attempts=2, refusal_repeat_s=0)
    door.pause_face_counting(0.0, 60.0)
    for second in range(30):
        decision = run(door, stranger(appearance=1, near="alice"), float(second))
        assert_refused(decision, "unknown_face")
        assert "attempts_in_window" not in decision.details
    assert door.active_lockouts(30.0) == [] and door.face_counting_paused_s(30.0) == pytest.approx(30.0)
    run(door, forged_qr(), 31.0)
    assert run(door, forged_qr(), 32.0).alarm == "lockout_started"  # QR probing still counts
    assert run(door, stranger(), 61.0).details["attempts_in_window"] == 1  # the pause ended


def test_clear_one_lockout_a_scope_or_all() -> None:
    door = decider(lockout_attempts=1, refusal_repeat_s=0)
    run(door, stranger(appearance=1), 0.0)
    run(door, stranger(appearance=2, near="alice"), 0.0)
    run(door, forged_qr("dead0000dead0000"), 0.0)
    assert {i.id for i in door.active_lockouts(1.0)} == {
        "appearance:1",
        "appearance:2",
        "member:alice",
        "pass:dead0000dead0000",
    }
    assert door.lockout_remaining(1.0) == pytest.approx(119.0)
    version = door.state_version
    assert [i.id for i in door.clear_lockout("member:alice", now_mono=1.0)] == ["member:alice"]
    assert door.state_version > version
    assert run(door, seen("alice", 9), 1.0).kind == "entry"
    assert door.clear_lockout("member:alice", now_mono=1.0) == []  # nothing left to clear
    cleared = door.clear_lockout(scope="appearance", now_mono=1.0)
    assert {i.id for i in cleared} == {"appearance:1", "appearance:2"}
    door.clear_lockout()
    assert door.active_lockouts(1.0) == [] and door.lockout_remaining(1.0) == 0.0
    with pytest.raises(ValueError, match="lockout id"):
        door.clear_lockout("everyone")


# ------------------------------------------------------------------------------ repeats


def test_a_member_standing_at_the_door_opens_it_once_per_cooldown() -> None:
    door = decider(cooldown_s=10)
    assert run(door, face("alice"), 100.0).kind == "entry"
    for mono in (100.1, 101.0, 109.99):
        repeat = run(door, face("alice"), mono)
        assert (repeat.granted, repeat.kind, repeat.reason, repeat.is_event) == (
            False,
            "ignored",
            "cooldown",
            False,
        )
    assert run(door, Credential("qr", "alice"), 105.0).kind == "ignored"  # per member, not per method
    assert run(door, face("alice"), 110.0).kind == "entry"


def test_cooldown_is_per_member_and_per_direction() -> None:
    door = decider(cooldown_s=10)
    assert run(door, face("alice"), 0.0).kind == "entry"
    assert run(door, face("bob"), 0.5).kind == "entry"
    assert run(door, face("carol"), 1.0).kind == "entry"
    assert run(door, face("alice", "out"), 2.0).kind == "exit"
    assert run(door, face("alice", "out"), 3.0).kind == "ignored"


def test_zero_cooldown_grants_every_time() -> None:
    door = decider(cooldown_s=0)
    assert all(run(door, face("alice"), t / 10).kind == "entry" for t in range(5))


def test_wall_clock_jumps_do_not_break_the_cooldown() -> None:
    door = decider(cooldown_s=10)
    assert run(door, face("alice"), 500.0, NOON).kind == "entry"
    # NTP arrives and sets the wall clock back two hours, then forward three days: durations are
    # measured on the monotonic clock only.
    assert run(door, face("alice"), 503.0, NOON - dt.timedelta(hours=2)).kind == "ignored"
    assert run(door, face("alice"), 505.0, NOON + dt.timedelta(days=3)).kind == "ignored"
    assert run(door, face("alice"), 510.0, NOON - dt.timedelta(hours=2)).kind == "entry"


def test_a_monotonic_time_going_backwards_is_treated_as_the_latest_seen() -> None:
    door = decider(cooldown_s=10)
    assert run(door, face("alice"), 500.0).kind == "entry"
    assert run(door, face("alice"), 3.0).kind == "ignored"
    assert run(door, face("alice"), 510.0).kind == "entry"


def test_repeated_refusals_are_ignored_and_not_counted() -> None:  # one appearance, repeating
    door = decider(lockout_attempts=2, refusal_repeat_s=10)
    first = run(door, stranger(), 0.0)
    assert_refused(first, "unknown_face")
    for mono in (0.2, 1.0, 9.9):
        repeat = run(door, stranger(), mono)
        assert (repeat.kind, repeat.reason, repeat.is_event) == ("ignored", "repeated_refusal", False)
        assert repeat.details["repeat_of"] == "unknown_face" and repeat.alarm is None
    assert run(door, stranger(), 10.0).alarm == "lockout_started"


def test_different_refusals_are_not_repeats_of_each_other() -> None:
    door = decider(refusal_repeat_s=10)
    assert_refused(run(door, stranger(), 0.0), "unknown_face")
    assert_refused(run(door, forged_qr(), 0.1), "bad_signature")
    assert_refused(run(door, face("sus"), 0.2), "member_suspended")
    assert_refused(run(door, face("old"), 0.3), "member_expired")
    assert_refused(run(door, stranger("out"), 0.4), "unknown_face")  # exit reader: other direction
    assert run(door, face("sus"), 0.5).reason == "repeated_refusal"


def test_lockout_refusals_are_reported_once_per_repeat_window() -> None:
    door = decider(lockout_attempts=1, refusal_repeat_s=10)
    run(door, stranger(appearance=1), 0.0)
    assert_refused(run(door, seen("alice", 1), 1.0), "lockout")
    assert run(door, seen("alice", 1), 2.0).kind == "ignored"
    assert_refused(run(door, seen("bob", 1), 2.0), "lockout")


# ------------------------------------------------------------------------------ anti-passback


def test_anti_passback_in_out_in() -> None:
    door = decider(anti_passback=True, cooldown_s=5, anti_passback_reset_s=3600)
    assert run(door, face("alice"), 0.0).kind == "entry"
    refused = run(door, face("alice"), 60.0)
    assert_refused(refused, "anti_passback")
    assert refused.details["inside_since_s"] == 60.0
    assert run(door, Credential("qr", "alice", direction="out"), 70.0).kind == "exit"
    assert run(door, face("alice"), 80.0).kind == "entry"
    assert run(door, face("bob"), 81.0).kind == "entry"  # per member


def test_anti_passback_resets_after_its_time() -> None:
    door = decider(anti_passback=True, anti_passback_reset_s=3600)
    assert run(door, face("alice"), 0.0).kind == "entry"
    assert_refused(run(door, face("alice"), 3599.0), "anti_passback")
    assert run(door, face("alice"), 3600.0).kind == "entry"


def test_anti_passback_off_by_default() -> None:
    door = decider(cooldown_s=5)
    assert run(door, face("alice"), 0.0).kind == "entry"
    assert run(door, face("alice"), 60.0).kind == "entry"


def test_remote_entry_marks_the_member_inside_and_exit_button_does_not_clear_it() -> None:
    door = decider(anti_passback=True)
    assert run(door, Credential.remote("alice"), 0.0).kind == "entry"
    assert run(door, Credential.exit_button(), 30.0).kind == "exit"
    assert_refused(run(door, face("alice"), 60.0), "anti_passback")
    assert run(door, Credential.remote("alice", direction="out"), 70.0).kind == "exit"
    assert run(door, face("alice"), 80.0).kind == "entry"


# ------------------------------------------------------------------------------ restart state


def test_snapshot_and_restore_keep_lockouts_failures_and_presence() -> None:
    door = decider(anti_passback=True, lockout_attempts=3, refusal_repeat_s=0)
    assert run(door, face("alice"), 1000.0).kind == "entry"
    run(door, stranger(appearance=1, near="bob"), 1010.0)
    state = door.snapshot_state(now_mono=1020.0)
    assert state["version"] == 2
    assert state["failures"] == [{"id": "member:bob", "ages_s": [10.0]}]  # appearances are not kept
    assert state["presence"] == {"alice": {"direction": "in", "age_s": 20.0}}

    # After a reboot the monotonic clock starts near zero.
    fresh = decider(anti_passback=True, lockout_attempts=3, refusal_repeat_s=0)
    fresh.restore_state(state, now_mono=5.0)
    assert_refused(run(fresh, face("alice"), 5.5), "anti_passback")
    assert run(fresh, stranger(appearance=2, near="bob"), 6.0).details["attempts_in_window"] == 2
    assert run(fresh, stranger(appearance=3, near="bob"), 7.0).alarm == "lockout_started"
    run(fresh, forged_qr("dead0000dead0000"), 7.0)
    run(fresh, forged_qr("dead0000dead0000"), 7.5)
    assert run(fresh, forged_qr("dead0000dead0000"), 8.0).alarm == "lockout_started"
    run(fresh, stranger(appearance=4), 8.0)
    run(fresh, stranger(appearance=4), 8.0)
    assert run(fresh, stranger(appearance=4), 8.0).alarm == "lockout_started"
    locked = fresh.snapshot_state(now_mono=8.0)
    assert {lock["id"] for lock in locked["locks"]} == {"member:bob", "pass:dead0000dead0000"}
    member_lock = next(lock for lock in locked["locks"] if lock["id"] == "member:bob")
    assert member_lock["remaining_s"] == pytest.approx(119.0) and member_lock["attempts"] == 3
    again = decider()
    again.restore_state(locked, now_mono=0.0)
    assert {i.id for i in again.active_lockouts(0.0)} == {"member:bob", "pass:dead0000dead0000"}
    assert again.lockout_remaining(0.0) == pytest.approx(120.0)  # the pass lock, the newest
    assert_refused(run(again, seen("bob", 1), 1.0), "lockout")
    assert_refused(run(again, forged_qr("dead0000dead0000"), 1.0), "lockout")
    assert run(again, seen("alice", 4), 1.0).kind == "entry"  # appearance 4 is not carried over


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"version": 1, "lockout_remaining_s": 0, "failure_ages_s": [], "presence": {}},
        {"version": 2},
        {"version": 2, "locks": [], "failures": [], "presence": {"a": {"direction": "up"}}},
        {"version": 2, "locks": [], "failures": [], "presence": {"a": {"direction": "in"}}},
        {"version": 2, "locks": "x", "failures": [], "presence": {}},
        {"version": 2, "locks": [{"id": "door:all"}], "failures": [], "presence": {}},
        {
            "version": 2,
            "locks": [{"id": "member:a", "remaining_s": -1, "age_s": 0, "attempts": 1, "reason": "r"}],
            "failures": [],
            "presence": {},
        },
        {
            "version": 2,
            "locks": [{"id": "member:a", "remaining_s": 1, "age_s": 0, "attempts": True, "reason": "r"}],
            "failures": [],
            "presence": {},
        },
        {"version": 2, "locks": [], "failures": [{"id": "pass:ab", "ages_s": [math.inf]}], "presence": {}},
    ],
)
def test_malformed_snapshots_are_refused_and_leave_state_alone(state: dict[str, Any]) -> None:
    door = decider(lockout_attempts=1)
    run(door, stranger(appearance=1, near="alice"), 0.0)
    with pytest.raises(ValueError, match="snapshot"):
        door.restore_state(state, now_mono=1.0)
    assert door.lockout_remaining(1.0) == pytest.approx(119.0)
    assert {i.id for i in door.active_lockouts(1.0)} == {"appearance:1", "member:alice"}


# ------------------------------------------------------------------------------ config


def test_access_config_defaults() -> None:
    config = AccessConfig()
    assert config.model_dump() == {
        "cooldown_s": 10.0,
        "refusal_repeat_s": 10.0,
        "lockout_attempts": 5,
        "lockout_window_s": 60.0,
        "lockout_s": 120.0,
        "anti_passback": False,
        "anti_passback_reset_s": 43200.0,
        "require_frames": 1,
        "allowed_kinds": (),
        "allowed_groups": (),
    }
    assert all(field.description for field in AccessConfig.model_fields.values())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cooldown_s", -1),
        ("cooldown_s", 601),
        ("cooldown_s", math.nan),
        ("refusal_repeat_s", 601),
        ("lockout_attempts", 0),
        ("lockout_attempts", 101),
        ("lockout_attempts", 2.5),
        ("lockout_window_s", 0),
        ("lockout_window_s", math.inf),
        ("lockout_s", 0),
        ("lockout_s", 3601),
        ("anti_passback_reset_s", 0),
        ("require_frames", 0),
        ("require_frames", 11),
        ("allowed_kinds", "sanitation"),
        ("allowed_kinds", [""]),
        ("allowed_groups", ["x" * 65]),
        ("anti_passback", "maybe"),
    ],
)
def test_access_config_bounds_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        AccessConfig.model_validate({key: value})
    assert caught.value.errors()[0]["loc"][0] == key


def test_access_config_refuses_unknown_keys_and_is_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        AccessConfig.model_validate({"cooldown": 5})
    with pytest.raises(ValidationError, match="extra"):
        AccessConfig.model_validate({"lockout_scope": "member"})
    config = AccessConfig.model_validate({"allowed_kinds": ["sanitation"], "require_frames": 3})
    assert config.allowed_kinds == ("sanitation",) and config.require_frames == 3
    with pytest.raises(ValidationError):
        config.cooldown_s = 1.0  # type: ignore[misc]


# ------------------------------------------------------------------------------ properties

_ACTORS = ["alice", "bob", "sus", "ghost", "stranger", "forged", "exit_button", "remote", "alice_out"]


def _credential(actor: str) -> Credential:
    if actor == "stranger":
        return stranger()
    if actor == "forged":
        return forged_qr()
    if actor == "exit_button":
        return Credential.exit_button()
    if actor == "remote":
        return Credential.remote()
    if actor == "alice_out":
        return face("alice", "out")
    return face(actor)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_ACTORS), st.floats(min_value=0.0, max_value=30.0)), max_size=60),
    st.integers(min_value=1, max_value=5),
    st.sampled_from([0.0, 2.0, 10.0]),
    st.booleans(),
)
def test_invariants_over_random_traffic(
    steps: list[tuple[str, float]], attempts: int, repeat_s: float, anti_passback: bool
) -> None:
    config: dict[str, Any] = {
        "cooldown_s": 10.0,
        "refusal_repeat_s": repeat_s,
        "lockout_attempts": attempts,
        "lockout_window_s": 60.0,
        "lockout_s": 120.0,
        "anti_passback": anti_passback,
    }
    door = decider(**config)
    mono = 0.0
    last_entry: dict[str, float] = {}
    locked_until: dict[str, float] = {}
    for actor, gap in steps:
        mono += gap
        decision = run(door, _credential(actor), mono)
        if actor in ("exit_button", "remote"):
            assert decision.granted  # egress and staff decisions always open
        if actor == "alice_out":
            assert decision.kind in ("exit", "ignored")
        if decision.kind == "entry" and decision.method in ("face", "qr"):
            member = decision.member_id
            assert member is not None and MEMBERS[member].status == "active"
            assert member not in last_entry or mono - last_entry[member] >= 10.0
            last_entry[member] = mono
        if actor in ("stranger", "forged") and mono < locked_until.get(actor, -math.inf):
            assert decision.reason in ("lockout", "repeated_refusal")  # a locked key stays locked
        if decision.alarm == "lockout_started":
            assert decision.kind == "refused" and decision.member_id is None
            assert actor in ("stranger", "forged")  # only what probed is ever locked
            locked_until[actor] = mono + 120.0
        assert decision.granted == (decision.kind in ("entry", "exit"))
        assert (decision.kind == "refused") == (decision.reason is not None and decision.is_event)


def test_two_strangers_in_a_row_are_two_refusals_one_appearance_is_one() -> None:
    """The repeat window folds one stranger's repeats, not a second stranger (another appearance)."""
    import datetime as _dt

    from contract.schedule import ScheduleConfig
    from edge.access import AccessDecider, Credential
    from edge.access_config import AccessConfig
    from recognizer.results import Decision, FaceResult

    decider = AccessDecider(AccessConfig(refusal_repeat_s=10.0), ScheduleConfig().opening_hours())
    now_wall = _dt.datetime(2026, 11, 24, 12, 0, tzinfo=_dt.UTC)
    stranger = FaceResult(Decision.UNKNOWN, distance=0.8, reason="over_threshold")
    first = Credential.from_face(stranger, appearance=1)
    again = Credential.from_face(stranger, appearance=1)
    second = Credential.from_face(stranger, appearance=2)
    assert first is not None and again is not None and second is not None
    kinds = [
        decider.decide(c, {}, now_wall=now_wall, now_mono=t).kind
        for c, t in ((first, 100.0), (again, 101.0), (second, 103.0))
    ]
    assert kinds == ["refused", "ignored", "refused"]
