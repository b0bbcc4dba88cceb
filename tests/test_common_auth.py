"""The auth pieces the station and the centre share (`common.passwords`, `.sessions`, `.login`)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from common.login import LoginGuard, LoginRefused, LoginThrottle, login_name
from common.passwords import (
    PASSWORD_MAX,
    CredentialError,
    Passwords,
    check_new_password,
    generate_secret,
    normalise_username,
)
from common.sessions import SessionStore, csrf_ok

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the pieces, with a clock we control -------------------------------------------------------------


def test_throttle_doubles_the_wait_and_forgives_after_a_quiet_period() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, lockout_s=300.0, backoff_s=1.0, clock=clock)
    key = ("account", "a")
    waits = []
    for _ in range(4):
        assert not throttle.failure(key)
        result = throttle.retry_after([key])
        assert result is not None and result[1] == "slow_down"
        waits.append(round(result[0], 3))
        clock.now += result[0]
        assert throttle.retry_after([key]) is None
    assert waits == [1.0, 2.0, 4.0, 8.0]
    assert throttle.failure(key)  # the fifth locks
    wait = throttle.retry_after([key])
    assert wait is not None and wait[1] == "locked_out" and wait[0] == pytest.approx(300.0)
    clock.now += 301
    assert throttle.retry_after([key]) is None
    throttle.failure(key)
    clock.now += 400  # quiet for longer than the lockout: earlier failures are forgiven
    throttle.failure(key)
    result = throttle.retry_after([key])
    assert result is not None and result[0] == pytest.approx(1.0)


def test_sessions_end_by_age_and_by_idleness() -> None:
    clock = Clock()
    sessions = SessionStore(ttl_s=100.0, idle_s=30.0, max_sessions=2, clock=clock)
    token, _ = sessions.create("a")
    clock.now += 25
    assert sessions.get(token) is not None  # used: idle timer restarts
    clock.now += 25
    assert sessions.get(token) is not None
    clock.now += 31
    assert sessions.get(token) is None  # idle too long
    token, _ = sessions.create("a")
    for _ in range(4):
        clock.now += 25
        sessions.get(token)
    assert sessions.get(token) is None  # 100 s old, however busy
    first, _ = sessions.create("a")
    sessions.create("b")
    sessions.create("c")
    assert sessions.get(first) is None and len(sessions) == 2  # the oldest made room


# -- passwords ---------------------------------------------------------------------------------------


def test_passwords_verify_unknown_wrong_right_and_unusable_hashes() -> None:
    passwords = Passwords(FAST)
    stored = passwords.hash("correct horse battery")
    assert passwords.verify(stored, "correct horse battery").ok
    assert not passwords.verify(stored, "wrong").ok
    unknown = passwords.verify(None, "correct horse battery")  # dummy hash: same work, never ok
    assert not unknown.ok and not unknown.unusable
    broken = passwords.verify("$argon2id$garbage", "x" * 12)
    assert not broken.ok and broken.unusable
    assert not passwords.verify(stored, "x" * (PASSWORD_MAX + 1)).ok
    assert not passwords.verify(stored, None).ok  # type: ignore[arg-type]


def test_a_hash_made_with_weaker_parameters_asks_to_be_upgraded() -> None:
    old = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).hash("a long password")
    current = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    verdict = current.verify(old, "a long password")
    assert verdict.ok and verdict.needs_rehash
    assert not current.verify(current.hash("a long password"), "a long password").needs_rehash


@pytest.mark.parametrize(
    "name", ["", " ", "-lead", "a" * 33, "../etc", "名字", "a b", "a\x00b", None, 5, "ａｄｍｉｎ"]
)
def test_user_names_outside_the_rule_are_refused(name: object) -> None:
    with pytest.raises(CredentialError):
        normalise_username(name)  # type: ignore[arg-type]


def test_user_names_are_trimmed_and_lower_cased() -> None:
    assert normalise_username("  Wang.Li_2 ") == "wang.li_2"
    assert login_name("  ADMIN ") == "admin" and login_name(None) == "" and len(login_name("x" * 500)) == 64


def test_new_passwords_are_checked() -> None:
    check_new_password("a sound passphrase", "wang")
    for bad in ("short", "x" * (PASSWORD_MAX + 1), " Wang.Li.Admin ", None):
        with pytest.raises(CredentialError):
            check_new_password(bad, "wang.li.admin")  # type: ignore[arg-type]
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50 and all(len(s) == 19 and s.count("-") == 3 for s in secrets)


# -- sessions and CSRF -------------------------------------------------------------------------------


def test_tokens_are_kept_hashed_and_hostile_tokens_find_nothing() -> None:
    sessions = SessionStore(ttl_s=100.0, idle_s=100.0, max_sessions=10)
    token, session = sessions.create("a")
    assert token not in session.key and session.key != token and len(session.key) == 64
    for hostile in ("", "x" * 10_000, "\udcff", token + "x", token.upper()):
        assert sessions.get(hostile) is None
    assert sessions.get(token) is session
    assert sessions.revoke_user("a") == 1 and sessions.get(token) is None


def test_csrf_needs_the_sessions_own_token_and_survives_odd_headers() -> None:
    sessions = SessionStore(ttl_s=100.0, idle_s=100.0, max_sessions=10)
    _, session = sessions.create("a")
    _, other = sessions.create("b")
    assert csrf_ok(session, session.csrf_token)
    assert not csrf_ok(session, None) and not csrf_ok(session, "")
    assert not csrf_ok(session, other.csrf_token)
    assert not csrf_ok(session, "é" * 32)  # non-ASCII header text: refused, not a TypeError (500)


# -- the guard ---------------------------------------------------------------------------------------


def test_the_guard_locks_an_account_without_checking_its_password_again() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, lockout_s=60.0, backoff_s=0.0, clock=clock)
    lockouts: list[tuple[str, str]] = []
    guard = LoginGuard(throttle, subject="staff", on_lockout=lambda scope, key: lockouts.append((scope, key)))
    checked: list[str] = []

    def wrong(name: str) -> bool:
        checked.append(name)
        return False

    for _ in range(3):
        with pytest.raises(LoginRefused) as info:
            guard.check(" Admin ", "10.0.0.1", wrong)
        assert info.value.status == 401
    assert lockouts == [("account", "admin")] and checked == ["admin"] * 3
    with pytest.raises(LoginRefused) as info:
        guard.check("admin", "10.0.0.1", lambda name: True)  # right password, still locked
    assert info.value.status == 429 and info.value.code == "locked_out"
    assert info.value.retry_after_s == pytest.approx(60.0)
    assert guard.check("other", "10.0.0.2", lambda name: True) == "other"
    clock.now += 61
    assert guard.check("admin", "10.0.0.1", lambda name: True) == "admin"


def test_the_guard_locks_an_address_spraying_many_accounts() -> None:
    throttle = LoginThrottle(max_failures=2, lockout_s=60.0, backoff_s=0.0, clock=Clock())
    guard = LoginGuard(throttle, subject="staff")
    for i in range(8):  # 4 x 2 failures from one address, each account failing once
        with pytest.raises(LoginRefused):
            guard.check(f"user{i}", "10.0.0.9", lambda name: False)
    with pytest.raises(LoginRefused) as info:
        guard.check("fresh", "10.0.0.9", lambda name: True)
    assert info.value.code == "locked_out"
    assert guard.check("fresh", "10.0.0.10", lambda name: True) == "fresh"


def test_a_refusal_raised_by_verify_is_not_a_failed_guess() -> None:
    throttle = LoginThrottle(max_failures=1, lockout_s=60.0, backoff_s=0.0, clock=Clock())
    guard = LoginGuard(throttle, subject="staff")

    def unavailable(name: str) -> bool:
        raise LoginRefused("accounts unreadable", status=503, code="accounts_unreadable")

    with pytest.raises(LoginRefused) as info:
        guard.check("admin", "10.0.0.1", unavailable)
    assert info.value.status == 503
    assert throttle.retry_after([("account", "admin")]) is None
